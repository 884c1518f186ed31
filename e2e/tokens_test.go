package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/postgres"
)

// The tests of this file run web-application (refresh_token) connections
// end to end: enrollment through a serve's HTTP routes and the sandbox's
// login form, replicas sharing one rotating refresh token, and a replica
// killed while the provider holds back the answer of a rotation it already
// committed.

const (
	userConn = "nightly-user"
	userJob  = "user-accounts"
	// accessTTL is the sandbox's access token lifetime in these tests: a
	// refresh every 3.75 s (renewed min(5m, ttl/4) ahead).
	accessTTL = 5 * time.Second
)

// userConfig is a config.yaml with one refresh_token connection to a
// separate sandbox; dsn and schema name the store ("" schema for SQLite),
// listen the HTTP listener.
func (e *Env) writeUserConfig(dsn, schema, listen, sandboxURL string) {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "store:\n  dsn: %s\n  encryption_keys_file: %s\n", dsn, e.Path("nxtcron.keys"))
	if schema != "" {
		fmt.Fprintf(&b, "  schema: %s\n", schema)
	}
	fmt.Fprintf(&b, `http:
  listen: %s
log: {level: info, format: json}
scheduler: {heartbeat_interval: 250ms, lease_timeout: 3s, shutdown_grace: 500ms}
sandbox: {enabled: false}
connections:
  - name: %s
    grant: refresh_token
    authority: %s
    client_id: sandbox_web
    client_secret: sandbox-web-secret
    expected_email: job.user@example.com
    graphql_url: %s/api/graphql
jobs: [jobs.d/*.yaml]
`, listen, userConn, sandboxURL, sandboxURL)
	e.WriteFile("config.yaml", b.String())
}

// writeUserJob writes a job that imports the chart of accounts with the
// user connection every second.
func (e *Env) writeUserJob() {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "schedule: \"@every 1s\"\nconnection: %s\ncompanies: all\nquery: |\n", userConn)
	for line := range strings.Lines(accountsQuery) {
		b.WriteString("  " + line)
	}
	fmt.Fprintf(&b, "\npage_size: 3\nsink: {type: file, path: %q}\n", e.Path("out", "{job}", "{company}", "{slot}-{attempt}.ndjson"))
	e.WriteFile("jobs.d/"+userJob+".yaml", b.String())
}

// runStdin runs `nxtcron --config <ConfigPath> args...` with stdin.
func (e *Env) runStdin(stdin string, args ...string) Result {
	e.t.Helper()
	cmd := exec.Command(binary, append([]string{"--config", e.ConfigPath}, args...)...)
	cmd.Dir = e.Dir
	cmd.Env = e.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		require.NoError(e.t, err)
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}

// NewChain asks the sandbox for a fresh refresh token chain of the job
// user, as if they had just signed in.
func (s *Sandbox) NewChain() string {
	s.t.Helper()
	status, body := do(s.t, http.MethodPost, s.URL+"/sandbox/refresh-tokens", "",
		strings.NewReader(`{"client_id": "sandbox_web", "email": "job.user@example.com"}`))
	require.Equal(s.t, http.StatusOK, status, "new chain: %s", body)
	var r struct {
		RefreshToken string `json:"refresh_token"`
	}
	require.NoError(s.t, json.Unmarshal(body, &r))
	require.NotEmpty(s.t, r.RefreshToken)
	return r.RefreshToken
}

// tokenStatus is a connection's entry of `tokens list -o json`.
type tokenStatus struct {
	Connection    string `json:"connection"`
	Status        string `json:"status"`
	NeedsReenroll bool   `json:"needs_reenroll"`
	Message       string `json:"message"`
	Action        string `json:"action"`
	Generation    int64  `json:"generation"`
	EnrolledAs    string `json:"enrolled_as"`
	LeaseOwner    string `json:"lease_owner"`
}

func (e *Env) tokenList() map[string]tokenStatus {
	e.t.Helper()
	res := e.Run("tokens", "list", "-o", "json")
	require.Equal(e.t, 0, res.Code, "tokens list: %s", res.Stderr)
	var list []tokenStatus
	require.NoError(e.t, json.Unmarshal([]byte(res.Stdout), &list), res.Stdout)
	out := map[string]tokenStatus{}
	for _, s := range list {
		out[s.Connection] = s
	}
	return out
}

func tokenState(t *testing.T, st *postgres.Store) store.TokenState {
	t.Helper()
	s, err := st.TokenState(t.Context(), userConn)
	require.NoError(t, err)
	return s
}

// requireNoLeak fails if any process of the test wrote one of the secrets.
func (e *Env) requireNoLeak(secrets ...string) {
	e.t.Helper()
	e.mu.Lock()
	procs := append([]*Proc(nil), e.procs...)
	e.mu.Unlock()
	for _, p := range procs {
		for _, s := range secrets {
			require.NotContains(e.t, p.Stdout()+p.Stderr(), s, "%s leaks a secret", p.Name)
		}
	}
}

// TestTokensEnrollThroughServe enrolls the job user through a serve's
// enrollment link, the sandbox's login form and the callback, with a plain
// HTTP client; the job then runs as that user.
func TestTokensEnrollThroughServe(t *testing.T) {
	e := NewEnv(t)
	sb := e.StartSandbox("--rows", "7")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listen := ln.Addr().String()
	require.NoError(t, ln.Close())
	e.writeUserConfig("sqlite:"+e.Path("nxtcron.db"), "", listen, sb.URL)
	d := e.Serve()

	res := e.Run("tokens", "enroll", userConn)
	require.Equal(t, 0, res.Code, res.Stderr)
	link := regexp.MustCompile(`http://\S+/enroll/nightly-user\?t=\S+`).FindString(res.Stdout)
	require.NotEmpty(t, link, res.Stdout)
	require.True(t, strings.HasPrefix(link, d.URL+"/enroll/"), link)

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	browser := &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}
	get := func(u string) (*http.Response, string) {
		resp, err := browser.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}
	resp, loginPage := get(link)
	require.Equal(t, http.StatusOK, resp.StatusCode, loginPage)
	require.True(t, strings.HasPrefix(resp.Request.URL.String(), sb.URL+"/connect/authorize"), resp.Request.URL.String())
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(loginPage, -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	form.Set("email", "job.user@example.com")
	form.Set("password", "sandbox")
	form.Set("action", "login")
	resp, err = browser.PostForm(sb.URL+"/connect/authorize", form)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
	require.Equal(t, d.URL+"/signin-oidc", resp.Request.URL.Scheme+"://"+resp.Request.URL.Host+resp.Request.URL.Path)
	require.Contains(t, string(page), "now runs as job.user@example.com")

	// The link is spent.
	resp, again := get(link)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, again, "used already")

	list := e.tokenList()[userConn]
	require.Equal(t, "ok", list.Status)
	require.Equal(t, "job.user@example.com", list.EnrolledAs)
	require.Equal(t, int64(1), list.Generation)
	var api struct {
		Tokens []tokenStatus `json:"tokens"`
	}
	d.GetJSON("/api/tokens", &api)
	require.Len(t, api.Tokens, 1)
	require.Equal(t, "ok", api.Tokens[0].Status)

	// The job runs as the enrolled user.
	e.writeUserJob()
	require.Equal(t, 0, d.Stop())
	d = e.Serve()
	d.WaitRuns(userJob, "a succeeded run as the user", func(r RunsResponse) bool { return r.Count("succeeded") >= 1 })
	require.Equal(t, 0, d.Stop())
	require.Zero(t, sb.Stats().ReuseDetected)
	e.requireNoLeak("sandbox-web-secret")
}

// TestTokensReplicasShareOneRefreshToken: three replicas on one Postgres
// schema run a job every second on one refresh-token connection whose
// access tokens live five seconds, for a minute: every run succeeds, the
// provider sees no reuse, and the refresh token is used at most once per
// expiry plus once per replica.
func TestTokensReplicasShareOneRefreshToken(t *testing.T) {
	e := NewEnv(t)
	schema := pgSchema(t)
	st := pgStore(t, schema)
	pgKeys(e)
	sb := e.StartSandbox("--rows", "7", "--access-token-ttl", accessTTL.String())
	e.writeUserConfig(pgDSN(t), schema, "127.0.0.1:0", sb.URL)
	e.writeUserJob()
	first := sb.NewChain()
	res := e.runStdin(first+"\n", "tokens", "import", userConn)
	require.Equal(t, 0, res.Code, res.Stderr)
	importedAt := time.Now()

	var replicas []*Daemon
	for i := range 3 {
		replicas = append(replicas, e.daemonOf(e.Start(fmt.Sprintf("replica-%d", i), "serve")))
	}
	start := dbNow(t, st)
	waitDBTime(t, st, start.Add(60*time.Second))
	stats := sb.Stats()
	elapsed := time.Since(importedAt)
	r := replicas[0].Runs(userJob)
	for _, d := range replicas {
		require.Equal(t, 0, d.Stop(), "serve exits 0 on SIGTERM")
	}

	succeeded, failed := 0, 0
	for _, run := range r.Runs {
		switch run.Status {
		case "succeeded":
			succeeded++
		case "failed":
			failed++
			t.Errorf("run %d (%s) failed: %s", run.ID, run.Slot, run.Error)
		}
	}
	require.Zero(t, failed, "every run succeeds")
	require.GreaterOrEqual(t, succeeded, 30, "runs went on all minute")
	require.Zero(t, stats.ReuseDetected, "no refresh token was used twice")
	refresh := stats.TokenRequests["refresh_token"]
	require.Zero(t, refresh.Error)
	period := accessTTL - accessTTL/4
	bound := int64(elapsed/period) + 1 + int64(len(replicas))
	t.Logf("%d runs succeeded; %d refreshes in %s (bound %d); generation %d", succeeded, refresh.OK, elapsed.Round(time.Second), bound, tokenState(t, st).Generation)
	require.LessOrEqual(t, refresh.OK, bound, "at most one refresh per expiry (%s) plus one per replica in %s", period, elapsed)
	require.GreaterOrEqual(t, refresh.OK, int64(60*time.Second/accessTTL), "the token was refreshed all along")
	ts := tokenState(t, st)
	require.Equal(t, refresh.OK+1, ts.Generation, "every rotation stored once (import is generation 1)")
	require.Equal(t, store.TokenStatusOK, ts.Status)

	e.requireNoLeak(first, "sandbox-web-secret")
	dump := pgDump(t, schema)
	require.NotContains(t, dump, first)
	require.NotContains(t, dump, "eyJ", "no JWT (access token) in clear text")
}

// pgDump reads every table of the schema as text (SELECT *), bytea as
// the raw bytes.
func pgDump(t *testing.T, schema string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), pgDSN(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, schema)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, tables, "tokens")
	var b strings.Builder
	for _, table := range tables {
		rows, err := conn.Query(t.Context(), fmt.Sprintf(`SELECT * FROM %q.%q`, schema, table))
		require.NoError(t, err)
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			for _, v := range vals {
				switch x := v.(type) {
				case []byte:
					b.Write(x)
				default:
					fmt.Fprint(&b, x)
				}
				b.WriteByte('\t')
			}
			b.WriteByte('\n')
		}
		require.NoError(t, rows.Err())
	}
	return b.String()
}

// TestTokensCrashDuringRotation kills a replica while the provider holds
// back the answer of a rotation it already committed. With a grace period
// longer than the refresh lease the next replica presents the same token
// again and the chain survives; without one the connection reads
// needs_reenroll and says so in `tokens list` and in the run's error, and
// nobody asks the provider again.
func TestTokensCrashDuringRotation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		grace   string
		survive bool
	}{
		{name: "with grace the chain survives", grace: "60s", survive: true},
		{name: "without grace it needs a new enrollment", grace: "0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEnv(t)
			schema := pgSchema(t)
			st := pgStore(t, schema)
			pgKeys(e)
			sb := e.StartSandbox("--rows", "7", "--access-token-ttl", accessTTL.String(), "--refresh-grace", tc.grace)
			e.writeUserConfig(pgDSN(t), schema, "127.0.0.1:0", sb.URL)
			e.writeUserJob()
			res := e.runStdin(sb.NewChain()+"\n", "tokens", "import", userConn)
			require.Equal(t, 0, res.Code, res.Stderr)

			victim := e.daemonOf(e.Start("victim", "serve"))
			victim.WaitRuns(userJob, "a succeeded run", func(r RunsResponse) bool { return r.Count("succeeded") >= 1 })

			// The next rotation is committed at the provider, and its
			// answer held back; once the victim holds the lease and the
			// provider counted the rotation, the victim dies.
			before := sb.Stats().TokenRequests["refresh_token"].OK
			sb.AddFault(`{"endpoint": "token", "kind": "slow", "phase": "after_rotate", "delay": "60s", "next": 1}`)
			victimOwner := victim.Owner()
			eventually(t, "the victim to lease and the provider to rotate", func() (bool, string) {
				ts := tokenState(t, st)
				ok := sb.Stats().TokenRequests["refresh_token"].OK
				return ts.LeaseOwner == victimOwner && ok == before+1, fmt.Sprintf("lease %q, rotations %d", ts.LeaseOwner, ok-before)
			})
			victim.Signal(syscall.SIGKILL)
			require.Equal(t, -1, victim.Wait())
			held := tokenState(t, st)
			require.Equal(t, victimOwner, held.LeaseOwner, "the dead replica's lease stays until it runs out")

			next := e.daemonOf(e.Start("next", "serve"))
			nextOwner := next.Owner()
			if tc.survive {
				next.WaitRuns(userJob, "a run by the next replica to succeed", func(r RunsResponse) bool {
					for _, run := range r.Runs {
						if run.Owner == nextOwner && run.Status == "succeeded" {
							return true
						}
					}
					return false
				})
				require.Equal(t, 0, next.Stop())
				require.Zero(t, sb.Stats().ReuseDetected)
				list := e.tokenList()[userConn]
				require.Equal(t, "ok", list.Status)
				require.Greater(t, list.Generation, held.Generation)
				return
			}
			var failedRun Run
			next.WaitRuns(userJob, "a run by the next replica to fail", func(r RunsResponse) bool {
				for _, run := range r.Runs {
					if run.Owner == nextOwner && run.Status == "failed" {
						failedRun = run
						return true
					}
				}
				return false
			})
			require.Contains(t, failedRun.Error, `connection "nightly-user" needs a new enrollment`)
			require.Contains(t, failedRun.Error, "nxtcron tokens enroll nightly-user")
			calls := sb.Stats().TokenRequests["refresh_token"]
			require.Equal(t, int64(1), sb.Stats().ReuseDetected)
			// More runs fail the same way without asking the provider.
			next.WaitRuns(userJob, "two more failed runs", func(r RunsResponse) bool {
				n := 0
				for _, run := range r.Runs {
					if run.Owner == nextOwner && run.Status == "failed" && run.ID > failedRun.ID {
						n++
					}
				}
				return n >= 2
			})
			require.Equal(t, calls, sb.Stats().TokenRequests["refresh_token"], "no more calls to the provider")
			status, body := next.Get("/metrics")
			require.Equal(t, http.StatusOK, status)
			require.Contains(t, string(body), `nxtcron_connection_needs_reenroll{connection="nightly-user"} 1`)
			require.Equal(t, 0, next.Stop())
			list := e.tokenList()[userConn]
			require.Equal(t, "needs_reenroll", list.Status)
			require.True(t, list.NeedsReenroll)
			require.Contains(t, list.Message, "invalid_grant")
			require.Contains(t, list.Action, "nxtcron tokens enroll nightly-user")
			res = e.Run("tokens", "list")
			require.Equal(t, 0, res.Code)
			require.Contains(t, res.Stdout, "needs_reenroll")
			require.Contains(t, res.Stdout, "a person must sign in again: nxtcron tokens enroll nightly-user")
		})
	}
}
