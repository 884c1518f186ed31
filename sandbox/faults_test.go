package sandbox_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/sandbox/connect"
)

func TestGraphQLFaults(t *testing.T) {
	_, srv := start(t, nil)
	endpoint := srv.URL + connect.PathGraphQLService
	tok := serviceToken(t, srv.URL)
	body := query(companiesQuery, nil)
	normal := gql(t, endpoint, tok, body)
	require.Equal(t, http.StatusOK, normal.status)

	for _, tc := range []struct {
		kind  string
		extra map[string]any
		check func(t *testing.T, r response, elapsed time.Duration)
	}{
		{"401", nil, func(t *testing.T, r response, _ time.Duration) { requireUnauthorized(t, r) }},
		{"429", map[string]any{"retry_after": 7}, func(t *testing.T, r response, _ time.Duration) {
			require.Equal(t, http.StatusTooManyRequests, r.status)
			require.Equal(t, "7", r.header.Get("Retry-After"))
		}},
		{"500", nil, func(t *testing.T, r response, _ time.Duration) {
			require.Equal(t, http.StatusInternalServerError, r.status)
			require.NotEmpty(t, r.raw)
		}},
		{"502", nil, func(t *testing.T, r response, _ time.Duration) {
			require.Equal(t, http.StatusBadGateway, r.status)
			require.NotEmpty(t, r.raw)
		}},
		{"graphql_error", nil, func(t *testing.T, r response, _ time.Duration) {
			require.Equal(t, http.StatusOK, r.status)
			require.Contains(t, r.body, "data")
			require.Nil(t, r.body["data"])
			require.NotEmpty(t, r.body["errors"])
		}},
		{"outstanding_limit", nil, func(t *testing.T, r response, _ time.Duration) {
			require.Equal(t, http.StatusOK, r.status)
			errs := r.body["errors"].([]any)
			require.Equal(t, "OUTSTANDING_LIMIT_EXCEEDED", errs[0].(map[string]any)["extensions"].(map[string]any)["code"])
		}},
		{"slow", map[string]any{"delay": "300ms"}, func(t *testing.T, r response, elapsed time.Duration) {
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, string(normal.raw), string(r.raw))
			require.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
		}},
		{"truncated", nil, func(t *testing.T, r response, _ time.Duration) {
			require.Equal(t, http.StatusOK, r.status)
			require.Less(t, len(r.raw), len(normal.raw))
			require.True(t, strings.HasPrefix(string(normal.raw), string(r.raw)))
			require.Error(t, json.Unmarshal(r.raw, new(any)), "a truncated body does not decode")
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			f := map[string]any{"endpoint": "graphql-service", "kind": tc.kind, "next": 2}
			for k, v := range tc.extra {
				f[k] = v
			}
			addFault(t, srv.URL, f)
			for range 2 {
				began := time.Now()
				r := gql(t, endpoint, tok, body)
				tc.check(t, r, time.Since(began))
				require.Len(t, r.header.Get(sandbox.TraceHeader), 32)
			}
			r := gql(t, endpoint, tok, body)
			require.Equal(t, string(normal.raw), string(r.raw), "the fault is used up after next requests")
		})
	}
	st := stats(t, srv.URL).GraphQLRequests.GraphQLService
	require.Equal(t, sandbox.EndpointStats{OK: 1 + 8 + 2, Error: 8, Unauthorized: 2, RateLimited: 2, OutstandingLimited: 2}, st)
}

func TestFaultTargeting(t *testing.T) {
	_, srv := start(t, nil)
	svcTok, userTok := serviceToken(t, srv.URL), userToken(t, srv.URL)
	svc := func() int {
		return gql(t, srv.URL+connect.PathGraphQLService, svcTok, query(companiesQuery, nil)).status
	}
	user := func() int { return gql(t, srv.URL+connect.PathGraphQL, userTok, query(companiesQuery, nil)).status }

	addFault(t, srv.URL, map[string]any{"endpoint": "graphql", "kind": "500", "next": 1})
	require.Equal(t, 200, svc(), "a fault for graphql leaves graphql-service alone")
	require.Equal(t, 500, user())
	require.Equal(t, 200, user())

	// Without an endpoint a fault applies to both GraphQL endpoints, but not
	// to the token endpoint.
	addFault(t, srv.URL, map[string]any{"kind": "502", "next": 2})
	require.Equal(t, http.StatusOK, postForm(t, srv.URL+connect.PathToken, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {connect.ServiceClientID}, "client_secret": {connect.ServiceClientSecret},
	}).status)
	require.Equal(t, 502, svc())
	require.Equal(t, 502, user())
	require.Equal(t, 200, svc())

	// DELETE clears every fault.
	addFault(t, srv.URL, map[string]any{"kind": "500", "rate": 1})
	require.Equal(t, 500, svc())
	r := adminJSON(t, http.MethodGet, srv.URL+"/sandbox/faults", nil)
	require.Len(t, r.body["faults"], 1)
	r = adminJSON(t, http.MethodDelete, srv.URL+"/sandbox/faults", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, 200, svc())
	require.Equal(t, 200, user())
}

func TestFaultRateIsDeterministic(t *testing.T) {
	pattern := func(seed int) string {
		_, srv := start(t, nil)
		tok := serviceToken(t, srv.URL)
		addFault(t, srv.URL, map[string]any{"endpoint": "graphql-service", "kind": "500", "rate": 0.3, "seed": seed})
		var b strings.Builder
		for range 40 {
			if gql(t, srv.URL+connect.PathGraphQLService, tok, query(companiesQuery, nil)).status == 500 {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b, c := pattern(7), pattern(7), pattern(8)
	require.Equal(t, a, b, "the same seed faults the same requests")
	require.NotEqual(t, a, c, "another seed faults others")
	n := strings.Count(a, "x")
	require.True(t, n > 4 && n < 24, "about 30%% of 40 requests, got %d: %s", n, a)
}

func TestFaultValidation(t *testing.T) {
	_, srv := start(t, nil)
	for _, tc := range []struct {
		fault       map[string]any
		errContains string
	}{
		{map[string]any{"kind": "418", "next": 1}, "kind"},
		{map[string]any{"endpoint": "token", "kind": "graphql_error", "next": 1}, "kind"},
		{map[string]any{"endpoint": "soap", "kind": "500", "next": 1}, "endpoint"},
		{map[string]any{"kind": "500"}, "next or rate"},
		{map[string]any{"kind": "500", "next": 1, "rate": 0.5}, "exclude"},
		{map[string]any{"kind": "500", "rate": 1.5}, "rate"},
		{map[string]any{"kind": "slow", "next": 1, "phase": "after_rotate"}, "phase"},
		{map[string]any{"endpoint": "token", "kind": "slow", "next": 1, "phase": "later"}, "phase"},
		{map[string]any{"kind": "slow", "next": 1, "delay": "soon"}, "delay"},
		{map[string]any{"kind": "500", "next": 1, "colour": "red"}, "colour"},
	} {
		r := adminJSON(t, http.MethodPost, srv.URL+"/sandbox/faults", tc.fault)
		require.Equal(t, http.StatusBadRequest, r.status, "%v", tc.fault)
		require.Contains(t, r.str("error"), tc.errContains)
	}
	r := adminJSON(t, http.MethodGet, srv.URL+"/sandbox/faults", nil)
	require.Empty(t, r.body["faults"])
}

func TestTokenFaults(t *testing.T) {
	s, srv := start(t, nil)
	tokenURL := srv.URL + connect.PathToken
	cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {connect.ServiceClientID}, "client_secret": {connect.ServiceClientSecret}}

	addFault(t, srv.URL, map[string]any{"endpoint": "token", "kind": "500", "next": 1})
	require.Equal(t, http.StatusInternalServerError, postForm(t, tokenURL, cc).status)
	require.Equal(t, http.StatusOK, postForm(t, tokenURL, cc).status)

	addFault(t, srv.URL, map[string]any{"endpoint": "token", "kind": "401", "next": 1})
	r := postForm(t, tokenURL, cc)
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "invalid_client", r.str("error"))

	addFault(t, srv.URL, map[string]any{"endpoint": "token", "kind": "429", "next": 1, "retry_after": 3})
	r = postForm(t, tokenURL, cc)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "3", r.header.Get("Retry-After"))

	addFault(t, srv.URL, map[string]any{"endpoint": "token", "kind": "truncated", "next": 1})
	r = postForm(t, tokenURL, cc)
	require.Equal(t, http.StatusOK, r.status)
	require.True(t, strings.HasPrefix(string(r.raw), `{"access_token":"`), string(r.raw))
	require.Error(t, json.Unmarshal(r.raw, new(any)))

	addFault(t, srv.URL, map[string]any{"endpoint": "token", "kind": "slow", "next": 1, "delay": "250ms"})
	began := time.Now()
	r = postForm(t, tokenURL, cc)
	require.Equal(t, http.StatusOK, r.status)
	require.GreaterOrEqual(t, time.Since(began), 250*time.Millisecond)

	st := s.Stats().TokenRequests.ClientCredentials
	require.Equal(t, int64(3), st.Error, "500, 401 and 429 count as errors")
	require.Equal(t, int64(3), st.OK, "the truncated answer was issued")
}

func TestTokenFaultAfterRotate(t *testing.T) {
	_, srv := start(t, nil)
	a := newRefreshToken(t, srv.URL)
	addFault(t, srv.URL, map[string]any{"endpoint": "token", "kind": "slow", "phase": "after_rotate", "delay": "1s", "next": 1})

	var wg sync.WaitGroup
	var held response
	began := time.Now()
	wg.Go(func() { held = refresh(t, srv.URL, a, nil) })

	// The rotation is committed while the answer is held back: the stats
	// count it, and the old token is already consumed.
	eventually(t, func() bool { return stats(t, srv.URL).TokenRequests.RefreshToken.OK == 1 }, "the rotation is committed")
	wg.Wait()
	require.GreaterOrEqual(t, time.Since(began), time.Second)
	require.Equal(t, http.StatusOK, held.status, string(held.raw))
	b := held.str("refresh_token")
	require.NotEqual(t, a, b)

	r := refresh(t, srv.URL, b, nil)
	require.Equal(t, http.StatusOK, r.status, "the held answer's token is the chain's newest")
	r = refresh(t, srv.URL, a, nil)
	require.Equal(t, "invalid_grant", r.str("error"), "the old token was consumed by the held request")
}

func TestTokenFaultAfterRotateLosesTokenOnAbort(t *testing.T) {
	s, srv := start(t, func(o *sandbox.Options) { o.ReuseDetection = false })
	a := newRefreshToken(t, srv.URL)
	addFault(t, srv.URL, map[string]any{"endpoint": "token", "kind": "slow", "phase": "after_rotate", "delay": "5s", "next": 1})

	impatient := &http.Client{Timeout: 2 * time.Second}
	done := make(chan error, 1)
	go func() {
		resp, err := impatient.PostForm(srv.URL+connect.PathToken, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {a},
			"client_id": {connect.WebClientID}, "client_secret": {connect.WebClientSecret},
		})
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	eventually(t, func() bool { return s.Stats().TokenRequests.RefreshToken.OK == 1 }, "the rotation is committed")
	// While the answer is held, the presented token is already consumed.
	r := refresh(t, srv.URL, a, nil)
	require.Equal(t, "invalid_grant", r.str("error"))
	require.Error(t, <-done, "the client gave up before the answer came")
	impatient.CloseIdleConnections()
}
