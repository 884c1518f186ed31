package scheduler

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/store"
)

// errLost ends an attempt whose claim is no longer provably this replica's.
var errLost = errors.New("claim lost")

// run is one claimed slot, from its first attempt to its record.
type run struct {
	job   *jobs.Job
	claim store.Claim // the current attempt
	log   *zap.Logger
	stop  <-chan struct{} // closed at shutdown
	ctx   context.Context // cancelled after the shutdown grace
	last  time.Time       // the lease's last renewal (clock time)
}

func (s *Scheduler) newRun(job *jobs.Job, c store.Claim, stop <-chan struct{}, ctx context.Context) *run {
	return &run{job: job, claim: c, log: s.log.With(claimFields(job, c)...), stop: stop, ctx: ctx, last: s.clock.Now()}
}

func (r *run) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// panicError is a recovered panic of a runner: recorded failed, not retried.
type panicError struct{ value any }

func (e panicError) Error() string        { return fmt.Sprintf("panic: %v", e.value) }
func (e panicError) Is(target error) bool { return target == jobs.ErrPermanent }

// execute runs the attempts of r's slot until one succeeds, the retry policy
// is spent, the claim is lost or the scheduler stops, and records the
// outcome. It returns the last claim, its result and the run's error.
func (s *Scheduler) execute(r *run) (store.Claim, jobs.Result, error) {
	attempts := max(r.job.Retry.Attempts, 1)
	for {
		r.log.Info("attempt started")
		started := s.clock.Now()
		res, err := s.attempt(r)
		took := s.clock.Now().Sub(started)
		if s.m != nil {
			s.m.JobDuration.WithLabelValues(r.job.Name).Observe(took.Seconds())
		}
		switch {
		case errors.Is(err, errLost):
			r.log.Warn("attempt abandoned", zap.Error(err), zap.Duration("took", took))
			s.record(r, store.Outcome{Status: store.StatusInterrupted, Error: err.Error()})
			return r.claim, res, err
		case err == nil:
			r.log.Info("attempt succeeded", zap.Int64("rows", res.Rows), zap.Int("companies", res.Companies), zap.Duration("took", took))
			if s.record(r, store.Outcome{Status: store.StatusSucceeded, Rows: res.Rows}) && s.m != nil {
				s.m.JobLastSuccess.WithLabelValues(r.job.Name).Set(float64(s.clock.Now().Unix()))
			}
			return r.claim, res, nil
		case r.stopping() && !errors.Is(err, jobs.ErrPermanent):
			r.log.Info("attempt interrupted by shutdown", zap.Error(err), zap.Duration("took", took))
			s.record(r, store.Outcome{Status: store.StatusInterrupted, Error: err.Error(), Rows: res.Rows})
			return r.claim, res, err
		case errors.Is(err, jobs.ErrPermanent) || r.claim.Attempt >= attempts:
			r.log.Error("attempt failed", zap.Error(err), zap.Duration("took", took),
				zap.Bool("permanent", errors.Is(err, jobs.ErrPermanent)))
			s.record(r, store.Outcome{Status: store.StatusFailed, Error: err.Error(), Rows: res.Rows})
			return r.claim, res, err
		}

		r.log.Warn("attempt failed; retrying after back-off", zap.Error(err), zap.Duration("took", took),
			zap.Duration("backoff", r.job.Retry.Backoff), zap.Int("attempts", attempts))
		if werr := s.backoff(r); werr != nil {
			if errors.Is(werr, errLost) {
				r.log.Warn("retry abandoned", zap.Error(werr))
				return r.claim, res, werr
			}
			// Shutdown during the back-off: the failed attempt stays failed
			// and the retry is released for a later start.
			if next, ok := s.retry(r, err); ok {
				r.claim = next
				r.log = s.log.With(claimFields(r.job, next)...)
				s.record(r, store.Outcome{Status: store.StatusInterrupted, Error: "not started: " + errStopping.Error()})
			}
			return r.claim, res, err
		}
		next, ok := s.retry(r, err)
		if !ok {
			return r.claim, res, err
		}
		r.claim = next
		r.log = s.log.With(claimFields(r.job, next)...)
	}
}

// attempt runs the runner once under the claim's lease and the job's
// time-out. The error wraps errLost when the lease was lost.
func (s *Scheduler) attempt(r *run) (jobs.Result, error) {
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)
	type outcome struct {
		res jobs.Result
		err error
	}
	// The timers are armed before the runner starts.
	var timeout <-chan time.Time
	if r.job.Timeout > 0 {
		t := s.clock.NewTimer(r.job.Timeout)
		defer t.Stop()
		timeout = t.C()
	}
	beat := s.clock.NewTimer(s.o.HeartbeatInterval)
	defer func() { beat.Stop() }()

	done := make(chan outcome, 1)
	a := jobs.Attempt{Claim: r.claim, Stop: r.stop}
	go func() {
		res, err := s.safeRun(ctx, r, a)
		done <- outcome{res, err}
	}()
	var lost error
	for {
		select {
		case o := <-done:
			err := o.err
			if err != nil && ctx.Err() != nil {
				// Say why the context ended (time-out, lost lease, grace).
				if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
					err = fmt.Errorf("%w: %w", cause, err)
				}
			}
			if lost != nil && err != nil && !errors.Is(err, errLost) {
				err = fmt.Errorf("%w: %w", lost, err)
			}
			return o.res, err
		case <-timeout:
			timeout = nil
			r.log.Warn("attempt timed out; cancelling it", zap.Duration("timeout", r.job.Timeout))
			cancel(fmt.Errorf("attempt timed out after %s", r.job.Timeout))
		case <-beat.C():
			if err := s.heartbeat(r); err != nil {
				lost = err
				r.log.Warn("lease lost; cancelling the attempt", zap.Error(err))
				cancel(err)
				continue // no more heartbeats
			}
			beat = s.clock.NewTimer(s.o.HeartbeatInterval)
		}
	}
}

// safeRun calls the runner, turning a panic into a permanent error.
func (s *Scheduler) safeRun(ctx context.Context, r *run, a jobs.Attempt) (res jobs.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("runner panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			res, err = jobs.Result{}, panicError{p}
		}
	}()
	return s.o.Runner.Run(ctx, r.job, a)
}

// heartbeat renews r's lease. It returns an error wrapping errLost when the
// fence was superseded or no renewal succeeded for a lease timeout.
func (s *Scheduler) heartbeat(r *run) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.LeaseTimeout)
	defer cancel()
	err := s.o.Store.Heartbeat(ctx, r.claim.Fence, s.o.LeaseTimeout)
	now := s.clock.Now()
	switch {
	case err == nil:
		r.last = now
		return nil
	case errors.Is(err, store.ErrFenced):
		return fmt.Errorf("%w: another replica took the slot over", errLost)
	case now.Sub(r.last) >= s.o.LeaseTimeout:
		return fmt.Errorf("%w: no heartbeat for %s (%w)", errLost, now.Sub(r.last), err)
	default:
		r.log.Warn("heartbeat failed", zap.Error(err), zap.Duration("since_last", now.Sub(r.last)))
		return nil
	}
}

// backoff waits the job's retry back-off, heartbeating. It returns an error
// wrapping errLost, or errStopping when the scheduler stops meanwhile.
func (s *Scheduler) backoff(r *run) error {
	wait := s.clock.NewTimer(r.job.Retry.Backoff)
	defer wait.Stop()
	beat := s.clock.NewTimer(s.o.HeartbeatInterval)
	defer func() { beat.Stop() }()
	for {
		select {
		case <-wait.C():
			return nil
		case <-r.stop:
			return errStopping
		case <-beat.C():
			if err := s.heartbeat(r); err != nil {
				return err
			}
			beat = s.clock.NewTimer(s.o.HeartbeatInterval)
		}
	}
}

// retry records the failed attempt and starts the next one.
func (s *Scheduler) retry(r *run, failure error) (store.Claim, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	next, err := s.o.Store.Retry(ctx, r.claim.Fence, failure.Error(), s.o.LeaseTimeout)
	if err != nil {
		r.log.Error("starting the next attempt", zap.Error(err))
		if !errors.Is(err, store.ErrFenced) {
			s.record(r, store.Outcome{Status: store.StatusFailed, Error: failure.Error()})
		}
		return store.Claim{}, false
	}
	r.last = s.clock.Now()
	return next, true
}

// record stores the outcome of r's current attempt. A failing store is
// tried again every heartbeat interval while the lease may still be this
// replica's; after that the slot is left to a takeover. It reports whether
// the outcome was stored.
func (s *Scheduler) record(r *run, out store.Outcome) bool {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := s.o.Store.Finish(ctx, r.claim.Fence, out)
		cancel()
		switch {
		case err == nil:
			s.m.Slot(r.job.Name, out.Status)
			r.log.Info("attempt recorded", zap.String("status", out.Status))
			return true
		case errors.Is(err, store.ErrFenced):
			r.log.Warn("attempt not recorded: the slot belongs to another attempt now",
				zap.String("status", out.Status), zap.Error(err))
			return false
		case s.clock.Now().Sub(r.last) >= s.o.LeaseTimeout:
			r.log.Error("attempt not recorded: giving up, the lease has expired and the slot will be taken over",
				zap.String("status", out.Status), zap.Error(err))
			return false
		}
		r.log.Warn("recording the attempt; trying again", zap.String("status", out.Status), zap.Error(err))
		t := s.clock.NewTimer(s.o.HeartbeatInterval)
		select {
		case <-t.C():
		case <-r.ctx.Done():
			t.Stop()
			r.log.Error("attempt not recorded: giving up at shutdown", zap.String("status", out.Status), zap.Error(err))
			return false
		}
	}
}
