package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nxtcron/nxtcron/store"
)

// querier is what the pool and a transaction share.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// SyncJob registers a job definition.
func (s *Store) SyncJob(ctx context.Context, def store.JobDef) (store.JobState, error) {
	if def.Name == "" {
		return store.JobState{}, errors.New("syncing job: empty name")
	}
	if def.Overlap != "skip" && def.Overlap != "allow" {
		return store.JobState{}, fmt.Errorf("syncing job %q: overlap %q is neither skip nor allow", def.Name, def.Overlap)
	}
	if def.Catchup < 0 {
		return store.JobState{}, fmt.Errorf("syncing job %q: negative catchup %s", def.Name, def.Catchup)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	st, err := scanJob(s.pool.QueryRow(ctx, s.q.syncJob,
		def.Name, def.ScheduleHash, def.DefinitionHash, def.Overlap, ms(def.Catchup)))
	if err != nil {
		return store.JobState{}, fmt.Errorf("syncing job %q: %w", def.Name, err)
	}
	return st, nil
}

// Job returns one job's state.
func (s *Store) Job(ctx context.Context, name string) (store.JobState, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	st, err := s.getJob(ctx, s.pool, s.q.job, name)
	if err != nil {
		return store.JobState{}, fmt.Errorf("reading job %q: %w", name, err)
	}
	return st, nil
}

// Jobs returns every registered job's state, by name.
func (s *Store) Jobs(ctx context.Context) ([]store.JobState, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, s.q.jobs)
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.JobState, error) { return scanJob(r) })
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	return out, nil
}

// SetPaused pauses or resumes a job.
func (s *Store) SetPaused(ctx context.Context, job string, paused bool) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q.setPaused, job, paused)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		verb := "resuming"
		if paused {
			verb = "pausing"
		}
		return fmt.Errorf("%s job %q: %w", verb, job, err)
	}
	return nil
}

// Settle advances a job's schedule in one transaction that holds the job's
// row locked.
func (s *Store) Settle(ctx context.Context, job string, plan func(store.JobState) (store.SettlePlan, error)) (store.SettleResult, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var res store.SettleResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = store.SettleResult{}
		st, err := s.getJob(ctx, tx, s.q.jobForUpdate, job)
		if err != nil {
			return err
		}
		p, err := plan(st)
		if err != nil {
			return fmt.Errorf("planning: %w", err)
		}
		if p.DefinitionHash != st.DefinitionHash {
			return conflict(st, p.DefinitionHash)
		}
		through := ts(p.Through)
		if !through.After(st.ScheduledThrough) {
			res.State = st
			return nil
		}
		if err := checkPlan(st.ScheduledThrough, through, p); err != nil {
			return err
		}
		for _, g := range p.Missed {
			if _, err := s.insertSlot(ctx, tx, newSlot{
				job: job, slot: ts(g.First), trigger: store.TriggerSchedule, status: store.StatusMissed,
				finished: true, missedLast: ts(g.Last), missedCount: g.Count,
			}); err != nil {
				return fmt.Errorf("recording missed slots from %s: %w", fmtTime(g.First), err)
			}
			res.Missed += g.Count
		}
		if c := p.Claim; c != nil {
			reason, err := s.skipReason(ctx, tx, st)
			if err != nil {
				return err
			}
			if reason != "" {
				if _, err := s.insertSlot(ctx, tx, newSlot{
					job: job, slot: ts(c.Slot), trigger: c.Trigger, status: store.StatusSkipped,
					errMsg: reason, options: c.Options, finished: true,
				}); err != nil {
					return fmt.Errorf("recording skipped slot %s: %w", fmtTime(c.Slot), err)
				}
				res.Skipped, res.Reason = true, reason
			} else {
				id, err := s.insertSlot(ctx, tx, newSlot{
					job: job, slot: ts(c.Slot), trigger: c.Trigger, status: store.StatusRunning, options: c.Options,
				})
				if err != nil {
					return fmt.Errorf("recording slot %s: %w", fmtTime(c.Slot), err)
				}
				claim, err := s.startAttempt(ctx, tx, id, 1, c.Owner, c.Lease)
				if err != nil {
					return err
				}
				res.Claim = &claim
			}
		}
		res.State, err = scanJob(tx.QueryRow(ctx, s.q.setScheduledThrough, job, through))
		if err != nil {
			return fmt.Errorf("moving scheduled_through: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.SettleResult{}, fmt.Errorf("settling job %q: %w", job, err)
	}
	return res, nil
}

// checkPlan refuses a plan whose slots fall outside (from, through]: they
// were settled before, or are not part of this settlement.
func checkPlan(from, through time.Time, p store.SettlePlan) error {
	in := func(t time.Time) bool { t = ts(t); return t.After(from) && !t.After(through) }
	for _, g := range p.Missed {
		if g.Count < 1 || ts(g.Last).Before(ts(g.First)) || !in(g.First) || !in(g.Last) {
			return fmt.Errorf("invalid plan: missed gap %s..%s (%d) is not within (%s, %s]",
				fmtTime(g.First), fmtTime(g.Last), g.Count, fmtTime(from), fmtTime(through))
		}
	}
	if c := p.Claim; c != nil {
		if !in(c.Slot) {
			return fmt.Errorf("invalid plan: claimed slot %s is not within (%s, %s]",
				fmtTime(c.Slot), fmtTime(from), fmtTime(through))
		}
		if c.Owner == "" || c.Lease <= 0 {
			return fmt.Errorf("invalid plan: a claim needs an owner and a positive lease (owner %q, lease %s)", c.Owner, c.Lease)
		}
		switch c.Trigger {
		case store.TriggerSchedule, store.TriggerCatchup:
		default:
			return fmt.Errorf("invalid plan: trigger %q of a scheduled claim is neither schedule nor catchup", c.Trigger)
		}
	}
	return nil
}

// skipReason says why a claim of job st must be recorded skipped: it is
// paused, or its overlap is skip and another attempt holds a live lease.
// "" means it may be claimed. The caller holds the job's row locked.
func (s *Store) skipReason(ctx context.Context, tx pgx.Tx, st store.JobState) (string, error) {
	if st.Paused {
		return "paused", nil
	}
	if st.Overlap != "skip" {
		return "", nil
	}
	live, ok, err := s.liveAttempt(ctx, tx, st.Name)
	if err != nil || !ok {
		return "", err
	}
	return "running on " + live, nil
}

// liveAttempt describes an attempt of job holding a live lease, if any:
// "replica-a (slot ..., attempt 1, run ..., lease until ...)".
func (s *Store) liveAttempt(ctx context.Context, tx pgx.Tx, job string) (string, bool, error) {
	var owner, runID string
	var slot, lease time.Time
	var attempt int
	err := tx.QueryRow(ctx, s.q.liveAttempt, job).Scan(&owner, &slot, &attempt, &runID, &lease)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("checking for a running attempt: %w", err)
	}
	return fmt.Sprintf("%s (slot %s, attempt %d, run %s, lease until %s)",
		owner, fmtTime(slot), attempt, runID, fmtTime(lease)), true, nil
}

// ClaimManual claims a manual slot at the database's now, truncated to the
// second and moved to the first second the job has no slot record in (so
// that names built from the slot time stay unique), holding the job's row
// locked for the overlap check.
func (s *Store) ClaimManual(ctx context.Context, req store.ManualClaim) (store.Claim, error) {
	if req.Owner == "" || req.Lease <= 0 {
		return store.Claim{}, fmt.Errorf("claiming a manual run of %q: an owner and a positive lease are required", req.Job)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	var claim store.Claim
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		st, err := s.getJob(ctx, tx, s.q.jobForUpdate, req.Job)
		if err != nil {
			return err
		}
		if req.DefinitionHash != st.DefinitionHash {
			return conflict(st, req.DefinitionHash)
		}
		if st.Overlap == "skip" {
			live, ok, err := s.liveAttempt(ctx, tx, st.Name)
			if err != nil {
				return err
			}
			if ok {
				return fmt.Errorf("%w on %s", store.ErrBusy, live)
			}
		}
		slot, err := s.freeSecond(ctx, tx, req.Job)
		if err != nil {
			return err
		}
		id, err := s.insertSlot(ctx, tx, newSlot{
			job: req.Job, slot: slot, trigger: store.TriggerManual, status: store.StatusRunning, options: req.Options,
		})
		if err != nil {
			return fmt.Errorf("recording slot: %w", err)
		}
		claim, err = s.startAttempt(ctx, tx, id, 1, req.Owner, req.Lease)
		return err
	})
	if err != nil {
		return store.Claim{}, fmt.Errorf("claiming a manual run of %q: %w", req.Job, err)
	}
	return claim, nil
}

// freeSecond returns the first whole second from the database's now at
// which job has no slot record.
func (s *Store) freeSecond(ctx context.Context, tx pgx.Tx, job string) (time.Time, error) {
	var t time.Time
	if err := tx.QueryRow(ctx, `SELECT date_trunc('second', now())`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("reading the time: %w", err)
	}
	for range 3600 {
		var taken bool
		err := tx.QueryRow(ctx, s.q.secondTaken, job, t).Scan(&taken)
		if err != nil {
			return time.Time{}, fmt.Errorf("looking for a free second: %w", err)
		}
		if !taken {
			return t.UTC(), nil
		}
		t = t.Add(time.Second)
	}
	return time.Time{}, fmt.Errorf("no free second for a manual slot of %q within an hour", job)
}

func conflict(st store.JobState, hash string) error {
	return fmt.Errorf("%w: stored definition %s, this one %s", store.ErrConflict, st.DefinitionHash, hash)
}

// newSlot is a slot record to insert.
type newSlot struct {
	job, trigger, status, errMsg string
	slot                         time.Time
	atNow                        bool // slot = now() (manual runs)
	options                      store.RunOptions
	finished                     bool // finished at once (skipped, missed)
	missedLast                   time.Time
	missedCount                  int
}

func (s *Store) insertSlot(ctx context.Context, tx pgx.Tx, n newSlot) (int64, error) {
	opts, err := json.Marshal(n.options)
	if err != nil {
		return 0, err
	}
	var slot any = n.slot
	if n.atNow {
		slot = nil // now()
	}
	var missedLast any
	if n.missedCount > 0 {
		missedLast = n.missedLast
	}
	var id int64
	err = tx.QueryRow(ctx, s.q.insertSlot,
		n.job, slot, n.trigger, n.status, n.errMsg, string(opts), n.finished, missedLast, n.missedCount,
	).Scan(&id)
	return id, err
}

func (s *Store) getJob(ctx context.Context, q querier, sql, name string) (store.JobState, error) {
	st, err := scanJob(q.QueryRow(ctx, sql, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.JobState{}, store.ErrNotFound
	}
	return st, err
}

func scanJob(r pgx.Row) (store.JobState, error) {
	var st store.JobState
	var catchupMS int64
	if err := r.Scan(&st.Name, &st.ScheduleHash, &st.DefinitionHash, &st.Overlap, &catchupMS,
		&st.ScheduledThrough, &st.Paused, &st.UpdatedAt); err != nil {
		return store.JobState{}, err
	}
	st.Catchup = time.Duration(catchupMS) * time.Millisecond
	st.ScheduledThrough = st.ScheduledThrough.UTC()
	st.UpdatedAt = st.UpdatedAt.UTC()
	return st, nil
}
