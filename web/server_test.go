package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/config/configtest"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
)

func TestAuth(t *testing.T) {
	adminPaths := []struct{ method, path string }{
		{"GET", "/api/jobs"},
		{"GET", "/api/runs"},
		{"GET", "/"},
		{"POST", "/api/jobs/ledger/pause"},
		{"POST", "/api/jobs/ledger/resume"},
	}
	openPaths := []string{"/healthz", "/readyz", "/metrics"}
	tests := []struct {
		name     string
		opts     envOptions
		token    string
		wantOpen bool
	}{
		{name: "loopback without a token is open", opts: envOptions{loopback: true}, wantOpen: true},
		{name: "loopback without a token ignores a bearer", opts: envOptions{loopback: true}, token: "anything", wantOpen: true},
		{name: "not loopback without a token is closed", opts: envOptions{}, token: "anything"},
		{name: "token set, none sent", opts: envOptions{adminToken: adminToken, loopback: true}},
		{name: "token set, wrong one sent", opts: envOptions{adminToken: adminToken, loopback: true}, token: "wrong"},
		{name: "token set, a prefix of it sent", opts: envOptions{adminToken: adminToken, loopback: true}, token: adminToken[:len(adminToken)-1]},
		{name: "token set, right one sent", opts: envOptions{adminToken: adminToken}, token: adminToken, wantOpen: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			for _, p := range adminPaths {
				r := e.do(p.method, p.path, tt.token, "")
				if tt.wantOpen {
					require.Equal(t, http.StatusOK, r.status, "%s %s: %s", p.method, p.path, r.body)
					continue
				}
				require.Equal(t, http.StatusUnauthorized, r.status, "%s %s: %s", p.method, p.path, r.body)
				require.Equal(t, `Bearer realm="nxtcron"`, r.header.Get("WWW-Authenticate"))
				require.JSONEq(t, `{"error": "missing or wrong admin token"}`, r.body)
			}
			if !tt.wantOpen {
				// A refused request changes nothing.
				r := e.do("POST", "/api/jobs/ledger/run", tt.token, "")
				require.Equal(t, http.StatusUnauthorized, r.status)
				slots, err := e.st.Slots(t.Context(), store.SlotFilter{})
				require.NoError(t, err)
				require.Empty(t, slots)
				st, err := e.st.Job(t.Context(), "ledger")
				require.NoError(t, err)
				require.False(t, st.Paused)
			}
			for _, p := range openPaths {
				r := e.do("GET", p, "", "")
				require.Equal(t, http.StatusOK, r.status, "%s is always open: %s", p, r.body)
			}
		})
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	e := newEnv(t, envOptions{adminToken: adminToken})
	require.Equal(t, map[string]any{"status": "ok"}, e.json("GET", "/healthz", "", "", http.StatusOK))
	e.metrics.RowsWritten("ledger", "file", 42)
	r := e.do("GET", "/metrics", "", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.body, `nxtcron_rows_written_total{job="ledger",sink="file"} 42`)
	require.Contains(t, r.body, "# TYPE nxtcron_store_up gauge")
}

func TestReadyz(t *testing.T) {
	e := newEnv(t, envOptions{adminToken: adminToken, ready: func(st *sqlite.Store) func(context.Context) error {
		return st.Ping
	}})
	require.Equal(t, map[string]any{"status": "ready"}, e.json("GET", "/readyz", "", "", http.StatusOK))

	require.NoError(t, e.st.Close())
	got := e.json("GET", "/readyz", "", "", http.StatusServiceUnavailable)
	require.Equal(t, "not ready", got["status"])
	require.Contains(t, got["error"], "pinging sqlite store")

	// Without a readiness check the server is ready once it answers.
	e = newEnv(t, envOptions{})
	require.Equal(t, map[string]any{"status": "ready"}, e.json("GET", "/readyz", "", "", http.StatusOK))
}

// waitNextSecond waits until the clock is past the second of t.
func waitNextSecond(t *testing.T, at time.Time) {
	t.Helper()
	next := at.Truncate(time.Second).Add(time.Second)
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(next) {
		require.True(t, time.Now().Before(deadline), "the clock does not reach %s", next)
		time.Sleep(10 * time.Millisecond)
	}
}

// keysOf returns the sorted keys of a JSON object.
func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestAPIJobs(t *testing.T) {
	e := newEnv(t, envOptions{loopback: true})
	got := e.json("GET", "/api/jobs", "", "", http.StatusOK)
	require.Equal(t, []string{"jobs"}, keysOf(got))
	list := got["jobs"].([]any)
	require.Len(t, list, 2)

	assoc := list[0].(map[string]any)
	require.Equal(t, []string{"connection", "description", "incremental", "name", "next", "paused", "schedule", "scheduled_through", "sink", "timezone"}, keysOf(assoc))
	require.Equal(t, "associates", assoc["name"])
	require.Equal(t, "<b>Customers</b> & suppliers", assoc["description"])
	require.Equal(t, "30 2 * * *", assoc["schedule"])
	require.Equal(t, "Europe/Oslo", assoc["timezone"])
	require.Equal(t, "service", assoc["connection"])
	require.Equal(t, "file", assoc["sink"])
	require.Equal(t, true, assoc["incremental"])
	require.Equal(t, false, assoc["paused"])
	// 02:30 does not exist on 29 March 2026 in Oslo: the slot runs at the
	// first instant after the jump.
	require.Equal(t, []any{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"}, assoc["next"])
	through, err := time.Parse(time.RFC3339Nano, assoc["scheduled_through"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), through, time.Minute, "registered now")

	ledger := list[1].(map[string]any)
	require.Equal(t, "ledger", ledger["name"])
	require.NotContains(t, ledger, "description")
	require.Equal(t, "UTC", ledger["timezone"])
	require.Equal(t, false, ledger["incremental"])
	require.Equal(t, []any{"2026-03-28T12:10:00Z", "2026-03-28T12:20:00Z", "2026-03-28T12:30:00Z"}, ledger["next"])

	// After a run, the job shows it.
	claim := e.json("POST", "/api/jobs/ledger/run", "", "", http.StatusAccepted)
	e.waitRun("", int64(claim["slot_id"].(float64)), store.StatusSucceeded)
	ledger = e.json("GET", "/api/jobs", "", "", http.StatusOK)["jobs"].([]any)[1].(map[string]any)
	last := ledger["last_run"].(map[string]any)
	require.Equal(t, "succeeded", last["status"])
	require.Equal(t, "manual", last["trigger"])
	require.Equal(t, float64(500), last["rows"])
}

func TestAPIRunAndRuns(t *testing.T) {
	e := newEnv(t, envOptions{adminToken: adminToken})
	tok := adminToken

	empty := e.json("GET", "/api/runs", tok, "", http.StatusOK)
	require.Equal(t, map[string]any{"runs": []any{}, "running": []any{}}, empty, "empty lists are [] not null")

	claim := e.json("POST", "/api/jobs/ledger/run", tok, "", http.StatusAccepted)
	require.Equal(t, []string{"attempt", "fence", "job", "run_id", "slot_id"}, keysOf(claim))
	require.Equal(t, "ledger", claim["job"])
	require.Equal(t, float64(1), claim["attempt"])
	require.Positive(t, claim["fence"])
	require.NotEmpty(t, claim["run_id"])
	id := int64(claim["slot_id"].(float64))

	run := e.waitRun(tok, id, store.StatusSucceeded)
	require.Equal(t, "ledger", run["job"])
	require.Equal(t, "manual", run["trigger"])
	require.Equal(t, float64(1), run["attempts"])
	require.Equal(t, float64(500), run["rows"], "2 companies x 250 accounts")
	require.Equal(t, "web-test", run["owner"])
	require.Equal(t, map[string]any{}, run["options"])
	require.NotContains(t, run, "error")
	for _, k := range []string{"started_at", "finished_at"} {
		_, err := time.Parse(time.RFC3339Nano, run[k].(string))
		require.NoError(t, err, k)
	}
	slot, err := time.Parse(time.RFC3339, run["slot"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), slot, time.Minute)
	for _, company := range []string{"1001", "1002"} {
		files, err := filepath.Glob(filepath.Join(e.dir, "jobs.d", "out", "ledger", company, "*.ndjson"))
		require.NoError(t, err)
		require.Len(t, files, 1, "company %s", company)
	}

	// Options in the body are recorded with the slot. (A manual slot is the
	// store's now, and the file path's {slot} has whole seconds: a second
	// run within the same second would name the same file.)
	waitNextSecond(t, slot)
	claim = e.json("POST", "/api/jobs/ledger/run", tok, `{"company": 1002, "full": true}`, http.StatusAccepted)
	run = e.waitRun(tok, int64(claim["slot_id"].(float64)), store.StatusSucceeded)
	require.Equal(t, map[string]any{"company": float64(1002), "full": true}, run["options"])
	require.Equal(t, float64(250), run["rows"])

	// Filters.
	runs := e.json("GET", "/api/runs?job=ledger&status=succeeded,failed&limit=1", tok, "", http.StatusOK)["runs"].([]any)
	require.Len(t, runs, 1)
	require.Equal(t, claim["slot_id"], runs[0].(map[string]any)["id"], "newest first")
	require.Empty(t, e.json("GET", "/api/runs?job=associates", tok, "", http.StatusOK)["runs"])
	require.Empty(t, e.json("GET", "/api/runs?status=failed", tok, "", http.StatusOK)["runs"])
	for _, bad := range []string{"0", "abc", "10001"} {
		got := e.json("GET", "/api/runs?limit="+bad, tok, "", http.StatusBadRequest)
		require.Equal(t, "limit: expected a number from 1 to 10000", got["error"])
	}

	// Unknown job, bad body.
	got := e.json("POST", "/api/jobs/nope/run", tok, "", http.StatusNotFound)
	require.Equal(t, `job "nope" not found`, got["error"])
	got = e.json("POST", "/api/jobs/ledger/run", tok, `{"bogus": 1}`, http.StatusBadRequest)
	require.Contains(t, got["error"], `body: json: unknown field "bogus"`)
}

func TestAPIRunBusy(t *testing.T) {
	e := newEnv(t, envOptions{loopback: true})
	var assoc = e.jobs[0]
	require.Equal(t, "associates", assoc.Name)
	// Another replica runs the job (overlap skip).
	other, err := e.st.ClaimManual(t.Context(), store.ManualClaim{
		Job: assoc.Name, DefinitionHash: assoc.DefinitionHash, Owner: "replica-b", Lease: time.Minute,
	})
	require.NoError(t, err)

	got := e.json("POST", "/api/jobs/associates/run", "", "", http.StatusConflict)
	require.Contains(t, got["error"], "job is running")
	require.Contains(t, got["error"], "replica-b", "the error names where it runs")

	runs := e.json("GET", "/api/runs", "", "", http.StatusOK)
	running := runs["running"].([]any)
	require.Len(t, running, 1)
	a := running[0].(map[string]any)
	require.Equal(t, []string{"attempt", "fence", "job", "lease_until", "owner", "run_id", "slot", "slot_id", "started_at", "status", "trigger"}, keysOf(a))
	require.Equal(t, "associates", a["job"])
	require.Equal(t, "replica-b", a["owner"])
	require.Equal(t, "running", a["status"])
	require.Equal(t, float64(other.Fence), a["fence"])
	slot, err := time.Parse(time.RFC3339, a["slot"].(string))
	require.NoError(t, err)
	_, off := slot.Zone()
	_, osloOff := other.Slot.In(assoc.Location).Zone()
	require.Equal(t, osloOff, off, "slots show in the job's zone")
	require.Empty(t, e.json("GET", "/api/runs?job=ledger", "", "", http.StatusOK)["running"], "running is filtered by job too")

	// Once the other attempt is over, the job can run here.
	require.NoError(t, e.st.Finish(t.Context(), other.Fence, store.Outcome{Status: store.StatusSucceeded}))
	claim := e.json("POST", "/api/jobs/associates/run", "", "", http.StatusAccepted)
	e.waitRun("", int64(claim["slot_id"].(float64)), store.StatusSucceeded)
}

func TestPauseResume(t *testing.T) {
	e := newEnv(t, envOptions{adminToken: adminToken})
	paused := func() bool {
		st, err := e.st.Job(t.Context(), "ledger")
		require.NoError(t, err)
		return st.Paused
	}
	require.Equal(t, map[string]any{"job": "ledger", "paused": true}, e.json("POST", "/api/jobs/ledger/pause", adminToken, "", http.StatusOK))
	require.True(t, paused())
	require.Equal(t, true, e.json("GET", "/api/jobs", adminToken, "", http.StatusOK)["jobs"].([]any)[1].(map[string]any)["paused"])
	dash := e.do("GET", "/", adminToken, "")
	require.Contains(t, dash.body, "<b>ledger</b> (paused)")

	// Pausing twice is harmless.
	e.json("POST", "/api/jobs/ledger/pause", adminToken, "", http.StatusOK)
	require.True(t, paused())

	require.Equal(t, map[string]any{"job": "ledger", "paused": false}, e.json("POST", "/api/jobs/ledger/resume", adminToken, "", http.StatusOK))
	require.False(t, paused())

	got := e.json("POST", "/api/jobs/nope/pause", adminToken, "", http.StatusNotFound)
	require.Equal(t, `job "nope" not found`, got["error"])
	e.json("POST", "/api/jobs/nope/resume", adminToken, "", http.StatusNotFound)

	r := e.do("GET", "/api/jobs/ledger/pause", adminToken, "")
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
}

func TestDashboard(t *testing.T) {
	e := newEnv(t, envOptions{adminToken: adminToken})

	// A run that succeeds and one that fails permanently.
	claim := e.json("POST", "/api/jobs/ledger/run", adminToken, "", http.StatusAccepted)
	e.waitRun(adminToken, int64(claim["slot_id"].(float64)), store.StatusSucceeded)
	require.NoError(t, e.sb.AddFault(sandbox.Fault{Endpoint: sandbox.EndpointGraphQLService, Kind: sandbox.FaultGraphQLError, Next: 1}))
	claim = e.json("POST", "/api/jobs/associates/run", adminToken, "", http.StatusAccepted)
	failed := e.waitRun(adminToken, int64(claim["slot_id"].(float64)), store.StatusFailed)
	require.Contains(t, failed["error"], "sandbox fault")

	r := e.do("GET", "/", adminToken, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
	require.Equal(t, "no-store", r.header.Get("Cache-Control"))
	body := r.body
	for _, want := range []string{
		"<b>associates</b>", "<b>ledger</b>",
		"&lt;b&gt;Customers&lt;/b&gt; &amp; suppliers", // escaped, never markup
		"<code>30 2 * * *</code>", "Europe/Oslo",
		"2026-03-29T03:00:00&#43;02:00", // html/template writes + as &#43;
		`<td class="succeeded">succeeded</td>`, `<td class="failed">failed</td>`,
		"sandbox fault",
		"nothing is running",
	} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, "<b>Customers</b>")

	// A running attempt shows with its owner.
	var assoc = e.jobs[0]
	other, err := e.st.ClaimManual(t.Context(), store.ManualClaim{
		Job: assoc.Name, DefinitionHash: assoc.DefinitionHash, Owner: "replica-b", Lease: time.Minute,
	})
	require.NoError(t, err)
	body = e.do("GET", "/", adminToken, "").body
	require.NotContains(t, body, "nothing is running")
	require.Contains(t, body, "<td>replica-b</td>")
	require.NoError(t, e.st.Finish(t.Context(), other.Fence, store.Outcome{Status: store.StatusSucceeded}))
}

// No response, and no log line, shows the admin token or the connection's
// client secret.
func TestNoSecretInResponses(t *testing.T) {
	e := newEnv(t, envOptions{adminToken: adminToken})
	claim := e.json("POST", "/api/jobs/ledger/run", adminToken, "", http.StatusAccepted)
	e.waitRun(adminToken, int64(claim["slot_id"].(float64)), store.StatusSucceeded)
	require.NoError(t, e.sb.AddFault(sandbox.Fault{Endpoint: sandbox.EndpointGraphQLService, Kind: sandbox.FaultGraphQLError, Next: 1}))
	claim = e.json("POST", "/api/jobs/associates/run", adminToken, "", http.StatusAccepted)
	e.waitRun(adminToken, int64(claim["slot_id"].(float64)), store.StatusFailed)

	var all strings.Builder
	for _, p := range []string{"/", "/api/jobs", "/api/runs", "/healthz", "/readyz", "/metrics"} {
		r := e.do("GET", p, adminToken, "")
		require.Equal(t, http.StatusOK, r.status, p)
		all.WriteString(r.body)
	}
	for _, p := range []string{"/api/jobs/ledger/pause", "/api/jobs/nope/run"} {
		all.WriteString(e.do("POST", p, adminToken, "").body)
	}
	all.WriteString(e.do("GET", "/api/jobs", "wrong", "").body)
	for _, entry := range e.logs.All() {
		all.WriteString(entry.Message)
		for k, v := range entry.ContextMap() {
			all.WriteString(k + "=" + toString(v) + "\n")
		}
	}
	configtest.AssertNoSecret(t, all.String(), adminToken, clientSecret)
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case error:
		return x.Error()
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return ""
		}
		return string(b)
	}
}
