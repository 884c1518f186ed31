package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/nxtcron/nxtcron/bnxt"
	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/sinks"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/tokens"
)

// pfBound bounds every wait of the prefetch tests for the pipeline to get
// somewhere; reaching it is a failure, never a pass.
const pfBound = 30 * time.Second

// pfGate watches the GraphQL requests reaching the sandbox: it counts them,
// wakes whoever waits for a count, and can hold a request (or inject a fault
// into it) before the sandbox sees it.
type pfGate struct {
	mu      sync.Mutex
	n       int
	changed chan struct{}
	// before runs on the n-th request (from 1) before the sandbox answers
	// it, with the request's context.
	before func(ctx context.Context, n int)
}

func newPFGate() *pfGate { return &pfGate{changed: make(chan struct{})} }

func (g *pfGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/graphql") {
			// Read the body first: from then on the server watches the
			// connection, and the request's context ends when the client
			// gives up.
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			g.mu.Lock()
			g.n++
			n, before := g.n, g.before
			close(g.changed)
			g.changed = make(chan struct{})
			g.mu.Unlock()
			if before != nil {
				before(r.Context(), n)
			}
		}
		h.ServeHTTP(w, r)
	})
}

// await waits until n requests reached the sandbox, or pfBound passed.
func (g *pfGate) await(n int) error {
	deadline := time.After(pfBound)
	for {
		g.mu.Lock()
		got, ch := g.n, g.changed
		g.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-deadline:
			return fmt.Errorf("request %d never reached the sandbox (%d did)", n, got)
		}
	}
}

func (g *pfGate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// pfSink records what the pipeline gave it; write decides each Write (page
// counts from 1).
type pfSink struct {
	write func(ctx context.Context, page int, rows []sinks.Row) error

	mu        sync.Mutex
	pages     int
	rows      int
	committed bool
	aborted   bool
}

// pfConfig is the probe sink's job section; pfOpened is the sink of one
// attempt. Both lead to the pfSink.
type (
	pfConfig struct{ s *pfSink }
	pfOpened struct{ s *pfSink }
)

func (c pfConfig) Validate(sinks.JobInfo) []sinks.FieldError           { return nil }
func (c pfConfig) Open(context.Context, sinks.Env) (sinks.Sink, error) { return pfOpened(c), nil }
func (o pfOpened) Prepare(context.Context, sinks.Run) error            { return nil }
func (o pfOpened) Close() error                                        { return nil }
func (o pfOpened) Open(context.Context, sinks.Run, int64) (sinks.Writer, error) {
	return pfWriter(o), nil
}

type pfWriter struct{ s *pfSink }

func (w pfWriter) Write(ctx context.Context, rows []sinks.Row) error {
	s := w.s
	s.mu.Lock()
	s.pages++
	page := s.pages
	s.mu.Unlock()
	if s.write != nil {
		if err := s.write(ctx, page, rows); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.rows += len(rows)
	s.mu.Unlock()
	return nil
}

func (w pfWriter) Commit(context.Context, *sinks.Watermark) error {
	w.s.mu.Lock()
	w.s.committed = true
	w.s.mu.Unlock()
	return nil
}

func (w pfWriter) Abort(context.Context) error {
	w.s.mu.Lock()
	w.s.aborted = true
	w.s.mu.Unlock()
	return nil
}

// pfRig is the run pipeline on the real sandbox (one company of 250
// associates, pages of 50: five pages), a SQLite store and a real client.
type pfRig struct {
	sb     *sandbox.Server
	gate   *pfGate
	runner *jobs.Runner
	job    *jobs.Job
	sink   *pfSink
}

type pfClients struct{ c *bnxt.Client }

func (p pfClients) Client(string) (*bnxt.Client, error) { return p.c, nil }

const pfQuery = `query($cid: Int, $first: Int, $after: String) {
  useCompany(no: $cid) {
    associate(first: $first, after: $after, orderBy: [{associateNo: ASC}]) {
      pageInfo { hasNextPage endCursor }
      items { associateNo name }
    }
  }
}`

func newPFRig(t *testing.T) *pfRig {
	t.Helper()
	// Registered first, so it runs after every other cleanup: no goroutine
	// of the pipeline (the page fetcher above all) outlives a run.
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })

	opts := sandbox.DefaultOptions()
	opts.Companies = 1
	opts.Rows = 250
	opts.RateLimit = 0
	sb, err := sandbox.New(opts)
	require.NoError(t, err)
	gate := newPFGate()
	srv := httptest.NewServer(gate.wrap(sb))
	t.Cleanup(srv.Close)

	httpClient := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(httpClient.CloseIdleConnections)
	mgr, err := tokens.NewManager(tokens.Options{
		Connections: []config.Connection{{
			Name: "service", Grant: config.GrantClientCredentials, Authority: srv.URL,
			ClientID: "isv_sandbox_service", ClientSecret: "sandbox-service-secret",
			Scopes: []string{"business-graphql-service-api:access-group-based"},
		}},
		HTTPClient: httpClient,
	})
	require.NoError(t, err)
	src, err := mgr.Source("service")
	require.NoError(t, err)
	client, err := bnxt.New(bnxt.Options{
		URL: sandbox.GraphQLServiceURL(srv.URL), Connection: "service", Tokens: src,
		HTTPClient: httpClient, MaxAttempts: 1,
	})
	require.NoError(t, err)

	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nxtcron.db"), sqlite.Options{Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })

	sink := &pfSink{}
	job := &jobs.Job{
		Name: "associates", File: filepath.Join(t.TempDir(), "associates.yaml"),
		Location: time.UTC, Connection: "service", Companies: []int64{1001},
		Query: pfQuery, PageSize: 50, Parallelism: 1,
		Paged: jobs.PagedConnection{
			Path: []string{"useCompany", "associate"}, Table: "associate",
			Fields: []string{"associateNo", "name"}, UsesCompany: true,
		},
		Sink: jobs.SinkSpec{Type: "probe", Config: pfConfig{sink}},
	}
	return &pfRig{sb: sb, gate: gate, sink: sink, job: job,
		runner: &jobs.Runner{Store: st, Clients: pfClients{client}}}
}

func (r *pfRig) run(ctx context.Context, stop <-chan struct{}) (jobs.Result, error) {
	return r.runner.Run(ctx, r.job, jobs.Attempt{
		Claim: store.Claim{Job: r.job.Name, Slot: time.Date(2026, 3, 2, 4, 0, 0, 0, time.UTC),
			Trigger: store.TriggerManual, Attempt: 1, Fence: 1, RunID: "run-1"},
		Stop: stop,
	})
}

// TestRunPrefetchesTheNextPage: each page's Write waits until the next
// page's request has reached the sandbox. A pipeline that fetched only after
// writing would never get past the first page.
func TestRunPrefetchesTheNextPage(t *testing.T) {
	r := newPFRig(t)
	r.sink.write = func(_ context.Context, page int, _ []sinks.Row) error {
		if page == 5 {
			return nil // the last page: nothing follows
		}
		return r.gate.await(page + 1)
	}
	res, err := r.run(t.Context(), nil)
	require.NoError(t, err)
	require.EqualValues(t, 250, res.Rows)
	require.Equal(t, 5, r.sink.pages)
	require.True(t, r.sink.committed)
	require.Equal(t, 5, r.gate.count(), "one request per page, no more")
}

// TestRunStopFinishesTheRequestInFlight: a shutdown while page 2 is being
// fetched lets that request finish (the sandbox answers it) and starts no
// page 3; the company is interrupted and its sink aborted.
func TestRunStopFinishesTheRequestInFlight(t *testing.T) {
	r := newPFRig(t)
	stop := make(chan struct{})
	r.gate.before = func(_ context.Context, n int) {
		if n == 2 {
			close(stop) // the shutdown begins while page 2 is in flight
		}
	}
	_, err := r.run(t.Context(), stop)
	require.ErrorIs(t, err, jobs.ErrInterrupted)
	require.Equal(t, 2, r.gate.count(), "no page after the shutdown")
	require.EqualValues(t, 2, r.sb.Stats().GraphQLRequests.GraphQLService.OK, "the request in flight finished")
	require.False(t, r.sink.committed)
	require.True(t, r.sink.aborted)
}

// TestRunFetchErrorAbortsTheImport: page 3 fails at the sandbox while page
// 2 is being written.
func TestRunFetchErrorAbortsTheImport(t *testing.T) {
	r := newPFRig(t)
	r.gate.before = func(_ context.Context, n int) {
		if n == 3 {
			if err := r.sb.AddFault(sandbox.Fault{Endpoint: sandbox.EndpointGraphQLService, Kind: sandbox.FaultGraphQLError, Next: 1}); err != nil {
				t.Error(err)
			}
		}
	}
	_, err := r.run(t.Context(), nil)
	require.ErrorContains(t, err, "fetching page 3")
	require.ErrorIs(t, err, jobs.ErrPermanent, "a GraphQL error is not retried")
	require.Equal(t, 3, r.gate.count())
	require.LessOrEqual(t, r.sink.pages, 2)
	require.False(t, r.sink.committed)
	require.True(t, r.sink.aborted)
}

// TestRunWriteErrorStopsTheFetcher: the sink fails page 2 while page 3 is
// held at the sandbox; the run ends with the sink's error at once, without
// waiting for page 3, and no goroutine is left behind.
func TestRunWriteErrorStopsTheFetcher(t *testing.T) {
	r := newPFRig(t)
	r.gate.before = func(ctx context.Context, n int) {
		if n == 3 {
			<-ctx.Done() // answered only when the client gives up
		}
	}
	errDisk := errors.New("disk full")
	r.sink.write = func(_ context.Context, page int, _ []sinks.Row) error {
		if page == 2 {
			if err := r.gate.await(3); err != nil {
				return err
			}
			return errDisk
		}
		return nil
	}
	_, err := r.run(t.Context(), nil)
	require.ErrorIs(t, err, errDisk)
	require.ErrorContains(t, err, "writing page 2")
	require.False(t, r.sink.committed)
	require.True(t, r.sink.aborted)
}

// TestRunCancelAbandonsTheRequestInFlight: cancelling the attempt's context
// (after the shutdown grace) ends the run while a page is in flight.
func TestRunCancelAbandonsTheRequestInFlight(t *testing.T) {
	r := newPFRig(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r.gate.before = func(rctx context.Context, n int) {
		if n == 2 {
			cancel()
			<-rctx.Done()
		}
	}
	_, err := r.run(ctx, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, r.sink.committed)
	require.True(t, r.sink.aborted)
}
