package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/scheduler/spec"
	"github.com/nxtcron/nxtcron/store"
)

// Runner runs one attempt of a job (jobs' pipeline in the daemon).
type Runner interface {
	Run(ctx context.Context, job *jobs.Job, a jobs.Attempt) (jobs.Result, error)
}

// Options configure a Scheduler. Zero durations take the defaults of
// config.yaml's scheduler section.
type Options struct {
	Store  store.Store
	Runner Runner
	// Owner identifies this replica in claims.
	Owner string
	// Clock defaults to SystemClock.
	Clock Clock

	HeartbeatInterval time.Duration // 10s
	LeaseTimeout      time.Duration // 60s; more than HeartbeatInterval
	ShutdownGrace     time.Duration // 90s
	Retention         time.Duration // 90 days
	// MaxClockOffset is how far this replica's clock may be from the
	// store's before it refuses to claim (5s).
	MaxClockOffset time.Duration

	Logger  *zap.Logger
	Metrics *metrics.Metrics
}

// Defaults.
const (
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultLeaseTimeout      = 60 * time.Second
	DefaultShutdownGrace     = 90 * time.Second
	DefaultRetention         = 90 * 24 * time.Hour
	DefaultMaxClockOffset    = 5 * time.Second
)

const (
	// settleEvery is the longest the loop sleeps.
	settleEvery = time.Minute
	// onTime is how late a lone slot may be settled and still count as
	// trigger schedule rather than catchup.
	onTime = time.Minute
	// skewLogEvery spaces the clock offset error.
	skewLogEvery = time.Minute
	pruneEvery   = time.Hour
	// takeOverLimit caps the claims of one TakeOver call.
	takeOverLimit = 100
	// storeTimeout bounds a store call made outside the loop's context.
	storeTimeout = 30 * time.Second
)

// errStopping refuses work once Stop has begun.
var errStopping = errors.New("scheduler is stopping")

// Scheduler claims and runs the slots of a set of jobs.
type Scheduler struct {
	o     Options
	log   *zap.Logger
	clock Clock
	m     *metrics.Metrics

	mu        sync.Mutex
	jobs      map[string]*jobs.Job
	through   map[string]time.Time // each job's scheduled_through as last seen
	conflicts map[string]bool
	skew      time.Duration // this replica's clock minus the store's
	skewKnown bool
	skewLog   time.Time // when the offset error was last logged
	skewBad   bool
	started   bool
	stopping  bool

	wake       chan struct{}
	loopCancel context.CancelFunc
	loopDone   chan struct{}

	// observe, when set (by tests, before Start), learns when the loop
	// begins a round (true) and when it sleeps again (false).
	observe func(busy bool)

	stop      chan struct{} // closed by Stop: every attempt's jobs.Attempt.Stop
	stopOnce  sync.Once
	runCtx    context.Context // cancelled once the shutdown grace is over
	runCancel context.CancelCauseFunc
	runs      sync.WaitGroup
}

// New checks opts, applies the defaults and returns an idle Scheduler.
func New(opts Options) (*Scheduler, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("creating scheduler: no store")
	case opts.Runner == nil:
		return nil, errors.New("creating scheduler: no runner")
	case opts.Owner == "":
		return nil, errors.New("creating scheduler: no owner")
	}
	setDefault(&opts.HeartbeatInterval, DefaultHeartbeatInterval)
	setDefault(&opts.LeaseTimeout, DefaultLeaseTimeout)
	setDefault(&opts.ShutdownGrace, DefaultShutdownGrace)
	setDefault(&opts.Retention, DefaultRetention)
	setDefault(&opts.MaxClockOffset, DefaultMaxClockOffset)
	if opts.LeaseTimeout <= opts.HeartbeatInterval {
		return nil, fmt.Errorf("creating scheduler: lease timeout %s must exceed the heartbeat interval %s",
			opts.LeaseTimeout, opts.HeartbeatInterval)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s := &Scheduler{
		o:         opts,
		log:       opts.Logger,
		clock:     opts.Clock,
		m:         opts.Metrics,
		jobs:      map[string]*jobs.Job{},
		through:   map[string]time.Time{},
		conflicts: map[string]bool{},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	s.runCtx, s.runCancel = context.WithCancelCause(context.Background())
	return s, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// SetJobs registers every job with the store (SyncJob), then makes js the
// scheduler's job set in one swap. On an error the previous set stays.
func (s *Scheduler) SetJobs(ctx context.Context, js []*jobs.Job) error {
	set := make(map[string]*jobs.Job, len(js))
	through := make(map[string]time.Time, len(js))
	for _, j := range js {
		switch {
		case j == nil:
			return errors.New("registering jobs: nil job")
		case j.Cron == nil:
			return fmt.Errorf("registering job %q: no parsed schedule", j.Name)
		case set[j.Name] != nil:
			return fmt.Errorf("registering job %q: defined twice", j.Name)
		}
		st, err := s.o.Store.SyncJob(ctx, store.JobDef{
			Name:           j.Name,
			ScheduleHash:   j.ScheduleHash,
			DefinitionHash: j.DefinitionHash,
			Overlap:        j.Overlap,
			Catchup:        j.Catchup,
		})
		if err != nil {
			return fmt.Errorf("registering job %q: %w", j.Name, err)
		}
		set[j.Name] = j
		through[j.Name] = st.ScheduledThrough
	}
	s.mu.Lock()
	old := s.jobs
	s.jobs, s.through = set, through
	// SyncJob stored this replica's definitions: earlier conflicts are over.
	for name := range s.conflicts {
		s.setConflict(name, false, old[name] != nil && set[name] == nil)
	}
	clear(s.conflicts)
	s.mu.Unlock()
	s.log.Info("job set registered", zap.Int("jobs", len(set)))
	s.poke()
	return nil
}

// poke wakes the loop to look at the job set again.
func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start starts the loop: it settles the due slots at once, then whenever a
// slot is due and at least every minute. Stop ends it.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopping:
		return errStopping
	case s.started:
		return errors.New("scheduler already started")
	}
	s.started = true
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.loopCancel, s.loopDone = cancel, make(chan struct{})
	go s.loop(loopCtx)
	s.log.Info("scheduler started",
		zap.Duration("heartbeat_interval", s.o.HeartbeatInterval),
		zap.Duration("lease_timeout", s.o.LeaseTimeout))
	return nil
}

// Stop stops claiming at once, closes every running attempt's Stop channel,
// cancels the attempts still running after the shutdown grace, and returns
// once every attempt is recorded (interrupted ones release their claim for
// another replica or the next start), or when ctx is done.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	cancel, loopDone := s.loopCancel, s.loopDone
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-loopDone:
		case <-ctx.Done():
			s.stopOnce.Do(func() { close(s.stop) })
			s.runCancel(fmt.Errorf("stopping scheduler: %w", ctx.Err()))
			return fmt.Errorf("stopping scheduler: the loop did not end: %w", ctx.Err())
		}
	}
	s.stopOnce.Do(func() { close(s.stop) })

	done := make(chan struct{})
	go func() {
		s.runs.Wait()
		close(done)
	}()
	grace := s.clock.NewTimer(s.o.ShutdownGrace)
	defer grace.Stop()
	for {
		select {
		case <-done:
			s.log.Info("scheduler stopped")
			return nil
		case <-grace.C():
			s.log.Warn("shutdown grace elapsed: cancelling running attempts", zap.Duration("shutdown_grace", s.o.ShutdownGrace))
			s.runCancel(fmt.Errorf("shutdown grace of %s elapsed", s.o.ShutdownGrace))
		case <-ctx.Done():
			s.runCancel(fmt.Errorf("stopping scheduler: %w", ctx.Err()))
			return fmt.Errorf("stopping scheduler: attempts still running: %w", ctx.Err())
		}
	}
}

// ClockOffset returns this replica's clock minus the store's, as last
// measured; ok is false before the first measurement.
func (s *Scheduler) ClockOffset() (offset time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skew, s.skewKnown
}

func (s *Scheduler) loop(ctx context.Context) {
	defer close(s.loopDone)
	var nextTakeOver, nextPrune time.Time // zero: at once
	for {
		if s.observe != nil {
			s.observe(true)
		}
		wake := s.round(ctx, &nextTakeOver, &nextPrune)
		t := s.clock.NewTimer(wake.Sub(s.clock.Now()))
		if s.observe != nil {
			s.observe(false)
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-s.wake:
			t.Stop()
		}
	}
}

// round settles the due jobs, takes over and prunes when their time has
// come, and returns when (on the clock) the loop should look again.
func (s *Scheduler) round(ctx context.Context, nextTakeOver, nextPrune *time.Time) time.Time {
	local := s.clock.Now()
	skew, err := s.measureSkew(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reading the store's clock", zap.Error(err))
		}
		return local.Add(s.o.HeartbeatInterval)
	}
	if !s.skewOK(skew, local) {
		return local.Add(s.o.HeartbeatInterval)
	}
	wake := local.Add(settleEvery)
	if next := s.settleAll(ctx, skew); !next.IsZero() {
		wake = minTime(wake, next.Add(skew))
	}
	if !local.Before(*nextTakeOver) {
		s.takeOver(ctx)
		*nextTakeOver = local.Add(s.o.HeartbeatInterval)
	}
	if !local.Before(*nextPrune) {
		s.prune(ctx)
		*nextPrune = local.Add(pruneEvery)
	}
	return minTime(wake, minTime(*nextTakeOver, *nextPrune))
}

// measureSkew reads the store's clock and returns this replica's clock
// minus the store's, taking the midpoint of the round trip.
func (s *Scheduler) measureSkew(ctx context.Context) (time.Duration, error) {
	before := s.clock.Now()
	dbNow, err := s.o.Store.Now(ctx)
	after := s.clock.Now()
	if err != nil {
		return 0, err
	}
	skew := before.Add(after.Sub(before) / 2).Sub(dbNow)
	s.mu.Lock()
	s.skew, s.skewKnown = skew, true
	s.mu.Unlock()
	if s.m != nil {
		s.m.ClockOffsetSeconds.Set(skew.Seconds())
	}
	return skew, nil
}

// skewOK reports whether the offset allows claiming, logging the refusal
// at most once a minute and the recovery once.
func (s *Scheduler) skewOK(skew time.Duration, local time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if skew.Abs() <= s.o.MaxClockOffset {
		if s.skewBad {
			s.skewBad = false
			s.log.Info("clock offset from the store is back within the limit; claiming again",
				zap.Duration("offset", skew), zap.Duration("max_offset", s.o.MaxClockOffset))
		}
		return true
	}
	if !s.skewBad || local.Sub(s.skewLog) >= skewLogEvery {
		s.log.Error("clock offset from the store exceeds the limit; not claiming any slot until the clocks agree (check NTP)",
			zap.Duration("offset", skew), zap.Duration("max_offset", s.o.MaxClockOffset))
		s.skewLog = local
	}
	s.skewBad = true
	return false
}

// snapshot returns the current job set, by name.
func (s *Scheduler) snapshot() map[string]*jobs.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs
}

func (s *Scheduler) job(name string) *jobs.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[name]
}

// settleAll settles each due job and returns the store-time of the earliest
// slot still to come (zero if none).
func (s *Scheduler) settleAll(ctx context.Context, skew time.Duration) time.Time {
	set := s.snapshot()
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	slices.Sort(names)
	var next time.Time
	for _, name := range names {
		if ctx.Err() != nil {
			return next
		}
		job := set[name]
		s.mu.Lock()
		through := s.through[name]
		s.mu.Unlock()
		// Store times carry milliseconds; so does Through.
		now := s.clock.Now().Add(-skew).Truncate(time.Millisecond)
		due := job.Cron.Next(through)
		if due.IsZero() {
			continue // the schedule has no slot left
		}
		if due.After(now) {
			next = earliest(next, due)
			continue
		}
		if n := s.settle(ctx, job, now); !n.IsZero() {
			next = earliest(next, n)
		}
	}
	return next
}

// settle settles one job's slots through now and starts what it claimed;
// it returns the job's next slot.
func (s *Scheduler) settle(ctx context.Context, job *jobs.Job, now time.Time) time.Time {
	var p store.SettlePlan
	res, err := s.o.Store.Settle(ctx, job.Name, func(st store.JobState) (store.SettlePlan, error) {
		p = s.plan(job, st, now)
		return p, nil
	})
	log := s.log.With(zap.String("job", job.Name))
	if err != nil {
		switch {
		case errors.Is(err, store.ErrConflict):
			s.conflict(job, err)
		case ctx.Err() == nil:
			log.Error("settling slots", zap.Error(err))
		}
		return time.Time{}
	}
	s.resolved(job.Name)
	s.mu.Lock()
	if s.jobs[job.Name] == job {
		s.through[job.Name] = res.State.ScheduledThrough
	}
	s.mu.Unlock()

	if res.Missed > 0 && len(p.Missed) > 0 {
		g := p.Missed[0]
		s.m.Missed(job.Name, res.Missed)
		s.m.Slot(job.Name, store.StatusMissed)
		log.Warn("slots missed: due while no replica ran, only the newest within catchup runs",
			zap.String("first", inZone(job, g.First)), zap.String("last", inZone(job, g.Last)),
			zap.Int("count", res.Missed), zap.Duration("catchup", job.Catchup))
	}
	switch {
	case res.Skipped && p.Claim != nil:
		s.m.Slot(job.Name, store.StatusSkipped)
		log.Info("slot skipped", zap.String("slot", inZone(job, p.Claim.Slot)),
			zap.String("trigger", p.Claim.Trigger), zap.String("reason", res.Reason))
	case res.Claim != nil:
		s.launch(job, *res.Claim, s.stop, s.runCtx)
	}
	return job.Cron.Next(res.State.ScheduledThrough)
}

// plan decides a job's slots in (scheduled_through, now]: the newest, when
// no older than catchup, is claimed (trigger schedule when it is the only
// one and on time); every other slot goes into one missed gap.
func (s *Scheduler) plan(job *jobs.Job, st store.JobState, now time.Time) store.SettlePlan {
	p := store.SettlePlan{Through: now, DefinitionHash: job.DefinitionHash}
	tail, count := spec.Between(job.Cron, st.ScheduledThrough, now, 2)
	if count == 0 {
		return p
	}
	newest := tail[len(tail)-1]
	last, missed := newest, count
	if age := now.Sub(newest); age <= job.Catchup {
		trigger := store.TriggerCatchup
		if count == 1 && age < onTime {
			trigger = store.TriggerSchedule
		}
		p.Claim = &store.NewClaim{Slot: newest, Trigger: trigger, Owner: s.o.Owner, Lease: s.o.LeaseTimeout}
		missed--
		if len(tail) == 2 {
			last = tail[0]
		}
	}
	if missed > 0 {
		p.Missed = []store.Gap{{First: job.Cron.Next(st.ScheduledThrough), Last: last, Count: missed}}
	}
	return p
}

// conflict notes that the store holds another definition of job: the job is
// skipped here until it matches again.
func (s *Scheduler) conflict(job *jobs.Job, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conflicts[job.Name] {
		return
	}
	s.conflicts[job.Name] = true
	s.setConflict(job.Name, true, false)
	s.log.Error("job definition differs from the stored one; skipping the job on this replica",
		zap.String("job", job.Name), zap.String("definition_hash", job.DefinitionHash), zap.Error(err))
}

func (s *Scheduler) resolved(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.conflicts[name] {
		return
	}
	delete(s.conflicts, name)
	s.setConflict(name, false, false)
	s.log.Info("job definition matches the stored one again", zap.String("job", name))
}

// setConflict sets the conflict gauge of a job (drop: the job is gone).
func (s *Scheduler) setConflict(name string, on, drop bool) {
	if s.m == nil {
		return
	}
	switch {
	case drop:
		s.m.JobDefinitionConflict.DeleteLabelValues(name)
	case on:
		s.m.JobDefinitionConflict.WithLabelValues(name).Set(1)
	default:
		s.m.JobDefinitionConflict.WithLabelValues(name).Set(0)
	}
}

// takeOver claims the abandoned slots of this replica's jobs and runs them.
func (s *Scheduler) takeOver(ctx context.Context) {
	set := s.snapshot()
	if len(set) == 0 {
		return
	}
	hashes := make(map[string]string, len(set))
	for name, j := range set {
		hashes[name] = j.DefinitionHash
	}
	claims, err := s.o.Store.TakeOver(ctx, store.TakeOverRequest{
		Owner: s.o.Owner, Lease: s.o.LeaseTimeout, Jobs: hashes, Limit: takeOverLimit,
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("taking over abandoned slots", zap.Error(err))
		}
		return
	}
	for _, c := range claims {
		job := set[c.Job]
		s.log.Info("slot taken over", claimFields(job, c)...)
		s.launch(job, c, s.stop, s.runCtx)
	}
}

func (s *Scheduler) prune(ctx context.Context) {
	n, err := s.o.Store.Prune(ctx, s.o.Retention)
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Error("pruning slot records", zap.Error(err))
	case n > 0:
		s.log.Info("slot records pruned", zap.Int("records", n), zap.Duration("retention", s.o.Retention))
	}
}

// Trigger claims a manual slot of a loaded job (POST /api/jobs/{job}/run)
// and runs it in the background. A job running with overlap skip gives an
// error wrapping store.ErrBusy; an unknown job one wrapping store.ErrNotFound.
func (s *Scheduler) Trigger(ctx context.Context, name string, o store.RunOptions) (store.Claim, error) {
	job := s.job(name)
	if job == nil {
		return store.Claim{}, fmt.Errorf("running job %q: %w", name, store.ErrNotFound)
	}
	if s.isStopping() {
		return store.Claim{}, fmt.Errorf("running job %q: %w", name, errStopping)
	}
	claim, err := s.o.Store.ClaimManual(ctx, store.ManualClaim{
		Job: name, DefinitionHash: job.DefinitionHash, Owner: s.o.Owner, Lease: s.o.LeaseTimeout, Options: o,
	})
	if err != nil {
		return store.Claim{}, err
	}
	s.log.Info("manual run claimed", claimFields(job, claim)...)
	s.launch(job, claim, s.stop, s.runCtx)
	return claim, nil
}

// RunManual claims a manual slot of job and runs it in the foreground, with
// heartbeats and the job's retry policy (`nxtcron run`); the scheduler need
// not be started. Cancelling ctx acts as a shutdown of this run: the runner
// is told to stop, cancelled after the shutdown grace, and the attempt is
// recorded interrupted. It returns the last attempt's claim and result, and
// the run's error (nil when it succeeded).
func (s *Scheduler) RunManual(ctx context.Context, job *jobs.Job, o store.RunOptions) (store.Claim, jobs.Result, error) {
	if s.isStopping() {
		return store.Claim{}, jobs.Result{}, fmt.Errorf("running job %q: %w", job.Name, errStopping)
	}
	claim, err := s.o.Store.ClaimManual(ctx, store.ManualClaim{
		Job: job.Name, DefinitionHash: job.DefinitionHash, Owner: s.o.Owner, Lease: s.o.LeaseTimeout, Options: o,
	})
	if err != nil {
		return store.Claim{}, jobs.Result{}, err
	}
	s.log.Info("manual run claimed", claimFields(job, claim)...)

	// The run stops when ctx ends or the scheduler stops, and is cancelled
	// a shutdown grace later.
	stop := make(chan struct{})
	runCtx, cancel := context.WithCancelCause(s.runCtx)
	finished := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
		case <-s.stop:
		case <-finished:
			return
		}
		close(stop)
		grace := s.clock.NewTimer(s.o.ShutdownGrace)
		defer grace.Stop()
		select {
		case <-grace.C():
			cancel(fmt.Errorf("shutdown grace of %s elapsed", s.o.ShutdownGrace))
		case <-finished:
		}
	}()
	defer func() {
		close(finished)
		<-watched
		cancel(nil)
	}()

	r := s.newRun(job, claim, stop, runCtx)
	if !s.track() {
		s.record(r, store.Outcome{Status: store.StatusInterrupted, Error: errStopping.Error()})
		return claim, jobs.Result{}, fmt.Errorf("running job %q: %w", job.Name, errStopping)
	}
	defer s.runs.Done()
	return s.execute(r)
}

func (s *Scheduler) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// track counts a run for Stop to wait for; false once stopping.
func (s *Scheduler) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.runs.Add(1)
	return true
}

// launch runs a claim in its own goroutine; once stopping, it records the
// claim interrupted at once, so that it is taken over later.
func (s *Scheduler) launch(job *jobs.Job, c store.Claim, stop <-chan struct{}, ctx context.Context) {
	r := s.newRun(job, c, stop, ctx)
	if !s.track() {
		r.log.Info("claim released: shutting down")
		s.record(r, store.Outcome{Status: store.StatusInterrupted, Error: "not started: " + errStopping.Error()})
		return
	}
	go func() {
		defer s.runs.Done()
		_, _, _ = s.execute(r)
	}()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// earliest is minTime where zero means none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return minTime(a, b)
}

// inZone formats t in the job's zone.
func inZone(job *jobs.Job, t time.Time) string {
	if job.Location != nil {
		t = t.In(job.Location)
	}
	return t.Format(time.RFC3339)
}

func claimFields(job *jobs.Job, c store.Claim) []zap.Field {
	return []zap.Field{
		zap.String("job", c.Job),
		zap.String("slot", inZone(job, c.Slot)),
		zap.Int("attempt", c.Attempt),
		zap.String("run_id", c.RunID),
		zap.Int64("fence", c.Fence),
		zap.String("trigger", c.Trigger),
	}
}
