// Package webhook is the webhook sink: each company's rows are POSTed to a
// URL as signed JSON batches.
//
// A company's rows are held back (in memory up to a bound, then in an
// unlinked temporary file) until its Commit, and only then sent, batch after
// batch, so that a company that fails while its pages are read delivers
// nothing, and the pipeline moves the watermark only after the receiver
// has acknowledged every batch. A Commit that fails half-way has delivered
// some batches; the next attempt sends the company again. Across attempts
// (retries, takeovers) the sink is therefore at-least-once; every batch
// carries its slot and attempt, and an Idempotency-Key derived from the
// job, slot, company, batch number and the batch's rows, which repeats
// exactly when the same rows are sent again.
//
// Each POST is signed: X-Nxtcron-Signature is sha256=<hex HMAC-SHA256 of
// the body with the secret>. 408, 429, 5xx and network failures are
// retried with capped exponential backoff and full jitter, honouring
// Retry-After; any other status outside 2xx is permanent.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/sinks"
)

// Defaults and bounds of the section's keys.
const (
	DefaultBatchSize = 500
	MaxBatchSize     = 10000
	// DefaultTimeout bounds one POST: connecting, sending the body and
	// reading the response.
	DefaultTimeout = 70 * time.Second
)

// Retry policy of one batch.
const (
	defaultMaxAttempts = 6
	defaultBaseBackoff = time.Second
	defaultMaxBackoff  = time.Minute
	// defaultSpoolLimit is how many bytes of a company's rows are held in
	// memory before the rest goes to a temporary file.
	defaultSpoolLimit = 8 << 20
)

// Type registers the webhook sink.
var Type = sinks.Type{
	Name: "webhook",
	New: func() sinks.Config {
		return &Config{BatchSize: DefaultBatchSize, Timeout: config.Duration(DefaultTimeout)}
	},
}

// Config is the sink section of a job with type: webhook.
type Config struct {
	// URL receives the POSTs (http or https).
	URL string `yaml:"url"`
	// Secret signs each body; secret_file reads it from a file.
	Secret config.Secret `yaml:"secret"`
	// BatchSize is the most rows in one POST.
	BatchSize int `yaml:"batch_size"`
	// Timeout bounds one POST.
	Timeout config.Duration `yaml:"timeout"`

	// Tests replace these.
	maxAttempts int
	baseBackoff time.Duration
	maxBackoff  time.Duration
	sleep       func(ctx context.Context, d time.Duration) error
	spoolLimit  int
}

var _ sinks.Config = (*Config)(nil)

// Validate checks the section. It never quotes the secret.
func (c *Config) Validate(sinks.JobInfo) []sinks.FieldError {
	var errs []sinks.FieldError
	add := func(key, format string, args ...any) {
		errs = append(errs, sinks.FieldError{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	if c.URL == "" {
		add("url", "required: where the batches are POSTed, as in https://hooks.example.com/nxtcron")
	} else if _, err := parseURL(c.URL); err != nil {
		add("url", "%s", err)
	}
	if c.Secret.IsZero() {
		add("secret", "required: the key that signs every body (X-Nxtcron-Signature); or secret_file")
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		add("batch_size", "must be between 1 and %d, not %d", MaxBatchSize, c.BatchSize)
	}
	if c.Timeout <= 0 {
		add("timeout", "must be a positive duration, not %s", c.Timeout)
	}
	return errs
}

// parseURL checks a receiver URL: absolute http or https, with a host, and
// without credentials (a URL shows in logs; the signature authenticates).
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("must be an http or https URL, not %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("must name a host, as in https://hooks.example.com/nxtcron")
	case u.User != nil:
		return nil, errors.New("must not contain a user or password (URLs show in logs); the receiver checks X-Nxtcron-Signature instead")
	case u.Fragment != "":
		return nil, errors.New("must not have a #fragment")
	}
	return u, nil
}

// Open makes the sink for one attempt, with an HTTP client of its own.
func (c *Config) Open(_ context.Context, env sinks.Env) (sinks.Sink, error) {
	if errs := c.Validate(sinks.JobInfo{}); len(errs) > 0 {
		return nil, sinks.Permanent(fmt.Errorf("webhook sink: %s: %s", errs[0].Key, errs[0].Message))
	}
	u, _ := parseURL(c.URL)
	log, _ := env.Log.(*zap.Logger)
	if log == nil {
		log = zap.NewNop()
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	s := &Sink{
		cfg: *c,
		url: u.String(),
		// The query may carry a token: messages show the rest.
		where:   u.Scheme + "://" + u.Host + u.EscapedPath(),
		secret:  []byte(c.Secret.Reveal()),
		writers: map[*writer]struct{}{},
		client: &http.Client{
			Transport: transport,
			Timeout:   time.Duration(c.Timeout),
			// A redirected POST would be re-sent elsewhere; refuse instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		maxAttempts: c.maxAttempts,
		baseBackoff: c.baseBackoff,
		maxBackoff:  c.maxBackoff,
		sleep:       c.sleep,
		spoolLimit:  c.spoolLimit,
	}
	s.log = log.With(zap.String("sink", Type.Name), zap.String("url", s.where))
	if s.maxAttempts <= 0 {
		s.maxAttempts = defaultMaxAttempts
	}
	if s.baseBackoff <= 0 {
		s.baseBackoff = defaultBaseBackoff
	}
	if s.maxBackoff <= 0 {
		s.maxBackoff = defaultMaxBackoff
	}
	s.maxBackoff = max(s.maxBackoff, s.baseBackoff)
	if s.sleep == nil {
		s.sleep = sleepContext
	}
	if s.spoolLimit <= 0 {
		s.spoolLimit = defaultSpoolLimit
	}
	return s, nil
}

// Sink is the webhook sink of one attempt.
type Sink struct {
	cfg    Config
	url    string
	where  string // the URL without its query, for messages
	secret []byte
	client *http.Client
	log    *zap.Logger

	maxAttempts int
	baseBackoff time.Duration
	maxBackoff  time.Duration
	sleep       func(context.Context, time.Duration) error
	spoolLimit  int

	mu      sync.Mutex
	writers map[*writer]struct{}
}

var _ sinks.Sink = (*Sink)(nil)

// Prepare has nothing to prepare.
func (s *Sink) Prepare(context.Context, sinks.Run) error { return nil }

// Open begins one company's rows.
func (s *Sink) Open(ctx context.Context, run sinks.Run, company int64) (sinks.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := newWriter(s, run, company)
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

// Close drops the rows of writers still open and the idle connections.
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
	s.client.CloseIdleConnections()
	return errors.Join(errs...)
}

// sleepContext waits d or until ctx is done.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
