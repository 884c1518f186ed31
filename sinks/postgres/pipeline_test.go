package postgres_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/bnxt"
	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/sinks/postgres"
	"github.com/nxtcron/nxtcron/store"
	pgstore "github.com/nxtcron/nxtcron/store/postgres"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/tokens"
)

// pipeline is the real run pipeline against the sandbox on 127.0.0.1: a
// config.yaml in a temporary directory, a store, a Business NXT client,
// and a jobs.Runner.
type pipeline struct {
	t      *testing.T
	sb     *sandbox.Server
	dir    string
	cfg    *config.Config
	st     store.Store
	client *bnxt.Client
	runner *jobs.Runner
}

// sqliteStore opens a SQLite store in dir.
func sqliteStore(t *testing.T, dir string) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "state", "nxtcron.db"), sqlite.Options{Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

// newPipeline makes the pipeline with the store openStore gives.
func newPipeline(t *testing.T, openStore func(t *testing.T, dir string) store.Store) *pipeline {
	t.Helper()
	for _, k := range []string{config.EnvStoreDSN, "NXTCRON_ADMIN_TOKEN", "BNXT_CLIENT_SECRET", "BNXT_WEB_SECRET"} {
		t.Setenv(k, "")
	}
	sb, err := sandbox.New(sandbox.DefaultOptions())
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
jobs: [jobs.d/*.yaml]
defaults: {timezone: UTC, catchup: 6h, timeout: 1h}
`, srv.URL)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "jobs.d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfgYAML), 0o600))
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	require.NoError(t, err)

	st := openStore(t, dir)

	httpClient := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(httpClient.CloseIdleConnections)
	mgr, err := tokens.NewManager(tokens.Options{Connections: cfg.Connections, HTTPClient: httpClient})
	require.NoError(t, err)
	src, err := mgr.Source("service")
	require.NoError(t, err)
	client, err := bnxt.New(bnxt.Options{URL: cfg.Connections[0].GraphQLURL, Connection: "service", Tokens: src,
		HTTPClient: httpClient, BaseBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	require.NoError(t, err)
	p := &pipeline{t: t, sb: sb, dir: dir, cfg: cfg, st: st, client: client}
	p.runner = &jobs.Runner{Store: st, Clients: p, Logger: zap.NewNop()}
	return p
}

func (p *pipeline) Client(string) (*bnxt.Client, error) { return p.client, nil }

// job writes jobs.d/NAME.yaml and loads it.
func (p *pipeline) job(name, yaml string) *jobs.Job {
	p.t.Helper()
	path := filepath.Join(p.dir, "jobs.d", name+".yaml")
	require.NoError(p.t, os.WriteFile(path, []byte(yaml), 0o600))
	job, err := jobs.LoadFile(p.cfg, path)
	require.NoError(p.t, err)
	return job
}

// run claims a manual slot of job and runs one attempt of it.
func (p *pipeline) run(job *jobs.Job) (store.Claim, jobs.Result) {
	p.t.Helper()
	ctx := p.t.Context()
	_, err := p.st.SyncJob(ctx, store.JobDef{Name: job.Name, ScheduleHash: job.ScheduleHash,
		DefinitionHash: job.DefinitionHash, Overlap: job.Overlap, Catchup: job.Catchup})
	require.NoError(p.t, err)
	c, err := p.st.ClaimManual(ctx, store.ManualClaim{Job: job.Name, DefinitionHash: job.DefinitionHash,
		Owner: "test", Lease: time.Minute})
	require.NoError(p.t, err)
	res, err := p.runner.Run(ctx, job, jobs.Attempt{Claim: c, Stop: make(chan struct{})})
	require.NoError(p.t, err)
	require.NoError(p.t, p.st.Finish(ctx, c.Fence, store.Outcome{Status: store.StatusSucceeded, Rows: res.Rows}))
	return c, res
}

const ordersJob = `schedule: "@daily"
connection: service
companies: [1001, 1002]
query: |
  query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Order) {
    useCompany(no: $cid) {
      order(first: $first, after: $after, filter: $filter,
            orderBy: [{changedTimestamp: ASC}, {orderNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items {
          orderNo orderDate exchangeRate total: totalAmount yourReference invoiced changedTimestamp
          joinup_Associate_via_Customer { name }
          joindown_OrderLine_via_Order(first: 100) { pageInfo { hasNextPage } items { lineNo } }
        }
      }
    }
  }
page_size: 100
incremental: {field: changedTimestamp, key: [orderNo]}
sink:
  type: postgres
  dsn_file: dsn.txt
  table: %s.orders
  key: [orderNo]
`

// The pipeline introspects the sandbox's schema for the field types, and the
// sink makes typed columns of them; incremental runs keep the watermark in
// the target database.
func TestPipelineTypedColumnsFromSandbox(t *testing.T) {
	t.Run("sqlite store", func(t *testing.T) {
		dsn, schema, admin := postgres.OpenTestDatabase(t)
		testPipeline(t, dsn, schema, admin, sqliteStore)
	})
	t.Run("postgres store in the same database and schema", func(t *testing.T) {
		dsn, schema, admin := postgres.OpenTestDatabase(t)
		testPipeline(t, dsn, schema, admin, func(t *testing.T, _ string) store.Store {
			st, err := pgstore.Open(t.Context(), dsn, pgstore.Options{Schema: schema, Migrate: true})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, st.Close()) })
			return st
		})
	})
}

func testPipeline(t *testing.T, dsn, schema string, admin *pgxpool.Pool, openStore func(*testing.T, string) store.Store) {
	p := newPipeline(t, openStore)
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "jobs.d", "dsn.txt"), []byte(dsn+"\n"), 0o600))
	job := p.job("orders", fmt.Sprintf(ordersJob, schema))

	first, res := p.run(job)
	require.Equal(t, int64(500), res.Rows)
	require.Equal(t, 2, res.Companies)

	require.Equal(t, map[string]string{
		"company_no":                    "bigint",
		"order_no":                      "bigint",
		"order_date":                    "bigint",
		"exchange_rate":                 "numeric",
		"total":                         "numeric",
		"your_reference":                "text",
		"invoiced":                      "boolean",
		"changed_timestamp":             "timestamp without time zone",
		"joinup_associate_via_customer": "jsonb",
		"joindown_order_line_via_order": "jsonb",
		"_nxtcron_run_id":               "uuid",
		"_nxtcron_loaded_at":            "timestamp with time zone",
	}, columnTypes(t, admin, schema, "orders"))
	require.Equal(t, 500, count(t, admin, `SELECT count(*) FROM `+pgx.Identifier{schema, "orders"}.Sanitize()))
	require.Equal(t, 250, count(t, admin, `SELECT count(*) FROM `+pgx.Identifier{schema, "orders"}.Sanitize()+
		` WHERE company_no = 1002 AND joindown_order_line_via_order->'items' IS NOT NULL AND joinup_associate_via_customer ? 'name'`))

	// The watermark lives beside the rows, equal to the store's copy.
	for _, company := range []int64{1001, 1002} {
		var value string
		var fence int64
		require.NoError(t, admin.QueryRow(t.Context(), `SELECT watermark, fence FROM `+pgx.Identifier{schema, "nxtcron_sink_state"}.Sanitize()+
			` WHERE job = 'orders' AND company = $1`, company).Scan(&value, &fence))
		require.Equal(t, first.Fence, fence)
		wm, err := p.st.Watermark(t.Context(), "orders", company)
		require.NoError(t, err)
		require.Equal(t, wm.Value, value)
		var max string
		require.NoError(t, admin.QueryRow(t.Context(), `SELECT to_char(max(changed_timestamp), 'YYYY-MM-DD"T"HH24:MI:SS.MS') FROM `+
			pgx.Identifier{schema, "orders"}.Sanitize()+` WHERE company_no = $1`, company).Scan(&max))
		require.Equal(t, max, value)
	}

	// Rows changed at the source come again, and only they are rewritten.
	n, err := p.sb.Engine().Touch(1001, "order", 7, time.Now())
	require.NoError(t, err)
	require.Equal(t, 7, n)
	second, res := p.run(job)
	require.GreaterOrEqual(t, res.Rows, int64(7))
	require.Equal(t, 500, count(t, admin, `SELECT count(*) FROM `+pgx.Identifier{schema, "orders"}.Sanitize()))
	require.Equal(t, 7, count(t, admin, `SELECT count(*) FROM `+pgx.Identifier{schema, "orders"}.Sanitize()+
		` WHERE _nxtcron_run_id = $1::uuid`, second.RunID))
}

func columnTypes(t *testing.T, pool *pgxpool.Pool, schema, table string) map[string]string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT column_name::text, data_type::text FROM information_schema.columns
WHERE table_schema = $1 AND table_name = $2`, schema, table)
	require.NoError(t, err)
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		require.NoError(t, rows.Scan(&name, &typ))
		out[name] = typ
	}
	require.NoError(t, rows.Err())
	return out
}

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}
