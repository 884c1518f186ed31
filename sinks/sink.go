// Package sinks defines where imported rows go. A Sink is opened once per
// attempt of a job, gives a Writer per company, and a Writer either commits
// all of that company's rows (and, for sinks that keep it, the watermark) or
// none. One package per sink type lives below this one; the jobs package
// holds the explicit table of sink types.
package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Config is one sink type's decoded job section (the keys beside type). The
// jobs loader decodes the YAML strictly into it, then calls Validate.
type Config interface {
	// Validate checks the section against the job; every problem names the
	// key under sink (as in "path" or "key[1]").
	Validate(job JobInfo) []FieldError
	// Open makes the sink for one attempt.
	Open(ctx context.Context, env Env) (Sink, error)
}

// Type describes a sink type for the registry table.
type Type struct {
	Name string
	// New returns a pointer to a zero Config to decode into, with defaults
	// applied.
	New func() Config
}

// JobInfo is what sink validation may consult about its job.
type JobInfo struct {
	Name        string
	Incremental bool
	Key         []string // incremental key, if any
	Fields      []string // selected item fields
}

// FieldError is a validation problem at a key below sink.
type FieldError struct {
	Key     string
	Message string
}

// Env is what a sink may use at run time.
type Env struct {
	// Dir resolves relative paths (the job file's directory).
	Dir string
	// Log receives the sink's structured log lines (a *zap.Logger in
	// practice; kept as any so sinks choose their dependency).
	Log any
}

// Run identifies one attempt of a slot of a job.
type Run struct {
	Job      string
	RunID    string
	Slot     time.Time // the slot's nominal time, in the job's zone
	Attempt  int
	Fence    int64
	Trigger  string
	Location *time.Location
	// Fields are the selected item fields in query order.
	Fields []Field
	// Incremental reports whether the job is incremental.
	Incremental bool
}

// Field is one selected item field; Type is its GraphQL named type when the
// schema was introspected ("" otherwise).
type Field struct {
	Name   string
	Type   string
	List   bool
	Object bool
}

// Row is one item object exactly as the API returned it.
type Row = json.RawMessage

// Sink is one sink for one attempt.
type Sink interface {
	// Prepare runs once per attempt before any company's Writer is opened
	// (schema changes and the like).
	Prepare(ctx context.Context, run Run) error
	// Open begins one company's rows.
	Open(ctx context.Context, run Run, company int64) (Writer, error)
	// Close releases the sink.
	Close() error
}

// Writer receives one company's rows of one attempt.
type Writer interface {
	// Write appends a batch; the rows are not visible until Commit.
	Write(ctx context.Context, rows []Row) error
	// Commit makes every written row durable and visible. wm is the
	// watermark the rows bring the company to (nil for non-incremental
	// jobs); a WatermarkKeeper stores it atomically with the rows.
	Commit(ctx context.Context, wm *Watermark) error
	// Abort discards what was written. Safe after Commit (no-op).
	Abort(ctx context.Context) error
}

// Watermark is the incremental cursor handed to Commit.
type Watermark struct {
	Value string
	Keys  []byte
}

// WatermarkKeeper is a Sink that stores watermarks itself, atomically with
// the rows (the Postgres sink). The pipeline reads the watermark from it
// rather than from the store.
type WatermarkKeeper interface {
	Watermark(ctx context.Context, job string, company int64) (*Watermark, error)
}

// NeedsTypes is a Sink that wants the GraphQL types of the selected fields
// (Field.Type, List and Object) in Run.Fields, such as the Postgres sink
// with typed columns. When NeedsTypes returns true the pipeline introspects
// the item type once per attempt, before Prepare.
type NeedsTypes interface {
	NeedsTypes() bool
}

// ErrPermanent marks errors a retry cannot fix (bad configuration, a type
// change); wrap it. Anything else a sink returns is taken as retryable.
var ErrPermanent = errors.New("permanent")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// WatermarkAdmin is a WatermarkKeeper whose watermarks an operator can list
// and move (`nxtcron watermarks`): for such a sink the copy in the sink is
// the one that counts.
type WatermarkAdmin interface {
	WatermarkKeeper
	// Watermarks lists the job's watermarks, by company.
	Watermarks(ctx context.Context, job string) ([]CompanyWatermark, error)
	// SetWatermark moves a company's watermark to value and forgets the
	// keys delivered inside the lookback.
	SetWatermark(ctx context.Context, job string, company int64, value string) error
	// ResetWatermarks forgets the job's watermarks (one company when
	// company is non-nil), so the next run imports everything; it returns
	// how many were cleared. Fencing state is kept.
	ResetWatermarks(ctx context.Context, job string, company *int64) (int, error)
}

// CompanyWatermark is one company's watermark as a sink keeps it.
type CompanyWatermark struct {
	Company   int64
	Value     string
	UpdatedAt time.Time
}
