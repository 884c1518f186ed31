-- Refresh-token rotation, enrollment and encryption keys (store.TokenStore).
-- Additive: the previous version keeps running on this schema. Types map to
-- migrations/postgres as in 00001 (TEXT times -> timestamptz, BLOB -> bytea).

-- +goose Up

-- When the refresh token last changed (rotation or enrollment); the
-- keepalive counts from it.
ALTER TABLE tokens ADD COLUMN refreshed_at TEXT;
-- When a person enrolled the current chain, and who (e-mail or subject;
-- '' when an operator imported the token).
ALTER TABLE tokens ADD COLUMN enrolled_at TEXT;
ALTER TABLE tokens ADD COLUMN enrolled_as TEXT NOT NULL DEFAULT '';

-- The key check: a known value sealed with the encryption key, so that a
-- start with a wrong key is refused before it writes anything. One row.
CREATE TABLE token_key_check (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    cipher     BLOB    NOT NULL,
    updated_at TEXT    NOT NULL
);

-- Single-use markers: enrollment links and sessions already used, kept
-- until they expire.
CREATE TABLE token_used_once (
    id         TEXT NOT NULL PRIMARY KEY,
    expires_at TEXT NOT NULL,
    used_at    TEXT NOT NULL
);
CREATE INDEX token_used_once_expires ON token_used_once (expires_at);
