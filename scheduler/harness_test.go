package scheduler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/scheduler/spec"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor bounds every wait of a test; reaching it is a failure.
const waitFor = 30 * time.Second

// openStore opens a real SQLite store in a temporary directory.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nxtcron.db"), sqlite.Options{Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// errStoreDown is what a replica whose store is "down" gets.
var errStoreDown = errors.New("store unreachable (test)")

// replicaStore is one replica's view of the shared SQLite store. Its Now is
// the replica's fake clock plus dbOffset, so that the store's clock moves
// with the test (SQLite's own now, used in SQL for leases and expiries, stays
// the host's: tests use leases far longer than they run, except where a
// lease must expire). down makes every call fail, as a network partition of
// this replica would. It counts the calls tests synchronise on.
type replicaStore struct {
	store.Store
	clock *FakeClock

	mu       sync.Mutex
	dbOffset time.Duration
	down     bool

	nows, heartbeats, prunes, takeOvers atomic.Int64
}

func (s *replicaStore) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *replicaStore) setOffset(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dbOffset = d
}

func (s *replicaStore) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errStoreDown
	}
	return nil
}

func (s *replicaStore) Now(ctx context.Context) (time.Time, error) {
	s.nows.Add(1)
	if err := s.check(); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock.Now().Add(s.dbOffset), nil
}

func (s *replicaStore) Settle(ctx context.Context, job string, plan func(store.JobState) (store.SettlePlan, error)) (store.SettleResult, error) {
	if err := s.check(); err != nil {
		return store.SettleResult{}, err
	}
	return s.Store.Settle(ctx, job, plan)
}

func (s *replicaStore) TakeOver(ctx context.Context, req store.TakeOverRequest) ([]store.Claim, error) {
	s.takeOvers.Add(1)
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.Store.TakeOver(ctx, req)
}

func (s *replicaStore) Heartbeat(ctx context.Context, fence int64, lease time.Duration) error {
	s.heartbeats.Add(1)
	if err := s.check(); err != nil {
		return err
	}
	return s.Store.Heartbeat(ctx, fence, lease)
}

func (s *replicaStore) Retry(ctx context.Context, fence int64, errMsg string, lease time.Duration) (store.Claim, error) {
	if err := s.check(); err != nil {
		return store.Claim{}, err
	}
	return s.Store.Retry(ctx, fence, errMsg, lease)
}

func (s *replicaStore) Finish(ctx context.Context, fence int64, out store.Outcome) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.Store.Finish(ctx, fence, out)
}

func (s *replicaStore) Prune(ctx context.Context, olderThan time.Duration) (int, error) {
	s.prunes.Add(1)
	if err := s.check(); err != nil {
		return 0, err
	}
	return s.Store.Prune(ctx, olderThan)
}

// runFunc is what a test runner does with an attempt.
type runFunc func(ctx context.Context, job *jobs.Job, a jobs.Attempt) (jobs.Result, error)

// testRunner reports every attempt it starts on started, then runs fn.
type testRunner struct {
	mu      sync.Mutex
	fn      runFunc
	started chan jobs.Attempt
}

func newRunner(fn runFunc) *testRunner {
	return &testRunner{fn: fn, started: make(chan jobs.Attempt, 100)}
}

func (r *testRunner) Run(ctx context.Context, job *jobs.Job, a jobs.Attempt) (jobs.Result, error) {
	r.mu.Lock()
	fn := r.fn
	r.mu.Unlock()
	r.started <- a
	return fn(ctx, job, a)
}

func (r *testRunner) set(fn runFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fn = fn
}

// next waits for the runner's next attempt.
func (r *testRunner) next(t *testing.T) jobs.Attempt {
	t.Helper()
	select {
	case a := <-r.started:
		return a
	case <-time.After(waitFor):
		t.Fatal("no attempt started")
		return jobs.Attempt{}
	}
}

// none checks that no attempt has started.
func (r *testRunner) none(t *testing.T) {
	t.Helper()
	select {
	case a := <-r.started:
		t.Fatalf("unexpected attempt %d of slot %s (trigger %s)", a.Claim.Attempt, a.Claim.Slot, a.Claim.Trigger)
	default:
	}
}

func succeed(rows int64) runFunc {
	return func(context.Context, *jobs.Job, jobs.Attempt) (jobs.Result, error) {
		return jobs.Result{Rows: rows, Companies: 1}, nil
	}
}

// block runs until the scheduler stops it (ErrInterrupted) or its context
// ends, or release is closed (success).
func block(release <-chan struct{}) runFunc {
	return func(ctx context.Context, _ *jobs.Job, a jobs.Attempt) (jobs.Result, error) {
		select {
		case <-release:
			return jobs.Result{Rows: 1}, nil
		case <-a.Stop:
			return jobs.Result{}, jobs.ErrInterrupted
		case <-ctx.Done():
			return jobs.Result{}, ctx.Err()
		}
	}
}

// replica is one scheduler of a test with its store view, clock and runner.
type replica struct {
	*Scheduler
	store  *replicaStore
	clock  *FakeClock
	runner *testRunner
	logs   *observer.ObservedLogs
	m      *metrics.Metrics

	busy   atomic.Bool  // the loop is in a round
	rounds atomic.Int64 // rounds completed
}

type replicaOption func(*Options)

// newReplica makes a scheduler on db with its own fake clock (starting at
// start, normally the host's now so that SyncJob's scheduled_through, taken
// from SQLite's clock, lines up with it) and stops it at the end of the test.
func newReplica(t *testing.T, db store.Store, owner string, clock *FakeClock, runner *testRunner, opts ...replicaOption) *replica {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	rs := &replicaStore{Store: db, clock: clock}
	o := Options{
		Store:             rs,
		Runner:            runner,
		Owner:             owner,
		Clock:             clock,
		HeartbeatInterval: 10 * time.Second,
		LeaseTimeout:      time.Hour,
		ShutdownGrace:     45 * time.Second,
		Logger:            zap.New(core),
		Metrics:           metrics.New(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		rs.setDown(false)
		require.NoError(t, s.Stop(ctx))
	})
	r := &replica{Scheduler: s, store: rs, clock: clock, runner: runner, logs: logs, m: o.Metrics}
	s.observe = func(busy bool) {
		r.busy.Store(busy)
		if !busy {
			r.rounds.Add(1)
		}
	}
	return r
}

// afterRounds waits until the loop sleeps, calls f, and waits until the
// loop has completed n more rounds and sleeps again.
func (r *replica) afterRounds(t *testing.T, n int64, f func()) {
	t.Helper()
	idle := func() bool { return !r.busy.Load() }
	require.Eventually(t, idle, waitFor, time.Millisecond, "the loop is busy")
	start := r.rounds.Load()
	f()
	require.Eventually(t, func() bool { return r.rounds.Load() >= start+n && idle() }, waitFor, time.Millisecond,
		"the loop did not run %d rounds", n)
}

// testJob makes a job on schedule (UTC) with test defaults.
func testJob(t *testing.T, name, schedule string, mods ...func(*jobs.Job)) *jobs.Job {
	t.Helper()
	cron, err := spec.Parse(schedule, time.UTC)
	require.NoError(t, err)
	j := &jobs.Job{
		Name:           name,
		Schedule:       schedule,
		Cron:           cron,
		Location:       time.UTC,
		Timeout:        time.Hour,
		Retry:          jobs.Retry{Attempts: 1, Backoff: 90 * time.Second},
		Overlap:        jobs.OverlapSkip,
		Catchup:        6 * time.Hour,
		ScheduleHash:   "schedule:" + schedule,
		DefinitionHash: "definition:" + name + ":1",
	}
	for _, mod := range mods {
		mod(j)
	}
	return j
}

// through reads a job's scheduled_through.
func through(t *testing.T, db store.Store, job string) time.Time {
	t.Helper()
	st, err := db.Job(t.Context(), job)
	require.NoError(t, err)
	return st.ScheduledThrough
}

// slots lists a job's slot records, oldest first.
func slots(t *testing.T, db store.Store, job string) []store.Slot {
	t.Helper()
	ss, err := db.Slots(t.Context(), store.SlotFilter{Job: job, Limit: 1000})
	require.NoError(t, err)
	for i, j := 0, len(ss)-1; i < j; i, j = i+1, j-1 {
		ss[i], ss[j] = ss[j], ss[i]
	}
	return ss
}

// waitSlot waits until the record of job's slot at slot has status.
func waitSlot(t *testing.T, db store.Store, job string, slot time.Time, status string) store.Slot {
	t.Helper()
	var found store.Slot
	require.Eventually(t, func() bool {
		for _, s := range slots(t, db, job) {
			if s.Slot.Equal(slot) && s.Status == status {
				found = s
				return true
			}
		}
		return false
	}, waitFor, 2*time.Millisecond, "slot %s of %s never became %s: %v", slot, job, status, describe(slots(t, db, job)))
	return found
}

func attempts(t *testing.T, db store.Store, slotID int64) []store.Attempt {
	t.Helper()
	as, err := db.Attempts(t.Context(), slotID)
	require.NoError(t, err)
	return as
}

func describe(ss []store.Slot) []string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s %s %s attempts=%d missed=%d err=%q",
			s.Slot.Format(time.RFC3339), s.Trigger, s.Status, s.Attempts, s.MissedCount, s.Error))
	}
	return out
}

// now is the host's clock to the millisecond: fake clocks start there.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func logCount(logs *observer.ObservedLogs, msg string) int {
	return logs.FilterMessage(msg).Len()
}
