-- The first schema of the nxtcron store, for Postgres.
--
-- The same tables as migrations/sqlite/00001_initial.sql, with Postgres
-- types: bigint for INTEGER ids and tokens, integer for counts, boolean for
-- the 0/1 flags, text, bytea for BLOB, jsonb for options, and timestamptz
-- for every time. Durations are integer milliseconds (catchup_ms).
--
-- Names are unqualified: the store applies this file with the configured
-- schema (store.schema, default nxtcron) first on the search_path of the
-- migration's transaction (SET LOCAL), so every object lands in it. To
-- apply it by hand: SET search_path TO nxtcron; then run the file.

-- +goose Up

-- One row per job a replica has registered (SyncJob).
CREATE TABLE jobs (
    name              text        NOT NULL PRIMARY KEY,
    schedule_hash     text        NOT NULL,
    definition_hash   text        NOT NULL,
    overlap           text        NOT NULL,               -- skip | allow
    catchup_ms        bigint      NOT NULL,
    scheduled_through timestamptz NOT NULL,               -- every slot at or before it is settled
    paused            boolean     NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL
);

-- One row per slot record: a claimed slot (running or finished), a skipped
-- slot, or a gap of missed slots (slot = the gap's first, missed_last its
-- last, missed_count how many).
CREATE TABLE slots (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job           text        NOT NULL REFERENCES jobs (name),
    slot          timestamptz NOT NULL,
    trigger       text        NOT NULL,                   -- schedule | catchup | manual
    status        text        NOT NULL,                   -- running | succeeded | failed | interrupted | skipped | missed
    attempts      integer     NOT NULL DEFAULT 0,         -- attempts started so far
    fence         bigint,                                 -- the current attempt's fencing token; NULL without attempts
    owner         text        NOT NULL DEFAULT '',        -- the replica of the current attempt
    error         text        NOT NULL DEFAULT '',
    rows          bigint      NOT NULL DEFAULT 0,
    options       jsonb       NOT NULL DEFAULT '{}',      -- store.RunOptions
    released      boolean     NOT NULL DEFAULT false,     -- interrupted and waiting for TakeOver
    created_at    timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    missed_last   timestamptz,
    missed_count  integer     NOT NULL DEFAULT 0
);

-- A slot is recorded once; manual slots (claimed at now) never collide.
CREATE UNIQUE INDEX slots_job_slot_unique ON slots (job, slot) WHERE trigger <> 'manual';
-- Slots(job), the overlap check and newest-first listings.
CREATE INDEX slots_job_slot ON slots (job, slot);
-- Slots() over every job, and Prune.
CREATE INDEX slots_slot ON slots (slot);
-- TakeOver's candidates: running slots and released interrupted ones.
CREATE INDEX slots_open ON slots (job) WHERE status = 'running' OR released;

-- One row per attempt of a slot. The fencing token identifies the attempt.
CREATE TABLE attempts (
    fence        bigint      NOT NULL PRIMARY KEY,
    slot_id      bigint      NOT NULL REFERENCES slots (id) ON DELETE CASCADE,
    attempt      integer     NOT NULL,                    -- 1 for the first
    run_id       text        NOT NULL,                    -- uuid
    owner        text        NOT NULL,
    status       text        NOT NULL,                    -- running | succeeded | failed | interrupted | lost
    error        text        NOT NULL DEFAULT '',
    rows         bigint      NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    lease_until  timestamptz NOT NULL,
    UNIQUE (slot_id, attempt)
);

-- Running() and the overlap check ("a live attempt of the job").
CREATE INDEX attempts_running ON attempts (slot_id) WHERE status = 'running';

-- The store-wide fencing sequence: every claim, retry and takeover draws
-- from it, so tokens only grow (gaps are harmless).
CREATE SEQUENCE fence_sequence AS bigint START WITH 1;

-- The incremental cursor of each (job, company). No foreign key to jobs: an
-- operator may set a watermark before the job was ever registered. value is
-- compared bytewise (COLLATE "C"), like SQLite's text comparison.
CREATE TABLE watermarks (
    job        text        NOT NULL,
    company    bigint      NOT NULL,
    value      text        COLLATE "C" NOT NULL,          -- server local time text
    keys       bytea,                                     -- opaque JSON of keys inside the lookback
    fence      bigint      NOT NULL DEFAULT 0,            -- the token that committed it; 0 when set by hand
    run_id     text        NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (job, company)
);

-- A connection's tokens; every token is ciphertext.
CREATE TABLE tokens (
    connection         text        NOT NULL PRIMARY KEY,
    access_cipher      bytea,
    access_hash        text,                              -- hex SHA-256 of the clear access token
    access_expiry      timestamptz,
    refresh_cipher     bytea,
    generation         bigint      NOT NULL DEFAULT 0,
    lease_owner        text        NOT NULL DEFAULT '',
    lease_until        timestamptz,
    refresh_expires_at timestamptz,
    status             text        NOT NULL DEFAULT '',   -- '' | ok | needs_reenroll
    status_message     text        NOT NULL DEFAULT '',
    updated_at         timestamptz NOT NULL
);
