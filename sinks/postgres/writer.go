package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/sinks"
)

// writer stages one company's rows of one attempt.
type writer struct {
	s       *Sink
	run     *sinks.Run
	plan    *plan
	company int64
	stage   string
	log     *zap.Logger
	started time.Time
	seq     int64 // rows staged
	done    bool
}

var _ sinks.Writer = (*writer)(nil)

// Write COPYs the rows into the stage table.
func (w *writer) Write(ctx context.Context, rows []sinks.Row) error {
	if w.done {
		return errors.New("writing to a committed or aborted postgres writer")
	}
	if len(rows) == 0 {
		return nil
	}
	base := w.seq
	n, err := w.s.pool.CopyFrom(ctx, pgx.Identifier{w.s.schema, w.stage}, []string{"seq", "item"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			if len(rows[i]) == 0 {
				return nil, fmt.Errorf("row %d is empty", base+int64(i)+1)
			}
			return []any{base + int64(i) + 1, []byte(rows[i])}, nil
		}))
	if err != nil {
		return w.s.safe(fmt.Errorf("copying rows into %s.%s: %w", w.s.schema, w.stage, err))
	}
	w.seq += n
	return nil
}

// Commit merges the stage into the target in one transaction: check the
// fence under the state row's lock, merge, move the watermark, drop the
// stage. On failure nothing of it happens, and the stage is dropped.
func (w *writer) Commit(ctx context.Context, wm *sinks.Watermark) error {
	if w.done {
		return errors.New("committing a committed or aborted postgres writer")
	}
	merged, err := w.commit(ctx, wm)
	if err != nil {
		if derr := w.discard(context.WithoutCancel(ctx)); derr != nil {
			w.log.Warn("dropping the stage table after a failed commit", zap.Error(w.s.safe(derr)))
		}
		return w.s.safe(fmt.Errorf("committing company %d to %s: %w", w.company, w.s.qualified(), err))
	}
	w.done = true
	w.s.forget(w)
	fields := []zap.Field{zap.Int64("rows", w.seq), zap.Int64("merged", merged), zap.Duration("took", time.Since(w.started))}
	if wm != nil {
		fields = append(fields, zap.String("watermark", wm.Value))
	}
	w.log.Info("rows committed", fields...)
	return nil
}

func (w *writer) commit(ctx context.Context, wm *sinks.Watermark) (merged int64, err error) {
	s := w.s
	state := ident(s.schema, stateTable)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var fence int64
		err := tx.QueryRow(ctx, `SELECT fence FROM `+state+` WHERE job = $1 AND company = $2 FOR UPDATE`,
			w.run.Job, w.company).Scan(&fence)
		if errors.Is(err, pgx.ErrNoRows) {
			return sinks.Permanent(fmt.Errorf("the state row of job %q company %d is gone from %s.%s", w.run.Job, w.company, s.schema, stateTable))
		}
		if err != nil {
			return fmt.Errorf("checking the fence: %w", err)
		}
		if fence != w.run.Fence {
			return s.fencedError(w.run, w.company, fence)
		}
		if s.cfg.Mode == ModeReplace {
			if _, err := tx.Exec(ctx, `DELETE FROM `+ident(s.schema, s.table)+` WHERE `+ident(colCompany)+` = $1`, w.company); err != nil {
				return fmt.Errorf("deleting the company's rows: %w", err)
			}
		}
		tag, err := tx.Exec(ctx, mergeSQL(s.schema, s.table, w.stage, s.cfg.Mode, w.plan), w.company, w.run.RunID)
		if err != nil {
			return fmt.Errorf("merging the stage: %w", err)
		}
		merged = tag.RowsAffected()
		var value *string
		var keys []byte
		if wm != nil {
			value = &wm.Value
			if len(wm.Keys) > 0 {
				keys = wm.Keys
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE `+state+` SET
    keys_in_lookback = CASE WHEN $3::text IS NOT NULL AND (watermark IS NULL OR watermark <= $3::text) THEN $4::jsonb ELSE keys_in_lookback END,
    watermark = CASE WHEN $3::text IS NOT NULL AND (watermark IS NULL OR watermark <= $3::text) THEN $3::text ELSE watermark END,
    run_id = $5::uuid, updated_at = now()
WHERE job = $1 AND company = $2`, w.run.Job, w.company, value, keys, w.run.RunID); err != nil {
			return fmt.Errorf("moving the watermark: %w", err)
		}
		if _, err := tx.Exec(ctx, `DROP TABLE `+ident(s.schema, w.stage)); err != nil {
			return fmt.Errorf("dropping the stage: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+ident(s.schema, stageTable)+` WHERE stage = $1`, w.stage); err != nil {
			return fmt.Errorf("unregistering the stage: %w", err)
		}
		return nil
	})
	return merged, err
}

// mergeSQL is the statement that moves a stage's rows into the target; $1
// is the company, $2 the run id. Keyed modes keep the last staged row of
// each key (a row read twice in one run); upsert rewrites only the rows
// whose values changed, so that a repeated run changes nothing.
func mergeSQL(schema, table, stage, mode string, p *plan) string {
	cols := []string{ident(colCompany)}
	exprs := []string{"$1::bigint"}
	for _, c := range p.cols {
		cols = append(cols, ident(c.name))
		exprs = append(exprs, c.expr)
	}
	cols = append(cols, ident(colRunID), ident(colLoadedAt))
	exprs = append(exprs, "$2::uuid", "now()")

	var b strings.Builder
	b.WriteString("INSERT INTO " + ident(schema, table) + " AS t (" + strings.Join(cols, ", ") + ")\nSELECT " +
		strings.Join(exprs, ", ") + "\nFROM ")
	stageRef := ident(schema, stage)
	if len(p.keys) > 0 {
		keyExprs := make([]string, len(p.keys))
		for i, k := range p.keys {
			keyExprs[i] = k.expr
		}
		on := strings.Join(keyExprs, ", ")
		b.WriteString("(SELECT DISTINCT ON (" + on + ") s.seq, s.item FROM " + stageRef + " AS s ORDER BY " + on + ", s.seq DESC) AS s\nORDER BY s.seq")
	} else {
		b.WriteString(stageRef + " AS s\nORDER BY s.seq")
	}
	if len(p.keys) == 0 || mode == ModeReplace {
		return b.String()
	}
	target := []string{ident(colCompany)}
	for _, k := range p.keys {
		target = append(target, ident(k.name))
	}
	b.WriteString("\nON CONFLICT (" + strings.Join(target, ", ") + ") DO ")
	var sets, olds, news []string
	for _, c := range p.cols {
		if c.key {
			continue
		}
		n := ident(c.name)
		sets = append(sets, n+" = EXCLUDED."+n)
		olds = append(olds, "t."+n)
		news = append(news, "EXCLUDED."+n)
	}
	if mode == ModeAppend || len(sets) == 0 {
		b.WriteString("NOTHING")
		return b.String()
	}
	sets = append(sets, ident(colRunID)+" = EXCLUDED."+ident(colRunID), ident(colLoadedAt)+" = EXCLUDED."+ident(colLoadedAt))
	b.WriteString("UPDATE SET " + strings.Join(sets, ", ") +
		"\nWHERE ROW(" + strings.Join(olds, ", ") + ") IS DISTINCT FROM ROW(" + strings.Join(news, ", ") + ")")
	return b.String()
}

// Abort drops the stage table. It is a no-op after Commit.
func (w *writer) Abort(ctx context.Context) error {
	if w.done {
		return nil
	}
	if err := w.discard(ctx); err != nil {
		return w.s.safe(err)
	}
	return nil
}

// discardTimeout bounds dropping a stage, which callers run on contexts
// that are never cancelled.
const discardTimeout = 30 * time.Second

// discard drops the stage; the writer is done. A stage that cannot be
// dropped now is dropped by a later attempt's Prepare.
func (w *writer) discard(ctx context.Context) error {
	w.done = true
	w.s.forget(w)
	ctx, cancel := context.WithTimeout(ctx, discardTimeout)
	defer cancel()
	return w.s.dropStage(ctx, w.stage, "")
}
