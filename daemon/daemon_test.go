package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/daemon"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
)

// waitFor bounds every poll of a test; reaching it is a failure.
const waitFor = 30 * time.Second

// configYAML is a whole daemon on loopback ports: the in-process sandbox,
// a SQLite store and short scheduler intervals; the refresh_token connection
// (not enrolled) runs the token keepalive.
const configYAML = `store: {dsn: "sqlite:var/nxtcron.db"}
http: {listen: "127.0.0.1:0"}
log: {level: debug, format: json}
scheduler: {heartbeat_interval: 250ms, lease_timeout: 3s, shutdown_grace: 10s}
sandbox: {enabled: true, listen: "127.0.0.1:0"}
connections:
  - name: service
    grant: client_credentials
    authority: sandbox
    client_id: isv_sandbox_service
    client_secret: sandbox-service-secret
    scopes: [business-graphql-service-api:access-group-based]
    graphql_url: sandbox
    limits: {requests_per_minute: 588, concurrency_per_company: 8}
  - name: nightly-user
    grant: refresh_token
    authority: sandbox
    client_id: sandbox_web
    client_secret: sandbox-web-secret
    scopes: [openid, profile, email, business-graphql-api:access-group-based, offline_access]
    redirect_path: /signin-oidc
    graphql_url: sandbox
jobs: [jobs.d/*.yaml]
defaults: {timezone: UTC, catchup: 6h, timeout: 1h}
`

// jobYAML is a ledger import of company 1001 into files, on schedule.
func jobYAML(schedule string) string {
	return `schedule: "` + schedule + `"
connection: service
companies: [1001]
query: |
  query($cid: Int, $first: Int, $after: String) {
    useCompany(no: $cid) {
      generalLedgerAccount(first: $first, after: $after, orderBy: [{accountNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items { accountNo name }
      }
    }
  }
page_size: 100
sink: {type: file, path: "out/{job}/{company}/{slot}.ndjson"}
`
}

// setup writes config.yaml and the given job files (name -> content) in a
// temporary directory and loads the configuration.
func setup(t *testing.T, files map[string]string) (dir string, cfg *config.Config) {
	t.Helper()
	for _, k := range []string{config.EnvStoreDSN, "NXTCRON_ADMIN_TOKEN", "BNXT_CLIENT_SECRET", "BNXT_WEB_SECRET"} {
		t.Setenv(k, "")
	}
	dir = t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "jobs.d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(configYAML), 0o600))
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.d", name), []byte(content), 0o600))
	}
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	require.NoError(t, err)
	return dir, cfg
}

// start makes and starts a daemon; the test stops it (Stop is idempotent,
// so a cleanup stops it too if the test failed first).
func start(t *testing.T, cfg *config.Config) (*daemon.Daemon, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	d, err := daemon.New(t.Context(), daemon.Options{Config: cfg, Logger: zap.New(core), Owner: "replica-a"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = d.Stop(ctx)
	})
	// Start's context is not the daemon's lifetime: Stop is.
	require.NoError(t, d.Start(context.Background()))
	return d, logs
}

func stop(t *testing.T, d *daemon.Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, d.Stop(ctx))
}

// get fetches a JSON document from the daemon.
func get(t *testing.T, d *daemon.Daemon, path string, status int) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + d.Addr() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "GET %s: %s", path, body)
	var out map[string]any
	require.NoError(t, json.Unmarshal(body, &out), "GET %s: %s", path, body)
	return out
}

// runs returns the slot records of job with status.
func runs(t *testing.T, d *daemon.Daemon, job, status string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range get(t, d, "/api/runs?job="+job, http.StatusOK)["runs"].([]any) {
		if run := r.(map[string]any); run["status"] == status {
			out = append(out, run)
		}
	}
	return out
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jobNames(t *testing.T, d *daemon.Daemon) []string {
	t.Helper()
	var names []string
	for _, j := range get(t, d, "/api/jobs", http.StatusOK)["jobs"].([]any) {
		names = append(names, j.(map[string]any)["name"].(string))
	}
	return names
}

func TestDaemonRunsScheduledSlots(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir, cfg := setup(t, map[string]string{"ticks.yaml": jobYAML("@every 1s")})
	d, logs := start(t, cfg)
	require.NotEmpty(t, d.SandboxURL())
	require.Equal(t, map[string]any{"status": "ok"}, get(t, d, "/healthz", http.StatusOK))
	require.Equal(t, map[string]any{"status": "ready"}, get(t, d, "/readyz", http.StatusOK))
	require.Equal(t, []string{"ticks"}, jobNames(t, d))

	poll(t, "two slots succeeded", func() bool { return len(runs(t, d, "ticks", store.StatusSucceeded)) >= 2 })
	stop(t, d)

	// The HTTP server and the sandbox are gone...
	_, err := http.Get("http://" + d.Addr() + "/healthz")
	require.Error(t, err)
	_, err = http.Get(d.SandboxURL() + "/")
	require.Error(t, err)

	// ...and the store holds the records the files match.
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "var", "nxtcron.db"), sqlite.Options{})
	require.NoError(t, err)
	defer st.Close()
	slots, err := st.Slots(t.Context(), store.SlotFilter{Job: "ticks", Statuses: []string{store.StatusSucceeded}})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(slots), 2)
	running, err := st.Running(t.Context())
	require.NoError(t, err)
	require.Empty(t, running, "no attempt is left holding a claim")
	for _, s := range slots {
		require.Equal(t, int64(250), s.Rows)
		require.True(t, s.Slot.Equal(s.Slot.Truncate(time.Second)), "@every 1s slots are whole seconds: %s", s.Slot)
		f := filepath.Join(dir, "jobs.d", "out", "ticks", "1001", s.Slot.UTC().Format("20060102T150405-0700")+".ndjson")
		require.Equal(t, 250, countLines(t, f), "file of slot %s", s.Slot)
	}
	require.NotEmpty(t, logs.FilterMessage("nxtcron serving").All())
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row))
		n++
	}
	require.NoError(t, sc.Err())
	return n
}
