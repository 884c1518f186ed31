// Package migrations embeds the SQL migrations of the nxtcron store, one
// directory per database: migrations/sqlite (exposed as SQLite) and
// migrations/postgres. They are goose migrations
// (github.com/pressly/goose/v3), applied through goose's Provider by the
// stores' Migrate method, by `nxtcron serve` (unless store.migrate is off)
// and by `nxtcron migrate up`.
//
// Rules for writing one:
//
//   - Migrations are additive only: new tables, new nullable or defaulted
//     columns, new indexes. Never drop, rename or retype a column, and never
//     tighten a constraint in place, so that the previous release keeps
//     running against the migrated schema during a rolling deploy. There
//     are therefore no Down sections; going back means restoring a backup.
//   - A migration is never edited once released; fix forward with a new one.
//   - Files are named NNNNN_what.sql with a five-digit version, and every
//     version exists for both databases with the same meaning, so the two
//     schemas stay 1:1: INTEGER is bigint, TEXT is text, BLOB is bytea, JSON
//     text is jsonb, and the SQLite timestamps (UTC text,
//     'YYYY-MM-DDTHH:MM:SS.SSSZ') are timestamptz.
//   - Enumerations (statuses, triggers) are not CHECK constraints: a later
//     release must be able to add a value without rebuilding a SQLite table.
package migrations
