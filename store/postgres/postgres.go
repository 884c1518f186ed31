package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/store"
)

var _ store.Store = (*Store)(nil)

// DefaultSchema is the schema of the store's tables when Options.Schema is
// empty (config.yaml's store.schema default).
const DefaultSchema = "nxtcron"

const (
	// defaultConnectTimeout bounds a connection attempt when the DSN sets
	// no connect_timeout.
	defaultConnectTimeout = 10 * time.Second
	// callTimeout bounds a store call whose context has no deadline.
	callTimeout = 30 * time.Second
	// applicationName is reported to Postgres unless the DSN names one.
	applicationName = "nxtcron"
)

// schemaRE is what a schema name may look like (config validates the same).
var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Options configure Open.
type Options struct {
	// Schema holds every table of the store; default DefaultSchema.
	Schema string
	// Migrate applies pending migrations on open (creating the schema when
	// it does not exist).
	Migrate bool
	// Logger receives the store's logs; nil discards them.
	Logger *zap.Logger
}

// Store is a store.Store on a Postgres database.
type Store struct {
	pool   *pgxpool.Pool
	schema string // validated, unquoted
	q      queries
	tq     tokenQueries
	bq     string // takeBudget
	log    *zap.Logger
}

// Open connects to the Postgres database dsn names (a postgres:// URL or a
// key=value connection string), checks the schema name, and applies the
// migrations when opts.Migrate is set. It fails when the database cannot be
// reached. Errors never quote the DSN (it may hold a password).
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	schema := opts.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	s, err := open(ctx, dsn, schema, opts)
	if err != nil {
		return nil, fmt.Errorf("opening postgres store (schema %s): %w", schema, err)
	}
	return s, nil
}

func open(ctx context.Context, dsn, schema string, opts Options) (*Store, error) {
	if !schemaRE.MatchString(schema) {
		return nil, errors.New("the schema is not a lower-case SQL identifier (letters, digits, _)")
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := poolConfig(dsn)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{
		pool:   pool,
		schema: schema,
		q:      newQueries(schema),
		tq:     newTokenQueries(subSchema(schema)),
		bq:     subSchema(schema)(sqlTakeBudget),
		log:    log.With(zap.String("schema", schema)),
	}
	if err := s.checkSchemaName(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if opts.Migrate {
		if err := s.Migrate(ctx); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return s, nil
}

// poolConfig parses dsn and applies the settings the store relies on.
func poolConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the DSN, password included: say less.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) {
			return nil, errors.New("the DSN is not a valid postgres:// URL or connection string")
		}
		return nil, fmt.Errorf("parsing the DSN: %w", err)
	}
	cc := cfg.ConnConfig
	// One round trip per statement, with the unnamed statement: nothing
	// outlives a transaction, as PgBouncer's transaction pooling needs.
	cc.DefaultQueryExecMode = pgx.QueryExecModeExec
	cc.StatementCacheCapacity = 0
	cc.DescriptionCacheCapacity = 0
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["timezone"] = "UTC"
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = applicationName
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = defaultConnectTimeout
	}
	return cfg, nil
}

// checkSchemaName refuses a schema name that Postgres would need quoted (a
// reserved word): goose and its lock name the schema unquoted.
func (s *Store) checkSchemaName(ctx context.Context) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	var quoted string
	if err := s.pool.QueryRow(ctx, `SELECT quote_ident($1::text)`, s.schema).Scan(&quoted); err != nil {
		return err
	}
	if quoted != s.schema {
		return errors.New("the schema is an SQL keyword; choose another store.schema")
	}
	return nil
}

// Schema returns the schema of the store's tables.
func (s *Store) Schema() string { return s.schema }

// Close releases the store's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("pinging postgres store: %w", err)
	}
	return nil
}

// Now returns the database's clock.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var now time.Time
	if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("reading the database clock: %w", err)
	}
	return now.UTC(), nil
}

// inTx runs fn in a read-committed transaction and commits it if fn
// succeeds.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// isUniqueViolation reports whether err is Postgres's unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// bound gives ctx the store's call time-out unless it has an earlier
// deadline.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= callTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, callTimeout)
}

// ts brings a caller's time to the store's precision (microseconds), in
// UTC.
func ts(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// utcPtr returns t in UTC, nil for nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// ms is d in whole milliseconds, the unit the SQL multiplies by
// interval '1 millisecond'.
func ms(d time.Duration) int64 {
	return d.Milliseconds()
}

// fmtTime formats a time for messages.
func fmtTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}
