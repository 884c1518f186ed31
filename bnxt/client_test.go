package bnxt

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/nxtcron/nxtcron/tokens"
)

const okBody = `{"data":{"availableCompanies":{"totalCount":1,"items":[{"name":"A","vismaNetCompanyId":1001,"vismaNetCustomerId":77}]}}}`

func TestDoSendsAuthenticatedRequest(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { reply(w, "trace-ok", okBody) })
	h := newHarness(t, srv, nil)

	resp, err := h.client.Do(context.Background(), Request{
		Query:         "query q($cid: Int) { useCompany(no: $cid) { name } }",
		Variables:     map[string]any{"cid": 1001},
		OperationName: "q",
	})
	require.NoError(t, err)
	require.Equal(t, "trace-ok", resp.TraceID)
	require.JSONEq(t, `{"availableCompanies":{"totalCount":1,"items":[{"name":"A","vismaNetCompanyId":1001,"vismaNetCustomerId":77}]}}`, string(resp.Data))

	got := srv.requests()
	require.Len(t, got, 1)
	require.Equal(t, "Bearer "+tokenValue(1), got[0].Authorization)
	require.Equal(t, "br, gzip", got[0].AcceptEncoding)
	require.Equal(t, "application/json", got[0].ContentType)
	require.Equal(t, "q", got[0].OperationName)
	require.Equal(t, map[string]any{"cid": float64(1001)}, got[0].Variables)
	require.Equal(t, 1.0, h.outcomes("ok"))
	require.Empty(t, h.sleep.Delays())
	h.requireNoLeak(t)
}

func TestDecodesCompressedBodies(t *testing.T) {
	compress := map[string]func(string) []byte{
		"br": func(s string) []byte {
			var b bytes.Buffer
			w := brotli.NewWriter(&b)
			_, _ = w.Write([]byte(s))
			_ = w.Close()
			return b.Bytes()
		},
		"gzip": func(s string) []byte {
			var b bytes.Buffer
			w := gzip.NewWriter(&b)
			_, _ = w.Write([]byte(s))
			_ = w.Close()
			return b.Bytes()
		},
	}
	for _, enc := range []string{"br", "gzip", "BR"} {
		t.Run(enc, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				// Sent whatever the request asked for, as Business NXT does
				// with Brotli.
				w.Header().Set("Content-Encoding", enc)
				w.Header().Set("x-vbc-traceid", "trace-"+enc)
				_, _ = w.Write(compress[strings.ToLower(enc)](okBody))
			})
			h := newHarness(t, srv, nil)
			resp, err := h.client.Do(context.Background(), Request{Query: "{ availableCompanies { totalCount } }"})
			require.NoError(t, err)
			require.Contains(t, string(resp.Data), `"vismaNetCompanyId":1001`)
			require.Equal(t, "trace-"+enc, resp.TraceID)
		})
	}
}

// TestErrorClasses checks each failure's class and whether it is retried: the
// server fails the first `fail` requests, then answers okBody.
func TestErrorClasses(t *testing.T) {
	html401 := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("x-vbc-traceid", "trace-401")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("<!DOCTYPE html><html><body><h1>401 Unauthorized</h1></body></html>"))
	}
	tests := []struct {
		name string
		// fail answers a failing request; fails is how many requests fail
		// (0: all of them).
		fail        func(t *testing.T, w http.ResponseWriter)
		fails       int64
		class       Class
		retryable   bool
		requests    int64 // GraphQL requests made
		outcome     string
		errContains string
	}{
		{
			name: "429 is retried", fails: 2, requests: 3, class: ClassRateLimited, outcome: "rate_limited",
			fail: func(_ *testing.T, w http.ResponseWriter) {
				w.Header().Set("x-vbc-traceid", "trace-429")
				w.WriteHeader(http.StatusTooManyRequests)
			},
		},
		{
			name: "500 is retried", fails: 1, requests: 2, class: ClassServer, outcome: "server_error",
			fail: func(_ *testing.T, w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) },
		},
		{
			name: "502 every time fails after max attempts", requests: 6, class: ClassServer, retryable: true, outcome: "server_error",
			errContains: "(server, HTTP 502, trace_id trace-502, 6 attempts): server error (HTTP 502 Bad Gateway)",
			fail: func(_ *testing.T, w http.ResponseWriter) {
				w.Header().Set("x-vbc-traceid", "trace-502")
				w.WriteHeader(http.StatusBadGateway)
			},
		},
		{
			name: "outstanding limit is retried", fails: 1, requests: 2, class: ClassOutstandingLimited, outcome: "outstanding_limited",
			fail: func(_ *testing.T, w http.ResponseWriter) {
				reply(w, "trace-ol", `{"errors":[{"message":"Too many outstanding requests","extensions":{"code":"OUTSTANDING_LIMIT_EXCEEDED"}}],"data":null}`)
			},
		},
		{
			name: "errors without data are permanent", requests: 1, class: ClassGraphQL, outcome: "graphql_error",
			errContains: `(graphql, HTTP 200, trace_id trace-gql): graphql errors: Cannot query field "nme" on type "Associate".`,
			fail: func(_ *testing.T, w http.ResponseWriter) {
				reply(w, "trace-gql", `{"errors":[{"message":"Cannot query field \"nme\" on type \"Associate\".","locations":[{"line":1,"column":3}]}]}`)
			},
		},
		{
			name: "partial data with errors is a failure", requests: 1, class: ClassPartial, outcome: "graphql_error",
			errContains: "partial data with errors: Access denied to table order; second",
			fail: func(_ *testing.T, w http.ResponseWriter) {
				reply(w, "trace-partial", `{"data":{"useCompany":{"order":null}},"errors":[{"message":"Access denied to table order","path":["useCompany","order"]},{"message":"second"}]}`)
			},
		},
		{
			name: "truncated body is retried", fails: 1, requests: 2, class: ClassDecode, outcome: "decode_error",
			fail: func(t *testing.T, w http.ResponseWriter) {
				hijack(t, w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-vbc-traceid: trace-cut\r\nContent-Length: 500\r\n\r\n"+okBody[:40])
			},
		},
		{
			name: "invalid JSON is retried", fails: 1, requests: 2, class: ClassDecode, outcome: "decode_error",
			fail: func(_ *testing.T, w http.ResponseWriter) { reply(w, "trace-bad", `<html>maintenance</html>`) },
		},
		{
			name: "corrupt gzip is retried", fails: 1, requests: 2, class: ClassDecode, outcome: "decode_error",
			fail: func(_ *testing.T, w http.ResponseWriter) {
				w.Header().Set("Content-Encoding", "gzip")
				_, _ = w.Write([]byte("not gzip at all"))
			},
		},
		{
			name: "empty object is retried", fails: 1, requests: 2, class: ClassDecode, outcome: "decode_error",
			fail: func(_ *testing.T, w http.ResponseWriter) { reply(w, "trace-empty", `{}`) },
		},
		{
			name: "connection closed without a response is retried", fails: 1, requests: 2, class: ClassTransport, outcome: "transport",
			fail: func(t *testing.T, w http.ResponseWriter) { hijack(t, w, "") },
		},
		{
			name: "400 is permanent", requests: 1, class: ClassClient, outcome: "client_error",
			errContains: "unexpected HTTP 400 Bad Request: Syntax error: Unexpected Name",
			fail: func(_ *testing.T, w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"errors":[{"message":"Syntax error: Unexpected Name"}]}`))
			},
		},
		{
			name: "a redirect is not followed", requests: 1, class: ClassClient, outcome: "client_error",
			errContains: "unexpected HTTP 302 Found",
			fail: func(_ *testing.T, w http.ResponseWriter) {
				w.Header().Set("Location", "https://elsewhere.example/")
				w.WriteHeader(http.StatusFound)
			},
		},
		{
			name: "401 twice fails", requests: 2, class: ClassUnauthorized, outcome: "unauthorized",
			errContains: "(unauthorized, HTTP 401, trace_id trace-401, 2 attempts): the access token was refused (HTTP 401)",
			fail:        func(_ *testing.T, w http.ResponseWriter) { html401(w) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
				if tt.fails == 0 || n <= tt.fails {
					tt.fail(t, w)
					return
				}
				reply(w, "trace-ok", okBody)
			})
			h := newHarness(t, srv, nil)
			h.client.jitter = func(d time.Duration) time.Duration { return d }
			resp, err := h.client.Do(context.Background(), Request{Query: "{ availableCompanies { totalCount } }"})
			require.Equal(t, tt.requests, srv.gqlRequests.Load(), "requests sent")
			failed := tt.fails
			if failed == 0 {
				failed = tt.requests
			}
			require.Equal(t, float64(failed), h.outcomes(tt.outcome), "attempts counted by outcome")
			if tt.fails > 0 {
				require.NoError(t, err)
				require.Equal(t, "trace-ok", resp.TraceID)
				require.Equal(t, 1.0, h.outcomes("ok"))
				require.Len(t, h.sleep.Delays(), int(tt.fails))
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.class, e.Class, "class of %v", err)
			require.Equal(t, tt.retryable, e.Retryable())
			require.Equal(t, int(tt.requests), e.Attempts)
			require.ErrorContains(t, err, `graphql request on connection "service" failed`)
			if tt.errContains != "" {
				require.ErrorContains(t, err, tt.errContains)
			}
			h.requireNoLeak(t, err)
		})
	}
}

func TestUnauthorizedInvalidatesAndRetriesWithFreshToken(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		if r.Header.Get("Authorization") == "Bearer "+tokenValue(1) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("<html>expired</html>"))
			return
		}
		reply(w, "trace-ok", okBody)
	})
	h := newHarness(t, srv, nil)
	resp, err := h.client.Do(context.Background(), Request{Query: "{ availableCompanies { totalCount } }"})
	require.NoError(t, err)
	require.Equal(t, "trace-ok", resp.TraceID)
	got := srv.requests()
	require.Len(t, got, 2)
	require.Equal(t, "Bearer "+tokenValue(1), got[0].Authorization)
	require.Equal(t, "Bearer "+tokenValue(2), got[1].Authorization, "the second attempt carries a fresh token")
	require.Equal(t, int64(2), srv.tokenRequests.Load())
	require.Empty(t, h.sleep.Delays(), "a fresh token needs no backoff")
	require.Equal(t, 1.0, h.outcomes("unauthorized"))

	// The fresh token stays cached for the next request.
	_, err = h.client.Do(context.Background(), Request{Query: "{ availableCompanies { totalCount } }"})
	require.NoError(t, err)
	require.Equal(t, int64(2), srv.tokenRequests.Load())
	h.requireNoLeak(t)
}

func TestRetryAfterHonoured(t *testing.T) {
	now := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		retryAfter string
		want       time.Duration
	}{
		{name: "seconds", retryAfter: "7", want: 7 * time.Second},
		{name: "http date", retryAfter: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second},
		{name: "date in the past falls back to backoff", retryAfter: now.Add(-time.Minute).Format(http.TimeFormat), want: 0},
		{name: "garbage falls back to backoff", retryAfter: "soon", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
				if n == 1 {
					w.Header().Set("Retry-After", tt.retryAfter)
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				reply(w, "trace-ok", okBody)
			})
			h := newHarness(t, srv, func(o *Options) { o.BaseBackoff = 2 * time.Second })
			h.client.now = func() time.Time { return now }
			_, err := h.client.Do(context.Background(), Request{Query: "{ x }"})
			require.NoError(t, err)
			delays := h.sleep.Delays()
			require.Len(t, delays, 1)
			if tt.want > 0 {
				require.GreaterOrEqual(t, delays[0], tt.want, "never before Retry-After")
				require.LessOrEqual(t, delays[0], tt.want+2*time.Second, "plus at most BaseBackoff of jitter")
			} else {
				require.Equal(t, 2*time.Second, delays[0], "first backoff of a rate limit is BaseBackoff")
			}
		})
	}
}

func TestRetryAfterBeyondDeadlineFailsAtOnce(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Retry-After", "120")
		w.Header().Set("x-vbc-traceid", "trace-ra")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	h := newHarness(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := h.client.Do(ctx, Request{Query: "{ x }"})
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, ClassRateLimited, e.Class)
	require.Equal(t, 120*time.Second, e.RetryAfter)
	require.ErrorContains(t, err, "would start after the deadline")
	require.Empty(t, h.sleep.Delays())
	require.Equal(t, int64(1), srv.gqlRequests.Load())
}

func TestBackoffCappedWithJitter(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {})
	h := newHarness(t, srv, func(o *Options) {
		o.BaseBackoff = time.Second
		o.MaxBackoff = 10 * time.Second
	})
	c := h.client
	server := &Error{Class: ClassServer}
	limited := &Error{Class: ClassOutstandingLimited}

	c.jitter = func(d time.Duration) time.Duration { return d } // the top of each range
	var tops []time.Duration
	for n := 1; n <= 7; n++ {
		tops = append(tops, c.backoff(server, n))
	}
	require.Equal(t, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}, tops)
	require.Equal(t, 10*time.Second, c.backoff(server, 200), "no overflow for large attempt numbers")

	c.jitter = func(time.Duration) time.Duration { return 0 } // the bottom
	require.Equal(t, time.Duration(0), c.backoff(server, 5), "full jitter reaches zero")
	require.Equal(t, time.Second, c.backoff(limited, 5), "load limits never back off less than BaseBackoff")
	require.Equal(t, time.Second, c.backoff(&Error{Class: ClassRateLimited}, 1))

	c2 := newHarness(t, srv, func(o *Options) { o.MaxBackoff = 10 * time.Second }).client // real jitter
	seen := map[time.Duration]bool{}
	for range 200 {
		d := c2.backoff(server, 4)
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, 8*time.Second)
		seen[d] = true
		d = c2.backoff(limited, 9)
		require.GreaterOrEqual(t, d, time.Second)
		require.LessOrEqual(t, d, 10*time.Second)
	}
	require.Greater(t, len(seen), 100, "delays are spread, not fixed")
}

func TestDoRetriesWithBackoffUpToMaxAttempts(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { w.WriteHeader(http.StatusServiceUnavailable) })
	h := newHarness(t, srv, func(o *Options) {
		o.MaxAttempts = 4
		o.BaseBackoff = 100 * time.Millisecond
		o.MaxBackoff = 250 * time.Millisecond
	})
	h.client.jitter = func(d time.Duration) time.Duration { return d }
	_, err := h.client.Do(context.Background(), Request{Query: "{ x }"})
	require.Error(t, err)
	require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}, h.sleep.Delays())
	require.Equal(t, int64(4), srv.gqlRequests.Load())
	require.Equal(t, 4.0, h.outcomes("server_error"))
}

func TestContextCancelStopsRetries(t *testing.T) {
	t.Run("during the backoff", func(t *testing.T) {
		srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
			w.Header().Set("x-vbc-traceid", "trace-500")
			w.WriteHeader(http.StatusInternalServerError)
		})
		h := newHarness(t, srv, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h.sleep.hook = cancel
		_, err := h.client.Do(ctx, Request{Query: "{ x }"})
		require.ErrorIs(t, err, context.Canceled)
		var e *Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, ClassServer, e.Class)
		require.Equal(t, "trace-500", e.TraceID)
		require.Equal(t, int64(1), srv.gqlRequests.Load())
		require.Len(t, h.sleep.Delays(), 1)
	})
	t.Run("during the request", func(t *testing.T) {
		entered := make(chan struct{})
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
			close(entered)
			<-r.Context().Done() // the client hangs up
		})
		h := newHarness(t, srv, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-entered
			cancel()
		}()
		_, err := h.client.Do(ctx, Request{Query: "{ x }"})
		require.ErrorIs(t, err, context.Canceled)
		var e *Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, ClassTransport, e.Class)
		require.Equal(t, int64(1), srv.gqlRequests.Load(), "no retry once the context is done")
		require.Empty(t, h.sleep.Delays())
	})
}

func TestTokenFailure(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { reply(w, "t", okBody) })
	h := newHarness(t, srv, nil)
	// A token endpoint that refuses the client: permanent, never sent.
	src := refusingSource{err: fmt.Errorf("requesting a token: %w: oauth2: \"invalid_client\"", tokens.ErrPermanent)}
	c, err := New(Options{URL: srv.URL + "/api/graphql-service", Connection: testConn, Tokens: src, Sleep: h.sleep.Sleep, Metrics: h.metrics})
	require.NoError(t, err)
	_, err = c.Do(context.Background(), Request{Query: "{ x }"})
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, ClassToken, e.Class)
	require.False(t, e.Retryable())
	require.ErrorIs(t, err, tokens.ErrPermanent)
	require.Equal(t, int64(0), srv.gqlRequests.Load(), "nothing sent without a token")
	require.Empty(t, h.sleep.Delays())
	require.Equal(t, 0.0, h.outcomes("transport"), "no HTTP attempt, no count")
}

// refusingSource is a tokens.Source whose token endpoint always refuses.
type refusingSource struct{ err error }

func (s refusingSource) Token(context.Context) (tokens.Token, error) { return tokens.Token{}, s.err }
func (s refusingSource) Invalidate(string)                           {}

func TestTraceIDInErrorsAndLogs(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
		if n == 1 {
			w.Header().Set("x-vbc-traceid", "trace-first")
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		reply(w, "trace-second", `{"errors":[{"message":"Field 'x' not found"}]}`)
	})
	h := newHarness(t, srv, nil)
	_, err := h.client.Do(context.Background(), Request{Query: "{ x }", Company: 1001})
	require.ErrorContains(t, err, "trace_id trace-second")

	var graphqlLogs int
	for _, e := range h.logs.All() {
		if !strings.Contains(e.Message, "graphql") {
			continue
		}
		graphqlLogs++
		fields := e.ContextMap()
		require.Equal(t, "service", fields["connection"], "log %q names the connection", e.Message)
		require.Contains(t, fields, "trace_id", "log %q carries the trace id", e.Message)
		require.Equal(t, int64(1001), fields["company"])
		require.GreaterOrEqual(t, e.Level, zapcore.WarnLevel)
	}
	require.Equal(t, 2, graphqlLogs, "one line for the retry, one for the failure")
	traces := []string{}
	for _, e := range h.logs.FilterMessageSnippet("graphql request failed").All() {
		traces = append(traces, e.ContextMap()["trace_id"].(string))
	}
	require.Equal(t, []string{"trace-first", "trace-second"}, traces)
	h.requireNoLeak(t, err)
}

func TestCompanySemaphore(t *testing.T) {
	var inflight atomic.Int64
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		inflight.Add(1)
		entered <- struct{}{}
		<-release
		inflight.Add(-1)
		reply(w, "t", okBody)
	})
	t.Cleanup(releaseAll) // runs before the server closes, even if the test fails
	limiter := &countingLimiter{}
	h := newHarness(t, srv, func(o *Options) {
		o.ConcurrencyPerCompany = 2
		o.Limiter = limiter
	})
	var wg sync.WaitGroup
	do := func(ctx context.Context, company int64, errs chan<- error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.client.Do(ctx, Request{Query: "{ x }", Company: company})
			errs <- err
		}()
	}
	held := make(chan error, 3)
	do(context.Background(), 1001, held)
	do(context.Background(), 1001, held)
	<-entered
	<-entered // company 1001 is at its limit
	do(context.Background(), 1002, held)
	<-entered // another company is not held up by it
	require.Equal(t, int64(3), inflight.Load())

	// More requests for company 1001 find its semaphore full: they wait
	// for a slot, never reaching the budget or the server, until their
	// context ends.
	waiting := make(chan error, 4)
	ctx, cancel := context.WithCancel(context.Background())
	for range 4 {
		do(ctx, 1001, waiting)
	}
	cancel()
	for range 4 {
		err := <-waiting
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "waiting for a company slot")
	}

	releaseAll()
	wg.Wait()
	close(held)
	for err := range held {
		require.NoError(t, err)
	}
	require.Equal(t, int64(3), srv.gqlRequests.Load())
	require.Equal(t, int64(3), limiter.n.Load(), "the budget is taken once per HTTP attempt, after the company slot")

	// The slots were released: company 1001 takes requests again.
	_, err := h.client.Do(context.Background(), Request{Query: "{ x }", Company: 1001})
	require.NoError(t, err)
}

// countingLimiter is a Limiter that lets everything through and counts.
type countingLimiter struct{ n atomic.Int64 }

func (l *countingLimiter) Wait(ctx context.Context) error {
	l.n.Add(1)
	return context.Cause(ctx)
}

func TestLimiterWrapsEveryAttempt(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		reply(w, "t", okBody)
	})
	limiter := &countingLimiter{}
	h := newHarness(t, srv, func(o *Options) { o.Limiter = limiter })
	_, err := h.client.Do(context.Background(), Request{Query: "{ x }"})
	require.NoError(t, err)
	require.Equal(t, int64(3), limiter.n.Load())
}

func TestRateLimiter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var slept []time.Duration
	l := NewRateLimiter(120, func() time.Time { return now }, func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	})
	ctx := context.Background()
	for range 5 {
		require.NoError(t, l.Wait(ctx))
	}
	// 120/min: one every 500ms, a burst of 2.
	require.Equal(t, []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond}, slept)

	slept = nil
	now = now.Add(time.Minute)
	for range 3 {
		require.NoError(t, l.Wait(ctx))
	}
	require.Equal(t, []time.Duration{500 * time.Millisecond}, slept, "the burst is back after a quiet spell")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, l.Wait(cancelled), context.Canceled)
	require.ErrorIs(t, NewRateLimiter(0, nil, nil).Wait(cancelled), context.Canceled)
	require.NoError(t, NewRateLimiter(0, nil, nil).Wait(ctx))
}

func TestRateLimiterBoundsASlidingMinute(t *testing.T) {
	// 588 per minute (the default budget under Visma's 600) with its burst
	// never exceeds 600 in any minute.
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var sent []time.Time
	l := NewRateLimiter(588, func() time.Time { return now }, func(_ context.Context, d time.Duration) error {
		now = now.Add(d)
		return nil
	})
	for range 2000 {
		require.NoError(t, l.Wait(context.Background()))
		sent = append(sent, now)
	}
	for i := range sent {
		j := i
		for j < len(sent) && sent[j].Sub(sent[i]) < time.Minute {
			j++
		}
		require.LessOrEqual(t, j-i, 600, "requests in the minute from %s", sent[i])
	}
}

func TestNewValidates(t *testing.T) {
	src := refusingSource{err: errors.New("unused")}
	tests := []struct {
		name        string
		opts        Options
		errContains string
	}{
		{name: "no url", opts: Options{Connection: "c", Tokens: src}, errContains: `graphql url "": want an http or https URL`},
		{name: "relative url", opts: Options{URL: "/api/graphql", Connection: "c", Tokens: src}, errContains: "want an http or https URL"},
		{name: "no connection", opts: Options{URL: "https://business.visma.net/api/graphql-service", Tokens: src}, errContains: "without a connection name"},
		{name: "no tokens", opts: Options{URL: "https://business.visma.net/api/graphql-service", Connection: "c"}, errContains: `connection "c": graphql client without a token source`},
		{name: "negative", opts: Options{URL: "https://business.visma.net/api/graphql-service", Connection: "c", Tokens: src, MaxAttempts: -1}, errContains: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			require.ErrorContains(t, err, tt.errContains)
		})
	}
	c, err := New(Options{URL: "https://business.visma.net/api/graphql-service", Connection: "c", Tokens: src})
	require.NoError(t, err)
	require.Equal(t, DefaultMaxAttempts, c.maxAttempts)
	require.Equal(t, DefaultBaseBackoff, c.base)
	require.Equal(t, DefaultMaxBackoff, c.max)
}
