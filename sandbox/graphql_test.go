package sandbox_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/sandbox/connect"
)

func TestZeroValueServer(t *testing.T) {
	var s sandbox.Server
	srv := httptest.NewServer(&s)
	t.Cleanup(srv.Close)

	tok := serviceToken(t, srv.URL)
	r := gql(t, srv.URL+connect.PathGraphQLService, tok, query(companiesQuery, nil))
	require.Equal(t, []int{1001, 1002}, companyIDs(t, r))
	require.Len(t, r.header.Get(sandbox.TraceHeader), 32)
	require.Equal(t, sandbox.DefaultOptions().Listen, s.Options().Listen)

	// The admin API is off by default.
	r = adminJSON(t, http.MethodGet, srv.URL+"/sandbox/stats", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	require.Contains(t, r.str("error"), "--admin")

	require.EqualValues(t, 1, s.Stats().GraphQLRequests.GraphQLService.OK)
	require.EqualValues(t, 1, s.Stats().TokenRequests.ClientCredentials.OK)
}

func TestGraphQLUserAndServiceEndpoints(t *testing.T) {
	_, srv := start(t, func(o *sandbox.Options) { o.Companies = 3 })
	r := gql(t, srv.URL+connect.PathGraphQL, userToken(t, srv.URL), query(companiesQuery, nil))
	require.Equal(t, []int{1001, 1002, 1003}, companyIDs(t, r))
	r = gql(t, srv.URL+connect.PathGraphQLService, serviceToken(t, srv.URL), query(companiesQuery, nil))
	require.Equal(t, []int{1001, 1002, 1003}, companyIDs(t, r))

	// The readonly service scope works too.
	ro := postForm(t, srv.URL+connect.PathToken, url.Values{
		"grant_type": {"client_credentials"}, "scope": {connect.ScopeGraphQLServiceReadonly},
		"client_id": {connect.ServiceClientID}, "client_secret": {connect.ServiceClientSecret},
	})
	require.Equal(t, http.StatusOK, ro.status)
	r = gql(t, srv.URL+connect.PathGraphQLService, ro.str("access_token"), query(companiesQuery, nil))
	require.Len(t, companyIDs(t, r), 3)
}

func TestPagedRead(t *testing.T) {
	_, srv := start(t, func(o *sandbox.Options) { o.Rows = 7 })
	tok := serviceToken(t, srv.URL)
	const q = `query($cid: Int, $first: Int, $after: String) {
  useCompany(no: $cid) {
    associate(first: $first, after: $after, orderBy: [{associateNo: ASC}]) {
      totalCount
      pageInfo { hasNextPage endCursor }
      items { associateNo name }
    }
  }
}`
	page := func(after any) (nums []float64, hasNext bool, cursor any) {
		r := gql(t, srv.URL+connect.PathGraphQLService, tok, query(q, map[string]any{"cid": 1001, "first": 4, "after": after}))
		require.Equal(t, http.StatusOK, r.status, string(r.raw))
		require.Nil(t, r.body["errors"], string(r.raw))
		conn := r.body["data"].(map[string]any)["useCompany"].(map[string]any)["associate"].(map[string]any)
		require.EqualValues(t, 7, conn["totalCount"])
		for _, it := range conn["items"].([]any) {
			nums = append(nums, it.(map[string]any)["associateNo"].(float64))
		}
		pi := conn["pageInfo"].(map[string]any)
		return nums, pi["hasNextPage"].(bool), pi["endCursor"]
	}
	first, more, cursor := page(nil)
	require.Len(t, first, 4)
	require.True(t, more)
	second, more, _ := page(cursor)
	require.Len(t, second, 3)
	require.False(t, more)
	for _, n := range second {
		require.NotContains(t, first, n)
		require.Greater(t, n, first[len(first)-1])
	}
}

func TestUnauthorized(t *testing.T) {
	clock := newFakeClock()
	_, srv := start(t, func(o *sandbox.Options) { o.Now = clock.Now })
	_, other := start(t, nil)
	svc := serviceToken(t, srv.URL)
	user := userToken(t, srv.URL)
	noAPIScope := refresh(t, srv.URL, newRefreshToken(t, srv.URL), url.Values{"scope": {"openid email"}})
	require.Equal(t, http.StatusOK, noAPIScope.status, string(noAPIScope.raw))
	idToken := noAPIScope.str("id_token")
	parts := strings.Split(svc, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))

	service, userEP := srv.URL+connect.PathGraphQLService, srv.URL+connect.PathGraphQL
	for _, tc := range []struct {
		name, endpoint, token, reason string
	}{
		{"no token", service, "", "no bearer token"},
		{"garbage", service, "garbage", "malformed"},
		{"bad signature", service, tampered, "signature"},
		{"another sandbox's key", service, serviceToken(t, other.URL), ""},
		{"service token on /api/graphql", userEP, svc, "audience"},
		{"user token on /api/graphql-service", service, user, "audience"},
		{"no API scope", userEP, noAPIScope.str("access_token"), "scope"},
		{"id token", userEP, idToken, "at+JWT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := gql(t, tc.endpoint, tc.token, query(companiesQuery, nil))
			requireUnauthorized(t, r)
			require.Contains(t, r.header.Get("WWW-Authenticate"), tc.reason)
		})
	}
	t.Run("expired", func(t *testing.T) {
		require.Len(t, companyIDs(t, gql(t, service, svc, query(companiesQuery, nil))), 2)
		clock.Advance(time.Hour)
		r := gql(t, service, svc, query(companiesQuery, nil))
		requireUnauthorized(t, r)
		require.Contains(t, r.header.Get("WWW-Authenticate"), "expired")
	})
	st := stats(t, srv.URL)
	require.EqualValues(t, 6, st.GraphQLRequests.GraphQLService.Unauthorized)
	require.EqualValues(t, 3, st.GraphQLRequests.GraphQL.Unauthorized)
	require.EqualValues(t, 1, st.GraphQLRequests.GraphQLService.OK)
}

func TestMethodAndBadRequests(t *testing.T) {
	_, srv := start(t, nil)
	tok := serviceToken(t, srv.URL)
	endpoint := srv.URL + connect.PathGraphQLService

	req, err := http.NewRequest(http.MethodGet, endpoint, nil)
	require.NoError(t, err)
	r := do(t, req)
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, "POST", r.header.Get("Allow"))

	traceIDs := map[string]bool{r.header.Get(sandbox.TraceHeader): true}
	for _, body := range []string{`{"query": `, `not json`, `"a string"`, `[]`} {
		r = gql(t, endpoint, tok, body)
		require.Equal(t, http.StatusBadRequest, r.status, body)
		require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"))
		errs, ok := r.body["errors"].([]any)
		require.True(t, ok, string(r.raw))
		require.NotEmpty(t, errs[0].(map[string]any)["message"])
		traceIDs[r.header.Get(sandbox.TraceHeader)] = true
	}
	require.Len(t, traceIDs, 5, "every response has its own trace id")

	// A query the schema refuses is a GraphQL error: HTTP 200 with errors.
	r = gql(t, endpoint, tok, query(`{ noSuchField }`, nil))
	require.Equal(t, http.StatusOK, r.status)
	require.NotEmpty(t, r.body["errors"])

	st := stats(t, srv.URL).GraphQLRequests.GraphQLService
	require.Equal(t, sandbox.EndpointStats{Error: 6}, st)
}

func TestBatch(t *testing.T) {
	_, srv := start(t, nil)
	tok := serviceToken(t, srv.URL)
	endpoint := srv.URL + connect.PathGraphQLService
	one := map[string]any{"query": companiesQuery}
	b, err := json.Marshal([]any{one, one})
	require.NoError(t, err)
	r := gql(t, endpoint, tok, string(b))
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	var results []map[string]any
	require.NoError(t, json.Unmarshal(r.raw, &results))
	require.Len(t, results, 2)
	require.Equal(t, results[0], results[1])

	many := make([]any, sandbox.MaxBatch+1)
	for i := range many {
		many[i] = one
	}
	b, err = json.Marshal(many)
	require.NoError(t, err)
	r = gql(t, endpoint, tok, string(b))
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, string(r.raw), "1 to 32 operations")
}

func TestRateLimit(t *testing.T) {
	clock := newFakeClock()
	_, srv := start(t, func(o *sandbox.Options) {
		o.Now = clock.Now
		o.RateLimit = 3
	})
	endpoint := srv.URL + connect.PathGraphQLService
	tok := serviceToken(t, srv.URL)
	for i := range 3 {
		r := gql(t, endpoint, tok, query(companiesQuery, nil))
		require.Equal(t, http.StatusOK, r.status, "request %d", i)
		clock.Advance(10 * time.Second)
	}
	// Requests at 0, 10 and 20 s; now 30 s: the first leaves the window at 60 s.
	r := gql(t, endpoint, tok, query(companiesQuery, nil))
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "30", r.header.Get("Retry-After"))

	// Another token has its own window.
	require.Equal(t, http.StatusOK, gql(t, endpoint, serviceToken(t, srv.URL), query(companiesQuery, nil)).status)

	clock.Advance(29 * time.Second)
	r = gql(t, endpoint, tok, query(companiesQuery, nil))
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "1", r.header.Get("Retry-After"))
	clock.Advance(time.Second)
	require.Equal(t, http.StatusOK, gql(t, endpoint, tok, query(companiesQuery, nil)).status)

	st := stats(t, srv.URL).GraphQLRequests.GraphQLService
	require.Equal(t, sandbox.EndpointStats{OK: 5, RateLimited: 2}, st)
}

func TestOutstandingLimit(t *testing.T) {
	s, srv := start(t, func(o *sandbox.Options) {
		o.ConcurrencyLimit = 1
		o.Latency = 2 * time.Second
	})
	endpoint := srv.URL + connect.PathGraphQLService
	tok := serviceToken(t, srv.URL)
	const q = `{ useCompany(no: 1001) { associate(first: 1) { totalCount } } }`

	var wg sync.WaitGroup
	var slow response
	wg.Go(func() { slow = gql(t, endpoint, tok, query(q, nil)) })
	eventually(t, func() bool { return s.Engine().InFlight(1001) == 1 }, "the first request holds the company's slot")

	r := gql(t, endpoint, tok, query(q, nil))
	require.Equal(t, http.StatusOK, r.status)
	errs := r.body["errors"].([]any)
	require.Equal(t, "OUTSTANDING_LIMIT_EXCEEDED", errs[0].(map[string]any)["extensions"].(map[string]any)["code"])

	// Another company is not limited.
	r = gql(t, endpoint, tok, query(strings.Replace(q, "1001", "1002", 1), nil))
	require.Nil(t, r.body["errors"], string(r.raw))

	wg.Wait()
	require.Nil(t, slow.body["errors"], string(slow.raw))
	st := stats(t, srv.URL).GraphQLRequests.GraphQLService
	require.Equal(t, sandbox.EndpointStats{OK: 2, OutstandingLimited: 1}, st)
}

func TestCompression(t *testing.T) {
	s, srv := start(t, nil)
	endpoint := srv.URL + connect.PathGraphQLService
	tok := serviceToken(t, srv.URL)
	body := query(companiesQuery, nil)
	plain := gql(t, endpoint, tok, body)
	require.Empty(t, plain.header.Get("Content-Encoding"))
	require.NotEmpty(t, plain.raw)

	for _, tc := range []struct {
		mode, accept, want string
	}{
		{sandbox.CompressionAuto, "", ""},
		{sandbox.CompressionAuto, "gzip", "gzip"},
		{sandbox.CompressionAuto, "br", "br"},
		{sandbox.CompressionAuto, "gzip, deflate, br", "br"},
		{sandbox.CompressionAuto, "br;q=0, gzip", "gzip"},
		{sandbox.CompressionAuto, "identity", ""},
		{sandbox.CompressionAlwaysBrotli, "", "br"},
		{sandbox.CompressionAlwaysBrotli, "gzip", "br"},
		{sandbox.CompressionNone, "br, gzip", ""},
	} {
		t.Run(tc.mode+" "+tc.accept, func(t *testing.T) {
			opts := s.Options()
			opts.Compression = tc.mode
			require.NoError(t, s.Apply(opts))
			var headers []string
			if tc.accept != "" {
				headers = []string{"Accept-Encoding", tc.accept}
			}
			r := gql(t, endpoint, tok, body, headers...)
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, tc.want, r.header.Get("Content-Encoding"))
			require.Equal(t, string(plain.raw), string(r.raw), "decoded bodies are equal")
			require.Equal(t, strconv.Itoa(len(r.wire)), r.header.Get("Content-Length"))
			if tc.want != "" {
				require.NotEqual(t, plain.raw, r.wire, "the wire bytes are compressed")
			}
		})
	}
}

func TestIssuerOption(t *testing.T) {
	_, srv := start(t, func(o *sandbox.Options) { o.Issuer = "https://connect.visma.com" })
	r := do(t, mustGet(t, srv.URL+connect.PathDiscovery))
	require.Equal(t, "https://connect.visma.com", r.str("issuer"))
	tok := serviceToken(t, srv.URL)
	require.Len(t, companyIDs(t, gql(t, srv.URL+connect.PathGraphQLService, tok, query(companiesQuery, nil))), 2)
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	require.NoError(t, err)
	return req
}
