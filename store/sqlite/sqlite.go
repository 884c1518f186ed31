package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	"go.uber.org/zap"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/nxtcron/nxtcron/migrations"
	"github.com/nxtcron/nxtcron/store"
)

var _ store.Store = (*Store)(nil)

// busyTimeout is how long a connection waits for another process's write
// transaction before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Options configure Open.
type Options struct {
	// Migrate applies pending migrations on open.
	Migrate bool
	// Logger receives the store's logs; nil discards them.
	Logger *zap.Logger
}

// Store is a store.Store on one SQLite file.
type Store struct {
	path  string
	log   *zap.Logger
	write *sql.DB // one connection, immediate transactions
	read  *sql.DB // read-only pool
	goose *goose.Provider
}

// Open opens (creating it and its directory if needed) the SQLite store at
// path, and applies the migrations when opts.Migrate is set.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("opening sqlite store: invalid path %q (a file is required)", path)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("creating the directory of store %s: %w", path, err)
	}

	s := &Store{path: path, log: log.With(zap.String("store", path))}
	// The writer opens first: it switches the file to WAL before any reader
	// connects.
	s.write, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxIdleTime(0)
	s.write.SetConnMaxLifetime(0)
	if err := s.write.PingContext(ctx); err != nil {
		_ = s.write.Close()
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	s.read, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		_ = s.write.Close()
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	s.read.SetMaxOpenConns(readers)
	s.read.SetMaxIdleConns(readers)

	s.goose, err = goose.NewProvider(goose.DialectSQLite3, s.write, migrations.SQLite,
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
	)
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("loading the sqlite migrations: %w", err)
	}
	if opts.Migrate {
		if err := s.Migrate(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// dsn is the modernc.org/sqlite DSN of the file at abs: a file: URI (so
// that any character of the path survives) with the connection settings.
func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// Close releases the store's connections.
func (s *Store) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.read.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("pinging sqlite store %s: %w", s.path, err)
	}
	return nil
}

// Now returns the database's clock (the host's, for SQLite).
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var now string
	if err := s.read.QueryRowContext(ctx, qNow).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("reading the database clock: %w", err)
	}
	return parseTime(now)
}

// Migrate applies the pending migrations, holding the migration lock file
// so that concurrent processes apply each migration once.
func (s *Store) Migrate(ctx context.Context) error {
	unlock, err := lockMigrations(ctx, s.path)
	if err != nil {
		return err
	}
	defer func() { _ = unlock() }()
	results, err := s.goose.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrating sqlite store %s: %w", s.path, err)
	}
	for _, r := range results {
		s.log.Info("migration applied",
			zap.Int64("version", r.Source.Version),
			zap.String("migration", filepath.Base(r.Source.Path)),
			zap.Duration("duration", r.Duration))
	}
	return nil
}

// Migrations lists every known migration and whether it is applied.
func (s *Store) Migrations(ctx context.Context) ([]store.Migration, error) {
	status, err := s.goose.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the migration status of %s: %w", s.path, err)
	}
	out := make([]store.Migration, 0, len(status))
	for _, st := range status {
		m := store.Migration{
			Version: st.Source.Version,
			Name:    filepath.Base(st.Source.Path),
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

// inWrite runs fn in a write transaction (BEGIN IMMEDIATE on the one
// writer connection) and commits it if fn succeeds. now is the database's
// clock read after the transaction took the write lock.
func (s *Store) inWrite(ctx context.Context, fn func(tx *sql.Tx, now string) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning a write transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var now string
	if err := tx.QueryRowContext(ctx, qNow).Scan(&now); err != nil {
		return fmt.Errorf("reading the database clock: %w", err)
	}
	if err := fn(tx, now); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// inRead runs fn in a read transaction, so that it sees one snapshot.
func (s *Store) inRead(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.read.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning a read transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// timeLayout is the text form of every stored time (sqlTimeFormat in Go).
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string {
	return t.UTC().Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing stored time %q: %w", s, err)
	}
	return t, nil
}

// truncate brings a caller's time to the store's precision.
func truncate(t time.Time) time.Time {
	return t.UTC().Truncate(time.Millisecond)
}

func parseNullTime(ns sql.NullString) (*time.Time, error) {
	if !ns.Valid {
		return nil, nil
	}
	t, err := parseTime(ns.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// modifier is the strftime modifier that adds d: "+60.000 seconds".
func modifier(d time.Duration) string {
	return fmt.Sprintf("%+.3f seconds", d.Seconds())
}
