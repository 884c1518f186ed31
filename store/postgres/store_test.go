package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/migrations"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/postgres"
	"github.com/nxtcron/nxtcron/store/postgres/pgtest"
	"github.com/nxtcron/nxtcron/store/sqlite"
)

func TestConcurrentMigrate(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	const migrators = 3
	start := make(chan struct{})
	errs := make(chan error, migrators)
	for range migrators {
		go func() {
			<-start
			s, err := postgres.Open(t.Context(), dsn, postgres.Options{Schema: schema, Migrate: true})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	close(start)
	for range migrators {
		require.NoError(t, <-errs)
	}

	s := openSchema(t, schema)
	ms, err := s.Migrations(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	conn := rawConn(t)
	for _, m := range ms {
		require.True(t, m.Applied, m.Name)
		var n int
		require.NoError(t, conn.QueryRow(t.Context(),
			fmt.Sprintf(`SELECT count(*) FROM %s.goose_db_version WHERE version_id = $1`, schema), m.Version).Scan(&n))
		require.Equal(t, 1, n, "migration %d applied exactly once", m.Version)
	}
	var locked bool
	require.NoError(t, conn.QueryRow(t.Context(),
		fmt.Sprintf(`SELECT bool_or(locked) FROM %s.goose_lock`, schema)).Scan(&locked))
	require.False(t, locked, "the migration lock is released")
}

func TestOpenWithoutMigrate(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	s, err := postgres.Open(t.Context(), dsn, postgres.Options{Schema: schema})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.Equal(t, schema, s.Schema())

	ms, err := s.Migrations(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for _, m := range ms {
		require.False(t, m.Applied, m.Name)
		require.Nil(t, m.AppliedAt)
		require.NotEmpty(t, m.Name)
	}
	var exists bool
	conn := rawConn(t)
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists))
	require.False(t, exists, "reading the status creates nothing")
	_, err = s.Jobs(t.Context())
	require.Error(t, err, "an unmigrated store has no tables")

	before := time.Now()
	require.NoError(t, s.Migrate(t.Context()))
	ms, err = s.Migrations(t.Context())
	require.NoError(t, err)
	for _, m := range ms {
		require.True(t, m.Applied, m.Name)
		require.NotNil(t, m.AppliedAt)
		require.Equal(t, time.UTC, m.AppliedAt.Location())
		require.WithinDuration(t, before, *m.AppliedAt, time.Minute, "applied_at is UTC")
	}
	jobs, err := s.Jobs(t.Context())
	require.NoError(t, err)
	require.Empty(t, jobs)
}

func TestMigrateIntoExistingSchema(t *testing.T) {
	// An administrator created the schema (the store's role may lack CREATE
	// on the database); Migrate uses it.
	schema := newSchema(t)
	_, err := rawConn(t).Exec(t.Context(), `CREATE SCHEMA `+schema)
	require.NoError(t, err)
	s := openSchema(t, schema)
	require.NoError(t, s.Ping(t.Context()))
}

func TestSchemaNames(t *testing.T) {
	dsn := testDSN(t)
	for _, tc := range []struct {
		schema      string
		errContains string
	}{
		{"Upper", "not a lower-case SQL identifier"},
		{"1abc", "not a lower-case SQL identifier"},
		{"a-b", "not a lower-case SQL identifier"},
		{`x"; DROP SCHEMA public; --`, "not a lower-case SQL identifier"},
		{strings.Repeat("a", 64), "not a lower-case SQL identifier"},
		{"select", "SQL keyword"},
		{"user", "SQL keyword"},
	} {
		_, err := postgres.Open(t.Context(), dsn, postgres.Options{Schema: tc.schema})
		require.ErrorContains(t, err, tc.errContains, tc.schema)
	}
	s, err := postgres.Open(t.Context(), dsn, postgres.Options{})
	require.NoError(t, err)
	require.Equal(t, postgres.DefaultSchema, s.Schema())
	require.NoError(t, s.Close())
}

func TestOpenErrorsHidePassword(t *testing.T) {
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	for _, dsn := range []string{
		"postgres://nxtcron:hunter2-secret@" + addr + "/nxtcron?sslmode=disable",
		"postgres://nxtcron:hunter2-secret@" + addr + "/nxtcron?sslmode=bogus",
	} {
		_, err := postgres.Open(t.Context(), dsn, postgres.Options{})
		require.Error(t, err)
		require.NotContains(t, err.Error(), "hunter2-secret")
	}
}

func TestEverythingInTheSchema(t *testing.T) {
	s := open(t)
	conn := rawConn(t)
	rows, err := conn.Query(t.Context(), `
		SELECT c.relname || ':' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'S') AND c.relname NOT LIKE '%\_id\_seq'`, s.Schema())
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, names, "fence_sequence:S", "fencing tokens come from a sequence")
	require.Contains(t, names, "goose_lock:r", "goose's table lock, not a session advisory lock")

	// The same tables and columns as SQLite's (migrations are 1:1).
	pgColumns := map[string][]string{}
	rows, err = conn.Query(t.Context(), `
		SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = $1 AND table_name NOT IN ('fence_sequence', 'goose_lock') ORDER BY table_name, column_name`, s.Schema())
	require.NoError(t, err)
	for rows.Next() {
		var table, column string
		require.NoError(t, rows.Scan(&table, &column))
		pgColumns[table] = append(pgColumns[table], column)
	}
	require.NoError(t, rows.Err())
	lite := openSQLite(t)
	liteColumns := map[string][]string{}
	lrows, err := lite.Query(`
		SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT IN ('sqlite_sequence', 'fence_sequence') ORDER BY m.name, p.name`)
	require.NoError(t, err)
	defer lrows.Close()
	for lrows.Next() {
		var table, column string
		require.NoError(t, lrows.Scan(&table, &column))
		liteColumns[table] = append(liteColumns[table], column)
	}
	require.NoError(t, lrows.Err())
	require.NotEmpty(t, liteColumns)
	require.Equal(t, liteColumns, pgColumns)

	// Every time column is a timestamptz.
	rows, err = conn.Query(t.Context(), `
		SELECT table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = $1 AND table_name NOT LIKE 'goose%'
		  AND (column_name LIKE '%\_at' OR column_name LIKE '%\_until' OR column_name LIKE '%expiry'
		       OR column_name IN ('slot', 'scheduled_through', 'missed_last'))
		  AND data_type <> 'timestamp with time zone'`, s.Schema())
	require.NoError(t, err)
	wrong, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, wrong)
	var collation string
	require.NoError(t, conn.QueryRow(t.Context(), `
		SELECT collation_name FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'watermarks' AND column_name = 'value'`, s.Schema()).Scan(&collation))
	require.Equal(t, "C", collation)
}

func TestMigrationFilesMatchSQLite(t *testing.T) {
	names := func(fsys fs.FS) []string {
		entries, err := fs.ReadDir(fsys, ".")
		require.NoError(t, err)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
			b, err := fs.ReadFile(fsys, e.Name())
			require.NoError(t, err)
			require.Contains(t, string(b), "-- +goose Up", e.Name())
			require.NotContains(t, string(b), "-- +goose Down", "%s: migrations are additive and have no Down", e.Name())
			require.NotContains(t, strings.ToUpper(string(b)), "DROP ", "%s: migrations are additive", e.Name())
		}
		return out
	}
	pg := names(migrations.Postgres)
	require.NotEmpty(t, pg)
	require.Equal(t, names(migrations.SQLite), pg, "every version exists for both databases, with the same name")
}

func TestTimesAndTypes(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	oslo, err := time.LoadLocation("Europe/Oslo")
	require.NoError(t, err)
	_, err = s.SyncJob(ctx, store.JobDef{Name: "orders", ScheduleHash: "s", DefinitionHash: "d", Overlap: "skip", Catchup: time.Hour})
	require.NoError(t, err)
	st, err := s.Job(ctx, "orders")
	require.NoError(t, err)
	// A slot given in Oslo time, with sub-microsecond noise.
	slot := st.ScheduledThrough.Truncate(time.Minute).Add(time.Minute + 123456789).In(oslo)
	res, err := s.Settle(ctx, "orders", func(st store.JobState) (store.SettlePlan, error) {
		return store.SettlePlan{Through: slot, DefinitionHash: "d",
			Claim: &store.NewClaim{Slot: slot, Trigger: store.TriggerSchedule, Owner: "a", Lease: 90 * time.Second}}, nil
	})
	require.NoError(t, err)
	want := slot.UTC().Truncate(time.Microsecond)
	require.True(t, want.Equal(res.Claim.Slot), "slot %s", res.Claim.Slot)
	require.Equal(t, time.UTC, res.Claim.Slot.Location())
	require.True(t, want.Equal(res.State.ScheduledThrough))

	conn := rawConn(t)
	var stored time.Time
	var leaseSeconds float64
	require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf(`
		SELECT s.slot, extract(epoch FROM a.lease_until - a.started_at)
		FROM %[1]s.slots s JOIN %[1]s.attempts a ON a.fence = s.fence WHERE s.id = $1`, s.Schema()),
		res.Claim.SlotID).Scan(&stored, &leaseSeconds))
	require.True(t, want.Equal(stored))
	require.InDelta(t, 90, leaseSeconds, 0.001, "the lease is now() + lease, computed in SQL")
}

func TestPruneDeletesAttempts(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	_, err := s.SyncJob(ctx, store.JobDef{Name: "orders", ScheduleHash: "s", DefinitionHash: "d", Overlap: "allow", Catchup: time.Hour})
	require.NoError(t, err)
	c, err := s.ClaimManual(ctx, store.ManualClaim{Job: "orders", DefinitionHash: "d", Owner: "cli", Lease: time.Hour})
	require.NoError(t, err)
	r, err := s.Retry(ctx, c.Fence, "x", time.Hour)
	require.NoError(t, err)
	require.NoError(t, s.Finish(ctx, r.Fence, store.Outcome{Status: store.StatusSucceeded}))
	n, err := s.Prune(ctx, 0)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	var left int
	require.NoError(t, rawConn(t).QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.attempts`, s.Schema())).Scan(&left))
	require.Zero(t, left, "attempts go with their slot")
}

// TestReplicas races several Store handles (separate pools, as separate
// replicas have) on one schema.
func TestReplicas(t *testing.T) {
	schema := newSchema(t)
	const replicas = 3
	var handles []*postgres.Store
	for range replicas {
		handles = append(handles, openSchema(t, schema))
	}
	ctx := t.Context()
	def := store.JobDef{Name: "orders", ScheduleHash: "s", DefinitionHash: "d", Overlap: "skip", Catchup: time.Hour}
	_, errs := race(replicas, func(i int) (store.JobState, error) { return handles[i].SyncJob(ctx, def) })
	requireNoErrors(t, errs)
	st, err := handles[0].Job(ctx, "orders")
	require.NoError(t, err)

	// Ten slots, each settled by every replica at once: each claimed once.
	const n = 10
	const racers = 12
	var fences []int64
	for k := 1; k <= n; k++ {
		slot := st.ScheduledThrough.Truncate(time.Second).Add(time.Duration(k) * time.Second)
		results, errs := race(racers, func(i int) (store.SettleResult, error) {
			return handles[i%replicas].Settle(ctx, "orders", func(st store.JobState) (store.SettlePlan, error) {
				p := store.SettlePlan{Through: slot, DefinitionHash: "d"}
				if slot.After(st.ScheduledThrough) {
					p.Claim = &store.NewClaim{Slot: slot, Trigger: store.TriggerSchedule, Owner: fmt.Sprint("replica-", i%replicas), Lease: 200 * time.Millisecond}
				}
				return p, nil
			})
		})
		requireNoErrors(t, errs)
		var won []store.Claim
		for _, r := range results {
			if r.Claim != nil {
				won = append(won, *r.Claim)
			}
			require.False(t, r.Skipped, "the previous slot's lease has run out or it was finished")
		}
		require.Len(t, won, 1, "slot %d", k)
		fences = append(fences, won[0].Fence)
		if k%2 == 0 {
			require.NoError(t, handles[k%replicas].Finish(ctx, won[0].Fence, store.Outcome{Status: store.StatusSucceeded}))
			continue
		}
		// The odd slots' owners die; the others race to take them over.
		var taken []store.Claim
		deadline := time.Now().Add(20 * time.Second)
		for len(taken) == 0 {
			require.True(t, time.Now().Before(deadline), "the lease never expired")
			results, errs := race(racers, func(i int) ([]store.Claim, error) {
				return handles[i%replicas].TakeOver(ctx, store.TakeOverRequest{
					Owner: fmt.Sprint("taker-", i), Lease: time.Hour, Jobs: map[string]string{"orders": "d"}, Limit: 10,
				})
			})
			requireNoErrors(t, errs)
			for _, r := range results {
				taken = append(taken, r...)
			}
			require.LessOrEqual(t, len(taken), 1)
			time.Sleep(20 * time.Millisecond)
		}
		require.Equal(t, won[0].SlotID, taken[0].SlotID)
		require.Equal(t, 2, taken[0].Attempt)
		require.Greater(t, taken[0].Fence, won[0].Fence)
		require.ErrorIs(t, handles[0].Finish(ctx, won[0].Fence, store.Outcome{Status: store.StatusSucceeded}), store.ErrFenced)
		require.NoError(t, handles[1].Finish(ctx, taken[0].Fence, store.Outcome{Status: store.StatusSucceeded}))
		fences = append(fences, taken[0].Fence)
	}
	require.True(t, slices.IsSorted(fences), "fences grow: %v", fences)
	slots, err := handles[2].Slots(ctx, store.SlotFilter{Job: "orders", Limit: 1000})
	require.NoError(t, err)
	require.Len(t, slots, n, "one record per slot")
	for _, sl := range slots {
		require.Equal(t, store.StatusSucceeded, sl.Status)
	}
}

// TestOutage cuts the store's connections (a TCP proxy between it and the
// server) and brings them back: calls fail during the outage and work
// afterwards on the same Store, without reopening it.
func TestOutage(t *testing.T) {
	schema := newSchema(t)
	openSchema(t, schema) // migrate directly
	p, viaProxy := pgtest.NewProxy(t, testDSN(t))
	s, err := postgres.Open(t.Context(), viaProxy, postgres.Options{Schema: schema})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx := t.Context()
	_, err = s.SyncJob(ctx, store.JobDef{Name: "orders", ScheduleHash: "s", DefinitionHash: "d", Overlap: "skip", Catchup: time.Hour})
	require.NoError(t, err)
	c, err := s.ClaimManual(ctx, store.ManualClaim{Job: "orders", DefinitionHash: "d", Owner: "a", Lease: time.Hour})
	require.NoError(t, err)

	p.Down()
	start := time.Now()
	require.Error(t, s.Ping(ctx))
	_, err = s.Now(ctx)
	require.Error(t, err)
	require.Error(t, s.Heartbeat(ctx, c.Fence, time.Hour))
	require.NotErrorIs(t, s.Heartbeat(ctx, c.Fence, time.Hour), store.ErrFenced, "an outage is not a lost claim")
	require.Less(t, time.Since(start), 10*time.Second, "a refused connection fails calls at once")

	p.Up()
	deadline := time.Now().Add(20 * time.Second)
	for s.Ping(ctx) != nil {
		require.True(t, time.Now().Before(deadline), "the store did not come back")
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, s.Heartbeat(ctx, c.Fence, time.Hour))
	require.NoError(t, s.Finish(ctx, c.Fence, store.Outcome{Status: store.StatusSucceeded}))
}

// TestCallTimeout: a call without a deadline is bounded, and a caller's
// deadline is kept.
func TestCallDeadline(t *testing.T) {
	s := open(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err := s.Now(ctx)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
}

func race[T any](n int, fn func(i int) (T, error)) ([]T, []error) {
	out := make([]T, n)
	errs := make([]error, n)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			out[i], errs[i] = fn(i)
		}()
	}
	close(start)
	for range n {
		<-done
	}
	return out, errs
}

func requireNoErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		require.NoError(t, err, "racer %d", i)
	}
}

// openSQLite opens a migrated SQLite store in a temporary directory and
// returns its file, to compare schemas.
func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nxtcron.db")
	st, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// TestOlderReleaseOnNewerSchema: during a rolling deploy the previous
// release runs against a schema the new one migrated further. It opens
// and migrates it (nothing to do), reports its own migrations applied (so
// its /readyz stays ready), and works.
func TestOlderReleaseOnNewerSchema(t *testing.T) {
	s := open(t)
	_, err := rawConn(t).Exec(t.Context(), fmt.Sprintf(`
		INSERT INTO %[1]s.goose_db_version (version_id, is_applied) VALUES (99999, true);
		ALTER TABLE %[1]s.jobs ADD COLUMN from_the_future text NOT NULL DEFAULT ''`, s.Schema()))
	require.NoError(t, err)

	again := openSchema(t, s.Schema()) // Migrate: true
	ms, err := again.Migrations(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for _, m := range ms {
		require.True(t, m.Applied, m.Name)
		require.Less(t, m.Version, int64(99999), "only the migrations this release knows")
	}
	_, err = again.SyncJob(t.Context(), store.JobDef{Name: "orders", ScheduleHash: "s", DefinitionHash: "d", Overlap: "skip", Catchup: time.Hour})
	require.NoError(t, err, "an added column does not disturb the previous release")
}

// TestLeastPrivilege: a role that may not create schemas gets a clear
// error naming the fix, and works once an administrator created its schema
// (the setup docs/operations.md describes).
func TestLeastPrivilege(t *testing.T) {
	admin := rawConn(t)
	schema := newSchema(t)
	role := schema + "_role"
	_, err := admin.Exec(t.Context(), `CREATE ROLE `+role+` NOLOGIN`)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = admin.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
		_, err := admin.Exec(ctx, `DROP ROLE `+role)
		require.NoError(t, err)
	})
	u, err := url.Parse(testDSN(t))
	require.NoError(t, err)
	// Connect as the test user, act as role (%20: pgx does not read + as a
	// space).
	u.RawQuery += "&options=" + strings.ReplaceAll(url.QueryEscape("-c role="+role), "+", "%20")

	_, err = postgres.Open(t.Context(), u.String(), postgres.Options{Schema: schema, Migrate: true})
	require.ErrorContains(t, err, "CREATE SCHEMA "+schema+" AUTHORIZATION")

	_, err = admin.Exec(t.Context(), `CREATE SCHEMA `+schema+` AUTHORIZATION `+role)
	require.NoError(t, err)
	s, err := postgres.Open(t.Context(), u.String(), postgres.Options{Schema: schema, Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	_, err = s.SyncJob(t.Context(), store.JobDef{Name: "orders", ScheduleHash: "s", DefinitionHash: "d", Overlap: "skip", Catchup: time.Hour})
	require.NoError(t, err)
	var owner string
	require.NoError(t, admin.QueryRow(t.Context(),
		`SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'jobs'`, schema).Scan(&owner))
	require.Equal(t, role, owner)
}
