-- Refresh-token rotation, enrollment and encryption keys (store.TokenStore):
-- migrations/sqlite/00002_token_rotation.sql with Postgres types. Additive:
-- the previous version keeps running on this schema.

-- +goose Up

-- When the refresh token last changed (rotation or enrollment); the
-- keepalive counts from it.
ALTER TABLE tokens ADD COLUMN refreshed_at timestamptz;
-- When a person enrolled the current chain, and who (e-mail or subject;
-- '' when an operator imported the token).
ALTER TABLE tokens ADD COLUMN enrolled_at timestamptz;
ALTER TABLE tokens ADD COLUMN enrolled_as text NOT NULL DEFAULT '';

-- The key check: a known value sealed with the encryption key, so that a
-- start with a wrong key is refused before it writes anything. One row.
CREATE TABLE token_key_check (
    id         integer     NOT NULL PRIMARY KEY CHECK (id = 1),
    cipher     bytea       NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Single-use markers: enrollment links and sessions already used, kept
-- until they expire.
CREATE TABLE token_used_once (
    id         text        NOT NULL PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NOT NULL
);
CREATE INDEX token_used_once_expires ON token_used_once (expires_at);
