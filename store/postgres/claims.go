package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/store"
)

// startAttempt starts attempt n of slot slotID for owner: it draws a new
// fencing token, inserts the attempt with lease_until = now() + lease, and
// makes it the slot's current attempt (one statement).
func (s *Store) startAttempt(ctx context.Context, tx pgx.Tx, slotID int64, n int, owner string, lease time.Duration) (store.Claim, error) {
	c := store.Claim{SlotID: slotID, Attempt: n, RunID: uuid.NewString(), Owner: owner}
	var opts []byte
	err := tx.QueryRow(ctx, s.q.startAttempt, slotID, n, owner, c.RunID, ms(lease)).
		Scan(&c.Fence, &c.Job, &c.Slot, &c.Trigger, &opts)
	if err != nil {
		return store.Claim{}, fmt.Errorf("starting attempt %d of slot %d: %w", n, slotID, err)
	}
	c.Slot = c.Slot.UTC()
	if err := json.Unmarshal(opts, &c.Options); err != nil {
		return store.Claim{}, fmt.Errorf("decoding slot options: %w", err)
	}
	return c, nil
}

// takeOverCandidate is a slot TakeOver may claim.
type takeOverCandidate struct {
	id       int64
	job      string
	slot     time.Time
	status   string
	attempts int
	fence    int64
	overlap  string
	tooOld   bool
}

// TakeOver claims abandoned slots of the given jobs as new attempts. It
// first looks for candidates without locking anything (the common answer
// is none); when there are some, it locks their jobs' rows, in name order,
// then the candidate slot rows, and decides on what it sees under the
// locks.
func (s *Store) TakeOver(ctx context.Context, req store.TakeOverRequest) ([]store.Claim, error) {
	if len(req.Jobs) == 0 {
		return nil, nil
	}
	if req.Limit > 0 && (req.Owner == "" || req.Lease <= 0) {
		return nil, errors.New("taking over slots: an owner and a positive lease are required")
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	names, hashes := jobArrays(req.Jobs)
	cands, err := s.takeOverCandidates(ctx, s.pool, s.q.takeOverCandidates, names, hashes)
	if err != nil {
		return nil, fmt.Errorf("taking over slots: %w", err)
	}
	if len(cands) == 0 {
		return nil, nil
	}
	// Only the jobs with candidates are locked and looked at again.
	locked := map[string]string{}
	for _, c := range cands {
		locked[c.job] = req.Jobs[c.job]
	}
	names, hashes = jobArrays(locked)

	var claims []store.Claim
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		claims = nil
		rows, err := tx.Query(ctx, s.q.lockJobs, names)
		if err != nil {
			return fmt.Errorf("locking jobs: %w", err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("locking jobs: %w", err)
		}
		cands, err := s.takeOverCandidates(ctx, tx, s.q.takeOverCandidatesForUpdate, names, hashes)
		if err != nil {
			return err
		}
		for _, c := range cands {
			if c.tooOld {
				done, err := s.abandon(ctx, tx, c)
				if err != nil {
					return err
				}
				if done {
					s.log.Info("slot interrupted for good: older than its job's catchup",
						zap.String("job", c.job), zap.Time("slot", c.slot), zap.Int64("slot_id", c.id))
				}
				continue
			}
			if len(claims) >= req.Limit {
				continue
			}
			if c.overlap == "skip" {
				_, live, err := s.liveAttempt(ctx, tx, c.job)
				if err != nil {
					return err
				}
				if live {
					continue // another attempt of the job runs; take it over later
				}
			}
			if c.status == store.StatusRunning {
				tag, err := tx.Exec(ctx, s.q.loseAttempt, c.fence, "lease expired; taken over by "+req.Owner)
				if err != nil {
					return fmt.Errorf("ending the expired attempt of slot %d: %w", c.id, err)
				}
				if tag.RowsAffected() == 0 {
					continue // a heartbeat renewed the lease meanwhile
				}
			}
			claim, err := s.startAttempt(ctx, tx, c.id, c.attempts+1, req.Owner, req.Lease)
			if err != nil {
				return err
			}
			claims = append(claims, claim)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("taking over slots: %w", err)
	}
	return claims, nil
}

// jobArrays splits a job -> hash map into two parallel arrays, by name.
func jobArrays(jobs map[string]string) (names, hashes []string) {
	names = make([]string, 0, len(jobs))
	for name := range jobs {
		names = append(names, name)
	}
	slices.Sort(names)
	hashes = make([]string, len(names))
	for i, name := range names {
		hashes[i] = jobs[name]
	}
	return names, hashes
}

func (s *Store) takeOverCandidates(ctx context.Context, q querier, sql string, names, hashes []string) ([]takeOverCandidate, error) {
	rows, err := q.Query(ctx, sql, names, hashes)
	if err != nil {
		return nil, fmt.Errorf("finding abandoned slots: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (takeOverCandidate, error) {
		var c takeOverCandidate
		err := r.Scan(&c.id, &c.job, &c.slot, &c.status, &c.attempts, &c.fence, &c.overlap, &c.tooOld)
		c.slot = c.slot.UTC()
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("finding abandoned slots: %w", err)
	}
	return out, nil
}

// abandon marks a slot older than its job's catchup interrupted for good;
// a running attempt whose lease expired is lost. It reports false when a
// heartbeat renewed the lease meanwhile (nothing changed).
func (s *Store) abandon(ctx context.Context, tx pgx.Tx, c takeOverCandidate) (bool, error) {
	const msg = "not taken over: the slot is older than the job's catchup"
	if c.status == store.StatusRunning {
		tag, err := tx.Exec(ctx, s.q.loseAttempt, c.fence, "lease expired; "+msg)
		if err != nil {
			return false, fmt.Errorf("ending the expired attempt of slot %d: %w", c.id, err)
		}
		if tag.RowsAffected() == 0 {
			return false, nil
		}
	}
	if _, err := tx.Exec(ctx, s.q.abandonSlot, c.id, msg); err != nil {
		return false, fmt.Errorf("interrupting slot %d: %w", c.id, err)
	}
	return true, nil
}

// Heartbeat extends the lease of the attempt holding fence.
func (s *Store) Heartbeat(ctx context.Context, fence int64, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("heartbeat of fence %d: lease %s is not positive", fence, lease)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q.heartbeat, fence, ms(lease))
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrFenced
	}
	if err != nil {
		return fmt.Errorf("heartbeat of fence %d: %w", fence, err)
	}
	return nil
}

// current is the attempt holding a fence that is still current.
type current struct {
	slotID  int64
	job     string
	attempt int
	owner   string
	runID   string
}

// currentAttempt returns the attempt holding fence, with its slot's row
// locked (sql is one of the ForUpdate/ForShare variants), or ErrFenced
// when fence is not its slot's current token or the attempt is no longer
// running.
func currentAttempt(ctx context.Context, tx pgx.Tx, sql string, fence int64) (current, error) {
	var c current
	err := tx.QueryRow(ctx, sql, fence).Scan(&c.slotID, &c.job, &c.attempt, &c.owner, &c.runID)
	if errors.Is(err, pgx.ErrNoRows) {
		return current{}, store.ErrFenced
	}
	if err != nil {
		return current{}, fmt.Errorf("checking the fencing token: %w", err)
	}
	return c, nil
}

// Retry records the attempt holding fence failed and starts the next one.
func (s *Store) Retry(ctx context.Context, fence int64, errMsg string, lease time.Duration) (store.Claim, error) {
	if lease <= 0 {
		return store.Claim{}, fmt.Errorf("retrying fence %d: lease %s is not positive", fence, lease)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	var claim store.Claim
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := currentAttempt(ctx, tx, s.q.currentAttemptForUpdate, fence)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.endAttempt, fence, store.StatusFailed, errMsg, 0); err != nil {
			return fmt.Errorf("recording attempt %d failed: %w", cur.attempt, err)
		}
		if _, err := tx.Exec(ctx, s.q.setSlotError, cur.slotID, errMsg); err != nil {
			return fmt.Errorf("recording the error of slot %d: %w", cur.slotID, err)
		}
		claim, err = s.startAttempt(ctx, tx, cur.slotID, cur.attempt+1, cur.owner, lease)
		return err
	})
	if err != nil {
		return store.Claim{}, fmt.Errorf("retrying fence %d: %w", fence, err)
	}
	return claim, nil
}

// Finish records the outcome of the attempt holding fence and of its slot.
func (s *Store) Finish(ctx context.Context, fence int64, out store.Outcome) error {
	switch out.Status {
	case store.StatusSucceeded, store.StatusFailed, store.StatusInterrupted:
	default:
		return fmt.Errorf("finishing fence %d: status %q is not succeeded, failed or interrupted", fence, out.Status)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := currentAttempt(ctx, tx, s.q.currentAttemptForUpdate, fence)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.endAttempt, fence, out.Status, out.Error, out.Rows); err != nil {
			return fmt.Errorf("recording attempt %d: %w", cur.attempt, err)
		}
		if _, err := tx.Exec(ctx, s.q.endSlot, cur.slotID, out.Status, out.Error, out.Rows); err != nil {
			return fmt.Errorf("recording slot %d: %w", cur.slotID, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finishing fence %d: %w", fence, err)
	}
	return nil
}
