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

// defaultSlotLimit is SlotFilter's limit when it sets none.
const defaultSlotLimit = 100

// Slots lists slot records, newest first.
func (s *Store) Slots(ctx context.Context, f store.SlotFilter) ([]store.Slot, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultSlotLimit
	}
	statuses := f.Statuses
	if statuses == nil {
		statuses = []string{}
	}
	st, err := json.Marshal(statuses)
	if err != nil {
		return nil, fmt.Errorf("listing slots: %w", err)
	}
	rows, err := s.read.QueryContext(ctx, qSlots,
		sql.Named("job", f.Job), sql.Named("statuses", string(st)), sql.Named("limit", limit))
	if err != nil {
		return nil, fmt.Errorf("listing slots: %w", err)
	}
	defer rows.Close()
	var out []store.Slot
	for rows.Next() {
		sl, err := scanSlot(rows)
		if err != nil {
			return nil, fmt.Errorf("listing slots: %w", err)
		}
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing slots: %w", err)
	}
	return out, nil
}

func scanSlot(r scanner) (store.Slot, error) {
	var sl store.Slot
	var slot, opts, created string
	var started, finished, lease, missedLast sql.NullString
	if err := r.Scan(&sl.ID, &sl.Job, &slot, &sl.Trigger, &sl.Status, &sl.Attempts, &sl.Fence, &sl.Owner,
		&sl.Error, &sl.Rows, &opts, &created, &started, &finished, &lease, &missedLast, &sl.MissedCount); err != nil {
		return store.Slot{}, err
	}
	if err := json.Unmarshal([]byte(opts), &sl.Options); err != nil {
		return store.Slot{}, fmt.Errorf("decoding the options of slot %d: %w", sl.ID, err)
	}
	var err error
	if sl.Slot, err = parseTime(slot); err != nil {
		return store.Slot{}, err
	}
	if sl.CreatedAt, err = parseTime(created); err != nil {
		return store.Slot{}, err
	}
	for _, t := range []struct {
		dst **time.Time
		src sql.NullString
	}{{&sl.StartedAt, started}, {&sl.FinishedAt, finished}, {&sl.LeaseUntil, lease}, {&sl.MissedLast, missedLast}} {
		if *t.dst, err = parseNullTime(t.src); err != nil {
			return store.Slot{}, err
		}
	}
	return sl, nil
}

// Attempts lists the attempts of one slot, oldest first; ErrNotFound when
// the slot does not exist.
func (s *Store) Attempts(ctx context.Context, slotID int64) ([]store.Attempt, error) {
	var out []store.Attempt
	err := s.inRead(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, qSlotExists, sql.Named("slot_id", slotID)).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		out, err = queryAttempts(ctx, tx, qAttempts, sql.Named("slot_id", slotID))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing the attempts of slot %d: %w", slotID, err)
	}
	return out, nil
}

// Running lists the attempts that hold a claim now.
func (s *Store) Running(ctx context.Context) ([]store.Attempt, error) {
	out, err := queryAttempts(ctx, s.read, qRunning)
	if err != nil {
		return nil, fmt.Errorf("listing running attempts: %w", err)
	}
	return out, nil
}

func queryAttempts(ctx context.Context, q querier, query string, args ...any) ([]store.Attempt, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		var a store.Attempt
		var slot, started, lease string
		var finished sql.NullString
		if err := rows.Scan(&a.SlotID, &a.Job, &slot, &a.Trigger, &a.Attempt, &a.Fence, &a.RunID, &a.Owner,
			&a.Status, &a.Error, &a.Rows, &started, &finished, &lease); err != nil {
			return nil, err
		}
		if a.Slot, err = parseTime(slot); err != nil {
			return nil, err
		}
		if a.StartedAt, err = parseTime(started); err != nil {
			return nil, err
		}
		if a.LeaseUntil, err = parseTime(lease); err != nil {
			return nil, err
		}
		if a.FinishedAt, err = parseNullTime(finished); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Prune deletes slot records (and their attempts) whose slot time is older
// than now minus olderThan, except running ones.
func (s *Store) Prune(ctx context.Context, olderThan time.Duration) (int, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("pruning slot records: negative age %s", olderThan)
	}
	var n int64
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		res, err := tx.ExecContext(ctx, qPrune, sql.Named("now", now), sql.Named("age", modifier(-olderThan)))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pruning slot records: %w", err)
	}
	return int(n), nil
}
