package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/nxtcron/nxtcron/store"
)

// Watermark returns the watermark of (job, company).
func (s *Store) Watermark(ctx context.Context, job string, company int64) (store.Watermark, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	wm, err := scanWatermark(s.pool.QueryRow(ctx, s.q.watermark, job, company))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Watermark{}, fmt.Errorf("reading the watermark of %q company %d: %w", job, company, err)
	}
	return wm, nil
}

// Watermarks lists a job's watermarks ("" = every job), by job and company.
func (s *Store) Watermarks(ctx context.Context, job string) ([]store.Watermark, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, s.q.watermarks, job)
	if err != nil {
		return nil, fmt.Errorf("listing watermarks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Watermark, error) { return scanWatermark(r) })
	if err != nil {
		return nil, fmt.Errorf("listing watermarks: %w", err)
	}
	return out, nil
}

func scanWatermark(r pgx.Row) (store.Watermark, error) {
	var wm store.Watermark
	if err := r.Scan(&wm.Job, &wm.Company, &wm.Value, &wm.Keys, &wm.Fence, &wm.RunID, &wm.UpdatedAt); err != nil {
		return store.Watermark{}, err
	}
	wm.UpdatedAt = wm.UpdatedAt.UTC()
	return wm, nil
}

// CommitWatermark stores wm if fence is the current token of a running
// attempt of wm.Job; a value behind the stored one leaves it as it is. The
// stored fence and run id are the attempt's. The slot's row is share-locked
// for the transaction, so a takeover cannot slip in between the check and
// the write.
func (s *Store) CommitWatermark(ctx context.Context, fence int64, wm store.Watermark) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := currentAttempt(ctx, tx, s.q.currentAttemptForShare, fence)
		if err != nil {
			return err
		}
		if cur.job != wm.Job {
			return fmt.Errorf("fence %d holds a slot of job %q", fence, cur.job)
		}
		_, err = tx.Exec(ctx, s.q.commitWatermark, watermarkArgs(wm, fence, cur.runID)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("committing the watermark of %q company %d: %w", wm.Job, wm.Company, err)
	}
	return nil
}

// SetWatermark stores wm unconditionally.
func (s *Store) SetWatermark(ctx context.Context, wm store.Watermark) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, s.q.setWatermark, watermarkArgs(wm, wm.Fence, wm.RunID)...); err != nil {
		return fmt.Errorf("setting the watermark of %q company %d: %w", wm.Job, wm.Company, err)
	}
	return nil
}

func watermarkArgs(wm store.Watermark, fence int64, runID string) []any {
	var keys any
	if wm.Keys != nil {
		keys = wm.Keys
	}
	return []any{wm.Job, wm.Company, wm.Value, keys, fence, runID}
}

// ResetWatermarks deletes the watermarks of job (one company when company
// is non-nil).
func (s *Store) ResetWatermarks(ctx context.Context, job string, company *int64) (int, error) {
	all, c := true, int64(0)
	if company != nil {
		all, c = false, *company
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q.resetWatermarks, job, all, c)
	if err != nil {
		return 0, fmt.Errorf("resetting the watermarks of %q: %w", job, err)
	}
	return int(tag.RowsAffected()), nil
}
