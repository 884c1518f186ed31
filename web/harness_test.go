package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/bnxt"
	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/scheduler"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/tokens"
	"github.com/nxtcron/nxtcron/web"
)

// waitFor bounds every poll of a test; reaching it is a failure.
const waitFor = 30 * time.Second

// The secrets of the test configuration; no response may contain them.
const (
	clientSecret = "sandbox-service-secret"
	adminToken   = "admin-token-0f3c9a7e21"
)

// now is the server's clock: next slots are computed from it.
var now = time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)

// env is the HTTP surface over real components: a SQLite store, two job
// files loaded by jobs.Load, a scheduler whose runner imports from the
// sandbox into files, and the metrics registry.
type env struct {
	t       *testing.T
	st      *sqlite.Store
	sched   *scheduler.Scheduler
	jobs    []*jobs.Job
	metrics *metrics.Metrics
	sb      *sandbox.Server
	url     string // the web server's base URL
	dir     string
	logs    *observer.ObservedLogs
}

type envOptions struct {
	adminToken string
	loopback   bool
	// ready is web.Options.Ready; nil keeps it nil.
	ready func(st *sqlite.Store) func(context.Context) error
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	for _, k := range []string{config.EnvStoreDSN, "NXTCRON_ADMIN_TOKEN", "BNXT_CLIENT_SECRET", "BNXT_WEB_SECRET"} {
		t.Setenv(k, "")
	}
	sb, err := sandbox.New(sandbox.DefaultOptions())
	require.NoError(t, err)
	sbSrv := httptest.NewServer(sb)
	t.Cleanup(sbSrv.Close)

	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "jobs.d"), 0o755))
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	write("config.yaml", fmt.Sprintf(`store: {dsn: "sqlite:state/nxtcron.db"}
sandbox: {enabled: false}
connections:
  - name: service
    grant: client_credentials
    authority: %[1]s
    client_id: isv_sandbox_service
    client_secret: %[2]s
    scopes: [business-graphql-service-api:access-group-based]
    graphql_url: %[1]s/api/graphql-service
    limits: {requests_per_minute: 6000, concurrency_per_company: 4}
jobs: [jobs.d/*.yaml]
defaults: {timezone: UTC, catchup: 6h, timeout: 1h}
`, sbSrv.URL, clientSecret))
	write("jobs.d/associates.yaml", `description: "<b>Customers</b> & suppliers"
schedule: "30 2 * * *"
timezone: Europe/Oslo
connection: service
companies: [1001]
query: |
  query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Associate) {
    useCompany(no: $cid) {
      associate(first: $first, after: $after, filter: $filter,
                orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items { associateNo name changedTimestamp }
      }
    }
  }
page_size: 100
incremental: {key: [associateNo]}
sink: {type: file, path: "out/{job}/{company}/{slot}.ndjson"}
`)
	write("jobs.d/ledger.yaml", `schedule: "@every 10m"
connection: service
companies: [1001, 1002]
query: |
  query($cid: Int, $first: Int, $after: String) {
    useCompany(no: $cid) {
      generalLedgerAccount(first: $first, after: $after, orderBy: [{accountNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items { accountNo name }
      }
    }
  }
sink: {type: file, path: "out/{job}/{company}/{slot}.ndjson"}
`)
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	require.NoError(t, err)
	js, err := jobs.Load(cfg)
	require.NoError(t, err)

	st, err := sqlite.Open(t.Context(), strings.TrimPrefix(cfg.Store.DSN.Reveal(), "sqlite:"), sqlite.Options{Migrate: true})
	require.NoError(t, err)
	// Closing twice (a test closes it to break readiness) is harmless.
	t.Cleanup(func() { _ = st.Close() })

	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	m := metrics.New()
	sched, err := scheduler.New(scheduler.Options{
		Store:   st,
		Runner:  &jobs.Runner{Store: st, Clients: newClients(t, cfg.Connections, log, m), Logger: log, Metrics: m},
		Owner:   "web-test",
		Logger:  log,
		Metrics: m,
	})
	require.NoError(t, err)
	require.NoError(t, sched.SetJobs(t.Context(), js))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		require.NoError(t, sched.Stop(ctx))
	})

	wo := web.Options{
		Store: st, Jobs: jobSet(js), Scheduler: sched, Metrics: m,
		AdminToken: config.Secret(o.adminToken), Loopback: o.loopback, Logger: log,
		Now: func() time.Time { return now },
	}
	if o.ready != nil {
		wo.Ready = o.ready(st)
	}
	srv := httptest.NewServer(web.New(wo))
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, sched: sched, jobs: js, metrics: m, sb: sb, url: srv.URL, dir: dir, logs: logs}
}

// jobSet is a fixed job set.
type jobSet []*jobs.Job

func (s jobSet) Jobs() []*jobs.Job { return s }

// clients implements jobs.Clients as daemon.Runtime does.
type clients struct {
	mu sync.Mutex
	m  map[string]*bnxt.Client
}

func newClients(t *testing.T, conns []config.Connection, log *zap.Logger, m *metrics.Metrics) *clients {
	t.Helper()
	httpClient := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(httpClient.CloseIdleConnections)
	mgr, err := tokens.NewManager(tokens.Options{Connections: conns, HTTPClient: httpClient, Logger: log, Metrics: m})
	require.NoError(t, err)
	c := &clients{m: map[string]*bnxt.Client{}}
	for _, conn := range conns {
		src, err := mgr.Source(conn.Name)
		require.NoError(t, err)
		bc, err := bnxt.New(bnxt.Options{
			URL: conn.GraphQLURL, Connection: conn.Name, Tokens: src, HTTPClient: httpClient,
			Logger: log, Metrics: m, RequestsPerMinute: conn.Limits.RequestsPerMinute,
			ConcurrencyPerCompany: conn.Limits.ConcurrencyPerCompany,
		})
		require.NoError(t, err)
		c.m[conn.Name] = bc
	}
	return c
}

func (c *clients) Client(name string) (*bnxt.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bc, ok := c.m[name]
	if !ok {
		return nil, fmt.Errorf("connection %q not found", name)
	}
	return bc, nil
}

// response is what a request got.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request; token "" sends no Authorization header.
func (e *env) do(method, path, token, body string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// json sends a request that must answer status, and decodes its JSON body.
func (e *env) json(method, path, token, body string, status int) map[string]any {
	e.t.Helper()
	r := e.do(method, path, token, body)
	require.Equal(e.t, status, r.status, "%s %s: %s", method, path, r.body)
	require.Equal(e.t, "application/json", r.header.Get("Content-Type"))
	var out map[string]any
	require.NoError(e.t, json.Unmarshal([]byte(r.body), &out), "body %s", r.body)
	return out
}

// waitRun polls /api/runs until the slot record id has status.
func (e *env) waitRun(token string, id int64, status string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		runs := e.json("GET", "/api/runs", token, "", http.StatusOK)["runs"].([]any)
		for _, r := range runs {
			run := r.(map[string]any)
			if int64(run["id"].(float64)) == id && run["status"] == status {
				return run
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("slot %d did not become %s within %s: %v", id, status, waitFor, runs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
