package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nxtcron/nxtcron/sinks"
)

var _ sinks.WatermarkAdmin = (*Sink)(nil)

// noState reports whether err says the state table does not exist yet.
func (s *Sink) noState(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// Watermarks lists the job's committed watermarks from nxtcron_sink_state.
func (s *Sink) Watermarks(ctx context.Context, job string) ([]sinks.CompanyWatermark, error) {
	rows, err := s.pool.Query(ctx, `SELECT company, watermark, updated_at FROM `+ident(s.schema, stateTable)+`
WHERE job = $1 AND watermark IS NOT NULL ORDER BY company`, job)
	if s.noState(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.safe(fmt.Errorf("listing watermarks of %s in %s.%s: %w", job, s.schema, stateTable, err))
	}
	defer rows.Close()
	var out []sinks.CompanyWatermark
	for rows.Next() {
		var (
			w  sinks.CompanyWatermark
			at time.Time
		)
		if err := rows.Scan(&w.Company, &w.Value, &at); err != nil {
			return nil, s.safe(fmt.Errorf("reading watermarks of %s: %w", job, err))
		}
		w.UpdatedAt = at.UTC()
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, s.safe(fmt.Errorf("reading watermarks of %s: %w", job, err))
	}
	return out, nil
}

// SetWatermark moves a company's watermark, keeping its fence (an attempt
// running now still commits or is refused as before).
func (s *Sink) SetWatermark(ctx context.Context, job string, company int64, value string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+ident(s.schema, stateTable)+` AS st (job, company, fence, watermark)
VALUES ($1, $2, 0, $3)
ON CONFLICT (job, company) DO UPDATE SET watermark = EXCLUDED.watermark, keys_in_lookback = NULL, updated_at = now()`,
		job, company, value)
	if s.noState(err) {
		return fmt.Errorf("%s.%s does not exist yet: run the job once before setting a watermark", s.schema, stateTable)
	}
	if err != nil {
		return s.safe(fmt.Errorf("setting the watermark of %s company %d: %w", job, company, err))
	}
	return nil
}

// ResetWatermarks clears watermarks but keeps the state rows, whose fences
// still refuse stale attempts.
func (s *Sink) ResetWatermarks(ctx context.Context, job string, company *int64) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE `+ident(s.schema, stateTable)+`
SET watermark = NULL, keys_in_lookback = NULL, updated_at = now()
WHERE job = $1 AND ($2::bigint IS NULL OR company = $2) AND watermark IS NOT NULL`, job, company)
	if s.noState(err) {
		return 0, nil
	}
	if err != nil {
		return 0, s.safe(fmt.Errorf("resetting watermarks of %s: %w", job, err))
	}
	return int(tag.RowsAffected()), nil
}
