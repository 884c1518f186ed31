package sqlite

// The store's SQL. Every statement is a constant; values are always bound
// parameters (@name). Times are UTC text in timeLayout, so that text order is
// time order; @now is the database's clock read once at the start of each
// write transaction (qNow), like Postgres's now(), and leases and cut-offs
// are computed from it in SQL with strftime's '+N.NNN seconds' modifiers.

// sqlTimeFormat is the strftime format of every stored time; it matches
// timeLayout.
const sqlTimeFormat = `'%Y-%m-%dT%H:%M:%fZ'`

// qNow reads the database's clock.
const qNow = `SELECT strftime(` + sqlTimeFormat + `, 'now')`

// sqlLeaseUntil is @now plus the @lease modifier.
const sqlLeaseUntil = `strftime(` + sqlTimeFormat + `, @now, @lease)`

// Jobs.

const qJobColumns = `name, schedule_hash, definition_hash, overlap, catchup_ms, scheduled_through, paused, updated_at`

const qJob = `SELECT ` + qJobColumns + ` FROM jobs WHERE name = @name`

const qJobs = `SELECT ` + qJobColumns + ` FROM jobs ORDER BY name`

// qSyncJob registers a job; a changed schedule hash restarts the schedule
// from @now.
const qSyncJob = `
INSERT INTO jobs (name, schedule_hash, definition_hash, overlap, catchup_ms, scheduled_through, paused, updated_at)
VALUES (@name, @schedule_hash, @definition_hash, @overlap, @catchup_ms, @now, 0, @now)
ON CONFLICT (name) DO UPDATE SET
    scheduled_through = CASE WHEN jobs.schedule_hash = excluded.schedule_hash
                             THEN jobs.scheduled_through ELSE excluded.scheduled_through END,
    schedule_hash     = excluded.schedule_hash,
    definition_hash   = excluded.definition_hash,
    overlap           = excluded.overlap,
    catchup_ms        = excluded.catchup_ms,
    updated_at        = excluded.updated_at`

const qSetPaused = `UPDATE jobs SET paused = @paused, updated_at = @now WHERE name = @name`

const qSetScheduledThrough = `UPDATE jobs SET scheduled_through = @through, updated_at = @now WHERE name = @name`

// Slots and attempts.

// qInsertSlot records a slot; a claim then points it at its first attempt.
const qInsertSlot = `
INSERT INTO slots (job, slot, trigger, status, error, options, created_at, finished_at, missed_last, missed_count)
VALUES (@job, @slot, @trigger, @status, @error, @options, @now, @finished_at, @missed_last, @missed_count)
RETURNING id`

// qNextFence draws the next fencing token.
const qNextFence = `UPDATE fence_sequence SET value = value + 1 WHERE id = 1 RETURNING value`

const qInsertAttempt = `
INSERT INTO attempts (fence, slot_id, attempt, run_id, owner, status, started_at, lease_until)
VALUES (@fence, @slot_id, @attempt, @run_id, @owner, 'running', @now, ` + sqlLeaseUntil + `)`

// qClaimSlot hands a slot to the attempt holding @fence.
const qClaimSlot = `
UPDATE slots SET status = 'running', fence = @fence, attempts = @attempt, owner = @owner,
    released = 0, started_at = COALESCE(started_at, @now), finished_at = NULL
WHERE id = @slot_id`

// qClaimedSlot reads what a Claim reports about a slot.
const qClaimedSlot = `SELECT job, slot, trigger, options FROM slots WHERE id = @slot_id`

// qLiveAttempt finds an attempt of @job that holds a live lease (the
// overlap check).
const qLiveAttempt = `
SELECT a.owner, s.slot, a.attempt, a.run_id, a.lease_until
FROM attempts a JOIN slots s ON s.id = a.slot_id
WHERE s.job = @job AND a.status = 'running' AND a.lease_until > @now
ORDER BY a.started_at, a.fence
LIMIT 1`

// qCurrentAttempt finds the attempt holding @fence if it is its slot's
// current attempt and still running; no row means the fence is stale.
const qCurrentAttempt = `
SELECT s.id, s.job, a.attempt, a.owner, a.run_id
FROM attempts a JOIN slots s ON s.id = a.slot_id
WHERE a.fence = @fence AND a.status = 'running' AND s.fence = @fence AND s.status = 'running'`

const qHeartbeat = `
UPDATE attempts SET lease_until = ` + sqlLeaseUntil + `
WHERE fence = @fence AND status = 'running'
  AND EXISTS (SELECT 1 FROM slots s WHERE s.id = attempts.slot_id AND s.fence = @fence AND s.status = 'running')`

// qEndAttempt records how the attempt holding @fence ended.
const qEndAttempt = `
UPDATE attempts SET status = @status, error = @error, rows = @rows, finished_at = @now
WHERE fence = @fence`

// qEndSlot records how a slot ended; an interrupted slot is released for
// TakeOver.
const qEndSlot = `
UPDATE slots SET status = @status, error = @error, rows = @rows, finished_at = @now,
    released = CASE WHEN @status = 'interrupted' THEN 1 ELSE 0 END
WHERE id = @slot_id`

const qSetSlotError = `UPDATE slots SET error = @error WHERE id = @slot_id`

// qTakeOverCandidates lists the slots of the jobs in @jobs (a JSON object of
// job name to definition hash; jobs whose stored hash differs are left
// alone) whose attempt's lease expired or that were released interrupted,
// oldest first, with whether the slot is older than its job's catchup.
const qTakeOverCandidates = `
SELECT s.id, s.job, s.slot, s.status, s.attempts, COALESCE(s.fence, 0), j.overlap,
    s.slot < strftime(` + sqlTimeFormat + `, @now, printf('-%.3f seconds', j.catchup_ms / 1000.0)) AS too_old
FROM slots s
JOIN jobs j ON j.name = s.job
JOIN json_each(@jobs) r ON r.key = s.job AND r.value = j.definition_hash
LEFT JOIN attempts a ON a.fence = s.fence
WHERE (s.status = 'running' OR s.released = 1) -- the predicate of index slots_open
  AND ((s.status = 'running' AND a.status = 'running' AND a.lease_until < @now)
    OR (s.status = 'interrupted' AND s.released = 1))
ORDER BY s.slot, s.id`

// qLoseAttempt ends an attempt whose claim was taken from it.
const qLoseAttempt = `
UPDATE attempts SET status = 'lost', error = @error, finished_at = @now
WHERE fence = @fence AND status = 'running'`

// qAbandonSlot marks a slot interrupted for good.
const qAbandonSlot = `
UPDATE slots SET status = 'interrupted', released = 0, error = @error, finished_at = COALESCE(finished_at, @now)
WHERE id = @slot_id`

// Slot records.

const qSlotColumns = `
s.id, s.job, s.slot, s.trigger, s.status, s.attempts, COALESCE(s.fence, 0), s.owner, s.error, s.rows,
s.options, s.created_at, s.started_at, s.finished_at,
CASE WHEN s.status = 'running' THEN a.lease_until END, s.missed_last, s.missed_count`

// qSlots lists slot records newest first; @statuses is a JSON array ([] for
// every status); an empty @job means every job.
const qSlots = `
SELECT ` + qSlotColumns + `
FROM slots s LEFT JOIN attempts a ON a.fence = s.fence
WHERE (@job = '' OR s.job = @job)
  AND (json_array_length(@statuses) = 0 OR s.status IN (SELECT value FROM json_each(@statuses)))
ORDER BY s.slot DESC, s.id DESC
LIMIT @limit`

const qSlotExists = `SELECT 1 FROM slots WHERE id = @slot_id`

const qAttemptColumns = `
a.slot_id, s.job, s.slot, s.trigger, a.attempt, a.fence, a.run_id, a.owner, a.status, a.error, a.rows,
a.started_at, a.finished_at, a.lease_until`

const qAttempts = `
SELECT ` + qAttemptColumns + `
FROM attempts a JOIN slots s ON s.id = a.slot_id
WHERE a.slot_id = @slot_id
ORDER BY a.attempt`

const qRunning = `
SELECT ` + qAttemptColumns + `
FROM attempts a JOIN slots s ON s.id = a.slot_id
WHERE a.status = 'running'
ORDER BY s.job, s.slot, a.fence`

// qPrune deletes slot records (their attempts cascade) older than @now plus
// the negative @age modifier, except running ones.
const qPrune = `
DELETE FROM slots
WHERE slot < strftime(` + sqlTimeFormat + `, @now, @age) AND status <> 'running'`

// Watermarks.

const qWatermarkColumns = `job, company, value, keys, fence, run_id, updated_at`

const qWatermark = `SELECT ` + qWatermarkColumns + ` FROM watermarks WHERE job = @job AND company = @company`

const qWatermarks = `
SELECT ` + qWatermarkColumns + ` FROM watermarks
WHERE (@job = '' OR job = @job)
ORDER BY job, company`

// qCommitWatermark stores a watermark unless it would move the stored value
// backwards (text order; Postgres compares with COLLATE "C").
const qCommitWatermark = `
INSERT INTO watermarks (job, company, value, keys, fence, run_id, updated_at)
VALUES (@job, @company, @value, @keys, @fence, @run_id, @now)
ON CONFLICT (job, company) DO UPDATE SET
    value = excluded.value, keys = excluded.keys, fence = excluded.fence,
    run_id = excluded.run_id, updated_at = excluded.updated_at
WHERE excluded.value >= watermarks.value`

const qSetWatermark = `
INSERT INTO watermarks (job, company, value, keys, fence, run_id, updated_at)
VALUES (@job, @company, @value, @keys, @fence, @run_id, @now)
ON CONFLICT (job, company) DO UPDATE SET
    value = excluded.value, keys = excluded.keys, fence = excluded.fence,
    run_id = excluded.run_id, updated_at = excluded.updated_at`

const qResetWatermarks = `
DELETE FROM watermarks
WHERE job = @job AND (@all = 1 OR company = @company)`

// Tokens.

const qToken = `
SELECT connection, access_cipher, access_hash, access_expiry, refresh_cipher, generation,
    lease_owner, lease_until, refresh_expires_at, status, status_message, updated_at
FROM tokens WHERE connection = @connection`

const qPutAccessToken = `
INSERT INTO tokens (connection, access_cipher, access_hash, access_expiry, updated_at)
VALUES (@connection, @cipher, @hash, @expiry, @now)
ON CONFLICT (connection) DO UPDATE SET
    access_cipher = excluded.access_cipher, access_hash = excluded.access_hash,
    access_expiry = excluded.access_expiry, updated_at = excluded.updated_at`

const qInvalidateAccessToken = `
UPDATE tokens SET access_cipher = NULL, access_hash = NULL, access_expiry = NULL, updated_at = @now
WHERE connection = @connection AND access_hash = @hash`
