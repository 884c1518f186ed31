package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/sandbox/connect"
)

func TestStatsShape(t *testing.T) {
	_, srv := start(t, nil)
	r := adminJSON(t, http.MethodGet, srv.URL+"/sandbox/stats", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{
		"token_requests": {
			"client_credentials": {"ok": 0, "error": 0},
			"refresh_token": {"ok": 0, "error": 0},
			"authorization_code": {"ok": 0, "error": 0}
		},
		"reuse_detected": 0,
		"graphql_requests": {
			"graphql": {"ok": 0, "error": 0, "unauthorized": 0, "rate_limited": 0, "outstanding_limited": 0},
			"graphql-service": {"ok": 0, "error": 0, "unauthorized": 0, "rate_limited": 0, "outstanding_limited": 0}
		},
		"rows_served": 0
	}`, string(r.raw))
}

func TestRefreshTokenRotationAndReuseDetection(t *testing.T) {
	_, srv := start(t, nil)
	first := newRefreshToken(t, srv.URL)
	r := refresh(t, srv.URL, first, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	second := r.str("refresh_token")
	r = refresh(t, srv.URL, second, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	third := r.str("refresh_token")
	g := gql(t, srv.URL+connect.PathGraphQL, r.str("access_token"), query(`{ useCompany(no: 1002) { associate(first: 3) { items { associateNo } } } }`, nil))
	require.Equal(t, http.StatusOK, g.status)
	require.Nil(t, g.body["errors"], string(g.raw))

	r = refresh(t, srv.URL, first, nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Equal(t, "invalid_grant", r.str("error"))
	r = refresh(t, srv.URL, third, nil)
	require.Equal(t, "invalid_grant", r.str("error"), "reuse detection revoked the newest token too")

	st := stats(t, srv.URL)
	require.EqualValues(t, 1, st.ReuseDetected)
	require.Equal(t, connect.GrantCounts{OK: 2, Error: 2}, st.TokenRequests.RefreshToken)
	require.EqualValues(t, 1, st.GraphQLRequests.GraphQL.OK)
	require.EqualValues(t, 3, st.RowsServed)
}

func TestAdminRefreshTokensErrors(t *testing.T) {
	_, srv := start(t, nil)
	for _, tc := range []struct {
		body        any
		errContains string
	}{
		{map[string]string{"client_id": connect.ServiceClientID, "email": connect.JobUserEmail}, "does not use refresh tokens"},
		{map[string]string{"client_id": connect.WebClientID, "email": "nobody@example.com"}, "unknown user"},
		{map[string]string{"client": connect.WebClientID}, "unknown field"},
	} {
		r := adminJSON(t, http.MethodPost, srv.URL+"/sandbox/refresh-tokens", tc.body)
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Contains(t, r.str("error"), tc.errContains)
	}
	// The other user gets a chain of their own.
	r := adminJSON(t, http.MethodPost, srv.URL+"/sandbox/refresh-tokens", map[string]string{"client_id": connect.WebClientID, "email": connect.OtherUserEmail})
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, http.StatusOK, refresh(t, srv.URL, r.str("refresh_token"), nil).status)
}

func TestAdminTouch(t *testing.T) {
	_, srv := start(t, nil)
	r := adminJSON(t, http.MethodPost, srv.URL+"/sandbox/touch", map[string]any{
		"company": 1001, "table": "associate", "count": 10, "at": "2030-06-01T12:00:00",
	})
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	require.EqualValues(t, 10, r.body["touched"])

	// The touched rows show up in an incremental read.
	const q = `query($filter: FilterExpression_Associate) {
  useCompany(no: 1001) { associate(first: 100, filter: $filter) { totalCount items { changedTimestamp } } }
}`
	tok := serviceToken(t, srv.URL)
	g := gql(t, srv.URL+connect.PathGraphQLService, tok, query(q, map[string]any{
		"filter": map[string]any{"changedTimestamp": map[string]any{"_gte": "2030-06-01T12:00:00"}},
	}))
	require.Nil(t, g.body["errors"], string(g.raw))
	conn := g.body["data"].(map[string]any)["useCompany"].(map[string]any)["associate"].(map[string]any)
	require.EqualValues(t, 10, conn["totalCount"], string(g.raw))

	for _, tc := range []struct {
		body        map[string]any
		errContains string
	}{
		{map[string]any{"company": 1001, "table": "nosuchtable", "count": 1}, "nosuchtable"},
		{map[string]any{"company": 1001, "table": "associate", "count": 1, "at": "yesterday"}, "at"},
	} {
		r := adminJSON(t, http.MethodPost, srv.URL+"/sandbox/touch", tc.body)
		require.Equal(t, http.StatusBadRequest, r.status, string(r.raw))
		require.Contains(t, r.str("error"), tc.errContains)
	}
}

func TestSettingsApplyAtOnce(t *testing.T) {
	s, srv := start(t, nil)
	r := adminJSON(t, http.MethodPut, srv.URL+"/sandbox/settings", map[string]any{
		"access_token_ttl":    "120s",
		"companies":           3,
		"refresh-token-usage": "reuse",
		"latency":             0.05,
	})
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	require.Equal(t, "2m0s", r.body["access_token_ttl"])
	require.EqualValues(t, 3, r.body["companies"])
	require.Equal(t, "reuse", r.body["refresh_token_usage"])
	require.Equal(t, "50ms", r.body["latency"])
	require.Equal(t, sandbox.DefaultOptions().Listen, r.body["listen"])
	require.Equal(t, 120*time.Second, s.Options().AccessTokenTTL)

	tok := postForm(t, srv.URL+connect.PathToken, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {connect.ServiceClientID}, "client_secret": {connect.ServiceClientSecret},
	})
	require.EqualValues(t, 120, tok.body["expires_in"])
	require.Equal(t, []int{1001, 1002, 1003}, companyIDs(t, gql(t, srv.URL+connect.PathGraphQLService, tok.str("access_token"), query(companiesQuery, nil))))
	rt := newRefreshToken(t, srv.URL)
	require.Equal(t, rt, refresh(t, srv.URL, rt, nil).str("refresh_token"), "reuse mode keeps the token")

	got := adminJSON(t, http.MethodGet, srv.URL+"/sandbox/settings", nil)
	require.Equal(t, r.body, got.body)

	for _, tc := range []struct {
		patch       string
		errContains string
	}{
		{`{"colour": "red"}`, "colour: unknown setting"},
		{`{"compression": "zip"}`, "compression"},
		{`{"rate_limit": -1}`, "rate_limit"},
		{`{"latency": "soon"}`, "latency"},
		{`{"companies": "many"}`, "companies"},
		{`{"listen": "127.0.0.1:1"}`, "listen"},
		{`[1]`, "decoding settings"},
	} {
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/sandbox/settings", strings.NewReader(tc.patch))
		require.NoError(t, err)
		r := do(t, req)
		require.Equal(t, http.StatusBadRequest, r.status, tc.patch)
		require.Contains(t, r.str("error"), tc.errContains)
	}
	require.Equal(t, 120*time.Second, s.Options().AccessTokenTTL, "a refused patch changes nothing")

	// Turning the admin API off takes effect at once too.
	r = adminJSON(t, http.MethodPut, srv.URL+"/sandbox/settings", map[string]any{"admin": false})
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, http.StatusNotFound, adminJSON(t, http.MethodGet, srv.URL+"/sandbox/stats", nil).status)
}

func TestAdminRefusedForNonLoopbackPeers(t *testing.T) {
	s, err := sandbox.New(func() sandbox.Options { o := sandbox.DefaultOptions(); o.Admin = true; return o }())
	require.NoError(t, err)
	for _, tc := range []struct {
		remote string
		status int
	}{
		{"10.1.2.3:4444", http.StatusForbidden},
		{"[2001:db8::1]:80", http.StatusForbidden},
		{"127.0.0.1:4444", http.StatusOK},
		{"[::1]:4444", http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, "/sandbox/stats", nil)
		req.RemoteAddr = tc.remote
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		require.Equal(t, tc.status, rec.Code, tc.remote)
	}
}

func TestAdminRoutes(t *testing.T) {
	_, srv := start(t, nil)
	r := adminJSON(t, http.MethodPost, srv.URL+"/sandbox/stats", nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, "GET", r.header.Get("Allow"))
	r = adminJSON(t, http.MethodGet, srv.URL+"/sandbox/nothing", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	var body map[string]string
	require.NoError(t, json.Unmarshal(r.raw, &body))
	require.Contains(t, body["error"], "/sandbox/nothing")
}

func TestIndexAndNotFound(t *testing.T) {
	_, srv := start(t, nil)
	r := do(t, mustGet(t, srv.URL+"/"))
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.raw), srv.URL+connect.PathToken)
	require.Len(t, r.header.Get(sandbox.TraceHeader), 32)
	r = do(t, mustGet(t, srv.URL+"/nothing"))
	require.Equal(t, http.StatusNotFound, r.status)
}

func TestListenAndClose(t *testing.T) {
	opts := sandbox.DefaultOptions()
	opts.Listen = "127.0.0.1:0"
	s, err := sandbox.New(opts)
	require.NoError(t, err)
	require.Empty(t, s.URL())
	require.NoError(t, s.Listen(""))
	require.Error(t, s.Listen(""), "a second Listen is refused")
	base := s.URL()
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)
	require.Equal(t, base+"/connect/token", sandbox.TokenURL(base))
	require.Equal(t, base+"/api/graphql", sandbox.GraphQLURL(base))
	require.Equal(t, base+"/api/graphql-service", sandbox.GraphQLServiceURL(base+"/"))

	tok := serviceToken(t, base)
	require.Len(t, companyIDs(t, gql(t, sandbox.GraphQLServiceURL(base), tok, query(companiesQuery, nil))), 2)
	require.NoError(t, s.Close())
	client.CloseIdleConnections()
	_, err = client.Get(base + "/")
	require.True(t, errors.Is(err, syscall.ECONNREFUSED), "%v", err)
}

func TestRunStopsWithContext(t *testing.T) {
	opts := sandbox.DefaultOptions()
	opts.Listen = "127.0.0.1:0"
	s, err := sandbox.New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	eventually(t, func() bool { return s.URL() != "" }, "Run listens")
	r := do(t, mustGet(t, s.URL()+connect.PathDiscovery))
	require.Equal(t, s.URL(), r.str("issuer"))
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}

	s2, err := sandbox.New(opts)
	require.NoError(t, err)
	ctx2, cancel2 := context.WithCancel(context.Background())
	require.NoError(t, s2.Start(ctx2))
	require.Equal(t, http.StatusOK, do(t, mustGet(t, s2.URL()+"/")).status)
	cancel2()
	client.CloseIdleConnections()
	eventually(t, func() bool {
		_, err := client.Get(s2.URL() + "/")
		return errors.Is(err, syscall.ECONNREFUSED)
	}, "Start stops serving when its context ends")
}
