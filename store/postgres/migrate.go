package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/migrations"
	"github.com/nxtcron/nxtcron/store"
)

// goose's bookkeeping tables, in the store's schema.
const (
	versionTable = "goose_db_version"
	lockTable    = "goose_lock"
)

const (
	// lockRetry is how often a migrator waiting for another one's lock
	// tries again, and lockTries how often before it gives up (5 minutes).
	lockRetry = 500 * time.Millisecond
	lockTries = 600
	// migrationConns is the size of the pool Migrate opens: goose holds one
	// connection for the migrations and the lock's heartbeat uses another.
	migrationConns = 3
)

// migration is one file of migrations.Postgres.
type migration struct {
	version int64
	name    string
	up      string // the SQL after "-- +goose Up"
}

var migrationFile = regexp.MustCompile(`^(\d{5})_[a-z0-9_]+\.sql$`)

// loadMigrations reads every migration of migrations.Postgres, in version
// order.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrations.Postgres, ".")
	if err != nil {
		return nil, fmt.Errorf("reading the postgres migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		m := migrationFile.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("postgres migration %s: the name is not NNNNN_name.sql", e.Name())
		}
		version, _ := strconv.ParseInt(m[1], 10, 64)
		b, err := fs.ReadFile(migrations.Postgres, e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading postgres migration %s: %w", e.Name(), err)
		}
		text := string(b)
		_, up, ok := strings.Cut(text, "-- +goose Up")
		switch {
		case !ok:
			return nil, fmt.Errorf("postgres migration %s: no -- +goose Up", e.Name())
		case strings.Contains(text, "-- +goose Down"):
			return nil, fmt.Errorf("postgres migration %s: migrations are additive and have no Down section", e.Name())
		case strings.Contains(text, "-- +goose NO TRANSACTION"):
			return nil, fmt.Errorf("postgres migration %s: every migration runs in a transaction", e.Name())
		}
		out = append(out, migration{version: version, name: e.Name(), up: up})
	}
	return out, nil
}

// provider returns a goose Provider over db whose migrations are the files
// of migrations.Postgres, each run as one multi-statement string (the
// simple protocol) in goose's transaction, after SET LOCAL search_path puts
// the store's schema first. The version table is schema.goose_db_version.
func (s *Store) provider(db *sql.DB, ms []migration, opts ...goose.ProviderOption) (*goose.Provider, error) {
	gms := make([]*goose.Migration, 0, len(ms))
	for _, m := range ms {
		up := func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, s.q.migrationSearchPath); err != nil {
				return fmt.Errorf("setting the search_path of migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, m.up); err != nil {
				return fmt.Errorf("applying migration %s: %w", m.name, err)
			}
			return nil
		}
		gms = append(gms, goose.NewGoMigration(m.version, &goose.GoFunc{RunTx: up}, nil))
	}
	opts = append(opts,
		goose.WithTableName(s.schema+"."+versionTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(gms...),
		goose.WithLogger(goose.NopLogger()),
	)
	p, err := goose.NewProvider(goose.DialectPostgres, db, nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading the postgres migrations: %w", err)
	}
	return p, nil
}

// Migrate creates the schema if it does not exist and applies the pending
// migrations. Several processes may migrate at once: goose's table lock
// (a row in schema.goose_lock with a lease, no session state) lets one
// apply them while the others wait, then find nothing left to do.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.migrate(ctx); err != nil {
		return fmt.Errorf("migrating schema %s: %w", s.schema, err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if err := s.ensureSchema(ctx); err != nil {
		return err
	}
	cfg := s.pool.Config()
	cfg.MinConns, cfg.MaxConns = 0, migrationConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	locker, err := lock.NewPostgresTableLocker(
		lock.WithTableName(s.schema+"."+lockTable),
		lock.WithTableLockTimeout(lockRetry, lockTries),
		lock.WithTableLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		return err
	}
	p, err := s.provider(db, ms, goose.WithLocker(locker))
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil && !errors.Is(err, goose.ErrNoNextVersion) {
		return err
	}
	names := map[int64]string{}
	for _, m := range ms {
		names[m.version] = m.name
	}
	for _, r := range results {
		s.log.Info("migration applied",
			zap.Int64("version", r.Source.Version),
			zap.String("migration", names[r.Source.Version]),
			zap.Duration("duration", r.Duration))
	}
	return nil
}

// ensureSchema creates the store's schema unless it exists. It looks
// first, so that a role without CREATE on the database can use a schema an
// administrator made for it.
func (s *Store) ensureSchema(ctx context.Context) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	exists, err := s.schemaExists(ctx)
	if err != nil || exists {
		return err
	}
	if _, err := s.pool.Exec(ctx, s.q.createSchema); err != nil {
		// Another replica created it at the same moment.
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P06") {
			return nil
		}
		if errors.As(err, &pe) && pe.Code == "42501" {
			return fmt.Errorf("creating the schema: %w (create it for this role: CREATE SCHEMA %s AUTHORIZATION <role>)", err, s.schema)
		}
		return fmt.Errorf("creating the schema: %w", err)
	}
	s.log.Info("schema created")
	return nil
}

func (s *Store) schemaExists(ctx context.Context) (bool, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, s.q.schemaExists, s.schema).Scan(&exists); err != nil {
		return false, fmt.Errorf("looking for the schema: %w", err)
	}
	return exists, nil
}

// Migrations lists every known migration and whether it is applied. It
// creates nothing: a store never migrated has every migration pending.
func (s *Store) Migrations(ctx context.Context) ([]store.Migration, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	var exists bool
	if err := s.pool.QueryRow(ctx, s.q.versionTableExists).Scan(&exists); err != nil {
		return nil, fmt.Errorf("reading the migration status of schema %s: %w", s.schema, err)
	}
	out := make([]store.Migration, 0, len(ms))
	if !exists {
		for _, m := range ms {
			out = append(out, store.Migration{Version: m.version, Name: m.name})
		}
		return out, nil
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := s.provider(db, ms)
	if err != nil {
		return nil, err
	}
	status, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the migration status of schema %s: %w", s.schema, err)
	}
	names := map[int64]string{}
	for _, m := range ms {
		names[m.version] = m.name
	}
	for _, st := range status {
		m := store.Migration{
			Version: st.Source.Version,
			Name:    names[st.Source.Version],
			Applied: st.State == goose.StateApplied,
		}
		if m.Applied {
			at := st.AppliedAt.UTC()
			m.AppliedAt = &at
		}
		out = append(out, m)
	}
	return out, nil
}
