package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestSmoke runs the whole benchmark on a few thousand rows, so that `make
// test` keeps the harness working; the figures of a run this small mean
// nothing. The real run is `make bench`.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nxtcron and runs it against Postgres")
	}
	dsn := envOr("TEST_DATABASE_URL", defaultDSN)
	requirePostgres(t, dsn)

	bin := filepath.Join(t.TempDir(), "nxtcron")
	build := exec.Command("go", "build", "-o", bin, "github.com/nxtcron/nxtcron/cmd/nxtcron")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building nxtcron: %s", out)

	o := options{
		Bin: bin, DSN: dsn,
		Rows: []int{2000, 5000}, Latency: 2 * time.Millisecond, PageSize: 500,
		RateRows: 1000, RatePageSize: 100, RateLimit: 600, RatePerMin: 588,
		Work: t.TempDir(), Schema: fmt.Sprintf("nxtcron_bench_smoke_%d", os.Getpid()),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	rep, err := measure(ctx, o)
	require.NoError(t, err)

	require.Len(t, rep.Imports, 2)
	for _, i := range rep.Imports {
		require.Equal(t, (i.Rows+o.PageSize-1)/o.PageSize, i.Bare.Pages)
		require.EqualValues(t, i.Rows, i.Copy.Rows)
		require.Positive(t, i.Nxtcron.Elapsed)
		require.Positive(t, i.Bare.Elapsed)
		require.Positive(t, i.Copy.Elapsed)
		require.Greater(t, i.Nxtcron.MaxRSS, int64(1<<20), "the child's peak RSS, in bytes")
	}
	require.NotNil(t, rep.Rate)
	require.Zero(t, rep.Rate.RateLimited, "no 429 at the real rate limit")
	// 10 pages, the introspection of the typed columns.
	require.GreaterOrEqual(t, rep.Rate.Requests, int64(10))
	require.Positive(t, rep.Rate.Share())

	var buf bytes.Buffer
	rep.print(&buf)
	require.Contains(t, buf.String(), "vs max(a,b)")
	require.Contains(t, buf.String(), "share of the budget")
	t.Log("\n" + buf.String())

	// measure drops its schema when it is done.
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	var left bool
	require.NoError(t, conn.QueryRow(t.Context(),
		`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, o.Schema).Scan(&left))
	require.False(t, left)
}

// requirePostgres skips the test when Postgres is not there, except on CI
// (CI=true), where a missing Postgres is a failure.
func requirePostgres(t *testing.T, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		err = conn.Ping(ctx)
		_ = conn.Close(context.Background())
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		require.NoError(t, err, "Postgres at %s", redact(dsn))
	}
	t.Skipf("Postgres at %s is not reachable (%v); set TEST_DATABASE_URL", redact(dsn), err)
}
