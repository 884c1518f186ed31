// Package sqlite is the embedded implementation of store.Store, on
// modernc.org/sqlite (pure Go, no cgo). It is the store of a single host:
// `store.dsn: sqlite:PATH`.
//
// The database runs in WAL mode with a busy timeout, foreign keys on and
// immediate transactions. Every write goes through one connection (a pool of
// one), reads through a separate read-only pool, so writers queue in the
// process instead of spinning on SQLITE_BUSY, and a second process on the
// same file (`nxtcron run` beside `nxtcron serve`) waits on the busy timeout.
//
// Clock: "the database's now" is SQLite's strftime('now'), which is the host
// clock; with one host there is no skew to correct. Each write transaction
// reads it once, after it holds the write lock, and computes leases and
// cut-offs from it in SQL, as the Postgres store does with now(). Times are
// stored as UTC text with millisecond precision ('YYYY-MM-DDTHH:MM:SS.SSSZ');
// times passed in are truncated to the millisecond.
//
// Only one `nxtcron serve` may use a file: it holds Lock for its lifetime.
// Migrate takes a second lock file (PATH.migrate.lock) while it applies
// migrations, so that two processes never apply the same migration twice.
package sqlite
