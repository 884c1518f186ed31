package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/config/configtest"
	"github.com/nxtcron/nxtcron/sinks"
)

// Connection pools start goroutines; every test must close what it opens.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testDSN is the test server: TEST_DATABASE_URL, else the local default.
func testDSN() string {
	if dsn := os.Getenv("TEST_DATABASE_URL"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// adminPool connects to the test server for the test's own queries. Without
// a server the test is skipped, except under CI=true, where that is a
// failure.
func adminPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, testDSN())
	if err == nil {
		err = pool.Ping(ctx)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("postgres at TEST_DATABASE_URL is required under CI: %v", err)
		}
		t.Skipf("no postgres at TEST_DATABASE_URL: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// schemaName is a schema of the test's own: its name, shortened, and a
// random suffix, so that reruns and parallel packages never meet.
func schemaName(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	return "pgsink_" + name + "_" + hex.EncodeToString(b[:])
}

// harness is one test's schema on the test server, a pool for the test's
// own queries, observed logs, and a fence counter.
type harness struct {
	t      *testing.T
	admin  *pgxpool.Pool
	schema string
	log    *zap.Logger
	logs   *observer.ObservedLogs
	fence  int64
}

// newHarness gives the test its own schema (which the sink creates; the
// test drops it at the end).
func newHarness(t *testing.T) *harness {
	t.Helper()
	admin := adminPool(t)
	h := &harness{t: t, admin: admin, schema: schemaName(t), fence: 100}
	t.Cleanup(func() {
		_, err := admin.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+ident(h.schema)+` CASCADE`)
		require.NoError(t, err)
	})
	core, logs := observer.New(zapcore.DebugLevel)
	h.log, h.logs = zap.New(core), logs
	return h
}

// table is the qualified name of a table in the test's schema.
func (h *harness) table(name string) string { return h.schema + "." + name }

// config is a typed upsert of <schema>.associate keyed by associateNo.
func (h *harness) config() Config {
	return Config{DSN: config.Secret(testDSN()), Table: h.table("associate"), Key: []string{"associateNo"},
		Mode: ModeUpsert, Columns: ColumnsTyped}
}

// open opens a sink for one attempt; the test closes it at the end.
func (h *harness) open(cfg Config) *Sink {
	h.t.Helper()
	s, err := cfg.Open(context.Background(), sinks.Env{Log: h.log})
	require.NoError(h.t, err)
	h.t.Cleanup(func() { require.NoError(h.t, s.Close()) })
	return s.(*Sink)
}

// run is a new attempt with the next fence.
func (h *harness) run(fields []sinks.Field) sinks.Run {
	h.fence++
	return sinks.Run{
		Job: "associates", RunID: uuid.NewString(), Slot: time.Date(2024, 3, 1, 2, 30, 0, 0, time.UTC),
		Attempt: 1, Fence: h.fence, Trigger: "schedule", Location: time.UTC, Fields: fields,
	}
}

// prepared opens a sink and prepares it for run.
func (h *harness) prepared(cfg Config, run sinks.Run) *Sink {
	h.t.Helper()
	s := h.open(cfg)
	require.NoError(h.t, s.Prepare(context.Background(), run))
	return s
}

// commit writes batches for one company and commits them with wm.
func (h *harness) commit(s *Sink, run sinks.Run, company int64, wm *sinks.Watermark, batches ...[]sinks.Row) {
	h.t.Helper()
	ctx := context.Background()
	w, err := s.Open(ctx, run, company)
	require.NoError(h.t, err)
	for _, b := range batches {
		require.NoError(h.t, w.Write(ctx, b))
	}
	require.NoError(h.t, w.Commit(ctx, wm))
}

// contents is the table's rows as JSON objects, ordered by order, without
// _nxtcron_loaded_at (and without _nxtcron_run_id unless withRun).
func (h *harness) contents(table, order string, withRun bool) string {
	h.t.Helper()
	drop := "'_nxtcron_loaded_at'"
	if !withRun {
		drop += ", '_nxtcron_run_id'"
	}
	var out *string
	err := h.admin.QueryRow(context.Background(), fmt.Sprintf(
		`SELECT jsonb_agg(to_jsonb(t) - ARRAY[%s] ORDER BY %s)::text FROM %s t`, drop, order, ident(h.schema, table))).Scan(&out)
	require.NoError(h.t, err)
	if out == nil {
		return "[]"
	}
	return *out
}

// count runs a count query.
func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	require.NoError(h.t, h.admin.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// stages counts the stage tables in the schema.
func (h *harness) stages() int {
	return h.count(`SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname LIKE '\_nxtcron\_stage\_%'`, h.schema)
}

// columnTypes maps a table's columns to their types.
func (h *harness) columnTypes(table string) map[string]string {
	h.t.Helper()
	rows, err := h.admin.Query(context.Background(), `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, h.schema, table)
	require.NoError(h.t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		require.NoError(h.t, rows.Scan(&name, &typ))
		out[name] = typ
	}
	require.NoError(h.t, rows.Err())
	return out
}

// associateFields are the fields of the associate rows below, typed as
// introspection gives them.
var associateFields = []sinks.Field{
	{Name: "associateNo", Type: "Int"},
	{Name: "name", Type: "String"},
	{Name: "creditLimit", Type: "Decimal"},
	{Name: "active", Type: "Boolean"},
	{Name: "changedTimestamp", Type: "DateTime"},
	{Name: "gln", Type: "Long"},
	{Name: "joinup_Country", Type: "Country", Object: true},
	{Name: "tags", Type: "String", List: true},
}

// associate is one row as the API returns it.
func associate(no int, name string) sinks.Row {
	return sinks.Row(fmt.Sprintf(`{"associateNo":%d,"name":%q,"creditLimit":1500.25,"active":true,`+
		`"changedTimestamp":"2024-10-27T02:30:00.000","gln":7080000000001,"joinup_Country":{"name":"Norge"},"tags":["a","b"]}`, no, name))
}

// waitUntil polls cond until it holds; 30 s without is a failure.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func secretOf(s string) config.Secret { return config.Secret(s) }

func toString(v any) string { return fmt.Sprint(v) }

func assertNoSecret(t *testing.T, haystack string, secrets ...string) {
	t.Helper()
	configtest.AssertNoSecret(t, haystack, secrets...)
}
