package bnxt

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/store"
)

// Defaults of BudgetOptions.
const (
	// MaxBudgetCapacity bounds the default capacity of a shared bucket: a
	// small bucket wastes little of the minute (it refills at perMinute -
	// capacity) and lets no replica hoard requests.
	MaxBudgetCapacity = 5
	// DefaultBudgetHold is how long requests taken from the store may wait
	// in the process before they are dropped unspent.
	DefaultBudgetHold = 500 * time.Millisecond
)

// DefaultBudgetCapacity is the capacity of a shared bucket of perMinute
// requests: a twentieth of it, between 1 and MaxBudgetCapacity.
func DefaultBudgetCapacity(perMinute int) int {
	return min(max(perMinute/20, 1), MaxBudgetCapacity)
}

// BudgetOptions configure NewBudgetLimiter.
type BudgetOptions struct {
	// Key names the bucket in the store: the connection, whose access token
	// every replica shares.
	Key string
	// PerMinute is the budget: no 60 seconds grant more (<= 0: no limit).
	PerMinute int
	// Capacity of the bucket; 0 means DefaultBudgetCapacity(PerMinute).
	Capacity int
	// Chunk bounds the requests one take from the store asks for; 0 means
	// Capacity. A take asks for as many as there are waiters or as were
	// spent within the last Hold, whichever is more: an idle process takes
	// one at a time, a busy one takes chunks.
	Chunk int
	// Hold is how long taken requests may wait unspent before they are
	// dropped (0: DefaultBudgetHold). The store counts a request when it is
	// taken; one sent much later could fall into a minute the store did not
	// count it in.
	Hold time.Duration
	// Now is the clock of Hold; nil means time.Now.
	Now func() time.Time
	// Sleep waits for the bucket to refill; nil means a timer.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *zap.Logger
}

// NewBudgetLimiter returns a Limiter that takes requests from a budget in
// the store, shared by every replica (DESIGN.md, Tokens): it takes them in
// chunks sized by demand (the waiters, or the pace of the last Hold; at most
// Chunk), spends them in the process, and drops what it could not spend
// within Hold. With
// PerMinute <= 0 it lets everything through; with PerMinute 1 (a bucket
// that cannot refill in the store) it falls back to NewRateLimiter.
func NewBudgetLimiter(b store.Budget, o BudgetOptions) Limiter {
	if o.PerMinute <= 0 {
		return unlimited{}
	}
	if o.Sleep == nil {
		o.Sleep = sleepContext
	}
	if o.PerMinute < 2 {
		return NewRateLimiter(o.PerMinute, o.Now, o.Sleep)
	}
	if o.Capacity <= 0 {
		o.Capacity = DefaultBudgetCapacity(o.PerMinute)
	}
	o.Capacity = min(o.Capacity, o.PerMinute-1)
	if o.Chunk <= 0 || o.Chunk > o.Capacity {
		o.Chunk = o.Capacity
	}
	if o.Hold <= 0 {
		o.Hold = DefaultBudgetHold
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &budgetLimiter{b: b, o: o, turn: make(chan struct{}, 1)}
}

// budgetLimiter spends requests taken from a store.Budget.
type budgetLimiter struct {
	b store.Budget
	o BudgetOptions
	// turn is held by the one waiter that takes from the store; the others
	// queue on it and spend what it took.
	turn    chan struct{}
	waiting atomic.Int64

	mu      sync.Mutex
	local   int         // requests taken and not yet spent
	takenAt time.Time   // when they were taken
	spent   []time.Time // when the last Chunk requests were spent, a ring
	next    int         // the ring's oldest entry
}

// Wait spends one request of the budget, taking more from the store when
// none is left in the process; it sleeps while the bucket is empty.
func (l *budgetLimiter) Wait(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	l.waiting.Add(1)
	if l.spend() {
		l.waiting.Add(-1)
		return nil
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		l.waiting.Add(-1)
		return context.Cause(ctx)
	}
	err := l.take(ctx)
	// No longer waiting before the next waiter counts the waiters.
	l.waiting.Add(-1)
	<-l.turn
	return err
}

// take is Wait's part under turn: spend what the previous waiter left, or
// take from the store as many as are waiting (at most Chunk), sleeping while
// the bucket is empty.
func (l *budgetLimiter) take(ctx context.Context) error {
	for {
		if l.spend() {
			return nil
		}
		want := min(max(int(l.waiting.Load()), l.demand(), 1), l.o.Chunk)
		n, retry, err := l.b.TakeBudget(ctx, l.o.Key, want, l.o.PerMinute, l.o.Capacity)
		if err != nil {
			return fmt.Errorf("taking requests from the shared budget of %q: %w", l.o.Key, err)
		}
		if n > 0 {
			l.mu.Lock()
			l.local, l.takenAt = n-1, l.o.Now()
			l.record(l.takenAt)
			l.mu.Unlock()
			return nil
		}
		l.o.Logger.Debug("request budget spent; waiting", zap.String("budget", l.o.Key), zap.Duration("delay", retry))
		if err := l.o.Sleep(ctx, max(retry, time.Millisecond)); err != nil {
			return err
		}
	}
}

// spend takes one of the requests in the process, dropping them once they
// are older than Hold.
func (l *budgetLimiter) spend() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.local > 0 && l.o.Now().Sub(l.takenAt) >= l.o.Hold {
		l.local = 0
	}
	if l.local == 0 {
		return false
	}
	l.local--
	l.record(l.o.Now())
	return true
}

// record notes a request spent at t; l.mu is held.
func (l *budgetLimiter) record(t time.Time) {
	if len(l.spent) < l.o.Chunk {
		l.spent = append(l.spent, t)
		return
	}
	l.spent[l.next] = t
	l.next = (l.next + 1) % len(l.spent)
}

// demand is how many requests were spent within the last Hold (at most
// Chunk): what a process that keeps its pace will spend within the next
// one. A take asks for that many, so that a busy sequential caller (one
// company's pages) takes chunks too, and an idle one takes one at a time.
func (l *budgetLimiter) demand() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	now, n := l.o.Now(), 0
	for _, t := range l.spent {
		if now.Sub(t) < l.o.Hold {
			n++
		}
	}
	return n
}
