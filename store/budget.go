package store

import (
	"context"
	"time"
)

// Budget shares a request budget between replicas: a token bucket per key
// (a connection's access token), kept in the store and refilled by the
// database's clock, so that replicas with different clocks agree. Both
// store/sqlite and store/postgres implement it; the daemon asserts it on its
// Store. storetest.RunBudget is its conformance suite.
//
// The bucket holds at most capacity requests and refills at
// perMinute - capacity requests per minute, starting full. Whatever the
// callers do, no 60 seconds of database time grant more than perMinute
// requests (the capacity one may take at once plus the refill of the
// minute), which is what an API that counts requests per sliding minute
// needs. Over a long run the bucket grants perMinute - capacity a minute: a
// small capacity loses little.
type Budget interface {
	// TakeBudget takes up to want requests from key's bucket in one short
	// transaction and returns how many it granted (0..want). When it
	// granted fewer than want, retryAfter is the database time until the
	// bucket holds one more whole request. perMinute and capacity describe
	// the bucket (capacity is clamped to 1..perMinute-1, want to
	// 1..capacity); a bucket seen for the first time starts full. A change
	// of perMinute or capacity applies from this call on.
	TakeBudget(ctx context.Context, key string, want, perMinute, capacity int) (granted int, retryAfter time.Duration, err error)
}

// BudgetBucket is a bucket's shape after clamping: what TakeBudget
// implementations and their callers agree on.
type BudgetBucket struct {
	Want, PerMinute, Capacity int
}

// NewBudgetBucket clamps the arguments of TakeBudget: capacity to
// 1..perMinute-1 (so the bucket refills) and want to 1..capacity. ok is false
// when perMinute < 2 (no bucket can refill).
func NewBudgetBucket(want, perMinute, capacity int) (b BudgetBucket, ok bool) {
	if perMinute < 2 {
		return BudgetBucket{}, false
	}
	capacity = min(max(capacity, 1), perMinute-1)
	want = min(max(want, 1), capacity)
	return BudgetBucket{Want: want, PerMinute: perMinute, Capacity: capacity}, true
}

// RefillPerSecond is the bucket's refill rate in requests per second.
func (b BudgetBucket) RefillPerSecond() float64 {
	return float64(b.PerMinute-b.Capacity) / 60
}

// RetryAfter is how long a bucket left holding level requests takes to hold
// one more whole request, rounded up to the millisecond.
func (b BudgetBucket) RetryAfter(level float64) time.Duration {
	missing := 1 - level
	if missing <= 0 {
		return 0
	}
	d := time.Duration(missing / b.RefillPerSecond() * float64(time.Second))
	return d.Truncate(time.Millisecond) + time.Millisecond
}
