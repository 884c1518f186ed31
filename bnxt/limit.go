package bnxt

import (
	"context"
	"sync"
	"time"
)

// Limiter budgets the requests of one access token. Wait blocks until one
// more request may be sent, or returns the context's error. The in-process
// limiter of NewRateLimiter serves one replica; a store-backed one can share
// the budget between replicas.
type Limiter interface {
	Wait(ctx context.Context) error
}

// NewRateLimiter returns a Limiter that lets perMinute requests through per
// minute, evenly spaced, with a burst of one second's worth (at least one), so
// that no sliding minute sees more than perMinute + perMinute/60 requests.
// now and sleep are the clock and the context-aware sleep; nil means the real
// ones. perMinute <= 0 means no limit.
func NewRateLimiter(perMinute int, now func() time.Time, sleep func(context.Context, time.Duration) error) Limiter {
	if perMinute <= 0 {
		return unlimited{}
	}
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepContext
	}
	burst := max(1, perMinute/60)
	interval := time.Minute / time.Duration(perMinute)
	return &rateLimiter{
		now:      now,
		sleep:    sleep,
		interval: interval,
		tau:      time.Duration(burst-1) * interval,
	}
}

type unlimited struct{}

func (unlimited) Wait(ctx context.Context) error { return context.Cause(ctx) }

// rateLimiter is a generic cell rate algorithm: each request moves the
// theoretical arrival time tat one interval on; a request may go once
// tat - tau has come.
type rateLimiter struct {
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	interval time.Duration
	tau      time.Duration

	mu  sync.Mutex
	tat time.Time
}

func (l *rateLimiter) Wait(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	now := l.now()
	tat := l.tat
	if tat.Before(now) {
		tat = now
	}
	at := tat.Add(-l.tau)
	l.tat = tat.Add(l.interval)
	l.mu.Unlock()
	if wait := at.Sub(now); wait > 0 {
		return l.sleep(ctx, wait)
	}
	return nil
}

// semaphores bound the requests in progress per company.
type semaphores struct {
	size int
	mu   sync.Mutex
	m    map[int64]chan struct{}
}

func newSemaphores(size int) *semaphores {
	return &semaphores{size: size, m: map[int64]chan struct{}{}}
}

// acquire takes a slot of company's semaphore and returns its release. With
// no company or no limit it takes nothing.
func (s *semaphores) acquire(ctx context.Context, company int64) (func(), error) {
	if s.size <= 0 || company == 0 {
		return func() {}, nil
	}
	s.mu.Lock()
	ch, ok := s.m[company]
	if !ok {
		ch = make(chan struct{}, s.size)
		s.m[company] = ch
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// sleepContext sleeps for d or until ctx is done.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
