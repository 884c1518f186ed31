package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/sinks"
	"github.com/nxtcron/nxtcron/store"
)

// ddlLockTimeout bounds how long a schema change waits for a table lock
// (readers of the target hold one); the attempt fails and is retried
// rather than queueing everyone behind it.
const ddlLockTimeout = "30s"

// sweepLockTimeout bounds how long dropping an orphaned stage waits for
// its lock: a stage still locked is in use, and is left for a later run.
const sweepLockTimeout = "5s"

// Sink is the Postgres sink of one attempt.
type Sink struct {
	cfg     Config
	schema  string
	table   string
	pool    *pgxpool.Pool
	log     *zap.Logger
	secrets []string

	mu      sync.Mutex
	run     *sinks.Run // set by Prepare
	runHex  string     // the run id's 32 hex digits
	plan    *plan
	writers map[*writer]struct{}
}

var (
	_ sinks.Sink            = (*Sink)(nil)
	_ sinks.WatermarkKeeper = (*Sink)(nil)
	_ sinks.NeedsTypes      = (*Sink)(nil)
)

// NeedsTypes reports whether the sink needs the fields' GraphQL types:
// always for typed columns, and for the key columns in jsonb mode.
func (s *Sink) NeedsTypes() bool {
	return s.cfg.Columns == ColumnsTyped || len(s.cfg.Key) > 0
}

// Prepare lays out the columns, brings the database's tables up to date in
// one transaction under a transaction advisory lock, and drops the stage
// tables older attempts of the job left behind.
func (s *Sink) Prepare(ctx context.Context, run sinks.Run) error {
	runHex, err := uuidHex(run.RunID)
	if err != nil {
		return sinks.Permanent(err)
	}
	if run.Fence <= 0 {
		return sinks.Permanent(fmt.Errorf("postgres sink: run %s has no fencing token", run.RunID))
	}
	p, err := buildPlan(&s.cfg, run.Fields)
	if err != nil {
		return sinks.Permanent(fmt.Errorf("laying out the columns of %s: %w", s.qualified(), err))
	}
	if err := s.migrate(ctx, p); err != nil {
		return s.safe(err)
	}
	s.mu.Lock()
	s.run, s.runHex, s.plan = &run, runHex, p
	s.mu.Unlock()
	s.sweep(ctx, run)
	return ctx.Err()
}

func (s *Sink) qualified() string { return s.schema + "." + s.table }

// lockKey is the advisory lock of the schema changes in schema: every
// sink's DDL in one schema takes it, so that two attempts never create or
// alter the same table at once.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("nxtcron postgres sink\x00" + schema))
	return int64(h.Sum64())
}

// migrate creates or extends the schema, the sink's tables and the target,
// in one transaction under pg_advisory_xact_lock: the lock ends with the
// transaction, whatever happens to the connection.
func (s *Sink) migrate(ctx context.Context, p *plan) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", s.qualified(), err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(s.schema)); err != nil {
		return fmt.Errorf("preparing %s: taking the schema lock: %w", s.qualified(), err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+ddlLockTimeout+`'`); err != nil {
		return fmt.Errorf("preparing %s: %w", s.qualified(), err)
	}
	if err := s.ensureSchema(ctx, tx); err != nil {
		return err
	}
	for _, t := range []struct{ name, ddl string }{
		{stateTable, stateDDL},
		{stageTable, stageRegistryDDL},
	} {
		if err := s.ensureTable(ctx, tx, t.name, t.ddl); err != nil {
			return err
		}
	}
	if err := s.ensureTarget(ctx, tx, p); err != nil {
		return err
	}
	if err := s.ensureKey(ctx, tx, p); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("preparing %s: committing the schema changes: %w", s.qualified(), err)
	}
	return nil
}

// stateDDL is the table of fences and watermarks, one row per (job,
// company); %s is its qualified name.
const stateDDL = `CREATE TABLE %s (
    job              text        NOT NULL,
    company          bigint      NOT NULL,
    watermark        text        COLLATE "C",
    fence            bigint      NOT NULL,
    keys_in_lookback jsonb,
    run_id           uuid,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, company)
)`

// stageRegistryDDL lists the stage tables in use, so that the ones crashed
// attempts leave behind can be found and dropped.
const stageRegistryDDL = `CREATE TABLE %s (
    stage      text        PRIMARY KEY,
    job        text        NOT NULL,
    company    bigint      NOT NULL,
    fence      bigint      NOT NULL,
    run_id     uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)`

// ensureSchema creates the schema when it is missing. It looks first, so
// that a role without CREATE on the database can use a schema made for it.
func (s *Sink) ensureSchema(ctx context.Context, tx pgx.Tx) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&exists); err != nil {
		return fmt.Errorf("looking up schema %s: %w", s.schema, err)
	}
	if exists {
		return nil
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA `+ident(s.schema)); err != nil {
		return fmt.Errorf("creating schema %s: %w", s.schema, err)
	}
	s.log.Info("created schema", zap.String("schema", s.schema))
	return nil
}

// tableColumns returns a table's columns and their types (without type
// modifiers), and its relkind; exists is false when there is no such
// relation.
func tableColumns(ctx context.Context, tx pgx.Tx, schema, table string) (cols map[string]string, kind string, exists bool, err error) {
	rows, err := tx.Query(ctx, `
SELECT c.relkind::text, a.attname::text, format_type(a.atttypid, NULL)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = $1 AND c.relname = $2`, schema, table)
	if err != nil {
		return nil, "", false, err
	}
	defer rows.Close()
	cols = map[string]string{}
	for rows.Next() {
		var name, typ *string
		if err := rows.Scan(&kind, &name, &typ); err != nil {
			return nil, "", false, err
		}
		exists = true
		if name != nil && typ != nil {
			cols[*name] = *typ
		}
	}
	return cols, kind, exists, rows.Err()
}

// ensureTable creates one of the sink's own tables when it is missing.
func (s *Sink) ensureTable(ctx context.Context, tx pgx.Tx, name, ddl string) error {
	_, _, exists, err := tableColumns(ctx, tx, s.schema, name)
	if err != nil {
		return fmt.Errorf("looking up %s.%s: %w", s.schema, name, err)
	}
	if exists {
		return nil
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(ddl, ident(s.schema, name))); err != nil {
		return fmt.Errorf("creating %s.%s: %w", s.schema, name, err)
	}
	s.log.Info("created table", zap.String("created", s.schema+"."+name))
	return nil
}

// wantColumn is a column the target must have.
type wantColumn struct {
	name, typ string
	notNull   bool
	why       string // for a type mismatch: what needs the type
}

func (s *Sink) wanted(p *plan) []wantColumn {
	out := []wantColumn{{name: colCompany, typ: typeBigint, notNull: true, why: "nxtcron needs"}}
	for _, c := range p.cols {
		why := fmt.Sprintf("field %s (%s) needs", c.field, c.gql)
		if c.name == colData {
			why = "columns: jsonb needs"
		}
		out = append(out, wantColumn{name: c.name, typ: c.typ, notNull: c.key, why: why})
	}
	return append(out,
		wantColumn{name: colRunID, typ: typeUUID, notNull: true, why: "nxtcron needs"},
		wantColumn{name: colLoadedAt, typ: typeTimestampTZ, notNull: true, why: "nxtcron needs"})
}

// ensureTarget creates the target, or adds the columns it lacks. A column
// whose type differs from the one its field needs is a permanent error:
// the sink never changes a column's type.
func (s *Sink) ensureTarget(ctx context.Context, tx pgx.Tx, p *plan) error {
	have, kind, exists, err := tableColumns(ctx, tx, s.schema, s.table)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", s.qualified(), err)
	}
	want := s.wanted(p)
	if !exists {
		defs := make([]string, len(want))
		for i, w := range want {
			defs[i] = ident(w.name) + " " + w.typ
			if w.notNull {
				defs[i] += " NOT NULL"
			}
		}
		ddl := "CREATE TABLE " + ident(s.schema, s.table) + " (\n    " + strings.Join(defs, ",\n    ") + "\n)"
		if _, err := tx.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("creating %s: %w", s.qualified(), err)
		}
		s.log.Info("created table", zap.String("created", s.qualified()), zap.Int("columns", len(want)))
		return nil
	}
	if kind != "r" && kind != "p" {
		return sinks.Permanent(fmt.Errorf("%s is not a table (relkind %s)", s.qualified(), kind))
	}
	var mismatches, adds, added []string
	for _, w := range want {
		typ, ok := have[w.name]
		switch {
		case !ok:
			adds = append(adds, "ADD COLUMN "+ident(w.name)+" "+w.typ)
			added = append(added, w.name+" "+w.typ)
		case typ != w.typ:
			mismatches = append(mismatches, fmt.Sprintf("column %s of %s is %s, but %s %s", w.name, s.qualified(), typ, w.why, w.typ))
		}
	}
	if len(mismatches) > 0 {
		return sinks.Permanent(fmt.Errorf("%s; nxtcron never changes a column's type: alter the column (or drop it, or the table) yourself",
			strings.Join(mismatches, "; ")))
	}
	if len(adds) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "ALTER TABLE "+ident(s.schema, s.table)+" "+strings.Join(adds, ", ")); err != nil {
		return fmt.Errorf("adding columns to %s: %w", s.qualified(), err)
	}
	s.log.Info("added columns", zap.Strings("columns", added))
	return nil
}

// indexName is the name of the unique index the sink creates on (company_no,
// key...).
func indexName(table string) string {
	const suffix = "_nxtcron_key"
	if len(table)+len(suffix) > maxIdent {
		table = table[:maxIdent-len(suffix)]
	}
	return table + suffix
}

// ensureKey makes sure a unique index on exactly (company_no, key...)
// exists (the target of ON CONFLICT), creating it when none does.
func (s *Sink) ensureKey(ctx context.Context, tx pgx.Tx, p *plan) error {
	if len(p.keys) == 0 {
		return nil
	}
	want := []string{colCompany}
	for _, k := range p.keys {
		want = append(want, k.name)
	}
	rows, err := tx.Query(ctx, `
SELECT ic.relname::text,
       array_agg(a.attname::text ORDER BY k.ord)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE n.nspname = $1 AND c.relname = $2
  AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY ic.relname`, s.schema, s.table)
	if err != nil {
		return fmt.Errorf("looking up the indexes of %s: %w", s.qualified(), err)
	}
	indexes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		name string
		cols []string
	}, error) {
		var x struct {
			name string
			cols []string
		}
		err := r.Scan(&x.name, &x.cols)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("looking up the indexes of %s: %w", s.qualified(), err)
	}
	sorted := slices.Sorted(slices.Values(want))
	name := indexName(s.table)
	for _, ix := range indexes {
		if slices.Equal(slices.Sorted(slices.Values(ix.cols)), sorted) {
			return nil
		}
	}
	for _, ix := range indexes {
		if ix.name == name {
			return sinks.Permanent(fmt.Errorf("the key of %s changed: unique index %s is on (%s), the job's key needs (%s); drop the index to change the key",
				s.qualified(), name, strings.Join(ix.cols, ", "), strings.Join(want, ", ")))
		}
	}
	quoted := make([]string, len(want))
	for i, w := range want {
		quoted[i] = ident(w)
	}
	ddl := "CREATE UNIQUE INDEX " + ident(name) + " ON " + ident(s.schema, s.table) + " (" + strings.Join(quoted, ", ") + ")"
	if _, err := tx.Exec(ctx, ddl); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return sinks.Permanent(fmt.Errorf("creating unique index %s on %s (%s): the table has rows with the same key: %w",
				name, s.qualified(), strings.Join(want, ", "), err))
		}
		return fmt.Errorf("creating unique index %s on %s: %w", name, s.qualified(), err)
	}
	s.log.Info("created unique index", zap.String("index", name), zap.Strings("columns", want))
	return nil
}

// sweep drops the stage tables of older attempts of the job: a stage whose
// fence is below this attempt's belongs to an attempt that has crashed, or
// that this one supersedes (its commit would fail the fence check for every
// company this attempt imports). Problems are logged, never fatal: a
// leftover stage costs only space, and the next run tries again.
func (s *Sink) sweep(ctx context.Context, run sinks.Run) {
	rows, err := s.pool.Query(ctx, `SELECT stage, company, fence FROM `+ident(s.schema, stageTable)+`
WHERE job = $1 AND fence < $2 ORDER BY stage`, run.Job, run.Fence)
	if err != nil {
		s.log.Warn("listing orphaned stage tables", zap.Error(s.safe(err)))
		return
	}
	type orphan struct {
		stage   string
		company int64
		fence   int64
	}
	orphans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orphan, error) {
		var o orphan
		err := r.Scan(&o.stage, &o.company, &o.fence)
		return o, err
	})
	if err != nil {
		s.log.Warn("listing orphaned stage tables", zap.Error(s.safe(err)))
		return
	}
	for _, o := range orphans {
		if ctx.Err() != nil {
			return
		}
		if err := s.dropStage(ctx, o.stage, sweepLockTimeout); err != nil {
			s.log.Warn("dropping orphaned stage table", zap.String("stage", o.stage), zap.Error(s.safe(err)))
			continue
		}
		s.log.Info("dropped orphaned stage table", zap.String("stage", o.stage),
			zap.Int64("company", o.company), zap.Int64("stage_fence", o.fence))
	}
}

// dropStage drops a stage table and its registry row in one transaction.
func (s *Sink) dropStage(ctx context.Context, stage, lockTimeout string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if lockTimeout != "" {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+lockTimeout+`'`); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+ident(s.schema, stage)); err != nil {
			return fmt.Errorf("dropping stage table %s.%s: %w", s.schema, stage, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM `+ident(s.schema, stageTable)+` WHERE stage = $1`, stage); err != nil {
			return fmt.Errorf("unregistering stage table %s.%s: %w", s.schema, stage, err)
		}
		return nil
	})
}

// prepared returns the run and plan of Prepare.
func (s *Sink) prepared() (*sinks.Run, string, *plan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run == nil {
		return nil, "", nil, errors.New("postgres sink: used before Prepare")
	}
	return s.run, s.runHex, s.plan, nil
}

// fencedError says that a newer attempt has raised a company's fence above
// this one's: this attempt lost its claim and must not commit. It is
// permanent and matches store.ErrFenced.
func (s *Sink) fencedError(run *sinks.Run, company, stored int64) error {
	return sinks.Permanent(fmt.Errorf("%w: attempt with fence %d is behind fence %d of job %q company %d in %s.%s (a newer attempt took over)",
		store.ErrFenced, run.Fence, stored, run.Job, company, s.schema, stateTable))
}

// raise raises the company's fence to the run's token (inserting its state
// row when missing) and returns the company's watermark. A stored fence
// above the run's means a newer attempt owns the company.
func (s *Sink) raise(ctx context.Context, run *sinks.Run, company int64) (*sinks.Watermark, error) {
	state := ident(s.schema, stateTable)
	var (
		fence int64
		value *string
		keys  []byte
	)
	err := s.pool.QueryRow(ctx, `
INSERT INTO `+state+` AS st (job, company, fence) VALUES ($1, $2, $3)
ON CONFLICT (job, company) DO UPDATE SET fence = EXCLUDED.fence, updated_at = now()
WHERE st.fence < EXCLUDED.fence
RETURNING fence, watermark, keys_in_lookback`, run.Job, company, run.Fence).Scan(&fence, &value, &keys)
	if errors.Is(err, pgx.ErrNoRows) {
		// Not raised: the stored fence is already this run's, or above it.
		err = s.pool.QueryRow(ctx, `SELECT fence, watermark, keys_in_lookback FROM `+state+`
WHERE job = $1 AND company = $2`, run.Job, company).Scan(&fence, &value, &keys)
	}
	if err != nil {
		return nil, s.safe(fmt.Errorf("raising the fence of company %d in %s.%s: %w", company, s.schema, stateTable, err))
	}
	if fence != run.Fence {
		return nil, s.fencedError(run, company, fence)
	}
	if value == nil {
		return nil, nil
	}
	return &sinks.Watermark{Value: *value, Keys: keys}, nil
}

// Watermark returns the company's committed watermark (nil before the
// first). After Prepare, for the prepared job, it first raises the
// company's fence to the attempt's, so that no older attempt can commit
// after the watermark was read; an attempt that a newer one has fenced out
// gets a permanent error matching store.ErrFenced.
func (s *Sink) Watermark(ctx context.Context, job string, company int64) (*sinks.Watermark, error) {
	s.mu.Lock()
	run := s.run
	s.mu.Unlock()
	if run != nil && run.Job == job {
		return s.raise(ctx, run, company)
	}
	var (
		value *string
		keys  []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT watermark, keys_in_lookback FROM `+ident(s.schema, stateTable)+`
WHERE job = $1 AND company = $2`, job, company).Scan(&value, &keys)
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pe) && pe.Code == "42P01": // no row, no table
		return nil, nil
	case err != nil:
		return nil, s.safe(fmt.Errorf("reading the watermark of company %d: %w", company, err))
	case value == nil:
		return nil, nil
	}
	return &sinks.Watermark{Value: *value, Keys: keys}, nil
}

// stageName is the stage table of (run, company): the run id's first 16
// hex digits and the company.
func stageName(runHex string, company int64) string {
	return stagePrefix + runHex[:16] + "_" + strconv.FormatInt(company, 10)
}

// uuidHex returns the 32 hex digits of a UUID.
func uuidHex(id string) (string, error) {
	h := strings.ToLower(strings.ReplaceAll(id, "-", ""))
	if len(h) != 32 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("postgres sink: run id %q is not a UUID", id)
	}
	return h, nil
}

// Open raises the company's fence and creates its stage table.
func (s *Sink) Open(ctx context.Context, run sinks.Run, company int64) (sinks.Writer, error) {
	prun, runHex, p, err := s.prepared()
	if err != nil {
		return nil, err
	}
	if run.RunID != prun.RunID || run.Fence != prun.Fence {
		return nil, fmt.Errorf("postgres sink: prepared for run %s, opened for run %s", prun.RunID, run.RunID)
	}
	if _, err := s.raise(ctx, prun, company); err != nil {
		return nil, err
	}
	stage := stageName(runHex, company)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A stage of this (run, company) exists only if an earlier writer
		// of this very run failed without cleaning up: it is this run's own.
		if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+ident(s.schema, stage)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE UNLOGGED TABLE `+ident(s.schema, stage)+` (seq bigint NOT NULL, item jsonb NOT NULL)`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+ident(s.schema, stageTable)+` (stage, job, company, fence, run_id)
VALUES ($1, $2, $3, $4, $5::uuid)
ON CONFLICT (stage) DO UPDATE SET fence = EXCLUDED.fence, created_at = now()`,
			stage, prun.Job, company, prun.Fence, prun.RunID)
		return err
	})
	if err != nil {
		return nil, s.safe(fmt.Errorf("creating stage table %s.%s: %w", s.schema, stage, err))
	}
	w := &writer{
		s: s, run: prun, plan: p, company: company, stage: stage,
		log:     s.log.With(zap.Int64("company", company), zap.String("stage", stage)),
		started: time.Now(),
	}
	s.mu.Lock()
	s.writers[w] = struct{}{}
	s.mu.Unlock()
	return w, nil
}

func (s *Sink) forget(w *writer) {
	s.mu.Lock()
	delete(s.writers, w)
	s.mu.Unlock()
}

// Close aborts the writers still open (dropping their stages) and closes
// the connection pool.
func (s *Sink) Close() error {
	s.mu.Lock()
	open := make([]*writer, 0, len(s.writers))
	for w := range s.writers {
		open = append(open, w)
	}
	s.mu.Unlock()
	var errs []error
	for _, w := range open {
		errs = append(errs, w.Abort(context.Background()))
	}
	s.pool.Close()
	return errors.Join(errs...)
}
