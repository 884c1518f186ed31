-- The first schema of the nxtcron store.
--
-- Types map 1:1 to migrations/postgres: INTEGER -> bigint (integer for
-- booleans and counts is fine too), TEXT -> text, BLOB -> bytea, options TEXT
-- holding JSON -> jsonb. Every column ending in _at or _until, and slot,
-- scheduled_through and missed_last, is a timestamp: here TEXT in UTC as
-- 'YYYY-MM-DDTHH:MM:SS.SSSZ' (fixed width, so text order is time order), in
-- Postgres timestamptz. Durations are integer milliseconds (catchup_ms).

-- +goose Up

-- One row per job a replica has registered (SyncJob).
CREATE TABLE jobs (
    name              TEXT    NOT NULL PRIMARY KEY,
    schedule_hash     TEXT    NOT NULL,
    definition_hash   TEXT    NOT NULL,
    overlap           TEXT    NOT NULL,              -- skip | allow
    catchup_ms        INTEGER NOT NULL,
    scheduled_through TEXT    NOT NULL,              -- every slot at or before it is settled
    paused            INTEGER NOT NULL DEFAULT 0,    -- 0 | 1 (boolean)
    updated_at        TEXT    NOT NULL
);

-- One row per slot record: a claimed slot (running or finished), a skipped
-- slot, or a gap of missed slots (slot = the gap's first, missed_last its
-- last, missed_count how many).
CREATE TABLE slots (
    id            INTEGER NOT NULL PRIMARY KEY,      -- Postgres: bigint generated always as identity
    job           TEXT    NOT NULL REFERENCES jobs (name),
    slot          TEXT    NOT NULL,
    trigger       TEXT    NOT NULL,                  -- schedule | catchup | manual
    status        TEXT    NOT NULL,                  -- running | succeeded | failed | interrupted | skipped | missed
    attempts      INTEGER NOT NULL DEFAULT 0,        -- attempts started so far
    fence         INTEGER,                           -- the current attempt's fencing token; NULL without attempts
    owner         TEXT    NOT NULL DEFAULT '',       -- the replica of the current attempt
    error         TEXT    NOT NULL DEFAULT '',
    rows          INTEGER NOT NULL DEFAULT 0,
    options       TEXT    NOT NULL DEFAULT '{}',     -- store.RunOptions as JSON
    released      INTEGER NOT NULL DEFAULT 0,        -- 1: interrupted and waiting for TakeOver
    created_at    TEXT    NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    missed_last   TEXT,
    missed_count  INTEGER NOT NULL DEFAULT 0
);

-- A slot is recorded once; manual slots (claimed at now) never collide.
CREATE UNIQUE INDEX slots_job_slot_unique ON slots (job, slot) WHERE trigger <> 'manual';
-- Slots(job), the overlap check and newest-first listings.
CREATE INDEX slots_job_slot ON slots (job, slot);
-- Slots() over every job, and Prune.
CREATE INDEX slots_slot ON slots (slot);
-- TakeOver's candidates: running slots and released interrupted ones.
CREATE INDEX slots_open ON slots (job) WHERE status = 'running' OR released = 1;

-- One row per attempt of a slot. The fencing token identifies the attempt.
CREATE TABLE attempts (
    fence        INTEGER NOT NULL PRIMARY KEY,
    slot_id      INTEGER NOT NULL REFERENCES slots (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,                   -- 1 for the first
    run_id       TEXT    NOT NULL,                   -- uuid
    owner        TEXT    NOT NULL,
    status       TEXT    NOT NULL,                   -- running | succeeded | failed | interrupted | lost
    error        TEXT    NOT NULL DEFAULT '',
    rows         INTEGER NOT NULL DEFAULT 0,
    started_at   TEXT    NOT NULL,
    finished_at  TEXT,
    lease_until  TEXT    NOT NULL,
    UNIQUE (slot_id, attempt)
);

-- Running() and the overlap check ("a live attempt of the job").
CREATE INDEX attempts_running ON attempts (slot_id) WHERE status = 'running';

-- The store-wide fencing sequence: one row, only ever incremented.
-- Postgres: a sequence (CREATE SEQUENCE fence_sequence).
CREATE TABLE fence_sequence (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO fence_sequence (id, value) VALUES (1, 0);

-- The incremental cursor of each (job, company). No foreign key to jobs: an
-- operator may set a watermark before the job was ever registered.
CREATE TABLE watermarks (
    job        TEXT    NOT NULL,
    company    INTEGER NOT NULL,
    value      TEXT    NOT NULL,                     -- server local time text; compared as text
    keys       BLOB,                                 -- opaque JSON of keys inside the lookback
    fence      INTEGER NOT NULL DEFAULT 0,           -- the token that committed it; 0 when set by hand
    run_id     TEXT    NOT NULL DEFAULT '',
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (job, company)
);

-- A connection's tokens; every token is ciphertext.
CREATE TABLE tokens (
    connection         TEXT    NOT NULL PRIMARY KEY,
    access_cipher      BLOB,
    access_hash        TEXT,                         -- hex SHA-256 of the clear access token
    access_expiry      TEXT,
    refresh_cipher     BLOB,
    generation         INTEGER NOT NULL DEFAULT 0,
    lease_owner        TEXT    NOT NULL DEFAULT '',
    lease_until        TEXT,
    refresh_expires_at TEXT,
    status             TEXT    NOT NULL DEFAULT '',  -- '' | ok | needs_reenroll
    status_message     TEXT    NOT NULL DEFAULT '',
    updated_at         TEXT    NOT NULL
);
