package bnxt

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/tokens"
)

const sandboxSecret = "sandbox-service-secret"

type sandboxHarness struct {
	sandbox *sandbox.Server
	client  *Client
	sleep   *sleeper
	logs    *observer.ObservedLogs
	metrics *metrics.Metrics
	source  tokens.Source
}

// newSandboxHarness runs the emulator (nil: the zero Server) on 127.0.0.1
// and makes a Client for its service endpoint with the demo service client.
func newSandboxHarness(t *testing.T, sb *sandbox.Server, edit func(*Options)) *sandboxHarness {
	t.Helper()
	if sb == nil {
		sb = &sandbox.Server{}
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(core)
	h := &sandboxHarness{sandbox: sb, sleep: &sleeper{}, logs: logs, metrics: metrics.New()}
	httpClient := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(httpClient.CloseIdleConnections)
	mgr, err := tokens.NewManager(tokens.Options{
		Connections: []config.Connection{{
			Name: testConn, Grant: config.GrantClientCredentials, Authority: srv.URL,
			ClientID: "isv_sandbox_service", ClientSecret: sandboxSecret,
			Scopes: []string{"business-graphql-service-api:access-group-based"},
		}},
		HTTPClient: httpClient,
		Logger:     logger,
		Metrics:    h.metrics,
	})
	require.NoError(t, err)
	h.source, err = mgr.Source(testConn)
	require.NoError(t, err)
	opts := Options{
		URL:        sandbox.GraphQLServiceURL(srv.URL),
		Connection: testConn,
		Tokens:     h.source,
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

const sandboxAssociates = `query associates($cid: Int, $first: Int, $after: String) {
  useCompany(no: $cid) {
    associate(first: $first, after: $after, orderBy: [{associateNo: ASC}]) {
      totalCount
      pageInfo { hasNextPage endCursor }
      items { associateNo name }
    }
  }
}`

func TestSandboxPagesThroughAssociates(t *testing.T) {
	h := newSandboxHarness(t, nil, nil)
	pages := h.client.Pages(PageQuery{
		Query:    sandboxAssociates,
		Path:     []string{"useCompany", "associate"},
		PageSize: 40,
		Company:  1001,
	})
	seen := map[int64]bool{}
	var numbers []int
	for {
		p, err := pages.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.NotEmpty(t, p.TraceID, "the sandbox sends x-vbc-traceid")
		require.NotNil(t, p.TotalCount)
		require.Equal(t, int64(250), *p.TotalCount)
		numbers = append(numbers, p.Number)
		require.LessOrEqual(t, len(p.Items), 40)
		for _, it := range p.Items {
			var row struct {
				AssociateNo int64  `json:"associateNo"`
				Name        string `json:"name"`
			}
			require.NoError(t, json.Unmarshal(it, &row))
			require.NotEmpty(t, row.Name)
			require.False(t, seen[row.AssociateNo], "associate %d twice", row.AssociateNo)
			seen[row.AssociateNo] = true
		}
	}
	require.Len(t, seen, 250)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7}, numbers)
	st := h.sandbox.Stats()
	require.Equal(t, int64(7), st.GraphQLRequests.GraphQLService.OK)
	require.Equal(t, int64(1), st.TokenRequests.ClientCredentials.OK, "one token for every page")
	require.Equal(t, 7.0, testOutcome(h.metrics, "ok"))
}

func testOutcome(m *metrics.Metrics, outcome string) float64 {
	return (&harness{metrics: m}).outcomes(outcome)
}

func TestSandboxCompanies(t *testing.T) {
	h := newSandboxHarness(t, nil, nil)
	companies, err := h.client.Companies(context.Background())
	require.NoError(t, err)
	require.Len(t, companies, 2)
	require.Equal(t, int64(1001), companies[0].VismaNetCompanyID)
	require.Equal(t, int64(1002), companies[1].VismaNetCompanyID)
	for _, c := range companies {
		require.NotEmpty(t, c.Name)
		require.NotZero(t, c.VismaNetCustomerID)
	}
}

func TestSandboxAlwaysBrotli(t *testing.T) {
	opts := sandbox.DefaultOptions()
	opts.Compression = sandbox.CompressionAlwaysBrotli
	sb, err := sandbox.New(opts)
	require.NoError(t, err)
	h := newSandboxHarness(t, sb, nil)
	companies, err := h.client.Companies(context.Background())
	require.NoError(t, err)
	require.Len(t, companies, 2)
}

func TestSandboxFaults(t *testing.T) {
	tests := []struct {
		kind     string
		class    Class
		retried  bool
		outcome  string
		requests int64 // to the GraphQL endpoint
	}{
		{kind: sandbox.FaultUnauthorized, class: ClassUnauthorized, retried: true, outcome: "unauthorized", requests: 2},
		{kind: sandbox.FaultTooManyRequests, class: ClassRateLimited, retried: true, outcome: "rate_limited", requests: 2},
		{kind: sandbox.FaultInternalError, class: ClassServer, retried: true, outcome: "server_error", requests: 2},
		{kind: sandbox.FaultBadGateway, class: ClassServer, retried: true, outcome: "server_error", requests: 2},
		{kind: sandbox.FaultOutstandingLimit, class: ClassOutstandingLimited, retried: true, outcome: "outstanding_limited", requests: 2},
		{kind: sandbox.FaultTruncated, class: ClassDecode, retried: true, outcome: "decode_error", requests: 2},
		{kind: sandbox.FaultGraphQLError, class: ClassGraphQL, outcome: "graphql_error", requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			h := newSandboxHarness(t, nil, nil)
			require.NoError(t, h.sandbox.AddFault(sandbox.Fault{Endpoint: sandbox.EndpointGraphQLService, Kind: tt.kind, Next: 1}))
			companies, err := h.client.Companies(context.Background())
			st := h.sandbox.Stats().GraphQLRequests.GraphQLService
			require.Equal(t, tt.requests, st.OK+st.Error+st.Unauthorized+st.RateLimited+st.OutstandingLimited)
			require.Equal(t, 1.0, testOutcome(h.metrics, tt.outcome))
			if tt.retried {
				require.NoError(t, err)
				require.Len(t, companies, 2)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.class, e.Class)
			require.NotEmpty(t, e.TraceID)
			require.ErrorContains(t, err, "trace_id "+e.TraceID)
			require.ErrorContains(t, err, "sandbox fault")
		})
	}
}

func TestSandboxRateLimitRetryAfter(t *testing.T) {
	h := newSandboxHarness(t, nil, nil)
	require.NoError(t, h.sandbox.AddFault(sandbox.Fault{Endpoint: sandbox.EndpointGraphQLService, Kind: sandbox.FaultTooManyRequests, Next: 2, RetryAfter: 3}))
	_, err := h.client.Companies(context.Background())
	require.NoError(t, err)
	delays := h.sleep.Delays()
	require.Len(t, delays, 2)
	for _, d := range delays {
		require.GreaterOrEqual(t, d, 3*time.Second)
	}
}

func TestSandboxWrongSecretIsPermanent(t *testing.T) {
	sb := &sandbox.Server{}
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	httpClient := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(httpClient.CloseIdleConnections)
	mgr, err := tokens.NewManager(tokens.Options{
		Connections: []config.Connection{{
			Name: testConn, Grant: config.GrantClientCredentials, Authority: srv.URL,
			ClientID: "isv_sandbox_service", ClientSecret: testSecret,
			Scopes: []string{"business-graphql-service-api:access-group-based"},
		}},
		HTTPClient: httpClient,
		Logger:     zap.New(core),
	})
	require.NoError(t, err)
	source, err := mgr.Source(testConn)
	require.NoError(t, err)
	sl := &sleeper{}
	c, err := New(Options{URL: sandbox.GraphQLServiceURL(srv.URL), Connection: testConn, Tokens: source, HTTPClient: httpClient, Logger: zap.New(core), Sleep: sl.Sleep})
	require.NoError(t, err)
	_, err = c.Companies(context.Background())
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, ClassToken, e.Class)
	require.ErrorIs(t, err, tokens.ErrPermanent)
	require.ErrorContains(t, err, "invalid_client")
	require.Empty(t, sl.Delays(), "a permanent refusal is not retried")
	require.Equal(t, int64(1), sb.Stats().TokenRequests.ClientCredentials.Error)
	(&harness{srv: &server{}, logs: logs}).requireNoLeak(t, err)
}
