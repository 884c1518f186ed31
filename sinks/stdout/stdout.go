// Package stdout is the stdout sink: rows as newline-delimited JSON on the
// process's standard output, for demos, `nxtcron run` and pipes. Each
// company's rows are held back until its Commit and then written at once
// under a process-wide lock, so an aborted company prints nothing and
// companies never interleave. By default every line is an envelope naming
// the job, slot, attempt and company around the row as the API returned
// it, since rows printed by two attempts (after a takeover) must be told
// apart; envelope: false prints the bare rows.
package stdout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nxtcron/nxtcron/sinks"
	"github.com/nxtcron/nxtcron/sinks/spool"
)

// FormatNDJSON is the only format of the stdout sink.
const FormatNDJSON = "ndjson"

// defaultSpoolLimit is how many bytes of a company's rows are held in
// memory before the rest goes to a temporary file.
const defaultSpoolLimit = 8 << 20

// Type registers the stdout sink.
var Type = sinks.Type{
	Name: "stdout",
	New:  func() sinks.Config { return &Config{Format: FormatNDJSON, Envelope: true} },
}

// Config is the sink section of a job with type: stdout.
type Config struct {
	// Format is ndjson, the only one.
	Format string `yaml:"format"`
	// Envelope wraps each row as
	// {"job":…,"slot":…,"attempt":…,"company":…,"row":{…}} (the default);
	// false prints the rows alone.
	Envelope bool `yaml:"envelope"`

	// out replaces os.Stdout in tests.
	out io.Writer
	// spoolLimit replaces defaultSpoolLimit in tests.
	spoolLimit int
}

var _ sinks.Config = (*Config)(nil)

// Validate checks the section.
func (c *Config) Validate(sinks.JobInfo) []sinks.FieldError {
	if c.Format != FormatNDJSON {
		return []sinks.FieldError{{
			Key:     "format",
			Message: fmt.Sprintf("unknown format %q (the stdout sink writes ndjson; use a file sink for csv or json)", c.Format),
		}}
	}
	return nil
}

// Open makes the sink for one attempt.
func (c *Config) Open(context.Context, sinks.Env) (sinks.Sink, error) {
	if errs := c.Validate(sinks.JobInfo{}); len(errs) > 0 {
		return nil, sinks.Permanent(fmt.Errorf("stdout sink: %s", errs[0].Message))
	}
	out := c.out
	if out == nil {
		out = os.Stdout
	}
	limit := c.spoolLimit
	if limit <= 0 {
		limit = defaultSpoolLimit
	}
	return &Sink{out: out, envelope: c.Envelope, spoolLimit: limit}, nil
}

// outMu serialises every commit of every stdout sink in the process.
var outMu sync.Mutex

// Sink is the stdout sink of one attempt.
type Sink struct {
	out        io.Writer
	envelope   bool
	spoolLimit int
}

var _ sinks.Sink = (*Sink)(nil)

// Prepare has nothing to prepare.
func (s *Sink) Prepare(context.Context, sinks.Run) error { return nil }

// Open begins one company's rows.
func (s *Sink) Open(ctx context.Context, run sinks.Run, company int64) (sinks.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &writer{s: s, spool: spool.Spool{Limit: s.spoolLimit, Pattern: "nxtcron-stdout-*"}}
	if s.envelope {
		slot := run.Slot
		if run.Location != nil {
			slot = slot.In(run.Location)
		}
		job, err := json.Marshal(run.Job)
		if err != nil {
			return nil, fmt.Errorf("encoding job name: %w", err)
		}
		w.head = []byte(`{"job":` + string(job) +
			`,"slot":"` + slot.Format(time.RFC3339) +
			`","attempt":` + strconv.Itoa(run.Attempt) +
			`,"company":` + strconv.FormatInt(company, 10) +
			`,"row":`)
	}
	return w, nil
}

// Close releases nothing: writers hold their own buffers.
func (s *Sink) Close() error { return nil }

// writer holds one company's lines until Commit.
type writer struct {
	s     *Sink
	head  []byte // envelope up to the row, or nil
	spool spool.Spool
	buf   bytes.Buffer
	done  bool
}

var _ sinks.Writer = (*writer)(nil)

// Write adds the rows to the company's held lines.
func (w *writer) Write(ctx context.Context, rows []sinks.Row) error {
	if w.done {
		return errors.New("writing to a committed or aborted stdout writer")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, r := range rows {
		line, err := w.line(r)
		if err != nil {
			return fmt.Errorf("row %d: %w", i+1, err)
		}
		if err := w.spool.Write(line); err != nil {
			return err
		}
	}
	return nil
}

// line is one output line: the row on one line (insignificant whitespace
// removed only when the row spans lines), in its envelope if there is one.
func (w *writer) line(r sinks.Row) ([]byte, error) {
	if len(r) == 0 {
		return nil, errors.New("empty row")
	}
	w.buf.Reset()
	w.buf.Write(w.head)
	if bytes.ContainsAny(r, "\r\n") {
		if err := json.Compact(&w.buf, r); err != nil {
			return nil, fmt.Errorf("compacting row: %w", err)
		}
	} else {
		w.buf.Write(r)
	}
	if w.head != nil {
		w.buf.WriteByte('}')
	}
	w.buf.WriteByte('\n')
	return w.buf.Bytes(), nil
}

// Commit prints the company's lines in one piece.
func (w *writer) Commit(ctx context.Context, _ *sinks.Watermark) error {
	if w.done {
		return errors.New("committing a committed or aborted stdout writer")
	}
	w.done = true
	defer w.spool.Release()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("committing to stdout: %w", err)
	}
	outMu.Lock()
	defer outMu.Unlock()
	r, err := w.spool.Reader()
	if err != nil {
		return fmt.Errorf("writing to stdout: %w", err)
	}
	if _, err := io.Copy(w.s.out, r); err != nil {
		return fmt.Errorf("writing to stdout: %w", err)
	}
	return nil
}

// Abort drops the held lines. It is a no-op after Commit.
func (w *writer) Abort(context.Context) error {
	if w.done {
		return nil
	}
	w.done = true
	return w.spool.Release()
}
