// Package file is the file sink: each company of each attempt becomes one
// file (ndjson, csv or json) whose path is built from placeholders
// ({job} {company} {slot} {date} {attempt}). Rows go to a temporary file
// beside the target, which Commit syncs and renames into place (never
// replacing an existing file unless overwrite is set) before the pipeline
// moves the watermark. Across a takeover the sink is at-least-once: the
// path's {slot} and {attempt} tell consumers which attempt wrote a file.
package file

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/sinks"
)

// Formats of the file sink.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
	FormatJSON   = "json"
)

// Type registers the file sink.
var Type = sinks.Type{
	Name: "file",
	New:  func() sinks.Config { return &Config{Format: FormatNDJSON} },
}

// Config is the sink section of a job with type: file.
type Config struct {
	// Path of each company's file; relative paths resolve against the job
	// file's directory.
	Path string `yaml:"path"`
	// Format is ndjson (the default), csv or json.
	Format string `yaml:"format"`
	// Overwrite allows Commit to replace an existing file.
	Overwrite bool `yaml:"overwrite"`
}

var _ sinks.Config = (*Config)(nil)

// Validate checks the section against the job.
func (c *Config) Validate(job sinks.JobInfo) []sinks.FieldError {
	var errs []sinks.FieldError
	add := func(key, format string, args ...any) {
		errs = append(errs, sinks.FieldError{Key: key, Message: fmt.Sprintf(format, args...)})
	}

	switch c.Format {
	case FormatNDJSON, FormatCSV, FormatJSON:
	default:
		add("format", "unknown format %q (want ndjson, csv or json)", c.Format)
	}

	if c.Path == "" {
		add("path", "required")
		return errs
	}
	t, perrs := parseTemplate(c.Path)
	for _, e := range perrs {
		add("path", "%s", e)
	}
	if len(perrs) > 0 {
		// The checks below would only repeat a misspelt placeholder.
		return errs
	}
	if base := filepath.Base(c.Path); strings.HasSuffix(c.Path, "/") || strings.HasSuffix(c.Path, string(filepath.Separator)) || base == "." || base == ".." {
		add("path", "must name a file, not a directory")
	}
	if !t.has(phCompany) {
		add("path", "must contain {company}: each company is committed to its own file")
	}
	switch {
	case job.Incremental && !t.has(phSlot) && !t.has(phAttempt):
		add("path", "must contain {slot} or {attempt}: an incremental run writes only the changed rows, so every run needs its own file")
	case !job.Incremental && !c.Overwrite && !t.has(phSlot) && !t.has(phDate) && !t.has(phAttempt):
		add("path", "names the same file on every run; add {slot}, {date} or {attempt}, or set overwrite: true")
	}
	if job.Incremental && c.Overwrite && !(t.has(phSlot) && t.has(phAttempt)) {
		add("overwrite", "an incremental job may replace files only when path contains both {slot} and {attempt}; otherwise a later run would replace rows the watermark has already moved past")
	}
	return errs
}

// Open makes the sink for one attempt.
func (c *Config) Open(_ context.Context, env sinks.Env) (sinks.Sink, error) {
	switch c.Format {
	case FormatNDJSON, FormatCSV, FormatJSON:
	default:
		return nil, sinks.Permanent(fmt.Errorf("file sink: unknown format %q", c.Format))
	}
	t, perrs := parseTemplate(c.Path)
	if c.Path == "" || len(perrs) > 0 {
		return nil, sinks.Permanent(fmt.Errorf("file sink: invalid path %q", c.Path))
	}
	if !filepath.IsAbs(c.Path) {
		root := env.Dir
		if root == "" {
			root = "."
		}
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, fmt.Errorf("resolving file sink directory %q: %w", root, err)
		}
		t = append(template{{lit: abs + string(filepath.Separator)}}, t...)
	}
	log, _ := env.Log.(*zap.Logger)
	if log == nil {
		log = zap.NewNop()
	}
	return &Sink{
		cfg:     *c,
		path:    t,
		log:     log.With(zap.String("sink", Type.Name)),
		writers: make(map[*writer]struct{}),
	}, nil
}

// Sink is the file sink of one attempt.
type Sink struct {
	cfg  Config
	path template
	log  *zap.Logger

	mu      sync.Mutex
	writers map[*writer]struct{}
}

var _ sinks.Sink = (*Sink)(nil)

// Prepare checks that a csv file can have its header and sweeps the
// temporary files that crashed attempts of this job left behind.
func (s *Sink) Prepare(ctx context.Context, run sinks.Run) error {
	if s.cfg.Format == FormatCSV && len(run.Fields) == 0 {
		return sinks.Permanent(errors.New("csv needs the selected item fields for its header, and the run has none"))
	}
	s.sweep(ctx, run.Job)
	return ctx.Err()
}

// Open creates the company's temporary file (and the directories above
// it) and writes the format's opening.
func (s *Sink) Open(ctx context.Context, run sinks.Run, company int64) (sinks.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, err := newWriter(s, run, company)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.writers[w] = struct{}{}
	s.mu.Unlock()
	return w, nil
}

func (s *Sink) forget(w *writer) {
	s.mu.Lock()
	delete(s.writers, w)
	s.mu.Unlock()
}

// Close aborts any writer still open, removing its temporary file.
func (s *Sink) Close() error {
	s.mu.Lock()
	open := make([]*writer, 0, len(s.writers))
	for w := range s.writers {
		open = append(open, w)
	}
	s.mu.Unlock()
	var errs []error
	for _, w := range open {
		errs = append(errs, w.Abort(context.Background()))
	}
	return errors.Join(errs...)
}
