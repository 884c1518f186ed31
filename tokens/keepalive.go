package tokens

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"
)

// Bounds of the keepalive loop's interval: a quarter of the shortest
// keepalive, within these.
const (
	minKeepaliveInterval = 50 * time.Millisecond
	maxKeepaliveInterval = time.Minute
)

// Run keeps the refresh tokens alive until ctx is done: every replica
// checks each refresh_token connection about once a minute, refreshes the
// metrics (expiry, needs_reenroll) from the store, and rotates a refresh
// token that has not changed for the connection's keepalive, even when no
// job uses it. The lease and the generation check make one replica do it.
func (m *Manager) Run(ctx context.Context) {
	if len(m.refresh) == 0 {
		return
	}
	interval := maxKeepaliveInterval
	for _, s := range m.refresh {
		interval = min(interval, s.keepalive/4)
	}
	interval = max(interval, minKeepaliveInterval)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.KeepaliveOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-m.closing:
			return
		case <-t.C:
		}
	}
}

// StartKeepalive runs Run in the background until Close (not until ctx is
// done: ctx only carries values), and Close waits for it.
func (m *Manager) StartKeepalive(ctx context.Context) {
	if len(m.refresh) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	m.bgMu.Lock()
	closed := m.closed
	m.bgMu.Unlock()
	if closed {
		return
	}
	m.goBG(func() { m.Run(ctx) })
}

// KeepaliveOnce does one round of Run: every refresh_token connection, by
// name.
func (m *Manager) KeepaliveOnce(ctx context.Context) {
	if len(m.refresh) == 0 {
		return
	}
	now, err := m.st.Now(ctx)
	if err != nil {
		m.opts.Logger.Warn("keepalive: reading the store's clock failed", zap.Error(err))
		return
	}
	names := make([]string, 0, len(m.refresh))
	for n := range m.refresh {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if ctx.Err() != nil {
			return
		}
		m.refresh[n].keepaliveStep(ctx, now)
	}
}
