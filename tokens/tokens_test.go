package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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
	"github.com/nxtcron/nxtcron/sandbox/connect"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testSecret = "s3cret-value-never-shown"

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 2, 30, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tokenServer is a token endpoint whose answers the test decides.
type tokenServer struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	forms    []map[string][]string
	basic    []string // "id:secret" of each request's Basic header
	// answer writes the response to request n (1-based).
	answer func(w http.ResponseWriter, n int64)
}

func newTokenServer(t *testing.T, answer func(w http.ResponseWriter, n int64)) *tokenServer {
	t.Helper()
	ts := &tokenServer{answer: answer}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TokenPath, func(w http.ResponseWriter, r *http.Request) {
		n := ts.requests.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, secret, _ := r.BasicAuth()
		ts.mu.Lock()
		ts.forms = append(ts.forms, r.PostForm)
		ts.basic = append(ts.basic, id+":"+secret)
		ts.mu.Unlock()
		ts.answer(w, n)
	})
	ts.Server = httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// issue answers with a token named after the request number.
func issue(expiresIn int) func(w http.ResponseWriter, n int64) {
	return func(w http.ResponseWriter, n int64) {
		body := map[string]any{"access_token": fmt.Sprintf("access-token-%d", n), "token_type": "Bearer"}
		if expiresIn > 0 {
			body["expires_in"] = expiresIn
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}
}

func oauthError(status int, code string) func(w http.ResponseWriter, n int64) {
	return func(w http.ResponseWriter, _ int64) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "refused by the test"})
	}
}

func conn(authority string) config.Connection {
	return config.Connection{
		Name:         "service",
		Grant:        config.GrantClientCredentials,
		Authority:    authority,
		ClientID:     "isv_test_client",
		ClientSecret: testSecret,
		Scopes:       []string{"business-graphql-service-api:access-group-based"},
	}
}

type harness struct {
	source  Source
	clock   *clock
	logs    *observer.ObservedLogs
	metrics *metrics.Metrics
}

func newHarness(t *testing.T, c config.Connection) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	h := &harness{clock: newClock(), logs: logs, metrics: metrics.New()}
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	m, err := NewManager(Options{
		Connections: []config.Connection{c},
		HTTPClient:  client,
		Now:         h.clock.Now,
		Logger:      zap.New(core),
		Metrics:     h.metrics,
	})
	require.NoError(t, err)
	h.source, err = m.Source(c.Name)
	require.NoError(t, err)
	return h
}

func (h *harness) refreshes(result string) float64 {
	return testutil.ToFloat64(h.metrics.TokenRefreshTotal.WithLabelValues("service", result))
}

// requireNoLeak fails if a secret or token value appears in any log entry
// (message or field) or in the given errors.
func requireNoLeak(t *testing.T, logs *observer.ObservedLogs, errs []error, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		require.NoError(t, err)
		for _, s := range secrets {
			require.NotContains(t, buf.String(), s, "log entry leaks a secret")
		}
		buf.Free()
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		for _, s := range secrets {
			require.NotContains(t, err.Error(), s, "error leaks a secret")
			require.NotContains(t, fmt.Sprintf("%+v", err), s, "error leaks a secret")
		}
	}
}

func TestTokenCachedAndShared(t *testing.T) {
	ts := newTokenServer(t, issue(3600))
	h := newHarness(t, conn(ts.URL))
	ctx := context.Background()

	var wg sync.WaitGroup
	got := make([]Token, 20)
	errs := make([]error, 20)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = h.source.Token(ctx)
		}()
	}
	wg.Wait()
	for i := range got {
		require.NoError(t, errs[i])
		require.Equal(t, "access-token-1", got[i].Value.Reveal())
	}
	tok, err := h.source.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, got[0], tok)
	require.Equal(t, int64(1), ts.requests.Load(), "one request for every caller")
	require.Equal(t, HashToken("access-token-1"), tok.Hash)
	require.Equal(t, h.clock.Now().Add(time.Hour), tok.Expiry)
	require.Equal(t, 1.0, h.refreshes("ok"))
	requireNoLeak(t, h.logs, errs, testSecret, "access-token-1")
}

func TestTokenRenewedAheadOfExpiry(t *testing.T) {
	tests := []struct {
		name      string
		expiresIn int
		renewAt   time.Duration // after the first fetch
		expiry    time.Duration
	}{
		{name: "an hour renews five minutes ahead", expiresIn: 3600, renewAt: 55 * time.Minute, expiry: time.Hour},
		{name: "short lifetime renews a quarter ahead", expiresIn: 400, renewAt: 300 * time.Second, expiry: 400 * time.Second},
		{name: "missing expires_in counts as 300 s", expiresIn: 0, renewAt: 225 * time.Second, expiry: 300 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t, issue(tt.expiresIn))
			h := newHarness(t, conn(ts.URL))
			ctx := context.Background()
			start := h.clock.Now()

			first, err := h.source.Token(ctx)
			require.NoError(t, err)
			require.Equal(t, start.Add(tt.expiry), first.Expiry)

			h.clock.Add(tt.renewAt - time.Second)
			again, err := h.source.Token(ctx)
			require.NoError(t, err)
			require.Equal(t, first.Hash, again.Hash, "still cached a second before renewal")
			require.Equal(t, int64(1), ts.requests.Load())

			h.clock.Add(time.Second)
			renewed, err := h.source.Token(ctx)
			require.NoError(t, err)
			require.Equal(t, "access-token-2", renewed.Value.Reveal())
			require.Equal(t, int64(2), ts.requests.Load())
			require.Equal(t, 2.0, h.refreshes("ok"))
		})
	}
}

func TestTokenRequestCarriesClientAuthScopeAndTenant(t *testing.T) {
	ts := newTokenServer(t, issue(3600))
	c := conn(ts.URL + "/") // a trailing slash on the authority is fine
	c.TenantID = "tenant-42"
	h := newHarness(t, c)
	_, err := h.source.Token(context.Background())
	require.NoError(t, err)

	ts.mu.Lock()
	defer ts.mu.Unlock()
	require.Len(t, ts.forms, 1)
	require.Equal(t, "isv_test_client:"+testSecret, ts.basic[0], "client authenticates with HTTP Basic")
	form := ts.forms[0]
	require.Equal(t, []string{"client_credentials"}, form["grant_type"])
	require.Equal(t, []string{"business-graphql-service-api:access-group-based"}, form["scope"])
	require.Equal(t, []string{"tenant-42"}, form["tenant_id"])
	require.NotContains(t, form, "client_secret", "the secret goes in the Basic header only")
}

func TestTokenWithoutTenantSendsNoTenant(t *testing.T) {
	ts := newTokenServer(t, issue(3600))
	h := newHarness(t, conn(ts.URL))
	_, err := h.source.Token(context.Background())
	require.NoError(t, err)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	require.NotContains(t, ts.forms[0], "tenant_id")
}

func TestTokenErrors(t *testing.T) {
	tests := []struct {
		name        string
		answer      func(w http.ResponseWriter, n int64)
		permanent   bool
		errContains string
	}{
		{name: "invalid_client", answer: oauthError(http.StatusUnauthorized, "invalid_client"), permanent: true, errContains: `"invalid_client"`},
		{name: "invalid_scope", answer: oauthError(http.StatusBadRequest, "invalid_scope"), permanent: true, errContains: `"invalid_scope"`},
		{name: "invalid_grant", answer: oauthError(http.StatusBadRequest, "invalid_grant"), permanent: true, errContains: `"invalid_grant"`},
		{name: "temporarily_unavailable", answer: oauthError(http.StatusServiceUnavailable, "temporarily_unavailable"), errContains: `"temporarily_unavailable"`},
		{
			name: "html 502",
			answer: func(w http.ResponseWriter, _ int64) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				_, _ = w.Write([]byte("<html><body>" + strings.Repeat("bad gateway ", 500) + "</body></html>"))
			},
			errContains: "token endpoint answered 502 Bad Gateway",
		},
		{
			name: "html 401 without error code",
			answer: func(w http.ResponseWriter, _ int64) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte("<html>no</html>"))
			},
			permanent:   true,
			errContains: "token endpoint answered 401 Unauthorized",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t, tt.answer)
			h := newHarness(t, conn(ts.URL))
			_, err := h.source.Token(context.Background())
			require.Error(t, err)
			require.ErrorContains(t, err, tt.errContains)
			require.ErrorContains(t, err, `connection "service"`)
			require.Equal(t, tt.permanent, errors.Is(err, ErrPermanent), "permanent: %v", err)
			require.NotContains(t, err.Error(), "bad gateway bad gateway", "no response body in the error")
			require.Equal(t, 1.0, h.refreshes("error"))
			require.Equal(t, int64(1), ts.requests.Load(), "one request, no auth-style probing")
			requireNoLeak(t, h.logs, []error{err}, testSecret)
		})
	}
}

func TestInvalidateOnlyTheFailedToken(t *testing.T) {
	ts := newTokenServer(t, issue(3600))
	h := newHarness(t, conn(ts.URL))
	ctx := context.Background()

	first, err := h.source.Token(ctx)
	require.NoError(t, err)

	h.source.Invalidate(HashToken("some-older-token"))
	same, err := h.source.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, first.Hash, same.Hash, "a 401 for another token keeps the cached one")
	require.Equal(t, int64(1), ts.requests.Load())

	h.source.Invalidate(first.Hash)
	second, err := h.source.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, "access-token-2", second.Value.Reveal())
	require.Equal(t, int64(2), ts.requests.Load())

	h.source.Invalidate(first.Hash) // late 401 for the first token
	third, err := h.source.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, second.Hash, third.Hash, "a late 401 must not evict the newer token")
	require.Equal(t, int64(2), ts.requests.Load())
	requireNoLeak(t, h.logs, nil, testSecret, "access-token-1", "access-token-2")
}

func TestWaiterCancelDoesNotCancelSharedFetch(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	ts := newTokenServer(t, func(w http.ResponseWriter, n int64) {
		arrived <- struct{}{}
		<-release
		issue(3600)(w, n)
	})
	h := newHarness(t, conn(ts.URL))

	ctx, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := h.source.Token(ctx)
		firstErr <- err
	}()
	<-arrived // the request is at the token endpoint
	type result struct {
		tok Token
		err error
	}
	second := make(chan result, 1)
	go func() {
		tok, err := h.source.Token(context.Background())
		second <- result{tok, err}
	}()
	cancel()
	err := <-firstErr
	require.ErrorIs(t, err, context.Canceled, "a cancelled caller returns at once")

	close(release)
	r := <-second
	require.NoError(t, r.err)
	require.Equal(t, "access-token-1", r.tok.Value.Reveal())
	require.Equal(t, int64(1), ts.requests.Load(), "the waiter got the shared request's token")
}

func TestCachedTokenServesWhileRenewalFails(t *testing.T) {
	ts := newTokenServer(t, nil)
	ts.answer = func(w http.ResponseWriter, n int64) {
		if n == 1 {
			issue(3600)(w, n)
			return
		}
		oauthError(http.StatusServiceUnavailable, "temporarily_unavailable")(w, n)
	}
	h := newHarness(t, conn(ts.URL))
	ctx := context.Background()
	first, err := h.source.Token(ctx)
	require.NoError(t, err)

	h.clock.Add(56 * time.Minute) // due for renewal, not expired
	tok, err := h.source.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, first.Hash, tok.Hash)
	require.Equal(t, int64(2), ts.requests.Load())
	require.Equal(t, 1.0, h.refreshes("error"))

	h.clock.Add(renewRetry - time.Second)
	tok, err = h.source.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, first.Hash, tok.Hash)
	require.Equal(t, int64(2), ts.requests.Load(), "a failing endpoint is not asked on every call")

	h.clock.Add(time.Second)
	tok, err = h.source.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, first.Hash, tok.Hash)
	require.Equal(t, int64(3), ts.requests.Load(), "asked again after the hold-off")

	h.clock.Add(4 * time.Minute) // expired now
	_, err = h.source.Token(ctx)
	require.ErrorContains(t, err, "temporarily_unavailable")
}

func TestNewManager(t *testing.T) {
	good := conn("https://connect.visma.com")
	refresh := good
	refresh.Name = "nightly-user"
	refresh.Grant = config.GrantRefreshToken
	tests := []struct {
		name        string
		conns       []config.Connection
		errContains string
	}{
		{name: "ok", conns: []config.Connection{good, refresh}},
		{name: "sandbox not resolved", conns: []config.Connection{conn("sandbox")}, errContains: `connection "service": authority "sandbox" has not been replaced`},
		{name: "not a url", conns: []config.Connection{conn("connect.visma.com")}, errContains: `authority "connect.visma.com": want an http or https URL`},
		{name: "unknown grant", conns: []config.Connection{func() config.Connection { c := good; c.Grant = "password"; return c }()}, errContains: `connection "service": unknown grant "password"`},
		{name: "twice", conns: []config.Connection{good, good}, errContains: `connection "service": defined twice`},
		{name: "no client id", conns: []config.Connection{func() config.Connection { c := good; c.ClientID = ""; return c }()}, errContains: `connection "service": client_id is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewManager(Options{Connections: tt.conns})
			if tt.errContains != "" {
				require.ErrorContains(t, err, tt.errContains)
				require.NotContains(t, err.Error(), testSecret)
				return
			}
			require.NoError(t, err)
			_, err = m.Source("service")
			require.NoError(t, err)
			_, err = m.Source("nightly-user")
			require.ErrorIs(t, err, ErrUnsupportedGrant)
			require.ErrorContains(t, err, `connection "nightly-user": grant refresh_token`)
			_, err = m.Source("servcie")
			require.ErrorIs(t, err, ErrUnknownConnection)
			require.ErrorContains(t, err, "configured: nightly-user, service")
		})
	}
}

// TestAgainstSandboxConnect gets real tokens from the Visma Connect emulator.
func TestAgainstSandboxConnect(t *testing.T) {
	provider, err := connect.New(connect.DefaultOptions())
	require.NoError(t, err)
	srv := httptest.NewServer(provider)
	t.Cleanup(srv.Close)

	c := conn(srv.URL)
	c.ClientID = "isv_sandbox_service"
	c.ClientSecret = "sandbox-service-secret"
	c.TenantID = "tenant-1"
	h := newHarness(t, c)
	tok, err := h.source.Token(context.Background())
	require.NoError(t, err)
	require.Equal(t, h.clock.Now().Add(connect.DefaultAccessTokenTTL), tok.Expiry, "expires_in read from the response")
	require.Equal(t, 3, strings.Count(tok.Value.Reveal(), ".")+1, "a JWT")
	require.Equal(t, int64(1), provider.Stats().TokenRequests.ClientCredentials.OK)

	bad := c
	bad.ClientSecret = "wrong-secret-value"
	hb := newHarness(t, bad)
	_, err = hb.source.Token(context.Background())
	require.ErrorIs(t, err, ErrPermanent)
	require.ErrorContains(t, err, "invalid_client")
	requireNoLeak(t, h.logs, nil, "sandbox-service-secret", tok.Value.Reveal())
	requireNoLeak(t, hb.logs, []error{err}, "wrong-secret-value")
}
