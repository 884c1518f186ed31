package bnxt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/tokens"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testSecret = "client-secret-that-must-never-show"
	testConn   = "service"
)

// tokenValue is the access token the test token endpoint issues n-th.
func tokenValue(n int64) string { return fmt.Sprintf("access-token-value-%03d", n) }

// received is what the GraphQL endpoint saw of one request.
type received struct {
	Authorization  string
	AcceptEncoding string
	ContentType    string
	Query          string         `json:"query"`
	Variables      map[string]any `json:"variables"`
	OperationName  string         `json:"operationName"`
}

// server is a token endpoint plus a GraphQL endpoint whose answers the test
// decides.
type server struct {
	*httptest.Server
	tokenRequests atomic.Int64
	gqlRequests   atomic.Int64

	mu  sync.Mutex
	got []received
	gql func(w http.ResponseWriter, r *http.Request, n int64)
}

func newServer(t *testing.T, gql func(w http.ResponseWriter, r *http.Request, n int64)) *server {
	t.Helper()
	s := &server{gql: gql}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+tokens.TokenPath, func(w http.ResponseWriter, _ *http.Request) {
		n := s.tokenRequests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tokenValue(n), "token_type": "Bearer", "expires_in": 3600})
	})
	mux.HandleFunc("POST /api/graphql-service", func(w http.ResponseWriter, r *http.Request) {
		n := s.gqlRequests.Add(1)
		var rec received
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body)) // the handler may read it too
		_ = json.Unmarshal(body, &rec)
		rec.Authorization = r.Header.Get("Authorization")
		rec.AcceptEncoding = r.Header.Get("Accept-Encoding")
		rec.ContentType = r.Header.Get("Content-Type")
		s.mu.Lock()
		s.got = append(s.got, rec)
		s.mu.Unlock()
		s.gql(w, r, n)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

// sleeper records the delays it is asked to sleep, without sleeping.
type sleeper struct {
	mu     sync.Mutex
	delays []time.Duration
	// hook runs on every sleep (e.g. to cancel the context).
	hook func()
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return context.Cause(ctx)
}

func (s *sleeper) Delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.delays...)
}

type harness struct {
	client  *Client
	srv     *server
	sleep   *sleeper
	logs    *observer.ObservedLogs
	metrics *metrics.Metrics
}

// newHarness makes a Client on srv with a real tokens.Manager; edit changes
// the options first.
func newHarness(t *testing.T, srv *server, edit func(*Options)) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(core)
	h := &harness{srv: srv, sleep: &sleeper{}, logs: logs, metrics: metrics.New()}
	httpClient := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(httpClient.CloseIdleConnections)
	mgr, err := tokens.NewManager(tokens.Options{
		Connections: []config.Connection{{
			Name: testConn, Grant: config.GrantClientCredentials, Authority: srv.URL,
			ClientID: "isv_test", ClientSecret: testSecret,
			Scopes: []string{"business-graphql-service-api:access-group-based"},
		}},
		HTTPClient: httpClient,
		Logger:     logger,
		Metrics:    h.metrics,
	})
	require.NoError(t, err)
	source, err := mgr.Source(testConn)
	require.NoError(t, err)
	opts := Options{
		URL:        srv.URL + "/api/graphql-service",
		Connection: testConn,
		Tokens:     source,
		HTTPClient: httpClient,
		Logger:     logger,
		Metrics:    h.metrics,
		Sleep:      h.sleep.Sleep,
	}
	if edit != nil {
		edit(&opts)
	}
	h.client, err = New(opts)
	require.NoError(t, err)
	return h
}

func (h *harness) outcomes(outcome string) float64 {
	return testutil.ToFloat64(h.metrics.GraphQLRequestsTotal.WithLabelValues(testConn, outcome))
}

// requireNoLeak fails if any log entry (message or field) or any error shows
// the client secret or an access token the test server issued.
func (h *harness) requireNoLeak(t *testing.T, errs ...error) {
	t.Helper()
	secrets := []string{testSecret}
	for n := int64(1); n <= h.srv.tokenRequests.Load(); n++ {
		secrets = append(secrets, tokenValue(n))
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, e := range h.logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		require.NoError(t, err)
		for _, s := range secrets {
			require.NotContains(t, buf.String(), s, "a log entry leaks a secret")
		}
		buf.Free()
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		for _, s := range secrets {
			require.NotContains(t, err.Error(), s, "an error leaks a secret")
			require.NotContains(t, fmt.Sprintf("%+v", err), s, "an error leaks a secret")
		}
	}
}

// reply writes a JSON GraphQL response with a trace id.
func reply(w http.ResponseWriter, trace string, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-vbc-traceid", trace)
	_, _ = io.WriteString(w, body)
}

// hijack takes the connection over and writes raw, then closes it.
func hijack(t *testing.T, w http.ResponseWriter, raw string) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijacking: %v", err)
		return
	}
	_, _ = buf.WriteString(raw)
	_ = buf.Flush()
	_ = conn.Close()
}
