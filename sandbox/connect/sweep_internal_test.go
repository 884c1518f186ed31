package connect

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSweepForgetsExpiredState(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	opts := DefaultOptions()
	opts.Now = clock
	opts.RefreshSlidingTTL = time.Hour
	p, err := New(opts)
	require.NoError(t, err)

	old, err := p.NewRefreshChain(WebClientID, JobUserEmail, "")
	require.NoError(t, err)
	p.mu.Lock()
	p.codes["c"] = &authCode{expires: clock().Add(CodeTTL)}
	p.revoked["jti"] = clock().Add(time.Minute)
	p.mu.Unlock()

	// Past its expiry a chain is kept for a day, so errors can say why.
	advance(2 * time.Hour)
	fresh, err := p.NewRefreshChain(WebClientID, JobUserEmail, "")
	require.NoError(t, err)
	p.mu.Lock()
	p.sweepLocked(clock())
	require.Contains(t, p.tokens, old)
	require.NotContains(t, p.codes, "c")
	require.NotContains(t, p.revoked, "jti")
	p.mu.Unlock()

	advance(24 * time.Hour)
	_, _, oerr := p.redeem(fresh, clients[WebClientID], clock())
	require.NotNil(t, oerr, "the fresh chain expired too")
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NotContains(t, p.tokens, old)
	require.Len(t, p.chains, 1, "only the chain within its extra day is left")
	require.Contains(t, p.tokens, fresh)
}
