package postgres

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// The store's SQL. Every statement is a constant; values are always bound
// parameters ($1, ...), each cast where Postgres could not infer its type
// (QueryExecModeExec sends parameters untyped). {schema} stands for the
// store's schema, quoted, and is the only text ever substituted: newQueries
// does it once, at Open. now() is the transaction's start, the one clock
// every lease and cut-off is computed from.

// sqlMillis turns a bigint parameter of milliseconds into an interval.
const sqlMillis = ` * interval '1 millisecond'`

// Jobs.

const qJobColumns = `name, schedule_hash, definition_hash, overlap, catchup_ms, scheduled_through, paused, updated_at`

const sqlJob = `SELECT ` + qJobColumns + ` FROM {schema}.jobs WHERE name = $1::text`

const sqlJobForUpdate = sqlJob + ` FOR UPDATE`

const sqlJobs = `SELECT ` + qJobColumns + ` FROM {schema}.jobs ORDER BY name`

// sqlSyncJob registers a job; a changed schedule hash restarts the schedule
// from now().
const sqlSyncJob = `
INSERT INTO {schema}.jobs AS j (name, schedule_hash, definition_hash, overlap, catchup_ms, scheduled_through, paused, updated_at)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, now(), false, now())
ON CONFLICT (name) DO UPDATE SET
    scheduled_through = CASE WHEN j.schedule_hash = excluded.schedule_hash
                             THEN j.scheduled_through ELSE excluded.scheduled_through END,
    schedule_hash     = excluded.schedule_hash,
    definition_hash   = excluded.definition_hash,
    overlap           = excluded.overlap,
    catchup_ms        = excluded.catchup_ms,
    updated_at        = excluded.updated_at
RETURNING ` + qJobColumns

const sqlSetPaused = `UPDATE {schema}.jobs SET paused = $2::boolean, updated_at = now() WHERE name = $1::text`

const sqlSetScheduledThrough = `
UPDATE {schema}.jobs SET scheduled_through = $2::timestamptz, updated_at = now() WHERE name = $1::text
RETURNING ` + qJobColumns

// sqlLockJobs locks the rows of the named jobs, in name order (so that two
// transactions locking several never deadlock).
const sqlLockJobs = `SELECT name FROM {schema}.jobs WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE`

// Slots and attempts.

// sqlInsertSlot records a slot; a claim then points it at its first
// attempt. A NULL slot ($2) is now() (manual runs); $7 says whether the
// record is finished at once (skipped, missed).
const sqlInsertSlot = `
INSERT INTO {schema}.slots (job, slot, trigger, status, error, options, created_at, finished_at, missed_last, missed_count)
VALUES ($1::text, COALESCE($2::timestamptz, now()), $3::text, $4::text, $5::text, $6::jsonb, now(),
        CASE WHEN $7::boolean THEN now() END, $8::timestamptz, $9::integer)
RETURNING id`

// sqlStartAttempt starts attempt $2 of slot $1 for owner $3 in one
// statement: it draws the next fencing token, inserts the attempt with
// lease_until = now() + $5 ms, makes it the slot's current attempt, and
// returns what a Claim reports.
const sqlStartAttempt = `
WITH f AS (
    SELECT nextval('{schema}.fence_sequence') AS fence
), a AS (
    INSERT INTO {schema}.attempts (fence, slot_id, attempt, run_id, owner, status, started_at, lease_until)
    SELECT f.fence, $1::bigint, $2::integer, $4::text, $3::text, 'running', now(), now() + $5::bigint` + sqlMillis + `
    FROM f
    RETURNING fence
), s AS (
    UPDATE {schema}.slots SET status = 'running', fence = (SELECT fence FROM a), attempts = $2::integer,
        owner = $3::text, released = false, started_at = COALESCE(started_at, now()), finished_at = NULL
    WHERE id = $1::bigint
    RETURNING job, slot, trigger, options
)
SELECT a.fence, s.job, s.slot, s.trigger, s.options FROM a, s`

// sqlLiveAttempt finds an attempt of job $1 that holds a live lease (the
// overlap check).
const sqlLiveAttempt = `
SELECT a.owner, s.slot, a.attempt, a.run_id, a.lease_until
FROM {schema}.attempts a JOIN {schema}.slots s ON s.id = a.slot_id
WHERE s.job = $1::text AND a.status = 'running' AND a.lease_until > now()
ORDER BY a.started_at, a.fence
LIMIT 1`

// sqlCurrentAttempt finds the attempt holding fence $1 if it is its slot's
// current attempt and still running, and locks the slot's row (FOR UPDATE
// or FOR SHARE is appended); no row means the fence is stale. A concurrent
// takeover or finish that changed the row first is seen once its
// transaction ends (Postgres re-checks the locked row).
const sqlCurrentAttempt = `
SELECT s.id, s.job, a.attempt, a.owner, a.run_id
FROM {schema}.slots s JOIN {schema}.attempts a ON a.fence = s.fence
WHERE a.fence = $1::bigint AND a.status = 'running' AND s.fence = $1::bigint AND s.status = 'running'`

const sqlCurrentAttemptForUpdate = sqlCurrentAttempt + ` FOR UPDATE OF s`

const sqlCurrentAttemptForShare = sqlCurrentAttempt + ` FOR SHARE OF s`

// sqlHeartbeat extends the lease of the attempt holding fence $1. An
// attempt that lost its claim meanwhile is not updated (Postgres re-checks
// status after waiting for the row).
const sqlHeartbeat = `
UPDATE {schema}.attempts a SET lease_until = now() + $2::bigint` + sqlMillis + `
WHERE a.fence = $1::bigint AND a.status = 'running'
  AND EXISTS (SELECT 1 FROM {schema}.slots s WHERE s.id = a.slot_id AND s.fence = $1::bigint AND s.status = 'running')`

// sqlEndAttempt records how the attempt holding fence $1 ended.
const sqlEndAttempt = `
UPDATE {schema}.attempts SET status = $2::text, error = $3::text, rows = $4::bigint, finished_at = now()
WHERE fence = $1::bigint`

// sqlEndSlot records how a slot ended; an interrupted slot is released for
// TakeOver.
const sqlEndSlot = `
UPDATE {schema}.slots SET status = $2::text, error = $3::text, rows = $4::bigint, finished_at = now(),
    released = ($2::text = 'interrupted')
WHERE id = $1::bigint`

const sqlSetSlotError = `UPDATE {schema}.slots SET error = $2::text WHERE id = $1::bigint`

// sqlTakeOverCandidates lists the slots of the jobs in $1 (names) whose
// stored definition hash is the matching element of $2, whose attempt's
// lease expired or that were released interrupted, oldest first, with
// whether the slot is older than its job's catchup.
const sqlTakeOverCandidates = `
SELECT s.id, s.job, s.slot, s.status, s.attempts, s.fence, j.overlap,
    s.slot < now() - j.catchup_ms` + sqlMillis + ` AS too_old
FROM {schema}.slots s
JOIN {schema}.jobs j ON j.name = s.job
JOIN unnest($1::text[], $2::text[]) AS r (job, hash) ON r.job = s.job AND r.hash = j.definition_hash
JOIN {schema}.attempts a ON a.fence = s.fence
WHERE (s.status = 'running' OR s.released) -- the predicate of index slots_open
  AND ((s.status = 'running' AND a.status = 'running' AND a.lease_until < now())
    OR (s.status = 'interrupted' AND s.released))
ORDER BY s.slot, s.id`

// sqlTakeOverCandidatesForUpdate is the same list with the slot rows
// locked; Postgres re-checks each row that changed while it waited.
const sqlTakeOverCandidatesForUpdate = sqlTakeOverCandidates + ` FOR UPDATE OF s`

// sqlLoseAttempt ends an attempt whose lease expired and whose claim is
// taken from it. No row: a heartbeat renewed the lease meanwhile.
const sqlLoseAttempt = `
UPDATE {schema}.attempts SET status = 'lost', error = $2::text, finished_at = now()
WHERE fence = $1::bigint AND status = 'running' AND lease_until < now()`

// sqlAbandonSlot marks a slot interrupted for good.
const sqlAbandonSlot = `
UPDATE {schema}.slots SET status = 'interrupted', released = false, error = $2::text,
    finished_at = COALESCE(finished_at, now())
WHERE id = $1::bigint`

// Slot records.

const qSlotColumns = `
s.id, s.job, s.slot, s.trigger, s.status, s.attempts, COALESCE(s.fence, 0), s.owner, s.error, s.rows,
s.options, s.created_at, s.started_at, s.finished_at,
CASE WHEN s.status = 'running' THEN a.lease_until END, s.missed_last, s.missed_count`

// sqlSlots lists slot records newest first; an empty $1 means every job,
// an empty $2 every status.
const sqlSlots = `
SELECT ` + qSlotColumns + `
FROM {schema}.slots s LEFT JOIN {schema}.attempts a ON a.fence = s.fence
WHERE ($1::text = '' OR s.job = $1::text)
  AND (cardinality($2::text[]) = 0 OR s.status = ANY($2::text[]))
ORDER BY s.slot DESC, s.id DESC
LIMIT $3::integer`

const sqlSlotExists = `SELECT EXISTS (SELECT 1 FROM {schema}.slots WHERE id = $1::bigint)`

// sqlSecondTaken: does the job have a slot record within [$2, $2 + 1s)?
const sqlSecondTaken = `SELECT EXISTS (SELECT 1 FROM {schema}.slots
WHERE job = $1 AND slot >= $2::timestamptz AND slot < $2::timestamptz + interval '1 second')`

const qAttemptColumns = `
a.slot_id, s.job, s.slot, s.trigger, a.attempt, a.fence, a.run_id, a.owner, a.status, a.error, a.rows,
a.started_at, a.finished_at, a.lease_until`

const sqlAttempts = `
SELECT ` + qAttemptColumns + `
FROM {schema}.attempts a JOIN {schema}.slots s ON s.id = a.slot_id
WHERE a.slot_id = $1::bigint
ORDER BY a.attempt`

const sqlRunning = `
SELECT ` + qAttemptColumns + `
FROM {schema}.attempts a JOIN {schema}.slots s ON s.id = a.slot_id
WHERE a.status = 'running'
ORDER BY s.job, s.slot, a.fence`

// sqlPrune deletes slot records (their attempts cascade) older than now()
// minus $1 ms, except running ones.
const sqlPrune = `
DELETE FROM {schema}.slots
WHERE slot < now() - $1::bigint` + sqlMillis + ` AND status <> 'running'`

// Watermarks.

const qWatermarkColumns = `job, company, value, keys, fence, run_id, updated_at`

const sqlWatermark = `SELECT ` + qWatermarkColumns + ` FROM {schema}.watermarks WHERE job = $1::text AND company = $2::bigint`

const sqlWatermarks = `
SELECT ` + qWatermarkColumns + ` FROM {schema}.watermarks
WHERE ($1::text = '' OR job = $1::text)
ORDER BY job, company`

// sqlCommitWatermark stores a watermark unless it would move the stored
// value backwards (bytewise: COLLATE "C").
const sqlCommitWatermark = `
INSERT INTO {schema}.watermarks AS w (job, company, value, keys, fence, run_id, updated_at)
VALUES ($1::text, $2::bigint, $3::text, $4::bytea, $5::bigint, $6::text, now())
ON CONFLICT (job, company) DO UPDATE SET
    value = excluded.value, keys = excluded.keys, fence = excluded.fence,
    run_id = excluded.run_id, updated_at = excluded.updated_at
WHERE excluded.value COLLATE "C" >= w.value COLLATE "C"`

const sqlSetWatermark = `
INSERT INTO {schema}.watermarks (job, company, value, keys, fence, run_id, updated_at)
VALUES ($1::text, $2::bigint, $3::text, $4::bytea, $5::bigint, $6::text, now())
ON CONFLICT (job, company) DO UPDATE SET
    value = excluded.value, keys = excluded.keys, fence = excluded.fence,
    run_id = excluded.run_id, updated_at = excluded.updated_at`

const sqlResetWatermarks = `
DELETE FROM {schema}.watermarks
WHERE job = $1::text AND ($2::boolean OR company = $3::bigint)`

// Migrations.

// sqlSchemaExists tells whether schema $1 exists.
const sqlSchemaExists = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1::text)`

// sqlCreateSchema creates the store's schema.
const sqlCreateSchema = `CREATE SCHEMA IF NOT EXISTS {schema}`

// sqlVersionTableExists tells whether goose's version table exists.
const sqlVersionTableExists = `SELECT to_regclass('{schema}.` + versionTable + `') IS NOT NULL`

// sqlMigrationSearchPath puts the schema first on the search_path of one
// migration's transaction.
const sqlMigrationSearchPath = `SET LOCAL search_path TO {schema}, pg_catalog`

// queries holds every statement with the schema filled in.
type queries struct {
	job, jobForUpdate, jobs, syncJob, setPaused, setScheduledThrough, lockJobs string

	insertSlot, startAttempt, liveAttempt                string
	currentAttemptForUpdate, currentAttemptForShare      string
	heartbeat, endAttempt, endSlot, setSlotError         string
	takeOverCandidates, takeOverCandidatesForUpdate      string
	loseAttempt, abandonSlot                             string
	slots, slotExists, attempts, running, prune          string
	secondTaken                                          string
	watermark, watermarks, commitWatermark, setWatermark string
	resetWatermarks                                      string
	schemaExists, createSchema, versionTableExists       string
	migrationSearchPath                                  string
}

// newQueries fills the quoted schema into every statement.
func newQueries(schema string) queries {
	sub := subSchema(schema)
	return queries{
		job: sub(sqlJob), jobForUpdate: sub(sqlJobForUpdate), jobs: sub(sqlJobs), syncJob: sub(sqlSyncJob),
		setPaused: sub(sqlSetPaused), setScheduledThrough: sub(sqlSetScheduledThrough), lockJobs: sub(sqlLockJobs),

		insertSlot: sub(sqlInsertSlot), startAttempt: sub(sqlStartAttempt), liveAttempt: sub(sqlLiveAttempt),
		currentAttemptForUpdate: sub(sqlCurrentAttemptForUpdate), currentAttemptForShare: sub(sqlCurrentAttemptForShare),
		heartbeat: sub(sqlHeartbeat), endAttempt: sub(sqlEndAttempt), endSlot: sub(sqlEndSlot), setSlotError: sub(sqlSetSlotError),
		takeOverCandidates: sub(sqlTakeOverCandidates), takeOverCandidatesForUpdate: sub(sqlTakeOverCandidatesForUpdate),
		loseAttempt: sub(sqlLoseAttempt), abandonSlot: sub(sqlAbandonSlot),
		slots: sub(sqlSlots), slotExists: sub(sqlSlotExists), secondTaken: sub(sqlSecondTaken), attempts: sub(sqlAttempts), running: sub(sqlRunning), prune: sub(sqlPrune),
		watermark: sub(sqlWatermark), watermarks: sub(sqlWatermarks), commitWatermark: sub(sqlCommitWatermark),
		setWatermark: sub(sqlSetWatermark), resetWatermarks: sub(sqlResetWatermarks),
		schemaExists: sqlSchemaExists, createSchema: sub(sqlCreateSchema), versionTableExists: sub(sqlVersionTableExists),
		migrationSearchPath: sub(sqlMigrationSearchPath),
	}
}

// subSchema returns a function that fills the quoted schema into a
// statement.
func subSchema(schema string) func(string) string {
	quoted := pgx.Identifier{schema}.Sanitize()
	return func(sql string) string { return strings.ReplaceAll(sql, "{schema}", quoted) }
}
