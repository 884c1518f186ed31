package daemon_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/daemon"
	"github.com/nxtcron/nxtcron/store"
)

// TestClientTakesTheStoreBudget: a Business NXT client of the runtime spends
// the request budget kept in the store, which every replica shares.
func TestClientTakesTheStoreBudget(t *testing.T) {
	cfg := config.Default()
	dir := t.TempDir()
	cfg.Store.DSN = config.Secret("sqlite:" + filepath.Join(dir, "nxtcron.db"))
	cfg.Store.EncryptionKeysFile = filepath.Join(dir, "nxtcron.keys")
	cfg.Sandbox.Listen = "127.0.0.1:0"
	rt, err := daemon.Open(t.Context(), &cfg, nil, daemon.OpenOptions{Migrate: true, NoJobs: true, Connect: true})
	require.NoError(t, err)
	t.Cleanup(rt.Close)

	var conn config.Connection
	for _, c := range cfg.Connections {
		if c.Name == "service" {
			conn = c
		}
	}
	perMinute := conn.Limits.RequestsPerMinute
	require.Positive(t, perMinute)

	client, err := rt.Client("service")
	require.NoError(t, err)
	_, err = client.Companies(t.Context())
	require.NoError(t, err)

	budget, ok := rt.Store.(store.Budget)
	require.True(t, ok, "the SQLite store shares a budget")
	// The bucket (capacity 5) started full; the client's request took one.
	granted, _, err := budget.TakeBudget(t.Context(), "service", 5, perMinute, 5)
	require.NoError(t, err)
	require.Equal(t, 4, granted)
}
