package daemon_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/daemon"
	"github.com/nxtcron/nxtcron/scheduler"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/postgres"
	"github.com/nxtcron/nxtcron/store/postgres/pgtest"
)

// The tests of this file run whole daemons on a Postgres store, in process,
// each test in its own schema of TEST_DATABASE_URL.

// pgWait bounds every poll of these tests; reaching it is a failure.
const pgWait = 60 * time.Second

// pgDSN is the test server (pgtest.DSN).
func pgDSN(t *testing.T) string { return pgtest.DSN(t) }

// pgSchema names a schema for this test alone and drops it at the end.
func pgSchema(t *testing.T) string { return pgtest.Schema(t, "nxtcron_test_") }

// pgConfig writes config.yaml for a daemon on the Postgres schema, with a
// job "ledger" running every second, and loads it. Every replica of a test
// loads the same file, so their job definitions agree.
func pgConfig(t *testing.T, dsn, schema string) *config.Config {
	t.Helper()
	for _, k := range []string{config.EnvStoreDSN, "NXTCRON_ADMIN_TOKEN", "BNXT_CLIENT_SECRET", "BNXT_WEB_SECRET"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := fmt.Sprintf(`store:
  dsn: %q
  schema: %s
  encryption_keys: [%q]
http: {listen: "127.0.0.1:0"}
log: {level: debug, format: json}
scheduler: {heartbeat_interval: 250ms, lease_timeout: 3s, shutdown_grace: 5s}
sandbox: {enabled: true, listen: "127.0.0.1:0"}
connections:
  - name: service
    grant: client_credentials
    authority: sandbox
    client_id: isv_sandbox_service
    client_secret: sandbox-service-secret
    scopes: [business-graphql-service-api:access-group-based]
    graphql_url: sandbox
jobs: [jobs.d/*.yaml]
defaults: {timezone: UTC, catchup: 6h, timeout: 1h}
`, dsn, schema, base64.StdEncoding.EncodeToString(key))
	job := `schedule: "@every 1s"
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
sink: {type: file, path: "out/{job}/{company}/{slot}-{attempt}.ndjson"}
`
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "jobs.d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.d", "ledger.yaml"), []byte(job), 0o600))
	c, err := config.Load(filepath.Join(dir, "config.yaml"))
	require.NoError(t, err)
	return c
}

// pgStart makes and starts a daemon; a cleanup stops it.
func pgStart(t *testing.T, cfg *config.Config, owner string, clock scheduler.Clock) (*daemon.Daemon, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	d, err := daemon.New(t.Context(), daemon.Options{Config: cfg, Logger: zap.New(core), Owner: owner, Clock: clock})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		defer cancel()
		sctx, scancel := context.WithTimeout(context.Background(), pgWait)
		defer scancel()
		_ = d.Stop(sctx)
	})
	require.NoError(t, d.Start(ctx))
	return d, logs
}

// pgPoll polls cond until it holds, failing after pgWait.
func pgPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pgWait)
	for !cond() {
		require.Truef(t, time.Now().Before(deadline), "timed out waiting for %s", what)
		time.Sleep(50 * time.Millisecond)
	}
}

// offsetClock is the system clock moved by a fixed offset: a replica whose
// host clock is wrong.
type offsetClock struct{ offset time.Duration }

func (c offsetClock) Now() time.Time { return time.Now().Add(c.offset) }

func (c offsetClock) NewTimer(d time.Duration) scheduler.Timer {
	return scheduler.SystemClock.NewTimer(d)
}

// TestClockSkewRefusesToClaim: a replica whose clock is more than 5 s off
// the database's claims nothing (neither scheduled slots nor takeovers)
// and says so in its log and its metrics, while a replica with a good
// clock on the same store runs every slot.
func TestClockSkewRefusesToClaim(t *testing.T) {
	for _, offset := range []time.Duration{10 * time.Second, -10 * time.Second} {
		t.Run(offset.String(), func(t *testing.T) {
			dsn := pgDSN(t)
			cfg := pgConfig(t, dsn, pgSchema(t))
			st, err := postgres.Open(t.Context(), dsn, postgres.Options{Schema: cfg.Store.Schema})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, st.Close()) })

			skewed, skewedLogs := pgStart(t, cfg, "replica-skewed", offsetClock{offset})
			// The refusal is logged with the measured offset.
			var logged time.Duration
			pgPoll(t, "the skewed replica to refuse", func() bool {
				for _, e := range skewedLogs.FilterMessageSnippet("clock offset from the store exceeds the limit").All() {
					logged, _ = e.ContextMap()["offset"].(time.Duration)
					return true
				}
				return false
			})
			require.InDelta(t, offset.Seconds(), logged.Seconds(), 1, "the offset is measured against the database's now()")
			gauge, err := strconv.ParseFloat(strings.TrimPrefix(metric(t, skewed, "nxtcron_clock_offset_seconds "), "nxtcron_clock_offset_seconds "), 64)
			require.NoError(t, err)
			require.InDelta(t, offset.Seconds(), gauge, 1, "nxtcron_clock_offset_seconds")

			// Alone for three seconds of database time (three due slots):
			// nothing claimed, nothing recorded.
			start, err := st.Now(t.Context())
			require.NoError(t, err)
			pgPoll(t, "three seconds of database time", func() bool {
				now, err := st.Now(t.Context())
				require.NoError(t, err)
				return now.Sub(start) > 3*time.Second
			})
			slots, err := st.Slots(t.Context(), store.SlotFilter{Job: "ledger"})
			require.NoError(t, err)
			require.Empty(t, slots, "the skewed replica claimed nothing")

			// A replica with a good clock runs the slots; the skewed one
			// still takes nothing (not even over).
			_, _ = pgStart(t, cfg, "replica-ok", nil)
			pgPoll(t, "three succeeded slots", func() bool {
				ok, err := st.Slots(t.Context(), store.SlotFilter{Job: "ledger", Statuses: []string{store.StatusSucceeded}})
				require.NoError(t, err)
				return len(ok) >= 3
			})
			slots, err = st.Slots(t.Context(), store.SlotFilter{Job: "ledger", Limit: 1000})
			require.NoError(t, err)
			for _, sl := range slots {
				as, err := st.Attempts(t.Context(), sl.ID)
				require.NoError(t, err)
				for _, a := range as {
					require.Equal(t, "replica-ok", a.Owner, "slot %s attempt %d", sl.Slot, a.Attempt)
				}
			}
			require.Zero(t, skewedLogs.FilterMessage("attempt started").Len())
			require.Zero(t, skewedLogs.FilterMessage("slot taken over").Len())
		})
	}
}

// metric returns the lines of /metrics that start with name.
func metric(t *testing.T, d *daemon.Daemon, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + d.Addr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name) {
			out = append(out, sc.Text())
		}
	}
	require.NotEmpty(t, out, "metric %s", name)
	return strings.Join(out, "\n")
}

// TestPruneOnPostgres: scheduler.retention prunes slot records by the
// database's clock. A replica runs a few slots; a second one, started
// later with a retention of two seconds, prunes every record older than
// that (at its start and every hour) and keeps the newer ones.
func TestPruneOnPostgres(t *testing.T) {
	dsn := pgDSN(t)
	cfg := pgConfig(t, dsn, pgSchema(t))
	st, err := postgres.Open(t.Context(), dsn, postgres.Options{Schema: cfg.Store.Schema})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })

	a, _ := pgStart(t, cfg, "replica-a", nil)
	pgPoll(t, "three succeeded slots", func() bool {
		ok, err := st.Slots(t.Context(), store.SlotFilter{Job: "ledger", Statuses: []string{store.StatusSucceeded}})
		require.NoError(t, err)
		return len(ok) >= 3
	})
	sctx, cancel := context.WithTimeout(context.Background(), pgWait)
	defer cancel()
	require.NoError(t, a.Stop(sctx))
	old, err := st.Slots(t.Context(), store.SlotFilter{Job: "ledger", Limit: 1000})
	require.NoError(t, err)
	newest := old[0].Slot
	pgPoll(t, "the old records to be older than the retention", func() bool {
		now, err := st.Now(t.Context())
		require.NoError(t, err)
		return now.Sub(newest) > 3*time.Second
	})

	cfg.Scheduler.Retention = config.Duration(2 * time.Second)
	_, logs := pgStart(t, cfg, "replica-b", nil)
	pgPoll(t, "replica-b to prune", func() bool { return logs.FilterMessage("slot records pruned").Len() > 0 })
	pruned := logs.FilterMessage("slot records pruned").All()[0].ContextMap()["records"]
	// replica-a's records, and the missed gap replica-b recorded for the
	// downtime (its first slot is older than the retention too).
	require.GreaterOrEqual(t, pruned, int64(len(old)))
	left, err := st.Slots(t.Context(), store.SlotFilter{Job: "ledger", Limit: 1000})
	require.NoError(t, err)
	for _, sl := range left {
		require.True(t, sl.Slot.After(newest), "record %d (%s) outlived the retention", sl.ID, sl.Slot)
		_, err := st.Attempts(t.Context(), sl.ID)
		require.NoError(t, err)
	}
	for _, sl := range old {
		_, err := st.Attempts(t.Context(), sl.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "record %d and its attempts are gone", sl.ID)
	}
}
