package e2e

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunFailsOnPermanentError runs a job whose query selects a field the
// schema lacks: Business NXT answers with a validation error, which no
// retry can fix, so `nxtcron run` exits 1 after one request and one
// attempt (although the job allows three), with the error on stderr.
func TestRunFailsOnPermanentError(t *testing.T) {
	e := NewEnv(t)
	sb := e.StartSandbox("--rows", "7")
	e.WriteConfig(Config{SandboxURL: sb.URL})
	e.WriteJob("bad", Job{
		Companies: "[1001]",
		Query:     strings.Replace(accountsQuery, "items { accountNo name }", "items { accountNo name nope }", 1),
		Extra:     "retry: {attempts: 3, backoff: 1s}",
	})

	res := e.Run("run", "bad")
	require.Equal(t, 1, res.Code, "stderr: %s", res.Stderr)
	require.Empty(t, res.Stdout, "the summary and the error go to stderr")
	require.Contains(t, res.Stderr, "status:    failed")
	require.Contains(t, res.Stderr, "nxtcron: bad failed: company 1001: fetching page 1: ")
	require.Contains(t, res.Stderr, `Cannot query field \"nope\" on type \"GeneralLedgerAccount\"`, "the log line")
	require.Contains(t, res.Stderr, `Cannot query field "nope" on type "GeneralLedgerAccount"`, "the final message")

	require.Equal(t, GraphQLCounts{Error: 1}, sb.Stats().Service(), "one request, not retried")
	runs := e.StoreRuns("bad")
	require.Len(t, runs, 1)
	require.Equal(t, "failed", runs[0].Status)
	require.Equal(t, "manual", runs[0].Trigger)
	require.Equal(t, 1, runs[0].Attempts, "a permanent error is not retried")
	require.Contains(t, runs[0].Error, `Cannot query field "nope"`)
	require.Empty(t, e.OutFiles())
}

// TestRunRetriesTransientFaults injects, before the run, two 429s, a 500
// and a truncated body into the next GraphQL requests: the client retries
// each (honouring Retry-After), the run succeeds with every row, and the
// sandbox saw every faulted request.
func TestRunRetriesTransientFaults(t *testing.T) {
	e := NewEnv(t)
	sb := e.StartSandbox("--rows", "7")
	e.WriteConfig(Config{SandboxURL: sb.URL})
	e.WriteJob("accounts", Job{Companies: "[1001]"}) // 3 pages
	sb.AddFault(`{"endpoint": "graphql-service", "next": 2, "kind": "429"}`)
	sb.AddFault(`{"endpoint": "graphql-service", "next": 1, "kind": "500"}`)
	sb.AddFault(`{"endpoint": "graphql-service", "next": 1, "kind": "truncated"}`)

	res := e.Run("run", "accounts")
	require.Equal(t, 0, res.Code, "stderr: %s", res.Stderr)
	require.Contains(t, res.Stderr, "status:    succeeded")
	require.Contains(t, res.Stderr, "rows:      7\n")

	require.Equal(t, GraphQLCounts{OK: 3, RateLimited: 2, Error: 2}, sb.Stats().Service(),
		"three pages, after two 429s and two errors (500, truncated)")
	var retries []string
	for _, l := range res.Logs() {
		if l.Str("msg") != "graphql request failed; retrying" {
			continue
		}
		retries = append(retries, l.Str("class"))
		if l.Str("class") == "rate_limited" {
			require.GreaterOrEqual(t, l["delay"], 1.0, "a 429 waits its Retry-After: %v", l)
		}
	}
	require.Equal(t, []string{"rate_limited", "rate_limited", "server", "decode"}, retries)

	runs := e.StoreRuns("accounts")
	require.Len(t, runs, 1)
	r := runs[0]
	require.Equal(t, "succeeded", r.Status)
	require.Equal(t, 1, r.Attempts, "the client retried the requests; the attempt did not fail")
	require.Equal(t, int64(sandboxRows), r.Rows)
	path := e.OutFile("accounts", 1001, r.SlotTime(t), 1)
	requireAccounts(t, path, sandboxRows)
	require.Equal(t, []string{path}, e.OutFiles())
}

// TestRunFailsOnPartialData runs jobs whose answers carry data beside
// errors. Partial data is never taken as a page: the company fails, the
// run exits 1 saying so, and nothing of that company reaches the sink.
func TestRunFailsOnPartialData(t *testing.T) {
	e := NewEnv(t)
	sb := e.StartSandbox("--rows", "7")
	e.WriteConfig(Config{SandboxURL: sb.URL})

	t.Run("company no longer available", func(t *testing.T) {
		// useCompany(no: 9999) answers {"useCompany": null} with an error;
		// company 1001 is imported all the same.
		e.WriteJob("lost-company", Job{Companies: "[1001, 9999]", Extra: "parallelism: 1"})
		before := sb.Stats().Service()
		res := e.Run("run", "lost-company")
		require.Equal(t, 1, res.Code, "stderr: %s", res.Stderr)
		require.Contains(t, res.Stderr, "nxtcron: lost-company failed: company 9999: fetching page 1: ")
		require.Contains(t, res.Stderr, "partial data with errors: company 9999 is not available")
		after := sb.Stats().Service()
		require.Equal(t, before.OK+3, after.OK, "company 1001: three pages")
		require.Equal(t, before.Error+1, after.Error, "company 9999: one answer, not retried")

		runs := e.StoreRuns("lost-company")
		require.Len(t, runs, 1)
		require.Equal(t, "failed", runs[0].Status)
		require.Contains(t, runs[0].Error, "partial data")
		require.Equal(t, int64(sandboxRows), runs[0].Rows, "company 1001's rows")
		slot := runs[0].SlotTime(t)
		requireAccounts(t, e.OutFile("lost-company", 1001, slot, 1), sandboxRows)
		require.NoFileExists(t, e.OutFile("lost-company", 9999, slot, 1))
	})

	t.Run("rows beside an error", func(t *testing.T) {
		// Every order comes back, but the nested order lines fail with
		// an error beside them.
		e.WriteJob("orders", Job{Companies: "[1001]", Query: `query($cid: Int, $first: Int, $after: String) {
  useCompany(no: $cid) {
    order(first: $first, after: $after, orderBy: [{orderNo: ASC}]) {
      pageInfo { hasNextPage endCursor }
      items {
        orderNo
        joindown_OrderLine_via_Order(first: 50, skip: -1) { pageInfo { hasNextPage } items { lineNo } }
      }
    }
  }
}`})
		before := sb.Stats()
		res := e.Run("run", "orders")
		require.Equal(t, 1, res.Code, "stderr: %s", res.Stderr)
		require.Contains(t, res.Stderr, "nxtcron: orders failed: company 1001: fetching page 1: ")
		require.Contains(t, res.Stderr, "partial data with errors: ")
		after := sb.Stats()
		require.Greater(t, after.RowsServed, before.RowsServed, "the answer carried rows")
		require.Equal(t, before.Service().Error+1, after.Service().Error)

		runs := e.StoreRuns("orders")
		require.Len(t, runs, 1)
		require.Equal(t, "failed", runs[0].Status)
		require.Contains(t, runs[0].Error, "partial data")
		require.Zero(t, runs[0].Rows)
		require.NoFileExists(t, e.OutFile("orders", 1001, runs[0].SlotTime(t), 1))
	})
}
