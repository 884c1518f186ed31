package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/store"
)

// stopAsync stops s in the background and returns Stop's result channel.
func stopAsync(s *Scheduler) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		done <- s.Stop(ctx)
	}()
	return done
}

func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitFor):
		t.Fatal("timed out")
		return nil
	}
}

func TestShutdownInterruptsAndRestartTakesOver(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(block(nil)))
	job := testJob(t, "nightly", "0 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	slot := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(slot)
	att := a.runner.next(t)

	// Stop closes the attempt's Stop channel; the runner returns
	// ErrInterrupted; the attempt is recorded before Stop returns.
	require.NoError(t, waitErr(t, stopAsync(a.Scheduler)))
	rec := waitSlot(t, db, job.Name, slot, store.StatusInterrupted)
	require.Equal(t, jobs.ErrInterrupted.Error(), rec.Error)
	as := attempts(t, db, rec.ID)
	require.Len(t, as, 1)
	require.Equal(t, store.StatusInterrupted, as[0].Status)
	require.ErrorContains(t, a.Start(t.Context()), "stopping")
	_, err := a.Trigger(t.Context(), job.Name, store.RunOptions{})
	require.ErrorContains(t, err, "stopping")

	// A new scheduler on the same store takes the slot over as attempt 2.
	b := newReplica(t, db, "b", clock, newRunner(succeed(4)))
	require.NoError(t, b.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, b.Start(t.Context()))
	next := b.runner.next(t)
	require.Equal(t, att.Claim.SlotID, next.Claim.SlotID)
	require.Equal(t, 2, next.Claim.Attempt)
	require.Equal(t, "b", next.Claim.Owner)
	rec = waitSlot(t, db, job.Name, slot, store.StatusSucceeded)
	require.Equal(t, 2, rec.Attempts)
	require.Len(t, slots(t, db, job.Name), 1)
}

func TestShutdownGraceCancelsAttempts(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	ignoresStop := func(ctx context.Context, _ *jobs.Job, _ jobs.Attempt) (jobs.Result, error) {
		<-ctx.Done()
		return jobs.Result{}, ctx.Err()
	}
	a := newReplica(t, db, "a", clock, newRunner(ignoresStop))
	job := testJob(t, "stubborn", "0 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	slot := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(slot)
	a.runner.next(t)

	stopped := stopAsync(a.Scheduler)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	require.NoError(t, clock.BlockUntilTimer(ctx, 45*time.Second))
	clock.Advance(44 * time.Second)
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned before the grace elapsed: %v", err)
	default:
	}
	clock.Advance(time.Second)
	require.NoError(t, waitErr(t, stopped))
	rec := waitSlot(t, db, job.Name, slot, store.StatusInterrupted)
	require.Equal(t, "shutdown grace of 45s elapsed: context canceled", rec.Error)
}

func TestStopReleasesClaimsItCannotStart(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(1)))
	job := testJob(t, "late", "0 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	st := through(t, db, job.Name)
	res, err := db.Settle(t.Context(), job.Name, func(store.JobState) (store.SettlePlan, error) {
		slot := job.Cron.Next(st)
		return store.SettlePlan{Through: slot, DefinitionHash: job.DefinitionHash,
			Claim: &store.NewClaim{Slot: slot, Trigger: store.TriggerSchedule, Owner: "a", Lease: time.Hour}}, nil
	})
	require.NoError(t, err)
	require.NoError(t, a.Stop(t.Context()))
	// A claim that reaches a stopping scheduler is released, not run.
	a.launch(job, *res.Claim, a.stop, a.runCtx)
	a.runner.none(t)
	rec := waitSlot(t, db, job.Name, res.Claim.Slot, store.StatusInterrupted)
	require.Equal(t, "not started: scheduler is stopping", rec.Error)
}

// Replica a loses the store: its heartbeats fail, and after its lease
// timeout it cancels the attempt; replica b takes the slot over once the
// lease has expired in the store.
func TestHeartbeatLossTakeOver(t *testing.T) {
	db := openStore(t)
	clockA, clockB := NewFakeClock(now()), NewFakeClock(now())
	lease := time.Second // real time: SQLite's clock decides when it expires
	shortLease := func(o *Options) { o.HeartbeatInterval, o.LeaseTimeout = 250*time.Millisecond, lease }
	a := newReplica(t, db, "a", clockA, newRunner(block(nil)), shortLease)
	b := newReplica(t, db, "b", clockB, newRunner(succeed(9)), func(o *Options) { o.HeartbeatInterval = 250 * time.Millisecond })
	job := testJob(t, "nightly", "0 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	slot := job.Cron.Next(through(t, db, job.Name))
	clockA.AdvanceTo(slot)
	att := a.runner.next(t)

	a.store.setDown(true)
	require.NoError(t, b.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, b.Start(t.Context()))

	// a: heartbeats fail for a lease timeout; it cancels its attempt.
	clockA.Advance(lease)
	require.Eventually(t, func() bool {
		return logCount(a.logs, "lease lost; cancelling the attempt") == 1
	}, waitFor, time.Millisecond)
	require.Eventually(t, func() bool { return logCount(a.logs, "attempt abandoned") == 1 }, waitFor, time.Millisecond)

	// b: takes the slot over once the store's lease has expired.
	var taken jobs.Attempt
	require.Eventually(t, func() bool {
		select {
		case taken = <-b.runner.started:
			return true
		default:
			clockB.Advance(250 * time.Millisecond)
			return false
		}
	}, waitFor, 10*time.Millisecond)
	require.Equal(t, att.Claim.SlotID, taken.Claim.SlotID)
	require.Equal(t, 2, taken.Claim.Attempt)
	require.Equal(t, store.TriggerSchedule, taken.Claim.Trigger)
	rec := waitSlot(t, db, job.Name, slot, store.StatusSucceeded)
	as := attempts(t, db, rec.ID)
	require.Len(t, as, 2)
	require.Equal(t, "a", as[0].Owner)
	require.Equal(t, store.StatusLost, as[0].Status)
	require.Equal(t, "b", as[1].Owner)
	require.Equal(t, store.StatusSucceeded, as[1].Status)
	a.runner.none(t)
}

// A replica whose attempt was taken over learns it from its next heartbeat
// (ErrFenced) and cancels the attempt without recording anything.
func TestFencedHeartbeatCancelsAttempt(t *testing.T) {
	db := openStore(t)
	clockA, clockB := NewFakeClock(now()), NewFakeClock(now())
	lease := time.Second
	cancelled := make(chan error, 1)
	runA := newRunner(func(ctx context.Context, _ *jobs.Job, _ jobs.Attempt) (jobs.Result, error) {
		<-ctx.Done()
		cancelled <- context.Cause(ctx)
		return jobs.Result{}, ctx.Err()
	})
	a := newReplica(t, db, "a", clockA, runA, func(o *Options) { o.HeartbeatInterval, o.LeaseTimeout = 250*time.Millisecond, lease })
	release := make(chan struct{})
	b := newReplica(t, db, "b", clockB, newRunner(block(release)), func(o *Options) { o.HeartbeatInterval = 250 * time.Millisecond })
	job := testJob(t, "nightly", "0 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	slot := job.Cron.Next(through(t, db, job.Name))
	clockA.AdvanceTo(slot)
	runA.next(t)

	// a's clock stands still (a paused process): no heartbeat, and its lease
	// expires in the store; b takes over.
	require.NoError(t, b.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, b.Start(t.Context()))
	require.Eventually(t, func() bool {
		select {
		case a := <-b.runner.started:
			return a.Claim.Attempt == 2
		default:
			clockB.Advance(250 * time.Millisecond)
			return false
		}
	}, waitFor, 10*time.Millisecond)

	// a wakes up: its heartbeat is fenced and its attempt cancelled.
	clockA.Advance(250 * time.Millisecond)
	select {
	case cause := <-cancelled:
		require.ErrorIs(t, cause, errLost)
		require.ErrorContains(t, cause, "another replica took the slot over")
	case <-time.After(waitFor):
		t.Fatal("a's attempt was not cancelled")
	}
	require.Eventually(t, func() bool {
		return logCount(a.logs, "attempt not recorded: the slot belongs to another attempt now") == 1
	}, waitFor, time.Millisecond)
	close(release)
	rec := waitSlot(t, db, job.Name, slot, store.StatusSucceeded)
	as := attempts(t, db, rec.ID)
	require.Len(t, as, 2)
	require.Equal(t, store.StatusLost, as[0].Status)
	require.Equal(t, "b", as[1].Owner)
}

func TestClockSkewRefusesToClaim(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(1)))
	a.store.setOffset(-7 * time.Second) // this replica's clock is 7s ahead of the store's
	job := testJob(t, "hourly", "0 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	st := through(t, db, job.Name)
	slot := job.Cron.Next(st)
	clock.AdvanceTo(slot.Add(-5 * time.Second))
	a.afterRounds(t, 1, func() { require.NoError(t, a.Start(t.Context())) })
	for range 5 {
		a.afterRounds(t, 1, func() { clock.Advance(10 * time.Second) })
	}
	offset, ok := a.ClockOffset()
	require.True(t, ok)
	require.Equal(t, 7*time.Second, offset)
	require.Equal(t, 7.0, testutil.ToFloat64(a.m.ClockOffsetSeconds))
	require.True(t, st.Equal(through(t, db, job.Name)), "settled despite the offset")
	require.Zero(t, a.store.takeOvers.Load(), "took over despite the offset")
	a.runner.none(t)
	entries := a.logs.FilterMessage("clock offset from the store exceeds the limit; not claiming any slot until the clocks agree (check NTP)").All()
	require.Len(t, entries, 1, "logged once a minute, not every round")
	require.Equal(t, 7*time.Second, entries[0].ContextMap()["offset"])

	a.afterRounds(t, 1, func() { clock.Advance(10 * time.Second) }) // a minute since the first error
	require.Equal(t, 2, logCount(a.logs, "clock offset from the store exceeds the limit; not claiming any slot until the clocks agree (check NTP)"))

	// Within 5s again: the slot runs (late, so as catchup).
	a.store.setOffset(-4 * time.Second)
	clock.Advance(20 * time.Second)
	att := a.runner.next(t)
	require.Equal(t, slot, att.Claim.Slot.UTC())
	require.Equal(t, store.TriggerCatchup, att.Claim.Trigger)
	require.Equal(t, 1, logCount(a.logs, "clock offset from the store is back within the limit; claiming again"))
}

// Due times follow the store's clock: with the replica 4s behind the store,
// the slot is claimed 4s before the replica's own clock reaches it.
func TestDueTimesUseTheStoreClock(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(1)))
	a.store.setOffset(4 * time.Second)
	job := testJob(t, "hourly", "0 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	slot := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(slot.Add(-5 * time.Second))
	a.runner.none(t)
	clock.Advance(time.Second)
	att := a.runner.next(t)
	require.Equal(t, slot, att.Claim.Slot.UTC())
	require.Equal(t, store.TriggerSchedule, att.Claim.Trigger)
	offset, _ := a.ClockOffset()
	require.Equal(t, -4*time.Second, offset)
}

func TestSetJobsSwapsTheSet(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(1)))
	one := testJob(t, "one", "0 * * * *")
	two := testJob(t, "two", "30 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{one}))
	require.NoError(t, a.Start(t.Context()))

	// A set with a problem is refused whole; the old set stays.
	err := a.SetJobs(t.Context(), []*jobs.Job{two, testJob(t, "two", "0 0 * * *")})
	require.ErrorContains(t, err, `registering job "two": defined twice`)
	require.NotNil(t, a.job("one"))
	require.Nil(t, a.job("two"))

	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{two}))
	require.Nil(t, a.job("one"))
	slotTwo := two.Cron.Next(through(t, db, two.Name))
	slotOne := one.Cron.Next(through(t, db, one.Name))
	clock.AdvanceTo(maxTime(slotOne, slotTwo))
	att := a.runner.next(t)
	require.Equal(t, "two", att.Claim.Job)
	waitSlot(t, db, two.Name, slotTwo, store.StatusSucceeded)
	a.runner.none(t)
	require.Empty(t, slots(t, db, one.Name))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func TestDefinitionConflictSkipsTheJob(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(1)))
	job := testJob(t, "shared", "0 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))

	// Another replica registers a different definition of the job.
	_, err := db.SyncJob(t.Context(), store.JobDef{Name: job.Name, ScheduleHash: job.ScheduleHash,
		DefinitionHash: "definition:shared:2", Overlap: job.Overlap, Catchup: job.Catchup})
	require.NoError(t, err)
	slot := job.Cron.Next(through(t, db, job.Name))
	a.afterRounds(t, 1, func() { clock.AdvanceTo(slot) })
	for range 3 {
		a.afterRounds(t, 1, func() { clock.Advance(10 * time.Second) })
	}
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(a.m.JobDefinitionConflict.WithLabelValues(job.Name)) == 1
	}, waitFor, time.Millisecond)
	require.Equal(t, 1, logCount(a.logs, "job definition differs from the stored one; skipping the job on this replica"))
	a.runner.none(t)
	require.Empty(t, slots(t, db, job.Name))

	// Registering this replica's definition again (a reload) ends it.
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.Equal(t, 0.0, testutil.ToFloat64(a.m.JobDefinitionConflict.WithLabelValues(job.Name)))
	att := a.runner.next(t)
	require.Equal(t, slot, att.Claim.Slot.UTC())
}

func TestTriggerRunsInTheBackground(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	release := make(chan struct{})
	a := newReplica(t, db, "a", clock, newRunner(block(release)))
	job := testJob(t, "manual", "0 0 1 1 *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))

	company := int64(1001)
	claim, err := a.Trigger(t.Context(), job.Name, store.RunOptions{Company: &company, Full: true})
	require.NoError(t, err)
	require.Equal(t, store.TriggerManual, claim.Trigger)
	require.Equal(t, "a", claim.Owner)
	att := a.runner.next(t)
	require.Equal(t, claim, att.Claim)
	require.Equal(t, int64(1001), *att.Claim.Options.Company)

	// Overlap skip holds against a second manual run.
	_, err = a.Trigger(t.Context(), job.Name, store.RunOptions{})
	require.ErrorIs(t, err, store.ErrBusy)
	_, err = a.Trigger(t.Context(), "nope", store.RunOptions{})
	require.ErrorIs(t, err, store.ErrNotFound)

	close(release)
	waitSlot(t, db, job.Name, claim.Slot, store.StatusSucceeded)
}

func TestRunManualInTheForeground(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	runner := newRunner(func(_ context.Context, _ *jobs.Job, a jobs.Attempt) (jobs.Result, error) {
		if a.Claim.Attempt == 1 {
			return jobs.Result{}, errors.New("transient")
		}
		return jobs.Result{Rows: 12, Companies: 2}, nil
	})
	a := newReplica(t, db, "a", clock, runner)
	job := testJob(t, "adhoc", "0 0 1 1 *", func(j *jobs.Job) { j.Retry = jobs.Retry{Attempts: 2, Backoff: 90 * time.Second} })
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))

	type result struct {
		claim store.Claim
		res   jobs.Result
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, r, err := a.RunManual(t.Context(), job, store.RunOptions{})
		done <- result{c, r, err}
	}()
	require.Equal(t, 1, runner.next(t).Claim.Attempt)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	require.NoError(t, clock.BlockUntilTimer(ctx, 90*time.Second))
	clock.Advance(90 * time.Second)
	var got result
	select {
	case got = <-done:
	case <-time.After(waitFor):
		t.Fatal("RunManual did not return")
	}
	require.NoError(t, got.err)
	require.Equal(t, 2, got.claim.Attempt)
	require.Equal(t, store.TriggerManual, got.claim.Trigger)
	require.Equal(t, jobs.Result{Rows: 12, Companies: 2}, got.res)
	rec := waitSlot(t, db, job.Name, got.claim.Slot, store.StatusSucceeded)
	require.EqualValues(t, 12, rec.Rows)
}

func TestRunManualCancelledIsInterrupted(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(block(nil)))
	job := testJob(t, "adhoc", "0 0 1 1 *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var claim store.Claim
	go func() {
		var err error
		claim, _, err = a.RunManual(ctx, job, store.RunOptions{})
		done <- err
	}()
	a.runner.next(t)
	cancel() // Ctrl-C on `nxtcron run`
	err := waitErr(t, done)
	require.ErrorIs(t, err, jobs.ErrInterrupted)
	waitSlot(t, db, job.Name, claim.Slot, store.StatusInterrupted)
}

func TestRunManualBusy(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	release := make(chan struct{})
	a := newReplica(t, db, "a", clock, newRunner(block(release)))
	job := testJob(t, "adhoc", "0 0 1 1 *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	claim, err := a.Trigger(t.Context(), job.Name, store.RunOptions{})
	require.NoError(t, err)
	a.runner.next(t)
	_, _, err = a.RunManual(t.Context(), job, store.RunOptions{})
	require.ErrorIs(t, err, store.ErrBusy)
	require.ErrorContains(t, err, "a (slot")
	close(release)
	waitSlot(t, db, job.Name, claim.Slot, store.StatusSucceeded)
}

func TestPrunesHourly(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(1)))
	require.NoError(t, a.Start(t.Context()))
	require.Eventually(t, func() bool { return a.store.prunes.Load() == 1 }, waitFor, time.Millisecond)
	for range 5 {
		a.afterRounds(t, 1, func() { clock.Advance(10 * time.Minute) })
	}
	require.EqualValues(t, 1, a.store.prunes.Load())
	a.afterRounds(t, 1, func() { clock.Advance(10 * time.Minute) })
	require.Eventually(t, func() bool { return a.store.prunes.Load() == 2 }, waitFor, time.Millisecond)
}

func TestShutdownDuringBackoffReleasesTheRetry(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	runner := newRunner(func(context.Context, *jobs.Job, jobs.Attempt) (jobs.Result, error) {
		return jobs.Result{}, errors.New("server error")
	})
	a := newReplica(t, db, "a", clock, runner)
	job := testJob(t, "flaky", "0 * * * *", func(j *jobs.Job) { j.Retry = jobs.Retry{Attempts: 3, Backoff: 90 * time.Second} })
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	slot := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(slot)
	runner.next(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	require.NoError(t, clock.BlockUntilTimer(ctx, 90*time.Second))
	require.NoError(t, waitErr(t, stopAsync(a.Scheduler)))
	rec := waitSlot(t, db, job.Name, slot, store.StatusInterrupted)
	as := attempts(t, db, rec.ID)
	require.Len(t, as, 2)
	require.Equal(t, store.StatusFailed, as[0].Status)
	require.Equal(t, "server error", as[0].Error)
	require.Equal(t, store.StatusInterrupted, as[1].Status)
	runner.none(t)
}
