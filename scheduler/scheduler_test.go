package scheduler

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/scheduler/spec"
	"github.com/nxtcron/nxtcron/store"
)

func TestNewChecksOptions(t *testing.T) {
	db := openStore(t)
	runner := newRunner(succeed(0))
	for _, tc := range []struct {
		name        string
		opts        Options
		errContains string
	}{
		{"no store", Options{Runner: runner, Owner: "a"}, "no store"},
		{"no runner", Options{Store: db, Owner: "a"}, "no runner"},
		{"no owner", Options{Store: db, Runner: runner}, "no owner"},
		{"lease not above heartbeat", Options{Store: db, Runner: runner, Owner: "a", HeartbeatInterval: time.Minute, LeaseTimeout: time.Minute},
			"lease timeout 1m0s must exceed the heartbeat interval 1m0s"},
		{"defaults", Options{Store: db, Runner: runner, Owner: "a"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.opts)
			if tc.errContains != "" {
				require.ErrorContains(t, err, tc.errContains)
				return
			}
			require.NoError(t, err)
			require.Equal(t, DefaultHeartbeatInterval, s.o.HeartbeatInterval)
			require.Equal(t, DefaultLeaseTimeout, s.o.LeaseTimeout)
			require.Equal(t, DefaultShutdownGrace, s.o.ShutdownGrace)
			require.Equal(t, DefaultRetention, s.o.Retention)
			require.Equal(t, DefaultMaxClockOffset, s.o.MaxClockOffset)
			require.Equal(t, SystemClock, s.clock)
		})
	}
}

func TestSlotsFireOnTimeAndAreRecordedOnce(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(7)))
	job := testJob(t, "every-minute", "* * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))

	first := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(first)
	att := a.runner.next(t)
	require.Equal(t, first, att.Claim.Slot.UTC())
	require.Equal(t, store.TriggerSchedule, att.Claim.Trigger)
	require.Equal(t, 1, att.Claim.Attempt)
	require.Equal(t, "a", att.Claim.Owner)
	rec := waitSlot(t, db, job.Name, first, store.StatusSucceeded)
	require.EqualValues(t, 7, rec.Rows)

	second := job.Cron.Next(first)
	clock.AdvanceTo(second.Add(-time.Second))
	a.runner.none(t)
	clock.AdvanceTo(second)
	att = a.runner.next(t)
	require.Equal(t, second, att.Claim.Slot.UTC())
	waitSlot(t, db, job.Name, second, store.StatusSucceeded)

	// Rounds in between (takeover ticks) record nothing more.
	for range 5 {
		a.afterRounds(t, 1, func() { clock.Advance(10 * time.Second) })
	}
	third := job.Cron.Next(second)
	require.True(t, through(t, db, job.Name).Before(third))
	require.Equal(t, []string{
		first.Format(time.RFC3339) + " schedule succeeded attempts=1 missed=0 err=\"\"",
		second.Format(time.RFC3339) + " schedule succeeded attempts=1 missed=0 err=\"\"",
	}, describe(slots(t, db, job.Name)))
	a.runner.none(t)
	require.Equal(t, 2.0, testutil.ToFloat64(a.m.SlotsTotal.WithLabelValues(job.Name, store.StatusSucceeded)))
	require.Equal(t, float64(second.Unix()), testutil.ToFloat64(a.m.JobLastSuccess.WithLabelValues(job.Name)))
	var hist dto.Metric
	require.NoError(t, a.m.JobDuration.WithLabelValues(job.Name).(prometheus.Metric).Write(&hist))
	require.EqualValues(t, 2, hist.GetHistogram().GetSampleCount())
}

func TestHeartbeatsWhileRunning(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	release := make(chan struct{})
	a := newReplica(t, db, "a", clock, newRunner(block(release)))
	job := testJob(t, "long", "* * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	clock.AdvanceTo(job.Cron.Next(through(t, db, job.Name)))
	att := a.runner.next(t)

	lease := func() time.Time {
		running, err := db.Running(t.Context())
		require.NoError(t, err)
		require.Len(t, running, 1)
		require.Equal(t, att.Claim.Fence, running[0].Fence)
		return running[0].LeaseUntil
	}
	before := lease()
	beats := a.store.heartbeats.Load()
	// Each heartbeat sets lease_until from SQLite's own clock: beat until
	// that clock has moved on.
	require.Eventually(t, func() bool {
		clock.Advance(10 * time.Second)
		return lease().After(before)
	}, waitFor, time.Millisecond)
	require.Greater(t, a.store.heartbeats.Load(), beats)
	close(release)
	waitSlot(t, db, job.Name, att.Claim.Slot, store.StatusSucceeded)
}

func TestCatchUpAfterDowntime(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(1)))
	job := testJob(t, "hourly", "0 * * * *", func(j *jobs.Job) { j.Catchup = 3 * time.Hour })
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	st := through(t, db, job.Name)

	// Ten hours and a quarter of downtime before the first start.
	clock.AdvanceTo(job.Cron.Next(st).Add(9*time.Hour + 15*time.Minute))
	require.NoError(t, a.Start(t.Context()))
	att := a.runner.next(t)
	tail, count := spec.Between(job.Cron, st, clock.Now(), 2)
	require.Equal(t, 10, count)
	require.Equal(t, tail[1], att.Claim.Slot.UTC())
	require.Equal(t, store.TriggerCatchup, att.Claim.Trigger)
	waitSlot(t, db, job.Name, tail[1], store.StatusSucceeded)

	recs := slots(t, db, job.Name)
	require.Len(t, recs, 2)
	missed := recs[0]
	require.Equal(t, store.StatusMissed, missed.Status)
	require.Equal(t, job.Cron.Next(st), missed.Slot.UTC())
	require.Equal(t, tail[0], missed.MissedLast.UTC())
	require.Equal(t, 9, missed.MissedCount)
	require.Equal(t, 9.0, testutil.ToFloat64(a.m.SlotsMissedTotal.WithLabelValues(job.Name)))
	require.Equal(t, 1.0, testutil.ToFloat64(a.m.SlotsTotal.WithLabelValues(job.Name, store.StatusMissed)))
	require.True(t, clock.Now().Equal(through(t, db, job.Name)))
	a.runner.none(t)
}

func TestNothingOlderThanCatchupRuns(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(1)))
	job := testJob(t, "hourly", "0 * * * *", func(j *jobs.Job) { j.Catchup = 10 * time.Minute })
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	st := through(t, db, job.Name)

	// The newest slot is 30 minutes old: older than the catchup.
	first := job.Cron.Next(st)
	clock.AdvanceTo(first.Add(5*time.Hour + 30*time.Minute))
	require.NoError(t, a.Start(t.Context()))
	require.Eventually(t, func() bool { return through(t, db, job.Name).Equal(clock.Now()) }, waitFor, time.Millisecond)
	recs := slots(t, db, job.Name)
	require.Len(t, recs, 1, describe(recs))
	require.Equal(t, store.StatusMissed, recs[0].Status)
	require.Equal(t, first, recs[0].Slot.UTC())
	require.Equal(t, first.Add(5*time.Hour), recs[0].MissedLast.UTC())
	require.Equal(t, 6, recs[0].MissedCount)
	a.runner.none(t)
}

func TestLateLoneSlotIsCatchup(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	a := newReplica(t, db, "a", clock, newRunner(succeed(1)))
	job := testJob(t, "hourly", "0 * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	first := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(first.Add(2 * time.Minute)) // down until two minutes after the slot
	require.NoError(t, a.Start(t.Context()))
	att := a.runner.next(t)
	require.Equal(t, first, att.Claim.Slot.UTC())
	require.Equal(t, store.TriggerCatchup, att.Claim.Trigger)
	waitSlot(t, db, job.Name, first, store.StatusSucceeded)
	require.Len(t, slots(t, db, job.Name), 1)
}

func TestOverlapSkip(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	release := make(chan struct{})
	a := newReplica(t, db, "a", clock, newRunner(block(release)))
	job := testJob(t, "slow", "* * * * *")
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))

	first := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(first)
	a.runner.next(t)
	second := job.Cron.Next(first)
	clock.AdvanceTo(second)
	rec := waitSlot(t, db, job.Name, second, store.StatusSkipped)
	require.Contains(t, rec.Error, "running on a")
	a.runner.none(t)
	require.Equal(t, 1.0, testutil.ToFloat64(a.m.SlotsTotal.WithLabelValues(job.Name, store.StatusSkipped)))

	close(release)
	waitSlot(t, db, job.Name, first, store.StatusSucceeded)
	a.runner.set(succeed(1))
	third := job.Cron.Next(second)
	clock.AdvanceTo(third)
	require.Equal(t, third, a.runner.next(t).Claim.Slot.UTC())
	waitSlot(t, db, job.Name, third, store.StatusSucceeded)
}

func TestOverlapAllow(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	release := make(chan struct{})
	a := newReplica(t, db, "a", clock, newRunner(block(release)))
	job := testJob(t, "parallel", "* * * * *", func(j *jobs.Job) { j.Overlap = jobs.OverlapAllow })
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))

	first := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(first)
	require.Equal(t, first, a.runner.next(t).Claim.Slot.UTC())
	second := job.Cron.Next(first)
	clock.AdvanceTo(second)
	require.Equal(t, second, a.runner.next(t).Claim.Slot.UTC())
	running, err := db.Running(t.Context())
	require.NoError(t, err)
	require.Len(t, running, 2)
	close(release)
	waitSlot(t, db, job.Name, first, store.StatusSucceeded)
	waitSlot(t, db, job.Name, second, store.StatusSucceeded)
}

func TestRetryWithBackoffThenSuccess(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	runner := newRunner(func(_ context.Context, _ *jobs.Job, a jobs.Attempt) (jobs.Result, error) {
		if a.Claim.Attempt < 3 {
			return jobs.Result{}, fmt.Errorf("server error on attempt %d", a.Claim.Attempt)
		}
		return jobs.Result{Rows: 3}, nil
	})
	a := newReplica(t, db, "a", clock, runner)
	job := testJob(t, "flaky", "0 * * * *", func(j *jobs.Job) { j.Retry = jobs.Retry{Attempts: 3, Backoff: 90 * time.Second} })
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))

	slot := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(slot)
	first := runner.next(t)
	require.Equal(t, 1, first.Claim.Attempt)
	for n := 2; n <= 3; n++ {
		ctx, cancel := context.WithTimeout(t.Context(), waitFor)
		require.NoError(t, clock.BlockUntilTimer(ctx, 90*time.Second), "no back-off armed")
		cancel()
		clock.Advance(89 * time.Second)
		runner.none(t)
		clock.Advance(time.Second)
		next := runner.next(t)
		require.Equal(t, n, next.Claim.Attempt)
		require.Equal(t, first.Claim.SlotID, next.Claim.SlotID)
		require.Greater(t, next.Claim.Fence, first.Claim.Fence)
	}
	rec := waitSlot(t, db, job.Name, slot, store.StatusSucceeded)
	require.Equal(t, 3, rec.Attempts)
	require.EqualValues(t, 3, rec.Rows)
	as := attempts(t, db, rec.ID)
	require.Len(t, as, 3)
	require.Equal(t, store.StatusFailed, as[0].Status)
	require.Equal(t, "server error on attempt 1", as[0].Error)
	require.Equal(t, store.StatusFailed, as[1].Status)
	require.Equal(t, "server error on attempt 2", as[1].Error)
	require.Equal(t, store.StatusSucceeded, as[2].Status)
}

func TestRetriesSpentRecordsFailed(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	runner := newRunner(func(context.Context, *jobs.Job, jobs.Attempt) (jobs.Result, error) {
		return jobs.Result{}, errors.New("still broken")
	})
	a := newReplica(t, db, "a", clock, runner)
	job := testJob(t, "broken", "0 * * * *", func(j *jobs.Job) { j.Retry = jobs.Retry{Attempts: 2, Backoff: 90 * time.Second} })
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	slot := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(slot)
	runner.next(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	require.NoError(t, clock.BlockUntilTimer(ctx, 90*time.Second))
	clock.Advance(90 * time.Second)
	require.Equal(t, 2, runner.next(t).Claim.Attempt)
	rec := waitSlot(t, db, job.Name, slot, store.StatusFailed)
	require.Equal(t, "still broken", rec.Error)
	require.Equal(t, 2, rec.Attempts)
	runner.none(t)
	require.Equal(t, 1.0, testutil.ToFloat64(a.m.SlotsTotal.WithLabelValues(job.Name, store.StatusFailed)))
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	runner := newRunner(func(context.Context, *jobs.Job, jobs.Attempt) (jobs.Result, error) {
		return jobs.Result{}, fmt.Errorf("query rejected: %w", jobs.ErrPermanent)
	})
	a := newReplica(t, db, "a", clock, runner)
	job := testJob(t, "rejected", "0 * * * *", func(j *jobs.Job) { j.Retry = jobs.Retry{Attempts: 3, Backoff: 90 * time.Second} })
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	slot := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(slot)
	runner.next(t)
	rec := waitSlot(t, db, job.Name, slot, store.StatusFailed)
	require.Equal(t, "query rejected: permanent failure", rec.Error)
	require.Equal(t, 1, rec.Attempts)
	clock.Advance(90 * time.Second)
	runner.none(t)
}

func TestAttemptTimeout(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	runner := newRunner(block(nil))
	a := newReplica(t, db, "a", clock, runner)
	job := testJob(t, "stuck", "0 * * * *", func(j *jobs.Job) {
		j.Timeout = 7 * time.Minute
		j.Retry = jobs.Retry{Attempts: 2, Backoff: 90 * time.Second}
	})
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	slot := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(slot)
	runner.next(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	// The time-out is per attempt: the retry gets 7 minutes of its own.
	for attempt := 1; attempt <= 2; attempt++ {
		require.NoError(t, clock.BlockUntilTimer(ctx, 7*time.Minute))
		clock.Advance(7 * time.Minute)
		if attempt == 1 {
			require.NoError(t, clock.BlockUntilTimer(ctx, 90*time.Second))
			clock.Advance(90 * time.Second)
			require.Equal(t, 2, runner.next(t).Claim.Attempt)
		}
	}
	rec := waitSlot(t, db, job.Name, slot, store.StatusFailed)
	require.Equal(t, "attempt timed out after 7m0s: context canceled", rec.Error)
	as := attempts(t, db, rec.ID)
	require.Len(t, as, 2)
	require.Equal(t, "attempt timed out after 7m0s: context canceled", as[0].Error)
}

func TestPanicIsRecoveredAndRecordedFailed(t *testing.T) {
	db := openStore(t)
	clock := NewFakeClock(now())
	runner := newRunner(func(context.Context, *jobs.Job, jobs.Attempt) (jobs.Result, error) {
		panic("boom")
	})
	a := newReplica(t, db, "a", clock, runner)
	job := testJob(t, "buggy", "* * * * *", func(j *jobs.Job) { j.Retry = jobs.Retry{Attempts: 3, Backoff: 90 * time.Second} })
	require.NoError(t, a.SetJobs(t.Context(), []*jobs.Job{job}))
	require.NoError(t, a.Start(t.Context()))
	first := job.Cron.Next(through(t, db, job.Name))
	clock.AdvanceTo(first)
	runner.next(t)
	rec := waitSlot(t, db, job.Name, first, store.StatusFailed)
	require.Equal(t, "panic: boom", rec.Error)
	require.Equal(t, 1, rec.Attempts, "a panic is not retried")
	entries := a.logs.FilterMessage("runner panicked").All()
	require.Len(t, entries, 1)
	require.Contains(t, entries[0].ContextMap()["stack"], "runtime/debug.Stack")

	// The scheduler carries on.
	runner.set(succeed(2))
	second := job.Cron.Next(first)
	clock.AdvanceTo(second)
	runner.next(t)
	waitSlot(t, db, job.Name, second, store.StatusSucceeded)
}
