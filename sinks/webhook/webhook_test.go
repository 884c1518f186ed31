package webhook

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/config/configtest"
	"github.com/nxtcron/nxtcron/sinks"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testSecret = "whsec-correct-horse-battery-staple"

// received is one POST as the receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP server on 127.0.0.1 that records every POST and
// answers with respond (nil: 204).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.got = append(rc.got, received{header: r.Header.Clone(), body: body})
		n := len(rc.got)
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(n, w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// sleeper records the backoff waits instead of waiting.
type sleeper struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeper) Delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.delays...)
}

type harness struct {
	t     *testing.T
	cfg   Config
	sleep *sleeper
	logs  *observer.ObservedLogs
	log   *zap.Logger
}

func newHarness(t *testing.T, url string) *harness {
	core, logs := observer.New(zapcore.DebugLevel)
	h := &harness{t: t, sleep: &sleeper{}, logs: logs, log: zap.New(core)}
	h.cfg = Config{URL: url, Secret: testSecret, BatchSize: DefaultBatchSize, Timeout: config.Duration(5 * time.Second),
		baseBackoff: 10 * time.Millisecond, maxBackoff: 80 * time.Millisecond, sleep: h.sleep.Sleep}
	return h
}

func (h *harness) open() *Sink {
	h.t.Helper()
	s, err := h.cfg.Open(context.Background(), sinks.Env{Log: h.log})
	require.NoError(h.t, err)
	h.t.Cleanup(func() { require.NoError(h.t, s.Close()) })
	return s.(*Sink)
}

func testRun(attempt int) sinks.Run {
	oslo, err := time.LoadLocation("Europe/Oslo")
	if err != nil {
		panic(err)
	}
	return sinks.Run{Job: "associates", RunID: fmt.Sprintf("4f8c2a9e-0d7b-4c43-9a57-1c0de5a1b2c%d", attempt),
		Slot: time.Date(2024, 3, 1, 1, 30, 0, 0, time.UTC), Attempt: attempt, Fence: int64(10 + attempt), Location: oslo}
}

func rows(from, to int) []sinks.Row {
	var out []sinks.Row
	for i := from; i <= to; i++ {
		out = append(out, sinks.Row(fmt.Sprintf(`{"associateNo":%d,"name":"Kunde %d"}`, i, i)))
	}
	return out
}

// deliver writes batches for one company and commits.
func deliver(t *testing.T, s *Sink, run sinks.Run, company int64, batches ...[]sinks.Row) error {
	t.Helper()
	ctx := context.Background()
	w, err := s.Open(ctx, run, company)
	require.NoError(t, err)
	for _, b := range batches {
		require.NoError(t, w.Write(ctx, b))
	}
	return w.Commit(ctx, nil)
}

type body struct {
	Job     string            `json:"job"`
	RunID   string            `json:"run_id"`
	Slot    string            `json:"slot"`
	Attempt int               `json:"attempt"`
	Company int64             `json:"company"`
	Batch   int               `json:"batch"`
	Batches int               `json:"batches"`
	Rows    []json.RawMessage `json:"rows"`
}

func decode(t *testing.T, r received) body {
	t.Helper()
	var b body
	require.NoError(t, json.Unmarshal(r.body, &b))
	return b
}

func TestBatchesSignedAndShaped(t *testing.T) {
	rc := newReceiver(t, nil)
	h := newHarness(t, rc.srv.URL+"/hook")
	h.cfg.BatchSize = 3
	s := h.open()
	run := testRun(1)
	require.NoError(t, deliver(t, s, run, 1001, rows(1, 4), rows(5, 7)))

	got := rc.requests()
	require.Len(t, got, 3)
	var all []string
	for i, r := range got {
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		require.Equal(t, "2024-03-01T02:30:00+01:00", r.header.Get(HeaderSlot))
		require.Equal(t, "1", r.header.Get(HeaderAttempt))
		require.Len(t, r.header.Get(HeaderIdempotencyKey), 64)

		// The receiver's check: HMAC-SHA256 of the raw body with the secret.
		sig := r.header.Get(HeaderSignature)
		require.True(t, strings.HasPrefix(sig, "sha256="))
		require.True(t, hmac.Equal([]byte(sig), []byte(Signature([]byte(testSecret), r.body))))
		require.False(t, hmac.Equal([]byte(sig), []byte(Signature([]byte("wrong"), r.body))))

		b := decode(t, r)
		require.Equal(t, body{Job: "associates", RunID: run.RunID, Slot: "2024-03-01T02:30:00+01:00", Attempt: 1,
			Company: 1001, Batch: i + 1, Batches: 3, Rows: b.Rows}, b)
		for _, row := range b.Rows {
			all = append(all, string(row))
		}
	}
	require.Len(t, decode(t, got[0]).Rows, 3)
	require.Len(t, decode(t, got[1]).Rows, 3)
	require.Len(t, decode(t, got[2]).Rows, 1)
	var want []string
	for _, r := range rows(1, 7) {
		want = append(want, string(r))
	}
	require.Equal(t, want, all, "rows arrive in order, byte for byte")
	require.True(t, strings.HasPrefix(string(got[0].body), `{"job":"associates","run_id":"`))
}

func TestIdempotencyKeyStableAcrossAttempts(t *testing.T) {
	rc := newReceiver(t, nil)
	h := newHarness(t, rc.srv.URL)
	h.cfg.BatchSize = 2
	s := h.open()
	require.NoError(t, deliver(t, s, testRun(1), 1001, rows(1, 4)))
	require.NoError(t, deliver(t, s, testRun(2), 1001, rows(1, 4)))              // a retry or takeover: same rows
	require.NoError(t, deliver(t, s, testRun(3), 1002, rows(1, 4)))              // another company
	require.NoError(t, deliver(t, s, testRun(4), 1001, rows(1, 2), rows(9, 10))) // rows changed before batch 2

	got := rc.requests()
	require.Len(t, got, 8)
	key := func(i int) string { return got[i].header.Get(HeaderIdempotencyKey) }
	require.Equal(t, key(0), key(2), "batch 1, attempts 1 and 2")
	require.Equal(t, key(1), key(3), "batch 2, attempts 1 and 2")
	require.NotEqual(t, key(0), key(1), "batches differ")
	require.NotEqual(t, key(0), key(4), "companies differ")
	require.Equal(t, key(0), key(6), "the same rows in batch 1 of attempt 4")
	require.NotEqual(t, key(1), key(7), "changed rows get a new key")
	require.NotEqual(t, got[0].header.Get(HeaderSignature), got[2].header.Get(HeaderSignature), "the body names its attempt")
	require.Equal(t, "2", got[2].header.Get(HeaderAttempt))
}

func TestRetriesThenSuccess(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case 3:
			w.WriteHeader(http.StatusRequestTimeout)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	h := newHarness(t, rc.srv.URL)
	s := h.open()
	require.NoError(t, deliver(t, s, testRun(1), 1001, rows(1, 3)))

	got := rc.requests()
	require.Len(t, got, 4)
	for _, r := range got[1:] {
		require.Equal(t, got[0].body, r.body, "a retry sends the same body")
		require.Equal(t, got[0].header.Get(HeaderIdempotencyKey), r.header.Get(HeaderIdempotencyKey))
	}
	d := h.sleep.Delays()
	require.Len(t, d, 3)
	require.LessOrEqual(t, d[0], 10*time.Millisecond, "first backoff: jitter over the base")
	require.Equal(t, 7*time.Second, d[1], "Retry-After is honoured")
	require.LessOrEqual(t, d[2], 40*time.Millisecond, "third backoff: jitter over base*4")
	require.Len(t, h.logs.FilterMessage("batch delivered after retries").All(), 1)
}

func TestBackoffIsCappedWithJitter(t *testing.T) {
	h := newHarness(t, "http://127.0.0.1:1/")
	w := newWriter(h.open(), testRun(1), 1)
	for n := 1; n <= 40; n++ {
		d := w.backoff(n)
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, 80*time.Millisecond)
	}
}

func TestPermanentRefusal(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "unknown job\nsecond line", http.StatusBadRequest)
	})
	h := newHarness(t, rc.srv.URL+"/hook?token=query-token-value")
	s := h.open()
	err := deliver(t, s, testRun(1), 1001, rows(1, 3))
	require.ErrorIs(t, err, sinks.ErrPermanent)
	require.EqualError(t, err, "posting batch 1/1 of company 1001 to "+rc.srv.URL+"/hook: HTTP 400 Bad Request: unknown job second line")
	require.Len(t, rc.requests(), 1, "a 4xx is not retried")
	require.Empty(t, h.sleep.Delays())
	configtest.AssertNoSecret(t, err.Error()+logText(h.logs), testSecret, "query-token-value")
}

func TestRedirectNotFollowed(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/hook?sig=abc", http.StatusTemporaryRedirect)
	})
	h := newHarness(t, rc.srv.URL)
	err := deliver(t, h.open(), testRun(1), 1001, rows(1, 1))
	require.ErrorIs(t, err, sinks.ErrPermanent)
	require.ErrorContains(t, err, `HTTP 307 Temporary Redirect`)
	require.ErrorContains(t, err, `redirect to "https://elsewhere.example/hook" not followed`)
	require.Len(t, rc.requests(), 1)
}

func TestKeepsRefusingFailsCleanly(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	h := newHarness(t, rc.srv.URL+"/hook")
	h.cfg.maxAttempts = 4
	s := h.open()
	err := deliver(t, s, testRun(1), 1001, rows(1, 3))
	require.Error(t, err)
	require.NotErrorIs(t, err, sinks.ErrPermanent, "the job's retry may still help")
	require.EqualError(t, err, "posting batch 1/1 of company 1001 to "+rc.srv.URL+"/hook: HTTP 502 Bad Gateway (gave up after 4 attempts)")
	require.Len(t, rc.requests(), 4)
	require.Len(t, h.sleep.Delays(), 3)
	configtest.AssertNoSecret(t, err.Error()+logText(h.logs), testSecret)
}

func TestNetworkErrorRetried(t *testing.T) {
	// A port nothing listens on: every attempt is refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	h := newHarness(t, "http://"+addr+"/hook?token=query-token-value")
	h.cfg.maxAttempts = 3
	err = deliver(t, h.open(), testRun(1), 1001, rows(1, 1))
	require.Error(t, err)
	require.NotErrorIs(t, err, sinks.ErrPermanent)
	require.ErrorContains(t, err, "posting batch 1/1 of company 1001 to http://"+addr+"/hook: ")
	require.ErrorContains(t, err, "connection refused")
	require.ErrorContains(t, err, "gave up after 3 attempts")
	configtest.AssertNoSecret(t, err.Error()+logText(h.logs), "query-token-value", testSecret)
}

func TestTimeoutHonoured(t *testing.T) {
	gaveUp := make(chan struct{}, 4)
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; returns when the client gives up
		gaveUp <- struct{}{}
	})
	h := newHarness(t, rc.srv.URL)
	h.cfg.Timeout = config.Duration(150 * time.Millisecond)
	h.cfg.maxAttempts = 2
	start := time.Now()
	err := deliver(t, h.open(), testRun(1), 1001, rows(1, 1))
	took := time.Since(start)
	require.Error(t, err)
	require.ErrorContains(t, err, "no response within 150ms (gave up after 2 attempts)")
	require.GreaterOrEqual(t, took, 300*time.Millisecond, "each attempt waited for the timeout")
	for range 2 {
		select {
		case <-gaveUp:
		case <-time.After(30 * time.Second):
			t.Fatal("the receiver never saw the client give up")
		}
	}
}

func TestNothingSentWithoutCommit(t *testing.T) {
	rc := newReceiver(t, nil)
	h := newHarness(t, rc.srv.URL)
	s := h.open()
	ctx := context.Background()

	w, err := s.Open(ctx, testRun(1), 1001)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, rows(1, 5)))
	require.NoError(t, w.Abort(ctx))
	require.NoError(t, w.Abort(ctx))
	require.EqualError(t, w.Commit(ctx, nil), "committing a committed or aborted webhook writer")

	require.NoError(t, deliver(t, s, testRun(1), 1002)) // a company without rows
	open, err := s.Open(ctx, testRun(1), 1003)          // left open: Close drops it
	require.NoError(t, err)
	require.NoError(t, open.Write(ctx, rows(1, 2)))
	require.NoError(t, s.Close())
	require.Empty(t, rc.requests())
}

func TestSpillsToATemporaryFile(t *testing.T) {
	rc := newReceiver(t, nil)
	h := newHarness(t, rc.srv.URL)
	h.cfg.spoolLimit = 100
	h.cfg.BatchSize = 40
	s := h.open()
	pretty := sinks.Row("{\n  \"associateNo\": 0,\n  \"name\": \"multi-line\"\n}")
	require.NoError(t, deliver(t, s, testRun(1), 1001, append([]sinks.Row{pretty}, rows(1, 99)...)))
	got := rc.requests()
	require.Len(t, got, 3)
	var n int
	for _, r := range got {
		n += len(decode(t, r).Rows)
	}
	require.Equal(t, 100, n)
	require.Equal(t, `{"associateNo":0,"name":"multi-line"}`, string(decode(t, got[0]).Rows[0]), "a multi-line row is compacted")
	require.Equal(t, `{"associateNo":99,"name":"Kunde 99"}`, string(decode(t, got[2]).Rows[19]))
}

func TestContextCancelStopsRetries(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	h := newHarness(t, rc.srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	h.cfg.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	s := h.open()
	w, err := s.Open(ctx, testRun(1), 1001)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, rows(1, 1)))
	err = w.Commit(ctx, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, rc.requests(), 1)
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, 3*time.Second, retryAfter("3", now))
	require.Equal(t, 90*time.Second, retryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	require.Zero(t, retryAfter("", now))
	require.Zero(t, retryAfter("soon", now))
	require.Zero(t, retryAfter("-4", now))
	require.Zero(t, retryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
}

func logText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		b.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
