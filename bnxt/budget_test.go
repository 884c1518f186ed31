package bnxt

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/tokens"
)

// openBudgetStore opens a migrated SQLite store at path (one handle per
// "replica"; several may share the file).
func openBudgetStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

// watchedBudget is a real store.Budget that records what each take asked
// for, and whose first take waits for gate (when set).
type watchedBudget struct {
	store.Budget
	gate chan struct{}

	mu      sync.Mutex
	wants   []int
	granted []int
}

func (w *watchedBudget) TakeBudget(ctx context.Context, key string, want, perMinute, capacity int) (int, time.Duration, error) {
	w.mu.Lock()
	w.wants = append(w.wants, want)
	first := len(w.wants) == 1
	w.mu.Unlock()
	if first && w.gate != nil {
		<-w.gate
	}
	n, retry, err := w.Budget.TakeBudget(ctx, key, want, perMinute, capacity)
	w.mu.Lock()
	w.granted = append(w.granted, n)
	w.mu.Unlock()
	return n, retry, err
}

func (w *watchedBudget) Wants() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.wants)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestNewBudgetLimiterFallbacks(t *testing.T) {
	st := openBudgetStore(t, filepath.Join(t.TempDir(), "nxtcron.db"))
	require.IsType(t, unlimited{}, NewBudgetLimiter(st, BudgetOptions{Key: "service"}))
	require.IsType(t, &rateLimiter{}, NewBudgetLimiter(st, BudgetOptions{Key: "service", PerMinute: 1}))
	l := NewBudgetLimiter(st, BudgetOptions{Key: "service", PerMinute: 588}).(*budgetLimiter)
	require.Equal(t, 5, l.o.Capacity)
	require.Equal(t, 5, l.o.Chunk)
	require.Equal(t, DefaultBudgetHold, l.o.Hold)
	require.Equal(t, 2, DefaultBudgetCapacity(58))
	require.Equal(t, 1, DefaultBudgetCapacity(10))
}

func TestBudgetLimiterTakesAsManyAsAreWaiting(t *testing.T) {
	st := openBudgetStore(t, filepath.Join(t.TempDir(), "nxtcron.db"))
	wb := &watchedBudget{Budget: st, gate: make(chan struct{})}
	l := NewBudgetLimiter(wb, BudgetOptions{Key: "service", PerMinute: 6000}).(*budgetLimiter)

	errs := make(chan error, 5)
	go func() { errs <- l.Wait(t.Context()) }()
	// The first waiter is in the store; four more queue behind it.
	require.Eventually(t, func() bool { return len(wb.Wants()) == 1 }, waitLimit, time.Millisecond)
	for range 4 {
		go func() { errs <- l.Wait(t.Context()) }()
	}
	require.Eventually(t, func() bool { return l.waiting.Load() == 5 }, waitLimit, time.Millisecond)
	close(wb.gate)
	for range 5 {
		require.NoError(t, <-errs)
	}
	require.Equal(t, []int{1, 4}, wb.Wants(), "one take for the first waiter, one chunk for the four behind it")
}

func TestBudgetLimiterDropsWhatItHeldTooLong(t *testing.T) {
	st := openBudgetStore(t, filepath.Join(t.TempDir(), "nxtcron.db"))
	wb := &watchedBudget{Budget: st}
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	l := NewBudgetLimiter(wb, BudgetOptions{Key: "service", PerMinute: 6000, Now: clock.Now}).(*budgetLimiter)

	// Two others waiting: the take asks for three.
	l.waiting.Add(2)
	require.NoError(t, l.Wait(t.Context()))
	require.Equal(t, []int{3}, wb.Wants())
	require.NoError(t, l.Wait(t.Context()), "spent from the process")
	require.Equal(t, []int{3}, wb.Wants())

	clock.Advance(DefaultBudgetHold)
	require.NoError(t, l.Wait(t.Context()))
	require.Equal(t, []int{3, 3}, wb.Wants(), "the request left over is stale: a new take")
	l.waiting.Add(-2)
}

func TestBudgetLimiterChunksAtABusyPace(t *testing.T) {
	st := openBudgetStore(t, filepath.Join(t.TempDir(), "nxtcron.db"))
	wb := &watchedBudget{Budget: st}
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	// A bucket deep enough that every take gets what it asks for.
	l := NewBudgetLimiter(wb, BudgetOptions{Key: "service", PerMinute: 600000, Capacity: 1000, Chunk: 5, Now: clock.Now})

	// One caller, one request every 40ms (one company's pages): the takes
	// grow to chunks of five.
	for range 30 {
		require.NoError(t, l.Wait(t.Context()))
		clock.Advance(40 * time.Millisecond)
	}
	wants := wb.Wants()
	require.Less(t, len(wants), 12, "30 requests in chunks: %v", wants)
	require.Equal(t, 5, wants[len(wants)-1], "%v", wants)

	// One request every 600ms, longer than the hold: one at a time, so
	// nothing is taken only to be dropped.
	clock.Advance(time.Second)
	before := len(wb.Wants())
	for range 5 {
		require.NoError(t, l.Wait(t.Context()))
		clock.Advance(600 * time.Millisecond)
	}
	require.Equal(t, []int{1, 1, 1, 1, 1}, wb.Wants()[before:])
}

func TestBudgetLimiterSleepsUntilTheBucketRefills(t *testing.T) {
	st := openBudgetStore(t, filepath.Join(t.TempDir(), "nxtcron.db"))
	var slept []time.Duration
	errStop := errors.New("stop sleeping")
	// 4 a minute with a capacity of 3: one request a minute refills.
	l := NewBudgetLimiter(st, BudgetOptions{Key: "service", PerMinute: 4, Capacity: 3,
		Sleep: func(_ context.Context, d time.Duration) error {
			slept = append(slept, d)
			return errStop
		}})
	for range 3 {
		require.NoError(t, l.Wait(t.Context()))
	}
	require.Empty(t, slept)
	require.ErrorIs(t, l.Wait(t.Context()), errStop)
	require.Len(t, slept, 1)
	require.Greater(t, slept[0], 59*time.Second, "the next request is due in a minute")
	require.LessOrEqual(t, slept[0], time.Minute+time.Millisecond)
}

func TestBudgetLimiterErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nxtcron.db")
	st, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true})
	require.NoError(t, err)
	l := NewBudgetLimiter(st, BudgetOptions{Key: "service", PerMinute: 600})
	require.NoError(t, st.Close())
	err = l.Wait(t.Context())
	require.ErrorContains(t, err, `taking requests from the shared budget of "service"`)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, l.Wait(cancelled), context.Canceled)

	// A waiter queued behind a take gives up when its context ends.
	wb := &watchedBudget{Budget: openBudgetStore(t, path), gate: make(chan struct{})}
	l = NewBudgetLimiter(wb, BudgetOptions{Key: "service", PerMinute: 600})
	first := make(chan error, 1)
	go func() { first <- l.Wait(t.Context()) }()
	require.Eventually(t, func() bool { return len(wb.Wants()) == 1 }, waitLimit, time.Millisecond)
	queued, cancel := context.WithCancel(t.Context())
	second := make(chan error, 1)
	go func() { second <- l.Wait(queued) }()
	cancel()
	require.ErrorIs(t, <-second, context.Canceled)
	close(wb.gate)
	require.NoError(t, <-first)
}

// waitLimit bounds every wait of these tests for a goroutine to get
// somewhere; reaching it is a failure.
const waitLimit = 10 * time.Second

// budgetReplica is one "replica": its own store handle, limiter and Client,
// sharing the sandbox, the store file and the access token with the others.
func budgetReplica(t *testing.T, url string, src tokens.Source, st store.Budget, perMinute int, httpClient *http.Client) *Client {
	t.Helper()
	c, err := New(Options{
		URL:        sandbox.GraphQLServiceURL(url),
		Connection: testConn,
		Tokens:     src,
		HTTPClient: httpClient,
		Logger:     zap.NewNop(),
		Limiter:    NewBudgetLimiter(st, BudgetOptions{Key: testConn, PerMinute: perMinute}),
	})
	require.NoError(t, err)
	return c
}

// arrivals records when each GraphQL request reached the sandbox.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *arrivals) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/graphql") {
			a.mu.Lock()
			a.times = append(a.times, time.Now())
			a.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// maxInWindow is the most requests that arrived within any window.
func (a *arrivals) maxInWindow(window time.Duration) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	ts := slices.Clone(a.times)
	slices.SortFunc(ts, func(x, y time.Time) int { return x.Compare(y) })
	most, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= window {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	return most
}

// sharedTokenSource is the access token of the sandbox's service client,
// shared by every replica as the store's token cache shares it.
func sharedTokenSource(t *testing.T, url string, httpClient *http.Client) tokens.Source {
	t.Helper()
	mgr, err := tokens.NewManager(tokens.Options{
		Connections: []config.Connection{{
			Name: testConn, Grant: config.GrantClientCredentials, Authority: url,
			ClientID: "isv_sandbox_service", ClientSecret: sandboxSecret,
			Scopes: []string{"business-graphql-service-api:access-group-based"},
		}},
		HTTPClient: httpClient,
	})
	require.NoError(t, err)
	src, err := mgr.Source(testConn)
	require.NoError(t, err)
	return src
}

// burst sends n requests through the clients, three at a time each, as fast
// as their limiters let them, and returns how many each sent.
func burst(t *testing.T, n int64, clients ...*Client) []int64 {
	t.Helper()
	var next atomic.Int64
	sent := make([]int64, len(clients))
	var wg sync.WaitGroup
	errs := make(chan error, 3*len(clients))
	for i, c := range clients {
		for range 3 {
			wg.Go(func() {
				for next.Add(1) <= n {
					if _, err := c.Do(t.Context(), Request{Query: `{ availableCompanies { totalCount } }`}); err != nil {
						errs <- err
						return
					}
					atomic.AddInt64(&sent[i], 1)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return sent
}

// TestBudgetSharedByReplicas is the shared budget end to end: two replicas
// (each its own store handle and Client) against a sandbox that allows 60
// requests a minute, with requests_per_minute 58, send a burst of 61, more
// than a minute allows. It takes a little over a minute.
func TestBudgetSharedByReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("takes over a minute of real time: the API's window is a minute")
	}
	t.Parallel()
	const limit, perMinute = 60, 58
	const n = limit + 1

	newSandbox := func(t *testing.T) (*sandbox.Server, string, *arrivals) {
		opts := sandbox.DefaultOptions()
		opts.RateLimit = limit
		sb, err := sandbox.New(opts)
		require.NoError(t, err)
		arr := &arrivals{}
		srv := httptest.NewServer(arr.wrap(sb))
		t.Cleanup(srv.Close)
		return sb, srv.URL, arr
	}
	httpClient := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(httpClient.CloseIdleConnections)

	t.Run("without a budget the burst is refused", func(t *testing.T) {
		sb, url, _ := newSandbox(t)
		c, err := New(Options{URL: sandbox.GraphQLServiceURL(url), Connection: testConn,
			Tokens: sharedTokenSource(t, url, httpClient), HTTPClient: httpClient, MaxAttempts: 1})
		require.NoError(t, err)
		var refused int
		for range n {
			if _, err := c.Do(t.Context(), Request{Query: `{ availableCompanies { totalCount } }`}); err != nil {
				var e *Error
				require.ErrorAs(t, err, &e)
				require.Equal(t, ClassRateLimited, e.Class)
				refused++
			}
		}
		require.Equal(t, 1, refused)
		require.EqualValues(t, 1, sb.Stats().GraphQLRequests.GraphQLService.RateLimited)
	})

	t.Run("with the shared budget nothing is refused", func(t *testing.T) {
		sb, url, arr := newSandbox(t)
		src := sharedTokenSource(t, url, httpClient)
		path := filepath.Join(t.TempDir(), "nxtcron.db")
		a := budgetReplica(t, url, src, openBudgetStore(t, path), perMinute, httpClient)
		b := budgetReplica(t, url, src, openBudgetStore(t, path), perMinute, httpClient)

		sent := burst(t, n, a, b)
		require.EqualValues(t, n, sent[0]+sent[1])
		require.Positive(t, sent[0], "replica a sent some")
		require.Positive(t, sent[1], "replica b sent some")
		stats := sb.Stats().GraphQLRequests.GraphQLService
		require.Zero(t, stats.RateLimited, "no 429")
		require.EqualValues(t, n, stats.OK)
		require.LessOrEqual(t, arr.maxInWindow(sandbox.RateWindow), perMinute,
			"no minute at the sandbox saw more than requests_per_minute")
	})
}
