// Package postgres is the implementation of store.Store on PostgreSQL
// (pgx v5, pgxpool), for several replicas sharing one database:
// `store.dsn: postgres://...`.
//
// Schema. Every table, the fencing sequence and goose's bookkeeping
// (goose_db_version, goose_lock) live in one schema, store.schema (default
// nxtcron). The name must be a lower-case SQL identifier that Postgres does
// not need to quote (not a reserved word); it is the only identifier ever
// put into SQL text, always quoted, and every value is a bound parameter.
// Open does not set search_path: every statement names the schema.
//
// Clock. "Now" is the database's now(): the start of the current
// transaction. Leases, expiries, catchup cut-offs and pruning are computed
// in SQL from it (now() + $1 * interval '1 millisecond'), so replicas with
// different clocks agree. Times are stored as timestamptz (microseconds) and
// returned in UTC; every connection runs with TimeZone UTC.
//
// Concurrency. Settle, ClaimManual and TakeOver lock the job's row in jobs
// (SELECT ... FOR UPDATE) before they look at its other slots, so the
// overlap check and "a slot is claimed once" hold across processes.
// Heartbeat, Retry, Finish and CommitWatermark lock the slot row of the
// fence they hold (TakeOver locks the rows it takes), so an owner finishing
// and another replica taking over are serialized: exactly one wins. Fencing
// tokens come from one sequence (fence_sequence). Watermark values compare
// bytewise (COLLATE "C"). No transaction spans anything but SQL.
//
// PgBouncer. The store works behind PgBouncer in transaction pooling mode:
// it keeps no session state (no SET, no session advisory locks, no LISTEN,
// no temporary tables) and runs every statement with pgx's
// QueryExecModeExec: the extended protocol with the unnamed statement,
// parse, bind and execute in one round trip, so no prepared statement
// outlives its transaction (pgx's statement and description caches are
// off). The only startup parameters sent are TimeZone and application_name,
// which PgBouncer tracks. Migrations take goose's table-based lock (a row
// in goose_lock with a heartbeated lease) instead of a session advisory
// lock, and apply each migration in one transaction with the schema first
// on its search_path (SET LOCAL).
//
// Connection settings come from the DSN (pool_max_conns, connect_timeout,
// sslmode, ...). Without connect_timeout the store uses 10 s, and a store
// call without a deadline gets one of 30 s, so an unreachable database
// fails calls instead of hanging them; pgxpool replaces broken connections
// by itself once the database is back.
package postgres
