package bnxt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	graphql "github.com/hasura/go-graphql-client"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/tokens"
)

// Defaults of Options.
const (
	// DefaultTimeout is above the 59 s after which Business NXT stops a
	// query: a request the client abandons holds its concurrency slot at the
	// server for up to 30 minutes.
	DefaultTimeout     = 70 * time.Second
	DefaultMaxAttempts = 6
	DefaultBaseBackoff = time.Second
	DefaultMaxBackoff  = 60 * time.Second
)

// Options configure a Client.
type Options struct {
	// URL is the GraphQL endpoint, e.g.
	// https://business.visma.net/api/graphql-service.
	URL string
	// Connection names the connection in errors, logs and metrics.
	Connection string
	// Tokens gives the access tokens.
	Tokens tokens.Source
	// HTTPClient sends the requests; its Transport (nil: the default one)
	// carries them under the client's own. Nil means a new client; a zero
	// Timeout means DefaultTimeout. Redirects are never followed (the
	// bearer token must not travel elsewhere).
	HTTPClient *http.Client
	Logger     *zap.Logger
	Metrics    *metrics.Metrics

	// MaxAttempts counts the first attempt (default 6).
	MaxAttempts int
	// BaseBackoff (default 1s) and MaxBackoff (default 60s) bound the
	// exponential backoff between attempts.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// Sleep waits between attempts and for the rate budget; it returns early
	// with the context's error. Nil means a timer.
	Sleep func(ctx context.Context, d time.Duration) error

	// RequestsPerMinute budgets the requests of this client when Limiter is
	// nil (0: no budget).
	RequestsPerMinute int
	// ConcurrencyPerCompany bounds the requests in progress per company (0:
	// no bound).
	ConcurrencyPerCompany int
	// Limiter replaces the in-process budget of RequestsPerMinute, e.g. with
	// one shared between replicas.
	Limiter Limiter
}

// Client talks to one GraphQL endpoint on behalf of one connection. It is
// safe for concurrent use; make one per connection and share it, since its
// request budget and company semaphores are its own.
type Client struct {
	conn        string
	gql         *graphql.Client
	tokens      tokens.Source
	log         *zap.Logger
	metrics     *metrics.Metrics
	maxAttempts int
	base, max   time.Duration
	sleep       func(context.Context, time.Duration) error
	limiter     Limiter
	sems        *semaphores

	// now and jitter are replaced by tests; jitter returns a uniformly
	// random duration in [0, d].
	now    func() time.Time
	jitter func(d time.Duration) time.Duration
}

// Request is one GraphQL operation.
type Request struct {
	Query         string
	Variables     map[string]any
	OperationName string
	// Company is the vismaNetCompanyId the request reads, for the
	// per-company semaphore; 0 takes none.
	Company int64
}

// Response is the data of a successful request.
type Response struct {
	Data       json.RawMessage
	Extensions json.RawMessage
	TraceID    string
}

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("graphql url %q: want an http or https URL", opts.URL)
	}
	if opts.Connection == "" {
		return nil, errors.New("graphql client without a connection name")
	}
	if opts.Tokens == nil {
		return nil, fmt.Errorf("connection %q: graphql client without a token source", opts.Connection)
	}
	if opts.MaxAttempts < 0 || opts.BaseBackoff < 0 || opts.MaxBackoff < 0 ||
		opts.RequestsPerMinute < 0 || opts.ConcurrencyPerCompany < 0 {
		return nil, fmt.Errorf("connection %q: negative retry or limit option", opts.Connection)
	}
	c := &Client{
		conn:        opts.Connection,
		tokens:      opts.Tokens,
		log:         opts.Logger,
		metrics:     opts.Metrics,
		maxAttempts: opts.MaxAttempts,
		base:        opts.BaseBackoff,
		max:         opts.MaxBackoff,
		sleep:       opts.Sleep,
		limiter:     opts.Limiter,
		sems:        newSemaphores(opts.ConcurrencyPerCompany),
		now:         time.Now,
		jitter: func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return time.Duration(rand.Int64N(int64(d) + 1))
		},
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	c.log = c.log.With(zap.String("connection", c.conn))
	if c.maxAttempts == 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	if c.base == 0 {
		c.base = DefaultBaseBackoff
	}
	if c.max == 0 {
		c.max = DefaultMaxBackoff
	}
	c.max = max(c.max, c.base)
	if c.sleep == nil {
		c.sleep = sleepContext
	}
	if c.limiter == nil {
		c.limiter = NewRateLimiter(opts.RequestsPerMinute, nil, c.sleep)
	}

	var hc http.Client
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	}
	if hc.Timeout == 0 {
		hc.Timeout = DefaultTimeout
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = &transport{base: base, tokens: opts.Tokens}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// hasura's retry stays off (its default, WithRetry(0)): it sleeps
	// without watching the context. Do retries instead.
	c.gql = graphql.NewClient(opts.URL, &hc)
	return c, nil
}

// Connection returns the name of the client's connection.
func (c *Client) Connection() string { return c.conn }

// Do sends req, retrying what can be retried, and returns its data. A
// failure is an *Error; when ctx ends first, the error also wraps the
// context's error.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	log := c.log
	if req.Company != 0 {
		log = log.With(zap.Int64("company", req.Company))
	}
	if req.OperationName != "" {
		log = log.With(zap.String("operation", req.OperationName))
	}
	var unauthorized bool
	for n := 1; ; n++ {
		resp, e := c.attempt(ctx, req)
		if e == nil {
			if n > 1 {
				log.Info("graphql request succeeded after retries", zap.String("trace_id", resp.TraceID), zap.Int("attempts", n))
			}
			return resp, nil
		}
		e.Attempts = n
		if err := context.Cause(ctx); err != nil {
			return nil, c.giveUp(log, e, err)
		}
		retry := e.Retryable()
		var delay time.Duration
		if e.Class == ClassUnauthorized {
			// Once with a fresh token; a second 401 means the client
			// itself is refused.
			retry = !unauthorized
			unauthorized = true
			c.tokens.Invalidate(e.tokenHash())
		} else {
			delay = c.backoff(e, n)
		}
		if !retry || n >= c.maxAttempts {
			log.Warn("graphql request failed", errorFields(e)...)
			return nil, e
		}
		if deadline, ok := ctx.Deadline(); ok && c.now().Add(delay).After(deadline) {
			e.Message += fmt.Sprintf(" (the next attempt, in %s, would start after the deadline)", delay.Round(time.Millisecond))
			log.Warn("graphql request failed", errorFields(e)...)
			return nil, e
		}
		log.Warn("graphql request failed; retrying",
			append(errorFields(e), zap.Duration("delay", delay), zap.Int("max_attempts", c.maxAttempts))...)
		if delay > 0 {
			if err := c.sleep(ctx, delay); err != nil {
				return nil, c.giveUp(log, e, err)
			}
		}
	}
}

// giveUp ends Do when the caller's context is done: the last failure, also
// wrapping the context's error.
func (c *Client) giveUp(log *zap.Logger, e *Error, cause error) *Error {
	if !errors.Is(e.Err, cause) {
		if e.Err == nil {
			e.Err = cause
		} else {
			e.Err = fmt.Errorf("%w (%w)", cause, e.Err)
		}
		e.Message += fmt.Sprintf(" (stopped: %v)", cause)
	}
	log.Info("graphql request abandoned", errorFields(e)...)
	return e
}

func errorFields(e *Error) []zap.Field {
	return []zap.Field{
		zap.String("trace_id", e.TraceID),
		zap.String("class", string(e.Class)),
		zap.Int("status", e.StatusCode),
		zap.Int("attempt", e.Attempts),
		zap.Error(e),
	}
}

// backoff is the delay before attempt n+1 after e: capped exponential with
// full jitter, never below BaseBackoff for the server's load limits, and
// never before Retry-After.
func (c *Client) backoff(e *Error, n int) time.Duration {
	ceiling := c.max
	if n-1 < 32 {
		if d := c.base << (n - 1); d > 0 && d < ceiling {
			ceiling = d
		}
	}
	var d time.Duration
	switch e.Class {
	case ClassRateLimited, ClassOutstandingLimited:
		d = c.base + c.jitter(ceiling-c.base)
	default:
		d = c.jitter(ceiling)
	}
	if e.RetryAfter > 0 {
		d = max(d, e.RetryAfter+c.jitter(c.base))
	}
	return d
}

// attempt sends req once.
func (c *Client) attempt(ctx context.Context, req Request) (*Response, *Error) {
	a := &attempt{}
	actx := withAttempt(ctx, a)
	release, err := c.sems.acquire(actx, req.Company)
	if err != nil {
		return nil, &Error{Class: ClassTransport, Connection: c.conn, Message: "waiting for a company slot", Err: err}
	}
	defer release()
	if err := c.limiter.Wait(actx); err != nil {
		return nil, &Error{Class: ClassTransport, Connection: c.conn, Message: "waiting for the request budget", Err: err}
	}
	var opts []graphql.Option
	if req.OperationName != "" {
		opts = append(opts, graphql.OperationName(req.OperationName))
	}
	start := time.Now()
	data, ext, err := c.gql.ExecRawWithExtensions(actx, req.Query, req.Variables, opts...)
	e := c.classify(a, data, err)
	if a.tokenErr == nil {
		outcome := "ok"
		if e != nil {
			outcome = e.Class.outcome()
		}
		c.metrics.GraphQLRequest(c.conn, outcome)
	}
	if e != nil {
		return nil, e
	}
	c.log.Debug("graphql request",
		zap.String("trace_id", a.traceID), zap.Int64("company", req.Company),
		zap.Duration("duration", time.Since(start)), zap.Int("bytes", len(data)))
	return &Response{Data: data, Extensions: ext, TraceID: a.traceID}, nil
}

// classify turns what hasura returned and what the transport saw into an
// *Error, or nil for a success.
func (c *Client) classify(a *attempt, data []byte, err error) *Error {
	e := &Error{
		Connection: c.conn,
		StatusCode: a.status,
		TraceID:    a.traceID,
		Err:        err,
		hash:       a.tokenHash,
	}
	switch {
	case a.tokenErr != nil:
		e.Class, e.Err = ClassToken, a.tokenErr
		e.Message = "getting an access token: " + a.tokenErr.Error()
		return e
	case a.sendErr != nil:
		e.Class, e.Err = ClassTransport, a.sendErr
		e.Message = a.sendErr.Error()
		return e
	case !a.responded:
		if err == nil {
			err = errors.New("no response")
		}
		e.Class, e.Message = ClassTransport, err.Error()
		return e
	}
	e.RetryAfter = parseRetryAfter(a.retryAfter, c.now())
	switch {
	case a.status == http.StatusUnauthorized:
		e.Class, e.Message = ClassUnauthorized, "the access token was refused (HTTP 401)"
		return e
	case a.status == http.StatusTooManyRequests:
		e.Class, e.Message = ClassRateLimited, "too many requests for this token (HTTP 429)"
		if e.RetryAfter > 0 {
			e.Message += fmt.Sprintf("; retry after %s", e.RetryAfter)
		}
		return e
	case a.status >= 500:
		e.Class, e.Message = ClassServer, fmt.Sprintf("server error (HTTP %d %s)", a.status, http.StatusText(a.status))
		return e
	case a.status != http.StatusOK && a.status != http.StatusCreated:
		e.Class, e.Message = ClassClient, fmt.Sprintf("unexpected HTTP %d %s", a.status, http.StatusText(a.status))
		if msgs := bodyErrorMessages(err); len(msgs) > 0 {
			e.Messages = msgs
			e.Message += ": " + strings.Join(msgs, "; ")
		}
		return e
	}

	if err == nil {
		if len(bytes.TrimSpace(data)) == 0 || bytes.Equal(data, []byte("null")) {
			e.Class, e.Message = ClassDecode, "the response has neither data nor errors"
			return e
		}
		return nil
	}
	var gqlErrs graphql.Errors
	if !errors.As(err, &gqlErrs) {
		e.Class, e.Message = ClassDecode, err.Error()
		return e
	}
	for _, ge := range gqlErrs {
		if errors.Unwrap(ge) != nil {
			// hasura's own error (the body could not be read or decoded):
			// the server's errors carry no wrapped error.
			e.Class, e.Message = ClassDecode, "reading the response: "+errors.Unwrap(ge).Error()
			return e
		}
	}
	for _, ge := range gqlErrs {
		e.Messages = append(e.Messages, ge.Message)
		if code, ok := ge.Extensions["code"].(string); ok && code != "" {
			e.Codes = append(e.Codes, code)
		}
	}
	hasData := len(bytes.TrimSpace(data)) > 0 && !bytes.Equal(data, []byte("null"))
	switch {
	case slices.Contains(e.Codes, CodeOutstandingLimitExceeded):
		e.Class = ClassOutstandingLimited
		e.Message = "too many requests in progress for the company or customer: "
	case hasData:
		e.Class = ClassPartial
		e.Message = "partial data with errors: "
	default:
		e.Class = ClassGraphQL
		e.Message = "graphql errors: "
	}
	e.Message += strings.Join(e.Messages, "; ")
	return e
}

// tokenHash is the hash of the token the failed attempt carried.
func (e *Error) tokenHash() string { return e.hash }

// bodyErrorMessages reads GraphQL error messages from the JSON body of a
// non-200 response, which hasura keeps in its NetworkError.
func bodyErrorMessages(err error) []string {
	var ne graphql.NetworkError
	if !errors.As(err, &ne) {
		return nil
	}
	var body struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal([]byte(ne.Body()), &body) != nil {
		return nil
	}
	var msgs []string
	for _, e := range body.Errors {
		msgs = append(msgs, e.Message)
	}
	return msgs
}
