// Package store defines the durable state of nxtcron: jobs and their
// schedules, slot records and attempts with fencing tokens, watermarks, and
// connection tokens. store/sqlite and store/postgres implement it, and
// store/storetest is the conformance suite both pass.
//
// Every time the store compares against "now" (leases, expiries, pruning) it
// uses the database's clock, never the caller's, so replicas with different
// clocks agree.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors the store returns; match with errors.Is.
var (
	// ErrNotFound: the row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrFenced: the fencing token is no longer the slot's current one (another
	// replica took the slot over, or the attempt already finished). Whoever
	// gets it must not commit anything.
	ErrFenced = errors.New("fencing token superseded")
	// ErrBusy: a manual claim found the job running and its overlap is skip.
	ErrBusy = errors.New("job is running")
	// ErrConflict: the stored definition hash differs from the caller's.
	ErrConflict = errors.New("job definition differs from the stored one")
)

// Store is the daemon's durable state. Implementations are safe for
// concurrent use by many goroutines and (for Postgres) many processes.
type Store interface {
	// Now returns the database's current time; the scheduler measures its
	// clock offset against it.
	Now(ctx context.Context) (time.Time, error)
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
	// Migrate applies pending migrations (serve does unless store.migrate
	// is off; `nxtcron migrate up` does it explicitly).
	Migrate(ctx context.Context) error
	// Migrations lists every known migration and whether it is applied;
	// /readyz is ready only when all are.
	Migrations(ctx context.Context) ([]Migration, error)

	// SyncJob registers a job definition (called at start and on reload). A
	// job seen for the first time gets scheduled_through = now. When
	// ScheduleHash differs from the stored one, scheduled_through is set to
	// now (the new schedule starts from the change). The stored
	// DefinitionHash becomes def's. Returns the state after the update.
	SyncJob(ctx context.Context, def JobDef) (JobState, error)
	// Job returns one job's state.
	Job(ctx context.Context, name string) (JobState, error)
	// Jobs returns every registered job's state, by name.
	Jobs(ctx context.Context) ([]JobState, error)
	// SetPaused pauses or resumes a job; a paused job's slots are recorded
	// skipped (trigger as usual, error "paused").
	SetPaused(ctx context.Context, job string, paused bool) error

	// Settle advances a job's schedule in one transaction. The store locks
	// the job's row, calls plan with its current state (plan must not do
	// I/O), and applies the returned plan: it inserts the missed gaps, claims
	// plan.Claim (or records it skipped when the job's overlap is skip and
	// another attempt of the job holds a live lease, or when the job is
	// paused), and sets scheduled_through = plan.Through. If the stored
	// DefinitionHash differs from plan.DefinitionHash, nothing changes and
	// ErrConflict is returned. A plan with Through not after
	// scheduled_through changes nothing.
	Settle(ctx context.Context, job string, plan func(JobState) (SettlePlan, error)) (SettleResult, error)
	// ClaimManual claims a manual slot at the database's now (trigger
	// manual). With overlap skip and a live attempt of the job it returns an
	// error wrapping ErrBusy whose message names the owner.
	ClaimManual(ctx context.Context, req ManualClaim) (Claim, error)
	// TakeOver claims, as new attempts with new fencing tokens, the slots of
	// the given jobs whose attempt's lease expired or that were released
	// interrupted, provided the slot is no older than the job's catchup
	// (older ones are marked interrupted for good). At most limit claims.
	TakeOver(ctx context.Context, req TakeOverRequest) ([]Claim, error)
	// Heartbeat extends the lease of the attempt holding fence to now() +
	// lease. ErrFenced when fence is no longer current.
	Heartbeat(ctx context.Context, fence int64, lease time.Duration) error
	// Retry starts the next attempt of the slot held by fence (after a
	// failed attempt, within the job's retry policy): the old attempt is
	// recorded failed with errMsg and a new attempt with a new fencing token
	// takes the claim. ErrFenced when fence is no longer current.
	Retry(ctx context.Context, fence int64, errMsg string, lease time.Duration) (Claim, error)
	// Finish records the outcome of the attempt holding fence and of its
	// slot. With StatusInterrupted the claim is released so that TakeOver
	// can start a new attempt at once. ErrFenced when fence is no longer
	// current.
	Finish(ctx context.Context, fence int64, out Outcome) error

	// Slots lists slot records, newest first.
	Slots(ctx context.Context, f SlotFilter) ([]Slot, error)
	// Attempts lists the attempts of one slot, oldest first.
	Attempts(ctx context.Context, slotID int64) ([]Attempt, error)
	// Running lists the attempts that hold a claim now (status running),
	// with their lease as the database sees it.
	Running(ctx context.Context) ([]Attempt, error)
	// Prune deletes slot records (and their attempts) whose slot time is
	// older than the database's now minus olderThan, except running ones.
	Prune(ctx context.Context, olderThan time.Duration) (int, error)

	// Watermark returns the watermark of (job, company); ErrNotFound if none.
	Watermark(ctx context.Context, job string, company int64) (Watermark, error)
	// Watermarks lists a job's watermarks ("" = every job), by job and company.
	Watermarks(ctx context.Context, job string) ([]Watermark, error)
	// CommitWatermark stores wm if fence is the current fencing token of a
	// running attempt (else ErrFenced) and wm.Value does not move the stored
	// value backwards (a backwards value keeps the stored value and returns
	// nil: watermarks move forward only).
	CommitWatermark(ctx context.Context, fence int64, wm Watermark) error
	// SetWatermark stores wm unconditionally (an operator's explicit set).
	SetWatermark(ctx context.Context, wm Watermark) error
	// ResetWatermarks deletes the watermarks of job (one company when company
	// is non-nil) and returns how many were deleted.
	ResetWatermarks(ctx context.Context, job string, company *int64) (int, error)

	// Token returns a connection's token record; ErrNotFound if none.
	Token(ctx context.Context, connection string) (TokenRecord, error)
	// PutAccessToken caches an (encrypted) access token for a connection,
	// creating the record if needed.
	PutAccessToken(ctx context.Context, connection string, tok AccessToken) error
	// InvalidateAccessToken forgets the cached access token only if its hash
	// is still hash (a 401 for an old token must not evict a newer one).
	InvalidateAccessToken(ctx context.Context, connection, hash string) error
}

// Migration is one schema migration's state.
type Migration struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt *time.Time
}

// JobDef is what a replica knows of a job when it registers it.
type JobDef struct {
	Name           string
	ScheduleHash   string
	DefinitionHash string
	Overlap        string        // "skip" | "allow"
	Catchup        time.Duration // how old a slot may be and still run
}

// JobState is a job's durable scheduling state.
type JobState struct {
	Name             string
	ScheduleHash     string
	DefinitionHash   string
	Overlap          string
	Catchup          time.Duration
	ScheduledThrough time.Time // every slot at or before it is settled
	Paused           bool
	UpdatedAt        time.Time
}

// Triggers of a slot.
const (
	TriggerSchedule = "schedule"
	TriggerCatchup  = "catchup"
	TriggerManual   = "manual"
)

// Slot and attempt statuses.
const (
	StatusRunning     = "running"
	StatusSucceeded   = "succeeded"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
	StatusSkipped     = "skipped"
	StatusMissed      = "missed"
	// StatusLost is an attempt whose claim another replica took over.
	StatusLost = "lost"
)

// SettlePlan is what the scheduler decided for the slots in
// (ScheduledThrough, Through].
type SettlePlan struct {
	Through        time.Time
	DefinitionHash string
	// Missed gaps, each becoming one slot record with status missed.
	Missed []Gap
	// Claim is the slot to run, if any.
	Claim *NewClaim
}

// Gap is a run of consecutive slots that will not run.
type Gap struct {
	First, Last time.Time
	Count       int
}

// NewClaim asks for a slot to be claimed.
type NewClaim struct {
	Slot    time.Time
	Trigger string
	Owner   string        // the replica's id
	Lease   time.Duration // lease_until = now() + Lease
	Options RunOptions
}

// RunOptions are the options of a manual run, recorded with its slot.
type RunOptions struct {
	Company *int64 `json:"company,omitempty"`
	Full    bool   `json:"full,omitempty"`
	Force   bool   `json:"force,omitempty"`
}

// SettleResult tells the scheduler what Settle did.
type SettleResult struct {
	// Claim is set when the plan's claim was taken.
	Claim *Claim
	// Skipped is set when the plan's claim was recorded skipped; Reason
	// says why (running elsewhere, paused).
	Skipped bool
	Reason  string
	// Missed is how many slots were recorded missed.
	Missed int
	State  JobState
}

// ManualClaim asks for a manual slot.
type ManualClaim struct {
	Job            string
	DefinitionHash string
	Owner          string
	Lease          time.Duration
	Options        RunOptions
}

// TakeOverRequest asks for abandoned slots of the given jobs.
type TakeOverRequest struct {
	Owner string
	Lease time.Duration
	// Jobs maps each job this replica runs to its definition hash; slots of
	// jobs whose stored hash differs are left alone.
	Jobs  map[string]string
	Limit int
}

// Claim is a slot held by one attempt.
type Claim struct {
	SlotID  int64
	Job     string
	Slot    time.Time
	Trigger string
	Attempt int   // 1 for the first attempt
	Fence   int64 // store-wide increasing fencing token
	RunID   string
	Owner   string
	Options RunOptions
}

// Outcome is how an attempt ended.
type Outcome struct {
	Status string // succeeded | failed | interrupted
	Error  string
	Rows   int64
}

// SlotFilter selects slot records.
type SlotFilter struct {
	Job      string   // "" = every job
	Statuses []string // empty = every status
	Limit    int      // 0 = 100
}

// Slot is a slot record.
type Slot struct {
	ID         int64
	Job        string
	Slot       time.Time
	Trigger    string
	Status     string
	Attempts   int
	Fence      int64
	Owner      string
	Error      string
	Rows       int64
	Options    RunOptions
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	LeaseUntil *time.Time
	// Missed records carry their gap; Slot is then the gap's first slot.
	MissedLast  *time.Time
	MissedCount int
}

// Attempt is one attempt of a slot.
type Attempt struct {
	SlotID     int64
	Job        string
	Slot       time.Time
	Trigger    string
	Attempt    int
	Fence      int64
	RunID      string
	Owner      string
	Status     string
	Error      string
	Rows       int64
	StartedAt  time.Time
	FinishedAt *time.Time
	LeaseUntil time.Time
}

// Watermark is the incremental cursor of one (job, company).
type Watermark struct {
	Job     string
	Company int64
	// Value is the greatest incremental field value committed, as the
	// server wrote it (server local DateTime text, fixed width, so that
	// values compare as strings).
	Value string
	// Keys is the pipeline's record of rows already delivered inside the
	// lookback window (opaque JSON), used to drop repeats.
	Keys      []byte
	Fence     int64
	RunID     string
	UpdatedAt time.Time
}

// TokenRecord is a connection's stored tokens; every token is ciphertext.
type TokenRecord struct {
	Connection string
	Access     *AccessToken
	// Refresh-token rotation state (grant refresh_token).
	RefreshCipher    []byte
	Generation       int64
	LeaseOwner       string
	LeaseUntil       *time.Time
	RefreshExpiresAt *time.Time
	Status           string // "" | "ok" | "needs_reenroll"
	StatusMessage    string
	UpdatedAt        time.Time
}

// AccessToken is a cached access token.
type AccessToken struct {
	Cipher []byte
	Hash   string // hex SHA-256 of the clear token, for 401 handling
	Expiry time.Time
}
