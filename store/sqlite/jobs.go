package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nxtcron/nxtcron/store"
)

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
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
	var st store.JobState
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		_, err := tx.ExecContext(ctx, qSyncJob,
			sql.Named("name", def.Name),
			sql.Named("schedule_hash", def.ScheduleHash),
			sql.Named("definition_hash", def.DefinitionHash),
			sql.Named("overlap", def.Overlap),
			sql.Named("catchup_ms", def.Catchup.Milliseconds()),
			sql.Named("now", now))
		if err != nil {
			return err
		}
		st, err = getJob(ctx, tx, def.Name)
		return err
	})
	if err != nil {
		return store.JobState{}, fmt.Errorf("syncing job %q: %w", def.Name, err)
	}
	return st, nil
}

// Job returns one job's state.
func (s *Store) Job(ctx context.Context, name string) (store.JobState, error) {
	st, err := getJob(ctx, s.read, name)
	if err != nil {
		return store.JobState{}, fmt.Errorf("reading job %q: %w", name, err)
	}
	return st, nil
}

// Jobs returns every registered job's state, by name.
func (s *Store) Jobs(ctx context.Context) ([]store.JobState, error) {
	rows, err := s.read.QueryContext(ctx, qJobs)
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	defer rows.Close()
	var out []store.JobState
	for rows.Next() {
		st, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("listing jobs: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	return out, nil
}

// SetPaused pauses or resumes a job.
func (s *Store) SetPaused(ctx context.Context, job string, paused bool) error {
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		res, err := tx.ExecContext(ctx, qSetPaused,
			sql.Named("name", job), sql.Named("paused", paused), sql.Named("now", now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		verb := "resuming"
		if paused {
			verb = "pausing"
		}
		return fmt.Errorf("%s job %q: %w", verb, job, err)
	}
	return nil
}

// Settle advances a job's schedule in one transaction.
func (s *Store) Settle(ctx context.Context, job string, plan func(store.JobState) (store.SettlePlan, error)) (store.SettleResult, error) {
	var res store.SettleResult
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		res = store.SettleResult{}
		st, err := getJob(ctx, tx, job)
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
		through := truncate(p.Through)
		if !through.After(st.ScheduledThrough) {
			res.State = st
			return nil
		}
		if err := checkPlan(st.ScheduledThrough, through, p); err != nil {
			return err
		}
		for _, g := range p.Missed {
			if _, err := insertSlot(ctx, tx, now, newSlot{
				job: job, slot: truncate(g.First), trigger: store.TriggerSchedule, status: store.StatusMissed,
				finished: true, missedLast: truncate(g.Last), missedCount: g.Count,
			}); err != nil {
				return fmt.Errorf("recording missed slots from %s: %w", formatTime(g.First), err)
			}
			res.Missed += g.Count
		}
		if c := p.Claim; c != nil {
			reason, err := skipReason(ctx, tx, now, st)
			if err != nil {
				return err
			}
			if reason != "" {
				if _, err := insertSlot(ctx, tx, now, newSlot{
					job: job, slot: truncate(c.Slot), trigger: c.Trigger, status: store.StatusSkipped,
					errMsg: reason, options: c.Options, finished: true,
				}); err != nil {
					return fmt.Errorf("recording skipped slot %s: %w", formatTime(c.Slot), err)
				}
				res.Skipped, res.Reason = true, reason
			} else {
				id, err := insertSlot(ctx, tx, now, newSlot{
					job: job, slot: truncate(c.Slot), trigger: c.Trigger, status: store.StatusRunning, options: c.Options,
				})
				if err != nil {
					return fmt.Errorf("recording slot %s: %w", formatTime(c.Slot), err)
				}
				claim, err := startAttempt(ctx, tx, now, id, 1, c.Owner, c.Lease)
				if err != nil {
					return err
				}
				res.Claim = &claim
			}
		}
		if _, err := tx.ExecContext(ctx, qSetScheduledThrough,
			sql.Named("name", job), sql.Named("through", formatTime(through)), sql.Named("now", now)); err != nil {
			return err
		}
		res.State, err = getJob(ctx, tx, job)
		return err
	})
	if err != nil {
		return store.SettleResult{}, fmt.Errorf("settling job %q: %w", job, err)
	}
	return res, nil
}

// checkPlan refuses a plan whose slots fall outside (from, through]: they
// were settled before, or are not part of this settlement.
func checkPlan(from, through time.Time, p store.SettlePlan) error {
	in := func(t time.Time) bool { t = truncate(t); return t.After(from) && !t.After(through) }
	for _, g := range p.Missed {
		if g.Count < 1 || truncate(g.Last).Before(truncate(g.First)) || !in(g.First) || !in(g.Last) {
			return fmt.Errorf("invalid plan: missed gap %s..%s (%d) is not within (%s, %s]",
				formatTime(g.First), formatTime(g.Last), g.Count, formatTime(from), formatTime(through))
		}
	}
	if c := p.Claim; c != nil {
		if !in(c.Slot) {
			return fmt.Errorf("invalid plan: claimed slot %s is not within (%s, %s]",
				formatTime(c.Slot), formatTime(from), formatTime(through))
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
// "" means it may be claimed.
func skipReason(ctx context.Context, tx *sql.Tx, now string, st store.JobState) (string, error) {
	if st.Paused {
		return "paused", nil
	}
	if st.Overlap != "skip" {
		return "", nil
	}
	live, ok, err := liveAttempt(ctx, tx, now, st.Name)
	if err != nil || !ok {
		return "", err
	}
	return "running on " + live, nil
}

// liveAttempt describes an attempt of job holding a live lease, if any:
// "replica-a (slot ..., attempt 1, run ...)".
func liveAttempt(ctx context.Context, tx *sql.Tx, now, job string) (string, bool, error) {
	var owner, slot, runID, lease string
	var attempt int
	err := tx.QueryRowContext(ctx, qLiveAttempt, sql.Named("job", job), sql.Named("now", now)).
		Scan(&owner, &slot, &attempt, &runID, &lease)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("checking for a running attempt: %w", err)
	}
	return fmt.Sprintf("%s (slot %s, attempt %d, run %s, lease until %s)", owner, slot, attempt, runID, lease), true, nil
}

// ClaimManual claims a manual slot at the database's now, truncated to the
// second and moved to the first second the job has no slot record in, so
// that names built from the slot time ({slot}) stay unique.
func (s *Store) ClaimManual(ctx context.Context, req store.ManualClaim) (store.Claim, error) {
	if req.Owner == "" || req.Lease <= 0 {
		return store.Claim{}, fmt.Errorf("claiming a manual run of %q: an owner and a positive lease are required", req.Job)
	}
	var claim store.Claim
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		st, err := getJob(ctx, tx, req.Job)
		if err != nil {
			return err
		}
		if req.DefinitionHash != st.DefinitionHash {
			return conflict(st, req.DefinitionHash)
		}
		if st.Overlap == "skip" {
			live, ok, err := liveAttempt(ctx, tx, now, st.Name)
			if err != nil {
				return err
			}
			if ok {
				return fmt.Errorf("%w on %s", store.ErrBusy, live)
			}
		}
		slot, err := parseTime(now)
		if err != nil {
			return err
		}
		slot, err = freeSecond(ctx, tx, req.Job, slot.Truncate(time.Second))
		if err != nil {
			return err
		}
		id, err := insertSlot(ctx, tx, now, newSlot{
			job: req.Job, slot: slot, trigger: store.TriggerManual, status: store.StatusRunning, options: req.Options,
		})
		if err != nil {
			return fmt.Errorf("recording slot: %w", err)
		}
		claim, err = startAttempt(ctx, tx, now, id, 1, req.Owner, req.Lease)
		return err
	})
	if err != nil {
		return store.Claim{}, fmt.Errorf("claiming a manual run of %q: %w", req.Job, err)
	}
	return claim, nil
}

// freeSecond returns the first whole second from t at which job has no slot
// record.
func freeSecond(ctx context.Context, tx *sql.Tx, job string, t time.Time) (time.Time, error) {
	for range 3600 {
		var taken bool
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM slots WHERE job = ? AND slot >= ? AND slot < ?)`,
			job, formatTime(t), formatTime(t.Add(time.Second))).Scan(&taken)
		if err != nil {
			return time.Time{}, fmt.Errorf("looking for a free second: %w", err)
		}
		if !taken {
			return t, nil
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
	options                      store.RunOptions
	finished                     bool // finished at once (skipped, missed)
	missedLast                   time.Time
	missedCount                  int
}

func insertSlot(ctx context.Context, tx *sql.Tx, now string, n newSlot) (int64, error) {
	opts, err := json.Marshal(n.options)
	if err != nil {
		return 0, err
	}
	var finished, missedLast any
	if n.finished {
		finished = now
	}
	if n.missedCount > 0 {
		missedLast = formatTime(n.missedLast)
	}
	var id int64
	err = tx.QueryRowContext(ctx, qInsertSlot,
		sql.Named("job", n.job),
		sql.Named("slot", formatTime(n.slot)),
		sql.Named("trigger", n.trigger),
		sql.Named("status", n.status),
		sql.Named("error", n.errMsg),
		sql.Named("options", string(opts)),
		sql.Named("now", now),
		sql.Named("finished_at", finished),
		sql.Named("missed_last", missedLast),
		sql.Named("missed_count", n.missedCount),
	).Scan(&id)
	return id, err
}

func getJob(ctx context.Context, q querier, name string) (store.JobState, error) {
	st, err := scanJob(q.QueryRowContext(ctx, qJob, sql.Named("name", name)))
	if errors.Is(err, sql.ErrNoRows) {
		return store.JobState{}, store.ErrNotFound
	}
	return st, err
}

type scanner interface {
	Scan(dest ...any) error
}

func scanJob(r scanner) (store.JobState, error) {
	var st store.JobState
	var catchupMS int64
	var through, updated string
	if err := r.Scan(&st.Name, &st.ScheduleHash, &st.DefinitionHash, &st.Overlap, &catchupMS,
		&through, &st.Paused, &updated); err != nil {
		return store.JobState{}, err
	}
	st.Catchup = time.Duration(catchupMS) * time.Millisecond
	var err error
	if st.ScheduledThrough, err = parseTime(through); err != nil {
		return store.JobState{}, err
	}
	if st.UpdatedAt, err = parseTime(updated); err != nil {
		return store.JobState{}, err
	}
	return st, nil
}
