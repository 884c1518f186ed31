package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/store"
)

// startAttempt starts attempt n of slot slotID for owner: it draws a new
// fencing token, inserts the attempt with lease_until = now + lease, and
// makes it the slot's current attempt.
func startAttempt(ctx context.Context, tx *sql.Tx, now string, slotID int64, n int, owner string, lease time.Duration) (store.Claim, error) {
	var fence int64
	if err := tx.QueryRowContext(ctx, qNextFence).Scan(&fence); err != nil {
		return store.Claim{}, fmt.Errorf("drawing a fencing token: %w", err)
	}
	runID := uuid.NewString()
	if _, err := tx.ExecContext(ctx, qInsertAttempt,
		sql.Named("fence", fence), sql.Named("slot_id", slotID), sql.Named("attempt", n),
		sql.Named("run_id", runID), sql.Named("owner", owner),
		sql.Named("now", now), sql.Named("lease", modifier(lease))); err != nil {
		return store.Claim{}, fmt.Errorf("recording attempt %d: %w", n, err)
	}
	if _, err := tx.ExecContext(ctx, qClaimSlot,
		sql.Named("fence", fence), sql.Named("attempt", n), sql.Named("owner", owner),
		sql.Named("now", now), sql.Named("slot_id", slotID)); err != nil {
		return store.Claim{}, fmt.Errorf("claiming slot: %w", err)
	}
	c := store.Claim{SlotID: slotID, Attempt: n, Fence: fence, RunID: runID, Owner: owner}
	var slot, opts string
	if err := tx.QueryRowContext(ctx, qClaimedSlot, sql.Named("slot_id", slotID)).
		Scan(&c.Job, &slot, &c.Trigger, &opts); err != nil {
		return store.Claim{}, fmt.Errorf("reading claimed slot: %w", err)
	}
	var err error
	if c.Slot, err = parseTime(slot); err != nil {
		return store.Claim{}, err
	}
	if err := json.Unmarshal([]byte(opts), &c.Options); err != nil {
		return store.Claim{}, fmt.Errorf("decoding slot options: %w", err)
	}
	return c, nil
}

// takeOverCandidate is a slot TakeOver may claim.
type takeOverCandidate struct {
	id       int64
	job      string
	slot     string
	status   string
	attempts int
	fence    int64
	overlap  string
	tooOld   bool
}

// TakeOver claims abandoned slots of the given jobs as new attempts.
func (s *Store) TakeOver(ctx context.Context, req store.TakeOverRequest) ([]store.Claim, error) {
	if len(req.Jobs) == 0 {
		return nil, nil
	}
	if req.Limit > 0 && (req.Owner == "" || req.Lease <= 0) {
		return nil, errors.New("taking over slots: an owner and a positive lease are required")
	}
	jobs, err := json.Marshal(req.Jobs)
	if err != nil {
		return nil, fmt.Errorf("taking over slots: %w", err)
	}
	var claims []store.Claim
	err = s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		claims = nil
		cands, err := takeOverCandidates(ctx, tx, now, string(jobs))
		if err != nil {
			return err
		}
		for _, c := range cands {
			if c.tooOld {
				if err := abandon(ctx, tx, now, c); err != nil {
					return err
				}
				s.log.Info("slot interrupted for good: older than its job's catchup",
					zap.String("job", c.job), zap.String("slot", c.slot), zap.Int64("slot_id", c.id))
				continue
			}
			if len(claims) >= req.Limit {
				continue
			}
			if c.overlap == "skip" {
				_, live, err := liveAttempt(ctx, tx, now, c.job)
				if err != nil {
					return err
				}
				if live {
					continue // another attempt of the job runs; take it over later
				}
			}
			if c.status == store.StatusRunning {
				if _, err := tx.ExecContext(ctx, qLoseAttempt, sql.Named("fence", c.fence), sql.Named("now", now),
					sql.Named("error", "lease expired; taken over by "+req.Owner)); err != nil {
					return fmt.Errorf("ending the expired attempt of slot %d: %w", c.id, err)
				}
			}
			claim, err := startAttempt(ctx, tx, now, c.id, c.attempts+1, req.Owner, req.Lease)
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

func takeOverCandidates(ctx context.Context, tx *sql.Tx, now, jobs string) ([]takeOverCandidate, error) {
	rows, err := tx.QueryContext(ctx, qTakeOverCandidates, sql.Named("jobs", jobs), sql.Named("now", now))
	if err != nil {
		return nil, fmt.Errorf("finding abandoned slots: %w", err)
	}
	defer rows.Close()
	var out []takeOverCandidate
	for rows.Next() {
		var c takeOverCandidate
		if err := rows.Scan(&c.id, &c.job, &c.slot, &c.status, &c.attempts, &c.fence, &c.overlap, &c.tooOld); err != nil {
			return nil, fmt.Errorf("finding abandoned slots: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding abandoned slots: %w", err)
	}
	return out, nil
}

// abandon marks a slot older than its job's catchup interrupted for good;
// a running attempt whose lease expired is lost.
func abandon(ctx context.Context, tx *sql.Tx, now string, c takeOverCandidate) error {
	const msg = "not taken over: the slot is older than the job's catchup"
	if c.status == store.StatusRunning {
		if _, err := tx.ExecContext(ctx, qLoseAttempt, sql.Named("fence", c.fence), sql.Named("now", now),
			sql.Named("error", "lease expired; "+msg)); err != nil {
			return fmt.Errorf("ending the expired attempt of slot %d: %w", c.id, err)
		}
	}
	if _, err := tx.ExecContext(ctx, qAbandonSlot, sql.Named("slot_id", c.id), sql.Named("now", now),
		sql.Named("error", msg)); err != nil {
		return fmt.Errorf("interrupting slot %d: %w", c.id, err)
	}
	return nil
}

// Heartbeat extends the lease of the attempt holding fence.
func (s *Store) Heartbeat(ctx context.Context, fence int64, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("heartbeat of fence %d: lease %s is not positive", fence, lease)
	}
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		res, err := tx.ExecContext(ctx, qHeartbeat,
			sql.Named("fence", fence), sql.Named("now", now), sql.Named("lease", modifier(lease)))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrFenced
		}
		return nil
	})
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

// currentAttempt returns the attempt holding fence, or ErrFenced when fence
// is not its slot's current token or the attempt is no longer running.
func currentAttempt(ctx context.Context, tx *sql.Tx, fence int64) (current, error) {
	var c current
	err := tx.QueryRowContext(ctx, qCurrentAttempt, sql.Named("fence", fence)).
		Scan(&c.slotID, &c.job, &c.attempt, &c.owner, &c.runID)
	if errors.Is(err, sql.ErrNoRows) {
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
	var claim store.Claim
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		cur, err := currentAttempt(ctx, tx, fence)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, qEndAttempt, sql.Named("fence", fence), sql.Named("now", now),
			sql.Named("status", store.StatusFailed), sql.Named("error", errMsg), sql.Named("rows", 0)); err != nil {
			return fmt.Errorf("recording attempt %d failed: %w", cur.attempt, err)
		}
		if _, err := tx.ExecContext(ctx, qSetSlotError, sql.Named("slot_id", cur.slotID), sql.Named("error", errMsg)); err != nil {
			return err
		}
		claim, err = startAttempt(ctx, tx, now, cur.slotID, cur.attempt+1, cur.owner, lease)
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
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		cur, err := currentAttempt(ctx, tx, fence)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, qEndAttempt, sql.Named("fence", fence), sql.Named("now", now),
			sql.Named("status", out.Status), sql.Named("error", out.Error), sql.Named("rows", out.Rows)); err != nil {
			return fmt.Errorf("recording attempt %d: %w", cur.attempt, err)
		}
		if _, err := tx.ExecContext(ctx, qEndSlot, sql.Named("slot_id", cur.slotID), sql.Named("now", now),
			sql.Named("status", out.Status), sql.Named("error", out.Error), sql.Named("rows", out.Rows)); err != nil {
			return fmt.Errorf("recording slot %d: %w", cur.slotID, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finishing fence %d: %w", fence, err)
	}
	return nil
}
