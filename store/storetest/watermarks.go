package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

func wm(job string, company int64, value, keys string) store.Watermark {
	w := store.Watermark{Job: job, Company: company, Value: value}
	if keys != "" {
		w.Keys = []byte(keys)
	}
	return w
}

func getWM(t *testing.T, s store.Store, job string, company int64) store.Watermark {
	t.Helper()
	w, err := s.Watermark(ctx(t), job, company)
	require.NoError(t, err)
	return w
}

var watermarkTests = []test{
	{"CommitForwardOnly", func(t *testing.T, s store.Store) {
		_, err := s.Watermark(ctx(t), "orders", 1001)
		require.ErrorIs(t, err, store.ErrNotFound)

		c := claimJob(t, s, "orders", "skip", "a", lease)
		before := dbNow(t, s)
		w := wm("orders", 1001, "2026-03-01T10:00:00.000", `{"k":[1,2]}`)
		w.Fence, w.RunID = 99999, "ignored" // the store records the attempt's
		require.NoError(t, s.CommitWatermark(ctx(t), c.Fence, w))
		after := dbNow(t, s)
		got := getWM(t, s, "orders", 1001)
		require.Equal(t, "orders", got.Job)
		require.EqualValues(t, 1001, got.Company)
		require.Equal(t, "2026-03-01T10:00:00.000", got.Value)
		require.JSONEq(t, `{"k":[1,2]}`, string(got.Keys))
		require.Equal(t, c.Fence, got.Fence)
		require.Equal(t, c.RunID, got.RunID)
		requireBetween(t, before, after, got.UpdatedAt, "updated_at")
		requireUTC(t, &got.UpdatedAt)

		// Backwards: accepted, changes nothing.
		require.NoError(t, s.CommitWatermark(ctx(t), c.Fence, wm("orders", 1001, "2026-02-28T23:59:59.999", `{"k":[9]}`)))
		require.Equal(t, got, getWM(t, s, "orders", 1001))

		// Equal: the keys are replaced.
		require.NoError(t, s.CommitWatermark(ctx(t), c.Fence, wm("orders", 1001, "2026-03-01T10:00:00.000", `{"k":[1,2,3]}`)))
		require.JSONEq(t, `{"k":[1,2,3]}`, string(getWM(t, s, "orders", 1001).Keys))

		// Forward, from a retry's new attempt.
		r, err := s.Retry(ctx(t), c.Fence, "x", lease)
		require.NoError(t, err)
		require.NoError(t, s.CommitWatermark(ctx(t), r.Fence, wm("orders", 1001, "2026-03-02T00:00:00.000", "")))
		got = getWM(t, s, "orders", 1001)
		require.Equal(t, "2026-03-02T00:00:00.000", got.Value)
		require.Nil(t, got.Keys)
		require.Equal(t, r.Fence, got.Fence)
		require.Equal(t, r.RunID, got.RunID)

		// Spent and finished fences commit nothing.
		require.ErrorIs(t, s.CommitWatermark(ctx(t), c.Fence, wm("orders", 1001, "2027-01-01T00:00:00.000", "")), store.ErrFenced)
		require.NoError(t, s.Finish(ctx(t), r.Fence, store.Outcome{Status: store.StatusSucceeded}))
		require.ErrorIs(t, s.CommitWatermark(ctx(t), r.Fence, wm("orders", 1001, "2027-01-01T00:00:00.000", "")), store.ErrFenced)
		require.ErrorIs(t, s.CommitWatermark(ctx(t), r.Fence+1000, wm("orders", 1002, "2027-01-01T00:00:00.000", "")), store.ErrFenced)
		require.Equal(t, "2026-03-02T00:00:00.000", getWM(t, s, "orders", 1001).Value)
		_, err = s.Watermark(ctx(t), "orders", 1002)
		require.ErrorIs(t, err, store.ErrNotFound)
	}},
	{"CommitOtherJobRefused", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "skip", "a", lease)
		err := s.CommitWatermark(ctx(t), c.Fence, wm("associates", 1001, "2026-03-01T10:00:00.000", ""))
		require.Error(t, err)
		_, err = s.Watermark(ctx(t), "associates", 1001)
		require.ErrorIs(t, err, store.ErrNotFound)
	}},
	{"CommitWhileLeaseExpired", func(t *testing.T, s store.Store) {
		// Until another replica takes the slot over, the fence is current.
		c := claimJob(t, s, "orders", "skip", "a", shortLease)
		waitPast(t, s, *slotByID(t, s, c.SlotID).LeaseUntil)
		require.NoError(t, s.CommitWatermark(ctx(t), c.Fence, wm("orders", 1, "2026-03-01T10:00:00.000", "")))
		require.Equal(t, c.Fence, getWM(t, s, "orders", 1).Fence)
	}},
	{"SetListReset", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "skip", "a", lease)
		require.NoError(t, s.CommitWatermark(ctx(t), c.Fence, wm("orders", 1002, "2026-03-05T00:00:00.000", "")))

		// An operator's set moves the value anywhere, backwards too.
		set := wm("orders", 1002, "2026-01-01T00:00:00.000", `[]`)
		require.NoError(t, s.SetWatermark(ctx(t), set))
		got := getWM(t, s, "orders", 1002)
		require.Equal(t, set.Value, got.Value)
		require.JSONEq(t, `[]`, string(got.Keys))
		require.Zero(t, got.Fence)
		require.Empty(t, got.RunID)
		require.NoError(t, s.SetWatermark(ctx(t), wm("orders", 1001, "2026-02-01T00:00:00.000", "")))
		require.NoError(t, s.SetWatermark(ctx(t), wm("associates", 1001, "2026-02-01T00:00:00.000", "")))
		require.NoError(t, s.SetWatermark(ctx(t), wm("associates", 5, "2026-02-01T00:00:00.000", "")))

		list := func(job string) []string {
			ws, err := s.Watermarks(ctx(t), job)
			require.NoError(t, err)
			var out []string
			for _, w := range ws {
				out = append(out, fmt.Sprintf("%s/%d:%s", w.Job, w.Company, w.Value[:10]))
			}
			return out
		}
		require.Equal(t, []string{
			"associates/5:2026-02-01", "associates/1001:2026-02-01", "orders/1001:2026-02-01", "orders/1002:2026-01-01",
		}, list(""), "by job, then company")
		require.Equal(t, []string{"orders/1001:2026-02-01", "orders/1002:2026-01-01"}, list("orders"))
		require.Empty(t, list("missing"))

		company := int64(1002)
		n, err := s.ResetWatermarks(ctx(t), "orders", &company)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, []string{"orders/1001:2026-02-01"}, list("orders"))
		n, err = s.ResetWatermarks(ctx(t), "associates", nil)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Empty(t, list("associates"))
		n, err = s.ResetWatermarks(ctx(t), "missing", nil)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Len(t, list(""), 1)
	}},
}

var tokenTests = []test{
	{"AccessTokens", func(t *testing.T, s store.Store) {
		_, err := s.Token(ctx(t), "service")
		require.ErrorIs(t, err, store.ErrNotFound)

		expiry := time.Date(2026, 11, 22, 14, 0, 0, 0, time.FixedZone("CET", 3600))
		tok := store.AccessToken{Cipher: []byte{1, 2, 3, 0, 255}, Hash: "aaaa", Expiry: expiry}
		before := dbNow(t, s)
		require.NoError(t, s.PutAccessToken(ctx(t), "service", tok))
		after := dbNow(t, s)
		rec, err := s.Token(ctx(t), "service")
		require.NoError(t, err)
		require.Equal(t, "service", rec.Connection)
		require.NotNil(t, rec.Access)
		require.Equal(t, tok.Cipher, rec.Access.Cipher)
		require.Equal(t, "aaaa", rec.Access.Hash)
		requireTime(t, expiry, rec.Access.Expiry)
		requireUTC(t, &rec.Access.Expiry, &rec.UpdatedAt)
		requireBetween(t, before, after, rec.UpdatedAt, "updated_at")
		require.Nil(t, rec.RefreshCipher)
		require.Zero(t, rec.Generation)
		require.Empty(t, rec.LeaseOwner)
		require.Nil(t, rec.LeaseUntil)
		require.Nil(t, rec.RefreshExpiresAt)
		require.Empty(t, rec.Status)
		require.Empty(t, rec.StatusMessage)

		// A newer token replaces it.
		tok2 := store.AccessToken{Cipher: []byte("second"), Hash: "bbbb", Expiry: expiry.Add(time.Hour)}
		require.NoError(t, s.PutAccessToken(ctx(t), "service", tok2))
		rec, err = s.Token(ctx(t), "service")
		require.NoError(t, err)
		require.Equal(t, tok2.Cipher, rec.Access.Cipher)
		require.Equal(t, "bbbb", rec.Access.Hash)

		// A 401 for the old token does not evict the new one.
		require.NoError(t, s.InvalidateAccessToken(ctx(t), "service", "aaaa"))
		rec, err = s.Token(ctx(t), "service")
		require.NoError(t, err)
		require.NotNil(t, rec.Access)
		require.Equal(t, "bbbb", rec.Access.Hash)

		require.NoError(t, s.InvalidateAccessToken(ctx(t), "service", "bbbb"))
		rec, err = s.Token(ctx(t), "service")
		require.NoError(t, err, "the record stays")
		require.Nil(t, rec.Access)

		require.NoError(t, s.InvalidateAccessToken(ctx(t), "missing", "bbbb"))
		_, err = s.Token(ctx(t), "missing")
		require.ErrorIs(t, err, store.ErrNotFound)

		// Connections are separate.
		require.NoError(t, s.PutAccessToken(ctx(t), "nightly-user", tok))
		rec, err = s.Token(ctx(t), "service")
		require.NoError(t, err)
		require.Nil(t, rec.Access)
	}},
	{"InvalidAccessToken", func(t *testing.T, s store.Store) {
		require.Error(t, s.PutAccessToken(ctx(t), "service", store.AccessToken{Hash: "aaaa", Expiry: time.Now()}))
		require.Error(t, s.PutAccessToken(ctx(t), "service", store.AccessToken{Cipher: []byte{1}, Expiry: time.Now()}))
		_, err := s.Token(ctx(t), "service")
		require.ErrorIs(t, err, store.ErrNotFound)
	}},
}
