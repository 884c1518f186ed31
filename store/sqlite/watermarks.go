package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nxtcron/nxtcron/store"
)

// Watermark returns the watermark of (job, company).
func (s *Store) Watermark(ctx context.Context, job string, company int64) (store.Watermark, error) {
	wm, err := scanWatermark(s.read.QueryRowContext(ctx, qWatermark, sql.Named("job", job), sql.Named("company", company)))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Watermark{}, fmt.Errorf("reading the watermark of %q company %d: %w", job, company, err)
	}
	return wm, nil
}

// Watermarks lists a job's watermarks ("" = every job), by job and company.
func (s *Store) Watermarks(ctx context.Context, job string) ([]store.Watermark, error) {
	rows, err := s.read.QueryContext(ctx, qWatermarks, sql.Named("job", job))
	if err != nil {
		return nil, fmt.Errorf("listing watermarks: %w", err)
	}
	defer rows.Close()
	var out []store.Watermark
	for rows.Next() {
		wm, err := scanWatermark(rows)
		if err != nil {
			return nil, fmt.Errorf("listing watermarks: %w", err)
		}
		out = append(out, wm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing watermarks: %w", err)
	}
	return out, nil
}

func scanWatermark(r scanner) (store.Watermark, error) {
	var wm store.Watermark
	var updated string
	if err := r.Scan(&wm.Job, &wm.Company, &wm.Value, &wm.Keys, &wm.Fence, &wm.RunID, &updated); err != nil {
		return store.Watermark{}, err
	}
	var err error
	wm.UpdatedAt, err = parseTime(updated)
	return wm, err
}

// CommitWatermark stores wm if fence is the current token of a running
// attempt of wm.Job; a value behind the stored one leaves it as it is. The
// stored fence and run id are the attempt's.
func (s *Store) CommitWatermark(ctx context.Context, fence int64, wm store.Watermark) error {
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		cur, err := currentAttempt(ctx, tx, fence)
		if err != nil {
			return err
		}
		if cur.job != wm.Job {
			return fmt.Errorf("fence %d holds a slot of job %q", fence, cur.job)
		}
		_, err = tx.ExecContext(ctx, qCommitWatermark, watermarkArgs(wm, fence, cur.runID, now)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("committing the watermark of %q company %d: %w", wm.Job, wm.Company, err)
	}
	return nil
}

// SetWatermark stores wm unconditionally.
func (s *Store) SetWatermark(ctx context.Context, wm store.Watermark) error {
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		_, err := tx.ExecContext(ctx, qSetWatermark, watermarkArgs(wm, wm.Fence, wm.RunID, now)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("setting the watermark of %q company %d: %w", wm.Job, wm.Company, err)
	}
	return nil
}

func watermarkArgs(wm store.Watermark, fence int64, runID, now string) []any {
	var keys any
	if wm.Keys != nil {
		keys = wm.Keys
	}
	return []any{
		sql.Named("job", wm.Job), sql.Named("company", wm.Company), sql.Named("value", wm.Value),
		sql.Named("keys", keys), sql.Named("fence", fence), sql.Named("run_id", runID), sql.Named("now", now),
	}
}

// ResetWatermarks deletes the watermarks of job (one company when company
// is non-nil).
func (s *Store) ResetWatermarks(ctx context.Context, job string, company *int64) (int, error) {
	all, c := 1, int64(0)
	if company != nil {
		all, c = 0, *company
	}
	var n int64
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		res, err := tx.ExecContext(ctx, qResetWatermarks, sql.Named("job", job), sql.Named("all", all), sql.Named("company", c))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("resetting the watermarks of %q: %w", job, err)
	}
	return int(n), nil
}
