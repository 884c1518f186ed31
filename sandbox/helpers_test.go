package sandbox_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/sandbox/connect"
)

// client never asks for or decodes compression by itself, so that the tests
// see exactly what the server sends.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// fakeClock is a clock the tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// start runs a sandbox with the admin API on and the defaults changed by
// mutate.
func start(t *testing.T, mutate func(*sandbox.Options)) (*sandbox.Server, *httptest.Server) {
	t.Helper()
	opts := sandbox.DefaultOptions()
	opts.Admin = true
	if mutate != nil {
		mutate(&opts)
	}
	s, err := sandbox.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

type response struct {
	status int
	header http.Header
	raw    []byte // decoded per Content-Encoding
	wire   []byte // as sent
	body   map[string]any
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	wire, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := response{status: resp.StatusCode, header: resp.Header, wire: wire, raw: decode(t, resp.Header.Get("Content-Encoding"), wire)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(r.raw) > 0 && r.raw[0] == '{' {
		_ = json.Unmarshal(r.raw, &r.body) // a truncated body stays undecoded
	}
	return r
}

func decode(t *testing.T, encoding string, b []byte) []byte {
	t.Helper()
	var rd io.Reader
	switch encoding {
	case "":
		return b
	case "br":
		rd = brotli.NewReader(bytes.NewReader(b))
	case "gzip":
		gz, err := gzip.NewReader(bytes.NewReader(b))
		require.NoError(t, err)
		rd = gz
	default:
		t.Fatalf("unexpected Content-Encoding %q", encoding)
	}
	out, err := io.ReadAll(rd)
	require.NoError(t, err)
	return out
}

func postForm(t *testing.T, u string, form url.Values) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func adminJSON(t *testing.T, method, u string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

// serviceToken gets a client-credentials access token.
func serviceToken(t *testing.T, base string) string {
	t.Helper()
	r := postForm(t, base+connect.PathToken, url.Values{
		"grant_type":    {"client_credentials"},
		"scope":         {connect.ScopeGraphQLService},
		"client_id":     {connect.ServiceClientID},
		"client_secret": {connect.ServiceClientSecret},
	})
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	return r.str("access_token")
}

// newRefreshToken starts a refresh token chain through the admin API.
func newRefreshToken(t *testing.T, base string) string {
	t.Helper()
	r := adminJSON(t, http.MethodPost, base+"/sandbox/refresh-tokens", map[string]string{
		"client_id": connect.WebClientID, "email": connect.JobUserEmail,
	})
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	require.NotEmpty(t, r.str("refresh_token"))
	return r.str("refresh_token")
}

func refresh(t *testing.T, base, tok string, extra url.Values) response {
	t.Helper()
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {tok},
		"client_id":     {connect.WebClientID},
		"client_secret": {connect.WebClientSecret},
	}
	for k, v := range extra {
		form[k] = v
	}
	return postForm(t, base+connect.PathToken, form)
}

// userToken gets an access token for /api/graphql.
func userToken(t *testing.T, base string) string {
	t.Helper()
	r := refresh(t, base, newRefreshToken(t, base), nil)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	return r.str("access_token")
}

// gql posts a GraphQL request with token; headers are name, value pairs.
func gql(t *testing.T, endpoint, token, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, req)
}

func query(q string, vars map[string]any) string {
	b, err := json.Marshal(map[string]any{"query": q, "variables": vars})
	if err != nil {
		panic(err)
	}
	return string(b)
}

const companiesQuery = `{ availableCompanies { totalCount items { name vismaNetCompanyId } } }`

// companyIDs returns the vismaNetCompanyIds of an availableCompanies answer.
func companyIDs(t *testing.T, r response) []int {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	require.Nil(t, r.body["errors"], string(r.raw))
	items := r.body["data"].(map[string]any)["availableCompanies"].(map[string]any)["items"].([]any)
	var ids []int
	for _, it := range items {
		ids = append(ids, int(it.(map[string]any)["vismaNetCompanyId"].(float64)))
	}
	return ids
}

// requireUnauthorized checks Business NXT's answer to a bad token.
func requireUnauthorized(t *testing.T, r response) {
	t.Helper()
	require.Equal(t, http.StatusUnauthorized, r.status, string(r.raw))
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/html"), r.header.Get("Content-Type"))
	require.True(t, strings.HasPrefix(string(r.raw), "<!DOCTYPE html>"), string(r.raw))
	require.True(t, strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`), r.header.Get("WWW-Authenticate"))
	require.Error(t, json.Unmarshal(r.raw, new(any)), "the body must not be JSON")
	require.Len(t, r.header.Get(sandbox.TraceHeader), 32)
}

func stats(t *testing.T, base string) sandbox.Stats {
	t.Helper()
	r := adminJSON(t, http.MethodGet, base+"/sandbox/stats", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	var st sandbox.Stats
	require.NoError(t, json.Unmarshal(r.raw, &st))
	return st
}

func addFault(t *testing.T, base string, f map[string]any) {
	t.Helper()
	r := adminJSON(t, http.MethodPost, base+"/sandbox/faults", f)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
}

// eventually polls cond every 5ms for up to 10s.
func eventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, fmt.Sprintf(msg, args...))
}
