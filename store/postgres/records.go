package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, s.q.slots, f.Job, statuses, limit)
	if err != nil {
		return nil, fmt.Errorf("listing slots: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Slot, error) { return scanSlot(r) })
	if err != nil {
		return nil, fmt.Errorf("listing slots: %w", err)
	}
	return out, nil
}

func scanSlot(r pgx.Row) (store.Slot, error) {
	var sl store.Slot
	var opts []byte
	if err := r.Scan(&sl.ID, &sl.Job, &sl.Slot, &sl.Trigger, &sl.Status, &sl.Attempts, &sl.Fence, &sl.Owner,
		&sl.Error, &sl.Rows, &opts, &sl.CreatedAt, &sl.StartedAt, &sl.FinishedAt, &sl.LeaseUntil,
		&sl.MissedLast, &sl.MissedCount); err != nil {
		return store.Slot{}, err
	}
	if err := json.Unmarshal(opts, &sl.Options); err != nil {
		return store.Slot{}, fmt.Errorf("decoding the options of slot %d: %w", sl.ID, err)
	}
	sl.Slot, sl.CreatedAt = sl.Slot.UTC(), sl.CreatedAt.UTC()
	sl.StartedAt, sl.FinishedAt = utcPtr(sl.StartedAt), utcPtr(sl.FinishedAt)
	sl.LeaseUntil, sl.MissedLast = utcPtr(sl.LeaseUntil), utcPtr(sl.MissedLast)
	return sl, nil
}

// Attempts lists the attempts of one slot, oldest first; ErrNotFound when
// the slot does not exist.
func (s *Store) Attempts(ctx context.Context, slotID int64) ([]store.Attempt, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var out []store.Attempt
	// One snapshot for both statements.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, s.q.slotExists, slotID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return store.ErrNotFound
		}
		var err error
		out, err = queryAttempts(ctx, tx, s.q.attempts, slotID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing the attempts of slot %d: %w", slotID, err)
	}
	return out, nil
}

// Running lists the attempts that hold a claim now.
func (s *Store) Running(ctx context.Context) ([]store.Attempt, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	out, err := queryAttempts(ctx, s.pool, s.q.running)
	if err != nil {
		return nil, fmt.Errorf("listing running attempts: %w", err)
	}
	return out, nil
}

func queryAttempts(ctx context.Context, q querier, sql string, args ...any) ([]store.Attempt, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Attempt, error) {
		var a store.Attempt
		err := r.Scan(&a.SlotID, &a.Job, &a.Slot, &a.Trigger, &a.Attempt, &a.Fence, &a.RunID, &a.Owner,
			&a.Status, &a.Error, &a.Rows, &a.StartedAt, &a.FinishedAt, &a.LeaseUntil)
		a.Slot, a.StartedAt, a.LeaseUntil = a.Slot.UTC(), a.StartedAt.UTC(), a.LeaseUntil.UTC()
		a.FinishedAt = utcPtr(a.FinishedAt)
		return a, err
	})
}

// Prune deletes slot records (and their attempts) whose slot time is older
// than now() minus olderThan, except running ones.
func (s *Store) Prune(ctx context.Context, olderThan time.Duration) (int, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("pruning slot records: negative age %s", olderThan)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q.prune, ms(olderThan))
	if err != nil {
		return 0, fmt.Errorf("pruning slot records: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
