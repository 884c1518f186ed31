package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

// RunBudget runs the conformance suite of store.Budget. open is Run's: a
// fresh, migrated, empty store per test, which must implement store.Budget.
//
// Rules the suite pins down beyond the doc comment of store.Budget:
//   - Grants are whole requests; the refill is continuous (a fraction of a
//     request carries over to the next take).
//   - Times are the database's: a test waits for the database's clock, never
//     for its own.
func RunBudget(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store, b store.Budget)
	}{
		{"NewBucketStartsFull", budgetStartsFull},
		{"ArgumentsAreClamped", budgetClamps},
		{"KeysAreIndependent", budgetKeysIndependent},
		{"RetryAfterIsWhenTheNextRequestIsDue", budgetRetryAfter},
		{"RefillIsCappedAtCapacity", budgetCapped},
		{"ConcurrentTakersNeverExceedTheRate", budgetConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			b, ok := s.(store.Budget)
			require.Truef(t, ok, "%T does not implement store.Budget", s)
			tc.run(t, s, b)
		})
	}
}

// slowRate is a bucket of capacity 3 that refills one request a minute:
// nothing refills within a test.
const (
	slowPerMinute = 4
	slowCapacity  = 3
)

func take(t *testing.T, b store.Budget, key string, want, perMinute, capacity int) (int, time.Duration) {
	t.Helper()
	n, retry, err := b.TakeBudget(ctx(t), key, want, perMinute, capacity)
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 0)
	require.GreaterOrEqual(t, retry, time.Duration(0))
	return n, retry
}

func budgetStartsFull(t *testing.T, _ store.Store, b store.Budget) {
	n, retry := take(t, b, "service", 2, slowPerMinute, slowCapacity)
	require.Equal(t, 2, n)
	require.Zero(t, retry, "a full grant has no retry-after")

	n, retry = take(t, b, "service", 2, slowPerMinute, slowCapacity)
	require.Equal(t, 1, n, "a partial grant: what is left")
	require.Positive(t, retry)

	n, retry = take(t, b, "service", 1, slowPerMinute, slowCapacity)
	require.Zero(t, n, "the bucket is empty")
	// One request a minute: the next one is due in (59s, 60s].
	require.Greater(t, retry, 59*time.Second)
	require.LessOrEqual(t, retry, time.Minute+time.Millisecond)
}

func budgetClamps(t *testing.T, _ store.Store, b store.Budget) {
	n, _ := take(t, b, "want", 10, slowPerMinute, slowCapacity)
	require.Equal(t, slowCapacity, n, "want is clamped to the capacity")

	n, _ = take(t, b, "zero", 0, slowPerMinute, slowCapacity)
	require.Equal(t, 1, n, "want below 1 asks for one")

	n, _ = take(t, b, "capacity", 100, 10, 50)
	require.Equal(t, 9, n, "capacity is clamped below perMinute")

	n, _ = take(t, b, "tiny", 5, 10, 0)
	require.Equal(t, 1, n, "capacity below 1 is 1")

	_, _, err := b.TakeBudget(ctx(t), "none", 1, 1, 1)
	require.ErrorContains(t, err, "want at least 2")
	_, _, err = b.TakeBudget(ctx(t), "none", 1, 0, 1)
	require.Error(t, err)
}

func budgetKeysIndependent(t *testing.T, _ store.Store, b store.Budget) {
	n, _ := take(t, b, "a", slowCapacity, slowPerMinute, slowCapacity)
	require.Equal(t, slowCapacity, n)
	n, _ = take(t, b, "a", 1, slowPerMinute, slowCapacity)
	require.Zero(t, n)
	n, _ = take(t, b, "b", slowCapacity, slowPerMinute, slowCapacity)
	require.Equal(t, slowCapacity, n, "another key has its own bucket")
}

func budgetRetryAfter(t *testing.T, s store.Store, b store.Budget) {
	// 600 requests a minute beyond a capacity of 5: one every 100ms.
	const perMinute, capacity = 605, 5
	n, _ := take(t, b, "service", capacity, perMinute, capacity)
	require.Equal(t, capacity, n)
	before := dbNow(t, s)
	n, retry := take(t, b, "service", 1, perMinute, capacity)
	if n == 1 {
		// The database's clock moved 100ms between two takes: a slow
		// machine. The next one must still wait.
		before = dbNow(t, s)
		n, retry = take(t, b, "service", 1, perMinute, capacity)
	}
	require.Zero(t, n)
	require.Positive(t, retry)
	require.LessOrEqual(t, retry, 100*time.Millisecond+time.Millisecond)

	waitPast(t, s, before.Add(retry))
	n, _ = take(t, b, "service", 1, perMinute, capacity)
	require.Equal(t, 1, n, "a request is due once retry-after passed")
}

func budgetCapped(t *testing.T, s store.Store, b store.Budget) {
	// 100 requests a second beyond a capacity of 5.
	const perMinute, capacity = 6005, 5
	const rate = float64(perMinute-capacity) / 60
	n, _ := take(t, b, "service", capacity, perMinute, capacity)
	require.Equal(t, capacity, n)
	// Idle long enough to refill 30 requests, were it not capped.
	waitPast(t, s, dbNow(t, s).Add(300*time.Millisecond))

	start := dbNow(t, s)
	total := 0
	for range 5 {
		n, _ := take(t, b, "service", capacity, perMinute, capacity)
		total += n
	}
	end := dbNow(t, s)
	bound := float64(capacity) + rate*end.Sub(start).Seconds()
	require.LessOrEqualf(t, float64(total), bound+1e-9,
		"granted %d within %s after an idle spell: the bucket holds at most %d", total, end.Sub(start), capacity)
	require.GreaterOrEqual(t, total, capacity, "the idle spell refilled the bucket")
}

func budgetConcurrent(t *testing.T, s store.Store, b store.Budget) {
	// 100 requests a second beyond a capacity of 5, taken by 8 goroutines
	// in chunks of 1 to 3 until 150 are granted.
	const perMinute, capacity, goal = 6005, 5, 150
	const rate = float64(perMinute-capacity) / 60
	var (
		total atomic.Int64
		wg    sync.WaitGroup
		errs  = make(chan error, 8)
	)
	start := dbNow(t, s)
	for i := range 8 {
		wg.Go(func() {
			for total.Load() < goal {
				n, retry, err := b.TakeBudget(ctx(t), "service", 1+i%3, perMinute, capacity)
				if err != nil {
					errs <- err
					return
				}
				if n < 0 || n > 1+i%3 {
					errs <- errBadGrant
					return
				}
				total.Add(int64(n))
				if n == 0 {
					time.Sleep(min(retry, 10*time.Millisecond))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	end := dbNow(t, s)
	elapsed := end.Sub(start).Seconds()
	got := float64(total.Load())
	require.LessOrEqualf(t, got, capacity+rate*elapsed+1e-9,
		"granted %.0f in %.3fs of database time: more than capacity + rate x time", got, elapsed)
	// Not stingy either: the takers were always waiting, so the grants
	// follow the rate (loosely: a slow machine adds time between takes).
	require.LessOrEqualf(t, elapsed, (got-capacity)/rate*2+2,
		"granted only %.0f in %.3fs of database time", got, elapsed)
}

var errBadGrant = errors.New("TakeBudget granted more than wanted, or a negative count")
