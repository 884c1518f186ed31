package jobs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/tokens"
)

// waitFor bounds every poll of a test; reaching it is a failure.
const waitFor = 30 * time.Second

// slotBase is the slot of a pipeline's first run; each run gets the next
// minute, so that every run names its own files. (A manual claim's slot is
// the store's clock, which two quick runs can share at the second precision
// of {slot}.)
var slotBase = time.Date(2026, 3, 2, 4, 0, 0, 0, time.UTC)

// pipeline is the real run pipeline: the sandbox on 127.0.0.1, a SQLite
// store and a config.yaml in a temporary directory, token sources and
// Business NXT clients wired as daemon.Open wires them, and a jobs.Runner.
type pipeline struct {
	t       *testing.T
	sb      *sandbox.Server
	url     string
	dir     string
	cfg     *config.Config
	st      *sqlite.Store
	clients *clients
	runner  *jobs.Runner
	metrics *metrics.Metrics
	logs    *observer.ObservedLogs
	oslo    *time.Location
	runs    int
}

func newPipeline(t *testing.T, edit func(*sandbox.Options)) *pipeline {
	t.Helper()
	// The environment of the shell must not change the outcome.
	for _, k := range []string{config.EnvStoreDSN, "NXTCRON_ADMIN_TOKEN", "BNXT_CLIENT_SECRET", "BNXT_WEB_SECRET"} {
		t.Setenv(k, "")
	}
	opts := sandbox.DefaultOptions()
	opts.Admin = true
	if edit != nil {
		edit(&opts)
	}
	sb, err := sandbox.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	cfgYAML := fmt.Sprintf(`store: {dsn: "sqlite:state/nxtcron.db"}
sandbox: {enabled: false}
connections:
  - name: service
    grant: client_credentials
    authority: %[1]s
    client_id: isv_sandbox_service
    client_secret: sandbox-service-secret
    scopes: [business-graphql-service-api:access-group-based]
    graphql_url: %[1]s/api/graphql-service
    limits: {requests_per_minute: 6000, concurrency_per_company: 4}
jobs: [jobs.d/*.yaml]
defaults: {timezone: UTC, catchup: 6h, timeout: 1h}
`, srv.URL)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "jobs.d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfgYAML), 0o600))
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	require.NoError(t, err)

	st, err := sqlite.Open(t.Context(), strings.TrimPrefix(cfg.Store.DSN.Reveal(), "sqlite:"), sqlite.Options{Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })

	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	m := metrics.New()
	oslo, err := time.LoadLocation("Europe/Oslo")
	require.NoError(t, err)
	p := &pipeline{t: t, sb: sb, url: srv.URL, dir: dir, cfg: cfg, st: st, metrics: m, logs: logs, oslo: oslo}
	p.clients = newClients(t, cfg.Connections, log, m)
	p.runner = &jobs.Runner{Store: st, Clients: p.clients, Logger: log, Metrics: m}
	return p
}

// clients implements jobs.Clients as daemon.Runtime does, with short
// retry back-offs so that transient faults cost milliseconds.
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
			URL:                   conn.GraphQLURL,
			Connection:            conn.Name,
			Tokens:                src,
			HTTPClient:            httpClient,
			Logger:                log,
			Metrics:               m,
			BaseBackoff:           5 * time.Millisecond,
			MaxBackoff:            50 * time.Millisecond,
			RequestsPerMinute:     conn.Limits.RequestsPerMinute,
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

// job writes jobs.d/NAME.yaml and loads it.
func (p *pipeline) job(name, yaml string) *jobs.Job {
	p.t.Helper()
	path := filepath.Join(p.dir, "jobs.d", name+".yaml")
	require.NoError(p.t, os.WriteFile(path, []byte(yaml), 0o600))
	job, err := jobs.LoadFile(p.cfg, path)
	require.NoError(p.t, err)
	return job
}

// claim registers job and claims a manual slot of it, as `nxtcron run` does;
// the slot is moved to the pipeline's next run minute.
func (p *pipeline) claim(job *jobs.Job, o store.RunOptions, lease time.Duration) store.Claim {
	p.t.Helper()
	ctx := p.t.Context()
	_, err := p.st.SyncJob(ctx, store.JobDef{
		Name: job.Name, ScheduleHash: job.ScheduleHash, DefinitionHash: job.DefinitionHash,
		Overlap: job.Overlap, Catchup: job.Catchup,
	})
	require.NoError(p.t, err)
	c, err := p.st.ClaimManual(ctx, store.ManualClaim{
		Job: job.Name, DefinitionHash: job.DefinitionHash, Owner: "test", Lease: lease, Options: o,
	})
	require.NoError(p.t, err)
	c.Slot = slotBase.Add(time.Duration(p.runs) * time.Minute)
	p.runs++
	return c
}

// run claims a slot, runs one attempt of it and records the outcome.
func (p *pipeline) run(job *jobs.Job, o store.RunOptions) (store.Claim, jobs.Result, error) {
	p.t.Helper()
	c := p.claim(job, o, time.Minute)
	res, err := p.runner.Run(p.t.Context(), job, jobs.Attempt{Claim: c, Stop: make(chan struct{})})
	p.finish(c, res, err)
	return c, res, err
}

func (p *pipeline) finish(c store.Claim, res jobs.Result, err error) {
	p.t.Helper()
	out := store.Outcome{Status: store.StatusSucceeded, Rows: res.Rows}
	if err != nil {
		out = store.Outcome{Status: store.StatusFailed, Error: err.Error(), Rows: res.Rows}
	}
	ferr := p.st.Finish(context.WithoutCancel(p.t.Context()), c.Fence, out)
	if !errors.Is(ferr, store.ErrFenced) {
		require.NoError(p.t, ferr)
	}
}

// watermark returns the stored watermark value of (job, company), "" when
// there is none.
func (p *pipeline) watermark(job string, company int64) string {
	p.t.Helper()
	wm, err := p.st.Watermark(p.t.Context(), job, company)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	require.NoError(p.t, err)
	return wm.Value
}

// file is the path of the file the job's sink writes for (slot, company),
// for sinks with path out/{job}/{company}/{slot}.ndjson.
func (p *pipeline) file(job *jobs.Job, c store.Claim, company int64) string {
	return filepath.Join(p.dir, "jobs.d", "out", job.Name, fmt.Sprint(company),
		c.Slot.In(job.Location).Format("20060102T150405-0700")+".ndjson")
}

// rows reads the ndjson file of (claim, company); it fails when the file is
// missing.
func (p *pipeline) rows(job *jobs.Job, c store.Claim, company int64) []map[string]any {
	p.t.Helper()
	f, err := os.Open(p.file(job, c, company))
	require.NoError(p.t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row map[string]any
		require.NoError(p.t, json.Unmarshal(sc.Bytes(), &row), "line %q", sc.Text())
		out = append(out, row)
	}
	require.NoError(p.t, sc.Err())
	return out
}

// noFile asserts that (claim, company) has no final file.
func (p *pipeline) noFile(job *jobs.Job, c store.Claim, company int64) {
	p.t.Helper()
	_, err := os.Stat(p.file(job, c, company))
	require.ErrorIs(p.t, err, os.ErrNotExist, "no file for company %d of slot %s", company, c.Slot)
}

// files lists every file under the job's output directory: final and
// temporary ones alike.
func (p *pipeline) files(job *jobs.Job) []string {
	p.t.Helper()
	var out []string
	root := filepath.Join(p.dir, "jobs.d", "out", job.Name)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) && path == root {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			out = append(out, rel)
		}
		return nil
	})
	require.NoError(p.t, err)
	return out
}

// keys returns the int key field of each row, in order.
func keys(t *testing.T, rows []map[string]any, field string) []int64 {
	t.Helper()
	out := make([]int64, 0, len(rows))
	for _, r := range rows {
		v, ok := r[field].(float64)
		require.True(t, ok, "row %v has no number %s", r, field)
		out = append(out, int64(v))
	}
	return out
}

// serverWall is t as the server writes it: wall time in its zone, to the
// millisecond.
func (p *pipeline) serverWall(t time.Time) string {
	return t.In(p.oslo).Format("2006-01-02T15:04:05.000")
}

// serverTime reads a server wall time (a watermark) as an instant.
func (p *pipeline) serverTime(s string) time.Time {
	p.t.Helper()
	t, err := time.ParseInLocation("2006-01-02T15:04:05.000", s, p.oslo)
	require.NoError(p.t, err)
	return t
}

// waitUntil polls cond until it holds or waitFor passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", waitFor, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
