package jobs

import (
	"errors"
	"time"

	"github.com/nxtcron/nxtcron/sinks"
	"github.com/nxtcron/nxtcron/store"
)

// Job is a validated job file with every default applied.
type Job struct {
	Name        string
	Description string
	// File is the absolute path of the job file.
	File string

	// Schedule is the cron spec as written; Cron is its parsed form.
	Schedule string
	Cron     Schedule
	Location *time.Location

	// Connection is the name of the connection the job uses.
	Connection string
	// Companies is nil for "all" (availableCompanies), else the listed ids.
	Companies []int64

	// Query is the GraphQL document (from query or query_file).
	Query     string
	Variables map[string]any
	PageSize  int
	// Parallelism is how many companies are imported at once.
	Parallelism int
	// Paged is the analysed paged connection of Query.
	Paged PagedConnection

	Incremental *Incremental
	Sink        SinkSpec

	Timeout time.Duration
	Retry   Retry
	Overlap string // OverlapSkip | OverlapAllow
	Catchup time.Duration

	// ScheduleHash identifies (schedule, timezone): a change starts the job's
	// slot sequence again from the change.
	ScheduleHash string
	// DefinitionHash identifies the whole definition; replicas compare it.
	DefinitionHash string
}

// Overlap policies.
const (
	OverlapSkip  = "skip"
	OverlapAllow = "allow"
)

// Schedule is anything with Next: robfig/cron/v3 schedules, and the
// epoch-aligned @every schedule.
type Schedule interface {
	Next(time.Time) time.Time
}

// Retry is a job's retry policy; Attempts counts the first attempt.
type Retry struct {
	Attempts int
	Backoff  time.Duration
}

// Incremental configures watermark-driven imports.
type Incremental struct {
	Field          string
	Key            []string
	Lookback       time.Duration
	ServerTimezone *time.Location
}

// SinkSpec is a job's decoded and validated sink section.
type SinkSpec struct {
	Type   string
	Config sinks.Config
}

// PagedConnection is what the query analysis found about the paginated
// connection: where it is in the result and what its items select.
type PagedConnection struct {
	// Path is the dotted path from the data root to the connection, as in
	// "useCompany.associate".
	Path []string
	// Table is the connection's field name (the table), e.g. "associate".
	Table string
	// Fields are the top-level fields selected under items, in query order
	// (aliases win over names).
	Fields []string
	// Nested are the paths (relative to one item) of nested connections,
	// each of which must select pageInfo { hasNextPage }.
	Nested [][]string
	// UsesCompany reports whether the query declares $cid.
	UsesCompany bool
	// HasFilterVar reports whether the connection takes filter: $filter.
	HasFilterVar bool
}

// Attempt is one attempt of a slot as the scheduler hands it to the runner.
type Attempt struct {
	Claim store.Claim
	// Stop is closed when the daemon shuts down: the runner finishes its
	// in-flight request, starts no new page, and returns ErrInterrupted.
	// The context passed with the attempt is cancelled only after the
	// shutdown grace.
	Stop <-chan struct{}
}

// Result is what an attempt did.
type Result struct {
	Rows      int64
	Companies int
}

// ErrInterrupted is returned by a run that stopped early because the daemon
// is shutting down; the scheduler records the attempt interrupted.
var ErrInterrupted = errors.New("interrupted by shutdown")

// ErrPermanent marks failures a retry cannot fix (a rejected query, a
// connection that needs enrollment); the scheduler does not retry them.
var ErrPermanent = errors.New("permanent failure")
