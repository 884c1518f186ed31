package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

// RunTokens runs the conformance suite of store.TokenStore. open returns a
// fresh, migrated, empty store (which must implement store.TokenStore) for
// one test and closes it when the test ends.
//
// Rules the suite pins down beyond the doc comments of store.TokenStore:
//   - A record made by PutAccessToken alone (client credentials) has no
//     refresh token: LeaseRefresh answers ErrStale.
//   - Enroll starts at generation 1 and clears needs_reenroll and its
//     message; RefreshExpiresAt nil stores no expiry.
//   - CompleteRefresh and MarkNeedsReenroll by the owner of a lease that
//     ran out succeed while nobody else took the lease.
//   - Rekey touches only non-NULL ciphertexts and counts each one.
func RunTokens(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tc := range tokenStoreTests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			ts, ok := s.(store.TokenStore)
			require.Truef(t, ok, "%T does not implement store.TokenStore", s)
			tc.run(t, s, ts)
		})
	}
}

type tokenStoreTest struct {
	name string
	run  func(t *testing.T, s store.Store, ts store.TokenStore)
}

const (
	conn     = "nightly-user"
	ownerA   = "replica-a"
	ownerB   = "replica-b"
	longTime = time.Hour
)

func enroll(t *testing.T, ts store.TokenStore, connection, refresh string) store.TokenState {
	t.Helper()
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	st, err := ts.Enroll(ctx(t), connection, store.Enrollment{
		RefreshCipher:    []byte(refresh),
		Access:           &store.AccessToken{Cipher: []byte("access-of-" + refresh), Hash: "hash-of-" + refresh, Expiry: exp.Add(-time.Hour)},
		RefreshExpiresAt: &exp,
		EnrolledAs:       "job.user@example.com",
	})
	require.NoError(t, err)
	return st
}

func rotation(refresh string) store.Rotation {
	return store.Rotation{
		RefreshCipher: []byte(refresh),
		Access:        &store.AccessToken{Cipher: []byte("access-of-" + refresh), Hash: "hash-of-" + refresh, Expiry: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)},
	}
}

func tokenState(t *testing.T, ts store.TokenStore, connection string) store.TokenState {
	t.Helper()
	st, err := ts.TokenState(ctx(t), connection)
	require.NoError(t, err)
	return st
}

var tokenStoreTests = []tokenStoreTest{
	{"EnrollCreatesAndReplaces", func(t *testing.T, s store.Store, ts store.TokenStore) {
		_, err := ts.TokenState(ctx(t), conn)
		require.ErrorIs(t, err, store.ErrNotFound)
		before := dbNow(t, s)
		st := enroll(t, ts, conn, "refresh-1")
		after := dbNow(t, s)
		require.Equal(t, conn, st.Connection)
		require.Equal(t, int64(1), st.Generation)
		require.Equal(t, store.TokenStatusOK, st.Status)
		require.Equal(t, []byte("refresh-1"), st.RefreshCipher)
		require.NotNil(t, st.Access)
		require.Equal(t, "hash-of-refresh-1", st.Access.Hash)
		require.Equal(t, "job.user@example.com", st.EnrolledAs)
		require.NotNil(t, st.EnrolledAt)
		require.NotNil(t, st.RefreshedAt)
		require.NotNil(t, st.RefreshExpiresAt)
		requireTime(t, time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), *st.RefreshExpiresAt)
		requireBetween(t, before, after, *st.EnrolledAt, "enrolled_at")
		requireBetween(t, before, after, *st.RefreshedAt, "refreshed_at")
		requireUTC(t, st.EnrolledAt, st.RefreshedAt, st.RefreshExpiresAt, &st.UpdatedAt, &st.Access.Expiry)
		require.Empty(t, st.LeaseOwner)
		require.Nil(t, st.LeaseUntil)
		require.Equal(t, st, tokenState(t, ts, conn))

		// Store.Token sees the same record.
		rec, err := s.Token(ctx(t), conn)
		require.NoError(t, err)
		require.Equal(t, st.TokenRecord, rec)

		// Enrolling again bumps the generation; no access token and no
		// expiry are stored as such.
		st2, err := ts.Enroll(ctx(t), conn, store.Enrollment{RefreshCipher: []byte("refresh-2")})
		require.NoError(t, err)
		require.Equal(t, int64(2), st2.Generation)
		require.Equal(t, []byte("refresh-2"), st2.RefreshCipher)
		require.Nil(t, st2.Access)
		require.Nil(t, st2.RefreshExpiresAt)
		require.Empty(t, st2.EnrolledAs)
	}},
	{"EnrollRefusesEmpty", func(t *testing.T, _ store.Store, ts store.TokenStore) {
		_, err := ts.Enroll(ctx(t), conn, store.Enrollment{})
		require.Error(t, err)
		_, err = ts.Enroll(ctx(t), conn, store.Enrollment{RefreshCipher: []byte("r"), Access: &store.AccessToken{Hash: "h"}})
		require.Error(t, err)
		_, err = ts.TokenState(ctx(t), conn)
		require.ErrorIs(t, err, store.ErrNotFound)
	}},
	{"LeaseThenComplete", func(t *testing.T, s store.Store, ts store.TokenStore) {
		st := enroll(t, ts, conn, "refresh-1")
		before := dbNow(t, s)
		leased, err := ts.LeaseRefresh(ctx(t), conn, ownerA, st.Generation, longTime)
		after := dbNow(t, s)
		require.NoError(t, err)
		require.Equal(t, ownerA, leased.LeaseOwner)
		require.NotNil(t, leased.LeaseUntil)
		requireBetween(t, before.Add(longTime), after.Add(longTime), *leased.LeaseUntil, "lease_until")
		requireUTC(t, leased.LeaseUntil)
		require.Equal(t, st.Generation, leased.Generation)

		// Another owner waits; the same owner may lease again.
		held, err := ts.LeaseRefresh(ctx(t), conn, ownerB, st.Generation, longTime)
		require.ErrorIs(t, err, store.ErrLeaseHeld)
		require.ErrorContains(t, err, ownerA)
		require.Equal(t, ownerA, held.LeaseOwner, "the current record comes with ErrLeaseHeld")
		_, err = ts.LeaseRefresh(ctx(t), conn, ownerA, st.Generation, longTime)
		require.NoError(t, err)

		// Another owner cannot complete over a live lease.
		_, err = ts.CompleteRefresh(ctx(t), conn, ownerB, st.Generation, rotation("refresh-b"))
		require.ErrorIs(t, err, store.ErrStale)
		require.Equal(t, []byte("refresh-1"), tokenState(t, ts, conn).RefreshCipher)

		before = dbNow(t, s)
		done, err := ts.CompleteRefresh(ctx(t), conn, ownerA, st.Generation, rotation("refresh-2"))
		after = dbNow(t, s)
		require.NoError(t, err)
		require.Equal(t, st.Generation+1, done.Generation)
		require.Equal(t, []byte("refresh-2"), done.RefreshCipher)
		require.Equal(t, "hash-of-refresh-2", done.Access.Hash)
		require.Equal(t, []byte("access-of-refresh-2"), done.Access.Cipher)
		requireTime(t, time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC), done.Access.Expiry)
		require.Empty(t, done.LeaseOwner)
		require.Nil(t, done.LeaseUntil)
		require.Equal(t, store.TokenStatusOK, done.Status)
		requireBetween(t, before, after, *done.RefreshedAt, "refreshed_at")
		requireTime(t, *st.RefreshExpiresAt, *done.RefreshExpiresAt, "a rotation without an expiry keeps the stored one")
		requireTime(t, *st.EnrolledAt, *done.EnrolledAt)
		require.Equal(t, st.EnrolledAs, done.EnrolledAs)
		require.Equal(t, done, tokenState(t, ts, conn))

		// The old generation is gone for everyone.
		_, err = ts.CompleteRefresh(ctx(t), conn, ownerA, st.Generation, rotation("refresh-3"))
		require.ErrorIs(t, err, store.ErrStale)
		stale, err := ts.LeaseRefresh(ctx(t), conn, ownerB, st.Generation, longTime)
		require.ErrorIs(t, err, store.ErrStale)
		require.Equal(t, done.Generation, stale.Generation, "the current record comes with ErrStale")
		require.Equal(t, []byte("refresh-2"), tokenState(t, ts, conn).RefreshCipher)

		// A rotation with an expiry replaces it; one without an access
		// token forgets the cached one.
		_, err = ts.LeaseRefresh(ctx(t), conn, ownerB, done.Generation, longTime)
		require.NoError(t, err)
		exp := time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)
		done2, err := ts.CompleteRefresh(ctx(t), conn, ownerB, done.Generation, store.Rotation{RefreshCipher: []byte("refresh-3"), RefreshExpiresAt: &exp})
		require.NoError(t, err)
		requireTime(t, exp, *done2.RefreshExpiresAt)
		require.Nil(t, done2.Access)
		rec, err := s.Token(ctx(t), conn)
		require.NoError(t, err)
		require.Nil(t, rec.Access)
	}},
	{"CompleteRefusesEmpty", func(t *testing.T, _ store.Store, ts store.TokenStore) {
		st := enroll(t, ts, conn, "refresh-1")
		_, err := ts.LeaseRefresh(ctx(t), conn, ownerA, st.Generation, longTime)
		require.NoError(t, err)
		_, err = ts.CompleteRefresh(ctx(t), conn, ownerA, st.Generation, store.Rotation{})
		require.Error(t, err)
		_, err = ts.CompleteRefresh(ctx(t), conn, ownerA, st.Generation, store.Rotation{RefreshCipher: []byte("r"), Access: &store.AccessToken{Cipher: []byte("c")}})
		require.Error(t, err)
		require.Equal(t, st.Generation, tokenState(t, ts, conn).Generation)
	}},
	{"LeaseNeedsARefreshToken", func(t *testing.T, s store.Store, ts store.TokenStore) {
		_, err := ts.LeaseRefresh(ctx(t), conn, ownerA, 0, longTime)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, s.PutAccessToken(ctx(t), "service", store.AccessToken{Cipher: []byte("c"), Hash: "h", Expiry: time.Now()}))
		_, err = ts.LeaseRefresh(ctx(t), "service", ownerA, 0, longTime)
		require.ErrorIs(t, err, store.ErrStale)
		st := tokenState(t, ts, "service")
		require.Zero(t, st.Generation)
		require.Nil(t, st.RefreshedAt)
		require.Nil(t, st.EnrolledAt)
		require.Empty(t, st.LeaseOwner)

		_, err = ts.LeaseRefresh(ctx(t), conn, "", 0, longTime)
		require.Error(t, err)
		_, err = ts.LeaseRefresh(ctx(t), conn, ownerA, 0, 0)
		require.Error(t, err)
	}},
	{"ExpiredLeaseIsTakenOver", func(t *testing.T, s store.Store, ts store.TokenStore) {
		st := enroll(t, ts, conn, "refresh-1")
		a, err := ts.LeaseRefresh(ctx(t), conn, ownerA, st.Generation, shortLease)
		require.NoError(t, err)
		waitPast(t, s, *a.LeaseUntil)
		b, err := ts.LeaseRefresh(ctx(t), conn, ownerB, st.Generation, longTime)
		require.NoError(t, err)
		require.Equal(t, ownerB, b.LeaseOwner)
		// A, late, may not complete over B's live lease, nor mark it.
		_, err = ts.CompleteRefresh(ctx(t), conn, ownerA, st.Generation, rotation("refresh-a"))
		require.ErrorIs(t, err, store.ErrStale)
		_, err = ts.MarkNeedsReenroll(ctx(t), conn, ownerA, st.Generation, "refused")
		require.ErrorIs(t, err, store.ErrStale)
		got := tokenState(t, ts, conn)
		require.Equal(t, []byte("refresh-1"), got.RefreshCipher)
		require.Equal(t, store.TokenStatusOK, got.Status)
	}},
	{"ExpiredLeaseStillCompletes", func(t *testing.T, s store.Store, ts store.TokenStore) {
		st := enroll(t, ts, conn, "refresh-1")
		a, err := ts.LeaseRefresh(ctx(t), conn, ownerA, st.Generation, shortLease)
		require.NoError(t, err)
		waitPast(t, s, *a.LeaseUntil)
		done, err := ts.CompleteRefresh(ctx(t), conn, ownerA, st.Generation, rotation("refresh-2"))
		require.NoError(t, err, "nobody took the lease: the rotation is stored")
		require.Equal(t, st.Generation+1, done.Generation)
	}},
	{"Release", func(t *testing.T, _ store.Store, ts store.TokenStore) {
		st := enroll(t, ts, conn, "refresh-1")
		_, err := ts.LeaseRefresh(ctx(t), conn, ownerA, st.Generation, longTime)
		require.NoError(t, err)
		require.NoError(t, ts.ReleaseRefresh(ctx(t), conn, ownerB, st.Generation), "not B's lease: nothing happens")
		require.Equal(t, ownerA, tokenState(t, ts, conn).LeaseOwner)
		require.NoError(t, ts.ReleaseRefresh(ctx(t), conn, ownerA, st.Generation-1))
		require.Equal(t, ownerA, tokenState(t, ts, conn).LeaseOwner, "another generation: nothing happens")
		require.NoError(t, ts.ReleaseRefresh(ctx(t), conn, ownerA, st.Generation))
		got := tokenState(t, ts, conn)
		require.Empty(t, got.LeaseOwner)
		require.Nil(t, got.LeaseUntil)
		require.Equal(t, st.Generation, got.Generation)
		_, err = ts.LeaseRefresh(ctx(t), conn, ownerB, st.Generation, longTime)
		require.NoError(t, err)
		require.NoError(t, ts.ReleaseRefresh(ctx(t), "missing", ownerA, 1))
	}},
	{"NeedsReenroll", func(t *testing.T, s store.Store, ts store.TokenStore) {
		st := enroll(t, ts, conn, "refresh-1")
		_, err := ts.LeaseRefresh(ctx(t), conn, ownerA, st.Generation, longTime)
		require.NoError(t, err)
		_, err = ts.MarkNeedsReenroll(ctx(t), conn, ownerB, st.Generation, "refused")
		require.ErrorIs(t, err, store.ErrStale, "B holds no lease")
		_, err = ts.MarkNeedsReenroll(ctx(t), conn, ownerA, st.Generation-1, "refused")
		require.ErrorIs(t, err, store.ErrStale, "old generation")

		marked, err := ts.MarkNeedsReenroll(ctx(t), conn, ownerA, st.Generation, "invalid_grant: the refresh token was revoked")
		require.NoError(t, err)
		require.Equal(t, store.TokenStatusNeedsReenroll, marked.Status)
		require.Equal(t, "invalid_grant: the refresh token was revoked", marked.StatusMessage)
		require.Nil(t, marked.RefreshCipher, "the refused token is forgotten")
		require.Nil(t, marked.Access)
		require.Empty(t, marked.LeaseOwner)
		require.Nil(t, marked.LeaseUntil)
		require.Equal(t, st.Generation, marked.Generation)
		require.Equal(t, marked, tokenState(t, ts, conn))
		rec, err := s.Token(ctx(t), conn)
		require.NoError(t, err)
		require.Nil(t, rec.Access)

		_, err = ts.LeaseRefresh(ctx(t), conn, ownerB, st.Generation, longTime)
		require.ErrorIs(t, err, store.ErrStale)

		again := enroll(t, ts, conn, "refresh-new")
		require.Equal(t, st.Generation+1, again.Generation)
		require.Equal(t, store.TokenStatusOK, again.Status)
		require.Empty(t, again.StatusMessage)
		_, err = ts.LeaseRefresh(ctx(t), conn, ownerB, again.Generation, longTime)
		require.NoError(t, err)
	}},
	{"OneLeaseAmongMany", func(t *testing.T, _ store.Store, ts store.TokenStore) {
		st := enroll(t, ts, conn, "refresh-1")
		const n = 8
		_, errs := race(n, func(i int) (store.TokenState, error) {
			return ts.LeaseRefresh(ctx(t), conn, fmt.Sprintf("replica-%d", i), st.Generation, longTime)
		})
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
				continue
			}
			require.ErrorIs(t, err, store.ErrLeaseHeld)
		}
		require.Equal(t, 1, won)
		owner := tokenState(t, ts, conn).LeaseOwner
		// Only the winner completes; everyone else is stale.
		_, errs = race(n, func(i int) (store.TokenState, error) {
			return ts.CompleteRefresh(ctx(t), conn, fmt.Sprintf("replica-%d", i), st.Generation, rotation(fmt.Sprintf("refresh-%d", i)))
		})
		won = 0
		for i, err := range errs {
			if err == nil {
				won++
				require.Equal(t, owner, fmt.Sprintf("replica-%d", i))
				continue
			}
			require.ErrorIs(t, err, store.ErrStale)
		}
		require.Equal(t, 1, won)
		got := tokenState(t, ts, conn)
		require.Equal(t, st.Generation+1, got.Generation)
		require.Equal(t, []byte("refresh-"+owner[len("replica-"):]), got.RefreshCipher)
	}},
	{"ListDeleteRename", func(t *testing.T, _ store.Store, ts store.TokenStore) {
		list, err := ts.TokenStates(ctx(t))
		require.NoError(t, err)
		require.Empty(t, list)
		enroll(t, ts, "b-conn", "refresh-b")
		enroll(t, ts, "a-conn", "refresh-a")
		list, err = ts.TokenStates(ctx(t))
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "a-conn", list[0].Connection)
		require.Equal(t, "b-conn", list[1].Connection)
		require.Equal(t, tokenState(t, ts, "a-conn"), list[0])

		require.ErrorIs(t, ts.RenameTokens(ctx(t), "a-conn", "b-conn"), store.ErrExists)
		require.ErrorIs(t, ts.RenameTokens(ctx(t), "missing", "c-conn"), store.ErrNotFound)
		require.NoError(t, ts.RenameTokens(ctx(t), "a-conn", "c-conn"))
		_, err = ts.TokenState(ctx(t), "a-conn")
		require.ErrorIs(t, err, store.ErrNotFound)
		c := tokenState(t, ts, "c-conn")
		require.Equal(t, []byte("refresh-a"), c.RefreshCipher)
		require.Equal(t, int64(1), c.Generation)

		require.NoError(t, ts.DeleteTokens(ctx(t), "c-conn"))
		require.ErrorIs(t, ts.DeleteTokens(ctx(t), "c-conn"), store.ErrNotFound)
		_, err = ts.TokenState(ctx(t), "c-conn")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err = ts.TokenStates(ctx(t))
		require.NoError(t, err)
		require.Len(t, list, 1)
	}},
	{"KeyCheck", func(t *testing.T, _ store.Store, ts store.TokenStore) {
		_, err := ts.KeyCheck(ctx(t))
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = ts.EnsureKeyCheck(ctx(t), nil)
		require.Error(t, err)
		got, err := ts.EnsureKeyCheck(ctx(t), []byte("first"))
		require.NoError(t, err)
		require.Equal(t, []byte("first"), got)
		got, err = ts.EnsureKeyCheck(ctx(t), []byte("second"))
		require.NoError(t, err)
		require.Equal(t, []byte("first"), got, "the stored value wins")
		got, err = ts.KeyCheck(ctx(t))
		require.NoError(t, err)
		require.Equal(t, []byte("first"), got)
	}},
	{"Rekey", func(t *testing.T, s store.Store, ts store.TokenStore) {
		n, err := ts.Rekey(ctx(t), func(c []byte) ([]byte, error) { return c, nil })
		require.NoError(t, err)
		require.Zero(t, n, "an empty store")

		enroll(t, ts, "a-conn", "refresh-a")
		_, err = ts.Enroll(ctx(t), "b-conn", store.Enrollment{RefreshCipher: []byte("refresh-b")})
		require.NoError(t, err)
		require.NoError(t, s.PutAccessToken(ctx(t), "service", store.AccessToken{Cipher: []byte("access-s"), Hash: "h", Expiry: time.Now()}))
		_, err = ts.EnsureKeyCheck(ctx(t), []byte("check"))
		require.NoError(t, err)

		boom := errors.New("boom")
		_, err = ts.Rekey(ctx(t), func(c []byte) ([]byte, error) {
			if bytes.Equal(c, []byte("access-s")) {
				return nil, boom
			}
			return append([]byte("new:"), c...), nil
		})
		require.ErrorIs(t, err, boom)
		require.Equal(t, []byte("refresh-a"), tokenState(t, ts, "a-conn").RefreshCipher, "a failed rekey changes nothing")

		n, err = ts.Rekey(ctx(t), func(c []byte) ([]byte, error) { return append([]byte("new:"), c...), nil })
		require.NoError(t, err)
		require.Equal(t, 5, n, "a: refresh and access, b: refresh, service: access, the key check")
		a := tokenState(t, ts, "a-conn")
		require.Equal(t, []byte("new:refresh-a"), a.RefreshCipher)
		require.Equal(t, []byte("new:access-of-refresh-a"), a.Access.Cipher)
		require.Equal(t, "hash-of-refresh-a", a.Access.Hash)
		b := tokenState(t, ts, "b-conn")
		require.Equal(t, []byte("new:refresh-b"), b.RefreshCipher)
		require.Nil(t, b.Access)
		svc := tokenState(t, ts, "service")
		require.Nil(t, svc.RefreshCipher)
		require.Equal(t, []byte("new:access-s"), svc.Access.Cipher)
		check, err := ts.KeyCheck(ctx(t))
		require.NoError(t, err)
		require.Equal(t, []byte("new:check"), check)
	}},
	{"UseOnce", func(t *testing.T, s store.Store, ts store.TokenStore) {
		future := dbNow(t, s).Add(time.Hour)
		require.NoError(t, ts.UseOnce(ctx(t), "link:1", future))
		require.ErrorIs(t, ts.UseOnce(ctx(t), "link:1", future), store.ErrUsed)
		require.NoError(t, ts.UseOnce(ctx(t), "link:2", future))
		require.Error(t, ts.UseOnce(ctx(t), "", future))

		// A marker past its expiry is pruned.
		past := dbNow(t, s).Add(-time.Second)
		require.NoError(t, ts.UseOnce(ctx(t), "link:old", past))
		require.NoError(t, ts.UseOnce(ctx(t), "link:other", future))
		require.NoError(t, ts.UseOnce(ctx(t), "link:old", future), "pruned once expired")
		require.ErrorIs(t, ts.UseOnce(ctx(t), "link:1", future), store.ErrUsed, "live markers stay")
	}},
}
