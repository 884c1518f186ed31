package sandbox

import (
	"sync"
	"time"
)

// RateWindow is the sliding window of the per-token rate limit.
const RateWindow = time.Minute

// rateLimiter counts requests per token in a sliding window.
type rateLimiter struct {
	mu      sync.Mutex
	windows map[string][]time.Time // token id -> accepted requests in the window, oldest first
	swept   time.Time
}

// allow records a request for key at now when fewer than limit requests were
// accepted in the last RateWindow; otherwise it refuses it and says when the
// oldest of them leaves the window. Refused requests are not counted, so a
// client that waits as told gets through.
func (l *rateLimiter) allow(key string, now time.Time, limit int) (bool, time.Duration) {
	if limit <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.windows == nil {
		l.windows = map[string][]time.Time{}
	}
	l.sweepLocked(now)
	w := l.windows[key]
	cut := now.Add(-RateWindow)
	i := 0
	for i < len(w) && !w[i].After(cut) {
		i++
	}
	w = w[i:]
	if len(w) >= limit {
		l.windows[key] = w
		return false, w[len(w)-limit].Add(RateWindow).Sub(now)
	}
	l.windows[key] = append(w, now)
	return true, 0
}

// sweepLocked forgets tokens without requests in the window, at most once a
// window.
func (l *rateLimiter) sweepLocked(now time.Time) {
	if now.Sub(l.swept) < RateWindow {
		return
	}
	l.swept = now
	cut := now.Add(-RateWindow)
	for k, w := range l.windows {
		if len(w) == 0 || !w[len(w)-1].After(cut) {
			delete(l.windows, k)
		}
	}
}
