package sqlite_test

import (
	"bufio"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/store/storetest"
)

func TestMain(m *testing.M) {
	if os.Getenv(lockHelperEnv) != "" {
		lockHelper()
		return
	}
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "nxtcron.db"))
	})
}

func TestOpenCreatesDirectoryAndSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "with space?and#hash", "nxtcron.db")
	s := open(t, path)
	require.NoError(t, s.Ping(t.Context()))
	require.FileExists(t, path)
	require.FileExists(t, path+"-wal", "journal mode WAL")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"nxtcron.db", "nxtcron.db-wal", "nxtcron.db-shm", "nxtcron.db.migrate.lock"}, names)

	plain := filepath.Join(t.TempDir(), "nxtcron.db")
	open(t, plain)
	var mode string
	require.NoError(t, rawDB(t, plain).QueryRow(`PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode)
	// Foreign keys: TestPruneDeletesAttempts; busy timeout and immediate
	// transactions: TestTwoHandles.
}

func TestOpenWithoutMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nxtcron.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ms, err := s.Migrations(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for _, m := range ms {
		require.False(t, m.Applied, m.Name)
		require.Nil(t, m.AppliedAt)
	}
	require.NoError(t, s.Migrate(t.Context()))
	ms, err = s.Migrations(t.Context())
	require.NoError(t, err)
	for _, m := range ms {
		require.True(t, m.Applied, m.Name)
	}
}

func TestOpenInvalidPath(t *testing.T) {
	for _, path := range []string{"", ":memory:"} {
		_, err := sqlite.Open(t.Context(), path, sqlite.Options{})
		require.Error(t, err, path)
	}
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := sqlite.Open(t.Context(), filepath.Join(file, "nxtcron.db"), sqlite.Options{})
	require.ErrorContains(t, err, "creating the directory")
}

// rawDB opens the store's file without the store, to look at what it wrote.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func TestTimesStoredUTC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nxtcron.db")
	s := open(t, path)
	ctx := t.Context()
	oslo, err := time.LoadLocation("Europe/Oslo")
	require.NoError(t, err)
	_, err = s.SyncJob(ctx, store.JobDef{Name: "orders", ScheduleHash: "s", DefinitionHash: "d", Overlap: "skip", Catchup: time.Hour})
	require.NoError(t, err)
	st, err := s.Job(ctx, "orders")
	require.NoError(t, err)
	// A slot given in Oslo time.
	slot := st.ScheduledThrough.Truncate(time.Minute).Add(time.Minute).In(oslo)
	res, err := s.Settle(ctx, "orders", func(st store.JobState) (store.SettlePlan, error) {
		return store.SettlePlan{Through: slot, DefinitionHash: "d",
			Claim: &store.NewClaim{Slot: slot, Trigger: store.TriggerSchedule, Owner: "a", Lease: time.Hour}}, nil
	})
	require.NoError(t, err)
	require.NoError(t, s.PutAccessToken(ctx, "service", store.AccessToken{Cipher: []byte{1}, Hash: "h", Expiry: slot}))

	db := rawDB(t, path)
	var stored, through, started, lease, expiry string
	require.NoError(t, db.QueryRow(`SELECT slot, started_at FROM slots WHERE id = ?`, res.Claim.SlotID).Scan(&stored, &started))
	require.NoError(t, db.QueryRow(`SELECT scheduled_through FROM jobs WHERE name = 'orders'`).Scan(&through))
	require.NoError(t, db.QueryRow(`SELECT lease_until FROM attempts WHERE fence = ?`, res.Claim.Fence).Scan(&lease))
	require.NoError(t, db.QueryRow(`SELECT access_expiry FROM tokens`).Scan(&expiry))
	want := slot.UTC().Format("2006-01-02T15:04:05.000Z")
	require.Equal(t, want, stored)
	require.Equal(t, want, through)
	require.Equal(t, want, expiry)
	for _, v := range []string{started, lease} {
		tm, err := time.Parse("2006-01-02T15:04:05.000Z", v)
		require.NoError(t, err, v)
		require.WithinDuration(t, time.Now().Add(time.Hour), tm, 2*time.Hour, v)
	}
}

func TestPruneDeletesAttempts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nxtcron.db")
	s := open(t, path)
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
	require.NoError(t, rawDB(t, path).QueryRow(`SELECT count(*) FROM attempts`).Scan(&left))
	require.Zero(t, left, "attempts go with their slot")
}

// TestTwoHandles races two Store handles on one file, as `nxtcron run` and
// `nxtcron serve` (or two replicas by mistake) do.
func TestTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nxtcron.db")
	a := open(t, path)
	b := open(t, path)
	handles := []*sqlite.Store{a, b}
	ctx := t.Context()

	st, err := a.SyncJob(ctx, store.JobDef{Name: "orders", ScheduleHash: "s", DefinitionHash: "d", Overlap: "skip", Catchup: time.Hour})
	require.NoError(t, err)
	got, err := b.Job(ctx, "orders")
	require.NoError(t, err)
	require.Equal(t, st, got, "one handle sees the other's writes")

	const n = 16
	type result struct {
		claimed bool
		err     error
	}
	run := func(fn func(s *sqlite.Store, i int) (bool, error)) []result {
		out := make(chan result, n)
		start := make(chan struct{})
		for i := range n {
			go func() {
				<-start
				ok, err := fn(handles[i%2], i)
				out <- result{ok, err}
			}()
		}
		close(start)
		var rs []result
		for range n {
			rs = append(rs, <-out)
		}
		return rs
	}
	count := func(rs []result) int {
		won := 0
		for _, r := range rs {
			if r.claimed {
				won++
			}
		}
		return won
	}

	// Settle of one slot.
	slot := st.ScheduledThrough.Truncate(time.Minute).Add(time.Minute)
	rs := run(func(s *sqlite.Store, i int) (bool, error) {
		res, err := s.Settle(ctx, "orders", func(st store.JobState) (store.SettlePlan, error) {
			p := store.SettlePlan{Through: slot, DefinitionHash: "d"}
			if slot.After(st.ScheduledThrough) {
				p.Claim = &store.NewClaim{Slot: slot, Trigger: store.TriggerSchedule, Owner: fmt.Sprint("replica-", i), Lease: 100 * time.Millisecond}
			}
			return p, nil
		})
		return res.Claim != nil, err
	})
	for _, r := range rs {
		require.NoError(t, r.err)
	}
	require.Equal(t, 1, count(rs))

	// TakeOver of the expired claim.
	claimed := false
	deadline := time.Now().Add(20 * time.Second)
	for !claimed {
		require.True(t, time.Now().Before(deadline), "the lease never expired")
		rs = run(func(s *sqlite.Store, i int) (bool, error) {
			cs, err := s.TakeOver(ctx, store.TakeOverRequest{Owner: fmt.Sprint("taker-", i), Lease: time.Hour, Jobs: map[string]string{"orders": "d"}, Limit: 5})
			return len(cs) > 0, err
		})
		for _, r := range rs {
			require.NoError(t, r.err)
		}
		require.LessOrEqual(t, count(rs), 1)
		claimed = count(rs) == 1
		time.Sleep(10 * time.Millisecond)
	}

	// Manual claims while it runs: all busy.
	rs = run(func(s *sqlite.Store, i int) (bool, error) {
		_, err := s.ClaimManual(ctx, store.ManualClaim{Job: "orders", DefinitionHash: "d", Owner: "cli", Lease: time.Hour})
		return err == nil, err
	})
	require.Zero(t, count(rs))
	for _, r := range rs {
		require.ErrorIs(t, r.err, store.ErrBusy)
	}
	running, err := b.Running(ctx)
	require.NoError(t, err)
	require.Len(t, running, 1)
	require.True(t, strings.HasPrefix(running[0].Owner, "taker-"))
	require.Equal(t, 2, running[0].Attempt)
}

func TestConcurrentMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nxtcron.db")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
	s := open(t, path)
	ms, err := s.Migrations(t.Context())
	require.NoError(t, err)
	for _, m := range ms {
		require.True(t, m.Applied)
	}
	var rows int
	require.NoError(t, rawDB(t, path).QueryRow(`SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&rows))
	require.Equal(t, len(ms), rows, "each migration applied once")
}

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "nxtcron.db")
	release, err := sqlite.Lock(path)
	require.NoError(t, err)

	_, err = sqlite.Lock(path)
	var locked *sqlite.LockedError
	require.ErrorAs(t, err, &locked)
	host, _ := os.Hostname()
	require.Equal(t, os.Getpid(), locked.PID)
	require.Equal(t, host, locked.Host)
	require.WithinDuration(t, time.Now(), locked.Since, 5*time.Second)
	require.Contains(t, err.Error(), fmt.Sprintf("store %s is in use by nxtcron serve (pid %d on %s, since ", path, os.Getpid(), host))

	require.NoError(t, release())
	require.NoError(t, release(), "release twice")
	again, err := sqlite.Lock(path)
	require.NoError(t, err)
	require.NoError(t, again())
}

const lockHelperEnv = "NXTCRON_SQLITE_LOCK_HELPER"

// lockHelper is the child process of TestLockReleasedWhenHolderDies: it
// takes the lock, says so, and waits to be killed.
func lockHelper() {
	if _, err := sqlite.Lock(os.Getenv(lockHelperEnv)); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	select {}
}

func TestLockReleasedWhenHolderDies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nxtcron.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+path)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	_, err = sqlite.Lock(path)
	var locked *sqlite.LockedError
	require.ErrorAs(t, err, &locked)
	require.Equal(t, cmd.Process.Pid, locked.PID)
	require.Contains(t, err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid))

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	release, err := sqlite.Lock(path)
	require.NoError(t, err, "the kernel released the dead holder's lock")
	require.NoError(t, release())
}
