package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/daemon"
	"github.com/nxtcron/nxtcron/store/sqlite"
)

func TestDaemonReload(t *testing.T) {
	dir, cfg := setup(t, map[string]string{"alpha.yaml": jobYAML("@every 1h")})
	d, _ := start(t, cfg)
	require.Equal(t, []string{"alpha"}, jobNames(t, d))

	// A new job file and a removed one: the set is swapped.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.d", "beta.yaml"), []byte(jobYAML("@every 2h")), 0o600))
	require.NoError(t, os.Remove(filepath.Join(dir, "jobs.d", "alpha.yaml")))
	require.NoError(t, d.Reload(t.Context()))
	require.Equal(t, []string{"beta"}, jobNames(t, d))
	require.Len(t, d.Runtime().Jobs(), 1)
	require.Equal(t, "beta", d.Runtime().Jobs()[0].Name)

	// A broken file: every problem is reported and the old set stays.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.d", "gamma.yaml"),
		[]byte(strings.Replace(jobYAML("* * *"), "connection: service", "connection: servcie", 1)), 0o600))
	err := d.Reload(t.Context())
	var ps config.Problems
	require.ErrorAs(t, err, &ps)
	msg := err.Error()
	require.Contains(t, msg, "gamma.yaml:1: schedule: expected 5 or 6 fields, found 3")
	require.Contains(t, msg, `gamma.yaml:2: connection: connection "servcie" not found`)
	require.Contains(t, msg, `(did you mean "service"?)`)
	require.Equal(t, []string{"beta"}, jobNames(t, d))

	// Fixed, it loads.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.d", "gamma.yaml"), []byte(jobYAML("@every 3h")), 0o600))
	require.NoError(t, d.Reload(t.Context()))
	require.Equal(t, []string{"beta", "gamma"}, jobNames(t, d))
	stop(t, d)
}

func TestDaemonOneServePerStoreFile(t *testing.T) {
	_, cfg := setup(t, map[string]string{"alpha.yaml": jobYAML("@every 1h")})
	first, err := daemon.New(t.Context(), daemon.Options{Config: cfg})
	require.NoError(t, err)

	_, err = daemon.New(t.Context(), daemon.Options{Config: cfg})
	var locked *sqlite.LockedError
	require.ErrorAs(t, err, &locked)
	host, _ := os.Hostname()
	require.Contains(t, err.Error(), fmt.Sprintf("is in use by nxtcron serve (pid %d on %s, since ", os.Getpid(), host))
	require.Contains(t, err.Error(), strings.TrimPrefix(cfg.Store.DSN.Reveal(), "sqlite:"))

	// Once the first stops, the file is free again.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, first.Stop(ctx))
	second, err := daemon.New(t.Context(), daemon.Options{Config: cfg})
	require.NoError(t, err)
	require.NoError(t, second.Stop(ctx))
}

func TestDaemonRefusesAnOpenListenWithoutAdminToken(t *testing.T) {
	_, cfg := setup(t, nil)
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.10:8080", "nxtcron.example:8080"} {
		c := *cfg
		c.HTTP.Listen = listen
		d, err := daemon.New(t.Context(), daemon.Options{Config: &c})
		require.Nil(t, d, listen)
		require.EqualError(t, err, "http.admin_token is required when http.listen ("+listen+") is not a loopback address")
	}
	// Nothing was opened: the store file was not even created.
	_, err := os.Stat(strings.TrimPrefix(cfg.Store.DSN.Reveal(), "sqlite:"))
	require.ErrorIs(t, err, os.ErrNotExist)

	for _, listen := range []string{"127.0.0.1:0", "localhost:0"} {
		c := *cfg
		c.HTTP.Listen = listen
		d, err := daemon.New(t.Context(), daemon.Options{Config: &c})
		require.NoError(t, err, listen)
		host, _, err := net.SplitHostPort(d.Addr())
		require.NoError(t, err)
		require.True(t, net.ParseIP(host).IsLoopback(), "%s listens on %s", listen, d.Addr())
		stop(t, d)
	}
}

func TestDaemonReadyzFollowsTheStore(t *testing.T) {
	_, cfg := setup(t, nil)
	d, _ := start(t, cfg)
	require.Equal(t, map[string]any{"status": "ready"}, get(t, d, "/readyz", http.StatusOK))
	metrics := func() string {
		resp, err := http.Get("http://" + d.Addr() + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	require.Contains(t, metrics(), "\nnxtcron_store_up 1\n")

	require.NoError(t, d.Runtime().Store.Close())
	got := get(t, d, "/readyz", http.StatusServiceUnavailable)
	require.Equal(t, "not ready", got["status"])
	require.Contains(t, got["error"], "database is closed")
	require.Contains(t, metrics(), "\nnxtcron_store_up 0\n")
	require.Equal(t, map[string]any{"status": "ok"}, get(t, d, "/healthz", http.StatusOK), "alive all the same")
}

func TestDaemonMigrateOffNeedsACurrentStore(t *testing.T) {
	_, cfg := setup(t, nil)
	cfg.Store.Migrate = "off"
	_, err := daemon.New(t.Context(), daemon.Options{Config: cfg})
	require.ErrorContains(t, err, "is not applied and store.migrate is off: run nxtcron migrate up")

	// Migrated, the same configuration starts.
	st, err := sqlite.Open(t.Context(), strings.TrimPrefix(cfg.Store.DSN.Reveal(), "sqlite:"), sqlite.Options{Migrate: true})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	d, err := daemon.New(t.Context(), daemon.Options{Config: cfg})
	require.NoError(t, err)
	stop(t, d)
}
