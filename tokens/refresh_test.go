package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/store"
)

// TestRotationOverManyExpiries: three replicas, each with five jobs asking
// for a token at every expiry, rotate the refresh token exactly once per
// expiry, with no reuse, and the store never holds a token in clear text.
func TestRotationOverManyExpiries(t *testing.T) {
	const ttl = 10 * time.Minute
	r := newRig(t, withAccessTTL(ttl))
	first := r.enrollChain()
	replicas := []Source{
		source(t, r.replica("replica-a"), userConnName),
		source(t, r.replica("replica-b"), userConnName),
		source(t, r.replica("replica-c"), userConnName),
	}
	seen := map[string]bool{}
	refreshes := []string{first}
	const expiries = 40
	for i := range expiries {
		var wg sync.WaitGroup
		var mu sync.Mutex
		hashes := map[string]bool{}
		for _, src := range replicas {
			for range 5 {
				wg.Go(func() {
					tok, err := src.Token(context.Background())
					require.NoError(t, err)
					require.True(t, r.clock.Now().Before(tok.Expiry), "a valid token")
					mu.Lock()
					hashes[tok.Hash] = true
					seen[tok.Value.Reveal()] = true
					mu.Unlock()
				})
			}
		}
		wg.Wait()
		// While one replica rotates, the others may still hand out the
		// current token (valid, only due for renewal); afterwards everyone
		// has the new one.
		require.LessOrEqual(t, len(hashes), 2)
		after := map[string]bool{}
		for _, src := range replicas {
			tok, err := src.Token(context.Background())
			require.NoError(t, err)
			after[tok.Hash] = true
		}
		require.Len(t, after, 1, "expiry %d: every replica has the same token", i)
		st := r.stats()
		require.Equal(t, int64(i+1), st.TokenRequests.RefreshToken.OK, "expiry %d: one refresh per expiry", i)
		require.Zero(t, st.TokenRequests.RefreshToken.Error)
		require.Zero(t, st.ReuseDetected)
		require.Equal(t, int64(i+2), r.state().Generation, "import is generation 1")
		refreshes = append(refreshes, r.storedRefresh())
		// Past the renewal point: min(5m, ttl/4) before expiry.
		r.clock.Add(ttl - renewAhead(ttl) + time.Second)
	}
	require.Len(t, seen, expiries)
	secrets := append([]string(nil), refreshes...)
	for v := range seen {
		secrets = append(secrets, v)
	}
	r.requireStoreHasNoSecret(secrets...)
	requireNoLeak(t, r.logs, nil, secrets...)
	require.Equal(t, float64(expiries), testutil.ToFloat64(r.metrics.TokenRefreshTotal.WithLabelValues(userConnName, "ok")))
}

func TestNotEnrolled(t *testing.T) {
	r := newRig(t)
	src := source(t, r.replica("replica-a"), userConnName)
	_, err := src.Token(context.Background())
	require.ErrorIs(t, err, ErrNotEnrolled)
	require.ErrorIs(t, err, ErrPermanent)
	require.ErrorContains(t, err, "nxtcron tokens enroll nightly-user")
	require.Zero(t, r.stats().TokenRequests.RefreshToken.OK+r.stats().TokenRequests.RefreshToken.Error)
	require.Equal(t, 1.0, testutil.ToFloat64(r.metrics.ConnectionNeedsReenroll.WithLabelValues(userConnName)))
}

// TestInvalidGrantNeedsReenroll: a refused refresh token marks the
// connection needs_reenroll; every replica then fails with the one message
// and nobody asks the provider again, until a new enrollment.
func TestInvalidGrantNeedsReenroll(t *testing.T) {
	r := newRig(t)
	first := r.enrollChain()
	// Someone else spends the token: ours is consumed, and using it again
	// (no grace) revokes the chain.
	_, status := r.spend(first)
	require.Equal(t, http.StatusOK, status)

	a := source(t, r.replica("replica-a"), userConnName)
	b := source(t, r.replica("replica-b"), userConnName)
	_, err := a.Token(context.Background())
	require.ErrorIs(t, err, ErrNeedsReenroll)
	require.ErrorIs(t, err, ErrPermanent)
	require.ErrorContains(t, err, `connection "nightly-user" needs a new enrollment`)
	require.ErrorContains(t, err, "invalid_grant")
	require.ErrorContains(t, err, "run `nxtcron tokens enroll nightly-user`")
	calls := r.stats().TokenRequests.RefreshToken
	require.Equal(t, int64(1), calls.Error)
	require.Equal(t, int64(1), r.stats().ReuseDetected)

	for _, src := range []Source{a, b, a, b} {
		_, err2 := src.Token(context.Background())
		require.ErrorIs(t, err2, ErrNeedsReenroll)
		require.Equal(t, err.Error(), err2.Error(), "the same message everywhere")
	}
	r.clock.Add(48 * time.Hour)
	r.replica("replica-c").KeepaliveOnce(context.Background())
	require.Equal(t, calls, r.stats().TokenRequests.RefreshToken, "no more calls to the provider")

	st := r.state()
	require.Equal(t, store.TokenStatusNeedsReenroll, st.Status)
	require.Nil(t, st.RefreshCipher)
	require.Equal(t, 1.0, testutil.ToFloat64(r.metrics.ConnectionNeedsReenroll.WithLabelValues(userConnName)))
	require.Equal(t, 1.0, testutil.ToFloat64(r.metrics.TokenRefreshTotal.WithLabelValues(userConnName, "invalid_grant")))
	list, err := List(context.Background(), r.st, []config.Connection{r.conn()}, r.clock.Now())
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, StatusNeedsReenroll, list[0].Status)
	require.True(t, list[0].NeedsReenroll)
	require.Contains(t, list[0].Message, "invalid_grant")
	require.Contains(t, list[0].Action, "nxtcron tokens enroll nightly-user")

	// A new enrollment heals it.
	r.enrollChain()
	tok, err := b.Token(context.Background())
	require.NoError(t, err)
	require.NotEmpty(t, tok.Value.Reveal())
	require.Equal(t, 0.0, testutil.ToFloat64(r.metrics.ConnectionNeedsReenroll.WithLabelValues(userConnName)))
	requireNoLeak(t, r.logs, []error{err}, first, tok.Value.Reveal())
}

// TestInvalidateByHash: a 401 drops the stored access token only if it is
// still the one that failed.
func TestInvalidateByHash(t *testing.T) {
	r := newRig(t)
	r.enrollChain()
	a := source(t, r.replica("replica-a"), userConnName)
	b := source(t, r.replica("replica-b"), userConnName)
	ctx := context.Background()
	t1, err := a.Token(ctx)
	require.NoError(t, err)

	b.Invalidate(HashToken("some-older-token"))
	same, err := b.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, t1.Hash, same.Hash)
	require.Equal(t, int64(1), r.stats().TokenRequests.RefreshToken.OK)

	b.Invalidate(t1.Hash)
	t2, err := a.Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, t1.Hash, t2.Hash, "replica a sees b's invalidation")
	require.Equal(t, int64(2), r.stats().TokenRequests.RefreshToken.OK)

	a.Invalidate(t1.Hash) // a late 401 for the first token
	t3, err := b.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, t2.Hash, t3.Hash, "a late 401 does not evict the newer token")
	require.Equal(t, int64(2), r.stats().TokenRequests.RefreshToken.OK)
	require.Zero(t, r.stats().ReuseDetected)
}

// TestClientCredentialsSharedThroughStore: the access token of a service
// connection is cached in the store, encrypted, and shared by replicas.
func TestClientCredentialsSharedThroughStore(t *testing.T) {
	r := newRig(t)
	a := source(t, r.replica("replica-a"), "service")
	b := source(t, r.replica("replica-b"), "service")
	ctx := context.Background()
	t1, err := a.Token(ctx)
	require.NoError(t, err)
	t2, err := b.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, t1, t2)
	require.Equal(t, int64(1), r.stats().TokenRequests.ClientCredentials.OK)
	rec, err := r.st.Token(ctx, "service")
	require.NoError(t, err)
	require.Equal(t, t1.Hash, rec.Access.Hash)
	require.Equal(t, r.keys.SealingKeyID(), CipherKeyID(rec.Access.Cipher))

	b.Invalidate(t1.Hash)
	t3, err := a.Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, t1.Hash, t3.Hash)
	a.Invalidate(t1.Hash)
	t4, err := b.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, t3.Hash, t4.Hash)

	r.clock.Add(time.Hour - 4*time.Minute) // within 5 minutes of expiry
	t5, err := b.Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, t4.Hash, t5.Hash)
	require.Equal(t, int64(3), r.stats().TokenRequests.ClientCredentials.OK)
	r.requireStoreHasNoSecret(t1.Value.Reveal(), t3.Value.Reveal(), t5.Value.Reveal())
}

// TestWaitForAnotherReplicasLease: a replica that finds the lease held and
// no valid token waits for the lease, then adopts the token the other
// replica stored.
func TestWaitForAnotherReplicasLease(t *testing.T) {
	r := newRig(t, withAccessTTL(time.Hour))
	r.enrollChain()
	a := source(t, r.replica("replica-a"), userConnName)
	ctx := context.Background()
	t1, err := a.Token(ctx)
	require.NoError(t, err)
	r.clock.Add(2 * time.Hour) // expired

	// Replica b holds the lease (its rotation is slow).
	require.NoError(t, r.sb.AddFault(sandbox.Fault{Endpoint: sandbox.EndpointToken, Kind: sandbox.FaultSlow, Delay: 500 * time.Millisecond, Next: 1}))
	b := source(t, r.replica("replica-b"), userConnName)
	type result struct {
		tok Token
		err error
	}
	got := make(chan result, 1)
	go func() {
		tok, err := b.Token(ctx)
		got <- result{tok, err}
	}()
	waitFor(t, 10*time.Second, func() bool { return r.state().LeaseOwner == "replica-b" }, "replica-b to lease")
	t2, err := a.Token(ctx) // waits for b's rotation
	require.NoError(t, err)
	rb := <-got
	require.NoError(t, rb.err)
	require.Equal(t, t2.Hash, rb.tok.Hash)
	require.NotEqual(t, t1.Hash, t2.Hash)
	require.Equal(t, int64(2), r.stats().TokenRequests.RefreshToken.OK, "a adopted b's token")
	require.Zero(t, r.stats().ReuseDetected)
}

// crash simulates a replica that took the lease, sent the refresh token
// (the provider rotated it) and died before storing the answer.
func (r *rig) crash(owner string, lease time.Duration) {
	r.t.Helper()
	st := r.state()
	_, err := r.st.LeaseRefresh(context.Background(), userConnName, owner, st.Generation, lease)
	require.NoError(r.t, err)
	_, status := r.spend(r.storedRefresh())
	require.Equal(r.t, http.StatusOK, status)
}

// TestCrashAfterRotationWithGrace: the next replica waits for the dead
// replica's lease, then presents the same refresh token again; within the
// grace period the provider answers with the same successor and the chain
// survives.
func TestCrashAfterRotationWithGrace(t *testing.T) {
	r := newRig(t, withGrace(time.Minute))
	r.enrollChain()
	r.crash("dead-replica", time.Second)
	b := source(t, r.replica("replica-b"), userConnName)
	tok, err := b.Token(context.Background())
	require.NoError(t, err)
	require.NotEmpty(t, tok.Hash)
	st := r.state()
	require.Equal(t, store.TokenStatusOK, st.Status)
	require.Equal(t, int64(2), st.Generation)
	require.Zero(t, r.stats().ReuseDetected)
	// The chain lives on.
	r.clock.Add(2 * time.Hour)
	_, err = b.Token(context.Background())
	require.NoError(t, err)
	require.Zero(t, r.stats().ReuseDetected)
}

// TestCrashAfterRotationWithoutGrace: without a grace period the chain is
// lost; the connection reads needs_reenroll and says so, never silently
// broken.
func TestCrashAfterRotationWithoutGrace(t *testing.T) {
	r := newRig(t)
	r.enrollChain()
	r.crash("dead-replica", time.Second)
	b := source(t, r.replica("replica-b"), userConnName)
	_, err := b.Token(context.Background())
	require.ErrorIs(t, err, ErrNeedsReenroll)
	require.ErrorContains(t, err, "nxtcron tokens enroll nightly-user")
	require.Equal(t, store.TokenStatusNeedsReenroll, r.state().Status)
	require.Equal(t, int64(1), r.stats().ReuseDetected)
}

// TestAnswerLostRetriedWithinGrace: the provider rotates but its answer
// does not arrive in time; the exchange retries the same token at once and,
// within the grace period, gets the same successor.
func TestAnswerLostRetriedWithinGrace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		grace    time.Duration
		errorsIs error
	}{
		{name: "grace 10s keeps the chain", grace: 10 * time.Second},
		{name: "no grace loses it, and says so", errorsIs: ErrNeedsReenroll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, withGrace(tc.grace))
			r.enrollChain()
			require.NoError(t, r.sb.AddFault(sandbox.Fault{Endpoint: sandbox.EndpointToken, Kind: sandbox.FaultSlow,
				Phase: sandbox.PhaseAfterRotate, Delay: 6 * time.Second, Next: 1}))
			impatient := &http.Client{Transport: &http.Transport{}, Timeout: 1500 * time.Millisecond}
			t.Cleanup(impatient.CloseIdleConnections)
			m := r.replica("replica-a", func(o *Options) { o.HTTPClient = impatient })
			_, err := source(t, m, userConnName).Token(context.Background())
			if tc.errorsIs != nil {
				require.ErrorIs(t, err, tc.errorsIs)
				require.Equal(t, int64(1), r.stats().ReuseDetected)
				return
			}
			require.NoError(t, err)
			require.Zero(t, r.stats().ReuseDetected)
			require.Equal(t, int64(2), r.state().Generation)
			_, status := r.spend(r.storedRefresh())
			require.Equal(t, http.StatusOK, status, "the stored successor is live")
		})
	}
}

// TestCallerCancelDoesNotCancelRotation: a job cancelled (or a shutdown)
// while its token request is at the provider does not lose the rotated
// token: the rotation completes and is stored.
func TestCallerCancelDoesNotCancelRotation(t *testing.T) {
	r := newRig(t)
	r.enrollChain()
	require.NoError(t, r.sb.AddFault(sandbox.Fault{Endpoint: sandbox.EndpointToken, Kind: sandbox.FaultSlow,
		Phase: sandbox.PhaseAfterRotate, Delay: time.Second, Next: 1}))
	m := r.replica("replica-a")
	src := source(t, m, userConnName)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := src.Token(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer closeCancel()
	require.NoError(t, m.Close(closeCtx), "Close waits for the rotation")
	require.Equal(t, int64(2), r.state().Generation, "the rotation was stored")
	_, status := r.spend(r.storedRefresh())
	require.Equal(t, http.StatusOK, status, "the stored successor is live")
	require.Zero(t, r.stats().ReuseDetected)
}

// failingStore makes CompleteRefresh fail a number of times (the store
// refusing tx2 after a successful exchange); everything else is the real
// store.
type failingStore struct {
	fullStore
	failures atomic.Int32
	attempts atomic.Int32
	// down makes every read of a token fail, as an unreachable store.
	down atomic.Bool
}

var errDown = errors.New("connection refused (injected)")

func (f *failingStore) TokenState(ctx context.Context, connection string) (store.TokenState, error) {
	if f.down.Load() {
		return store.TokenState{}, errDown
	}
	return f.fullStore.TokenState(ctx, connection)
}

func (f *failingStore) Token(ctx context.Context, connection string) (store.TokenRecord, error) {
	if f.down.Load() {
		return store.TokenRecord{}, errDown
	}
	return f.fullStore.Token(ctx, connection)
}

func (f *failingStore) CompleteRefresh(ctx context.Context, connection, owner string, generation int64, r store.Rotation) (store.TokenState, error) {
	f.attempts.Add(1)
	if f.failures.Add(-1) >= 0 {
		return store.TokenState{}, errors.New("database is locked (injected)")
	}
	return f.fullStore.CompleteRefresh(ctx, connection, owner, generation, r)
}

// TestStoreWriteFailsAfterExchange: the new tokens stay in memory (and in
// use) while the write is retried; the old refresh token is never used
// again; a critical log says what happened.
func TestStoreWriteFailsAfterExchange(t *testing.T) {
	r := newRig(t)
	first := r.enrollChain()
	fs := &failingStore{fullStore: r.st}
	fs.failures.Store(3)
	m := r.replica("replica-a", func(o *Options) { o.Store = fs })
	src := source(t, m, userConnName)
	tok, err := src.Token(context.Background())
	require.NoError(t, err, "the fresh access token is handed out while the write is retried")
	require.Equal(t, int64(1), r.stats().TokenRequests.RefreshToken.OK)

	// Meanwhile every caller gets the in-memory token, nobody uses the old
	// refresh token.
	again, err := src.Token(context.Background())
	require.NoError(t, err)
	require.Equal(t, tok.Hash, again.Hash)

	waitFor(t, 20*time.Second, func() bool { return r.state().Generation == 2 }, "the retried write")
	require.GreaterOrEqual(t, fs.attempts.Load(), int32(4))
	require.Equal(t, tok.Hash, r.state().Access.Hash)
	require.Equal(t, int64(1), r.stats().TokenRequests.RefreshToken.OK, "no second exchange")
	require.Zero(t, r.stats().ReuseDetected)
	require.NotEqual(t, first, r.storedRefresh())
	critical := 0
	for _, e := range r.logs.All() {
		if v, ok := e.ContextMap()["critical"]; ok && v == true {
			critical++
		}
	}
	require.GreaterOrEqual(t, critical, 1, "a critical log entry")

	// The chain goes on from the stored successor.
	r.clock.Add(2 * time.Hour)
	_, err = src.Token(context.Background())
	require.NoError(t, err)
	require.Zero(t, r.stats().ReuseDetected)
	require.Equal(t, int64(3), r.state().Generation)
}

// TestKeepalive: with no job running, a refresh token that has not changed
// for keepalive is rotated, by one replica only.
func TestKeepalive(t *testing.T) {
	r := newRig(t)
	r.enrollChain()
	short := func(o *Options) {
		c := r.conn()
		c.Keepalive = config.Duration(300 * time.Millisecond)
		o.Connections = []config.Connection{c}
	}
	a, b := r.replica("replica-a", short), r.replica("replica-b", short)
	ctx := context.Background()
	a.KeepaliveOnce(ctx)
	require.Zero(t, r.stats().TokenRequests.RefreshToken.OK, "fresh: nothing to do")
	st := r.state()
	require.NotNil(t, st.RefreshedAt)
	waitFor(t, 10*time.Second, func() bool {
		now, err := r.st.Now(ctx)
		require.NoError(t, err)
		return now.Sub(*st.RefreshedAt) >= 300*time.Millisecond
	}, "the keepalive to pass")
	var wg sync.WaitGroup
	wg.Go(func() { a.KeepaliveOnce(ctx) })
	wg.Go(func() { b.KeepaliveOnce(ctx) })
	wg.Wait()
	require.Equal(t, int64(1), r.stats().TokenRequests.RefreshToken.OK, "one replica rotated")
	require.Equal(t, int64(2), r.state().Generation)
	require.Zero(t, r.stats().ReuseDetected)

	// Run does the same on its own.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.Run(runCtx) }()
	waitFor(t, 10*time.Second, func() bool { return r.state().Generation >= 3 }, "Run to rotate")
	cancel()
	<-done
	require.Zero(t, r.stats().ReuseDetected)
}

// TestExpiryReported: the absolute expiry (import time + lifetime) is in
// the metric and the list, which warns ahead of time.
func TestExpiryReported(t *testing.T) {
	r := newRig(t)
	start := r.clock.Now()
	r.enrollChain()
	m := r.replica("replica-a")
	m.KeepaliveOnce(context.Background())
	want := start.Add(365 * 24 * time.Hour)
	require.Equal(t, float64(want.Unix()), testutil.ToFloat64(r.metrics.RefreshTokenExpiry.WithLabelValues(userConnName)))
	require.Equal(t, 0.0, testutil.ToFloat64(r.metrics.ConnectionNeedsReenroll.WithLabelValues(userConnName)))

	for _, tc := range []struct {
		at     time.Time
		status string
	}{
		{start.Add(24 * time.Hour), StatusOK},
		{want.Add(-ExpiryWarning + time.Hour), StatusExpiring},
		{want, StatusExpired},
	} {
		list, err := List(context.Background(), r.st, []config.Connection{r.conn(), r.serviceConn()}, tc.at)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "nightly-user", list[0].Connection)
		require.Equal(t, tc.status, list[0].Status, "at %s", tc.at)
		require.True(t, want.Equal(*list[0].RefreshExpiresAt))
		require.Equal(t, StatusEmpty, list[1].Status)
	}
}

func TestRefreshLifetimeOf(t *testing.T) {
	tok := (&oauth2.Token{}).WithExtra(map[string]any{"refresh_token_expires_in": 86400.0})
	d, ok := refreshLifetimeOf(tok)
	require.True(t, ok)
	require.Equal(t, 24*time.Hour, d)
	tok = (&oauth2.Token{}).WithExtra(map[string]any{"refresh_expires_in": "60"})
	d, ok = refreshLifetimeOf(tok)
	require.True(t, ok)
	require.Equal(t, time.Minute, d)
	_, ok = refreshLifetimeOf((&oauth2.Token{}).WithExtra(map[string]any{"expires_in": 3600.0}))
	require.False(t, ok)
}

func ExampleNewLink() {
	k, _ := NewKeyring([][]byte{make([]byte, 32)})
	l, _ := NewLink(k, "https://nxtcron.example.com", config.Connection{Name: "nightly-user", Grant: config.GrantRefreshToken}, time.Unix(0, 0))
	fmt.Println(l.Expires.UTC())
	// Output: 1970-01-01 00:30:00 +0000 UTC
}

// TestStoreOutageServesTokensFromMemory: while the store cannot be read, a
// valid access token this process holds serves; the refresh token is not
// used, and an expired token is an error.
func TestStoreOutageServesTokensFromMemory(t *testing.T) {
	r := newRig(t)
	r.enrollChain()
	fs := &failingStore{fullStore: r.st}
	m := r.replica("replica-a", func(o *Options) { o.Store = fs })
	ctx := context.Background()
	user, err := source(t, m, userConnName).Token(ctx)
	require.NoError(t, err)
	svc, err := source(t, m, "service").Token(ctx)
	require.NoError(t, err)
	stats := r.stats().TokenRequests

	fs.down.Store(true)
	r.clock.Add(30 * time.Minute)
	for range 3 {
		u, err := source(t, m, userConnName).Token(ctx)
		require.NoError(t, err)
		require.Equal(t, user.Hash, u.Hash)
		s, err := source(t, m, "service").Token(ctx)
		require.NoError(t, err)
		require.Equal(t, svc.Hash, s.Hash)
	}
	require.Equal(t, stats, r.stats().TokenRequests, "no token requests while the store is down")

	r.clock.Add(time.Hour) // expired
	_, err = source(t, m, userConnName).Token(ctx)
	require.ErrorIs(t, err, errDown)
	require.Equal(t, stats.RefreshToken, r.stats().TokenRequests.RefreshToken, "the refresh token is never used without the store")

	fs.down.Store(false)
	u, err := source(t, m, userConnName).Token(ctx)
	require.NoError(t, err)
	require.NotEqual(t, user.Hash, u.Hash)
	require.Zero(t, r.stats().ReuseDetected)
}
