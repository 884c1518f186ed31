package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	// waitFor bounds every wait of a test; reaching it fails the test. It
	// is generous: a loaded two-core machine runs the race-enabled tests
	// and the daemons side by side.
	waitFor = 60 * time.Second
	// pollEvery spaces the checks of a condition.
	pollEvery = 50 * time.Millisecond
	// dumpTail is how much of each process's output a failed test logs.
	dumpTail = 16 << 10
)

// httpClient talks to daemons and sandboxes; TestMain closes its idle
// connections before looking for leaked goroutines.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// eventually polls cond until it holds, failing t after waitFor with what
// it waited for and the last detail cond gave.
func eventually(t testing.TB, what string, cond func() (ok bool, detail string)) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", waitFor, what, detail)
		}
		time.Sleep(pollEvery)
	}
}

// Env is one test's world: a temporary directory holding config.yaml,
// jobs.d/, the store and the sinks' output, and the environment every
// process of the test gets.
type Env struct {
	t *testing.T
	// Dir is the test's directory, the working directory of its processes.
	Dir string
	// ConfigPath is the config.yaml that Run, Start and Serve pass with
	// --config.
	ConfigPath string
	// Vars are set in every process's environment, over the test's own
	// environment with every NXTCRON_* and BNXT_* variable removed.
	Vars map[string]string
	// AdminToken is sent as the bearer token by the Daemons Serve returns.
	AdminToken string

	mu    sync.Mutex
	procs []*Proc
}

// NewEnv makes a test's directory (with jobs.d/) and registers a cleanup
// that stops every process the test started and, when the test failed,
// logs their output.
func NewEnv(t *testing.T) *Env {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "jobs.d"), 0o755))
	e := &Env{t: t, Dir: dir, ConfigPath: filepath.Join(dir, "config.yaml"), Vars: map[string]string{}}
	t.Cleanup(e.cleanup)
	return e
}

// Path joins elem to the test's directory.
func (e *Env) Path(elem ...string) string {
	return filepath.Join(append([]string{e.Dir}, elem...)...)
}

// WriteFile writes content to a file under the test's directory (making
// its directories) and returns its absolute path.
func (e *Env) WriteFile(rel, content string) string {
	e.t.Helper()
	path := e.Path(rel)
	require.NoError(e.t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(e.t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func (e *Env) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NXTCRON_") || strings.HasPrefix(k, "BNXT_") {
			continue
		}
		env = append(env, kv)
	}
	for _, k := range slices.Sorted(maps.Keys(e.Vars)) {
		env = append(env, k+"="+e.Vars[k])
	}
	return env
}

func (e *Env) cleanup() {
	e.mu.Lock()
	procs := slices.Clone(e.procs)
	e.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	if !e.t.Failed() {
		return
	}
	for _, p := range procs {
		e.t.Logf("--- %s (pid %d, %s)\nstdout:\n%s\nstderr:\n%s", p.Name, p.Pid(), p.state(), tail(p.Stdout()), tail(p.Stderr()))
	}
}

func tail(s string) string {
	if len(s) <= dumpTail {
		return s
	}
	return "…" + s[len(s)-dumpTail:]
}

// Start starts `nxtcron --config <ConfigPath> args...` in the background.
func (e *Env) Start(name string, args ...string) *Proc {
	e.t.Helper()
	return e.StartBare(name, append([]string{"--config", e.ConfigPath}, args...)...)
}

// StartBare starts `nxtcron args...` without adding --config.
func (e *Env) StartBare(name string, args ...string) *Proc {
	e.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = e.Dir
	cmd.Env = e.environ()
	p := &Proc{t: e.t, Name: name, Args: args, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	require.NoError(e.t, cmd.Start(), "starting %s", name)
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	go func() {
		_ = cmd.Wait() // the exit status is in cmd.ProcessState
		close(p.done)
	}()
	return p
}

// Result is a finished one-shot command.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs `nxtcron --config <ConfigPath> args...` to its end.
func (e *Env) Run(args ...string) Result {
	e.t.Helper()
	return e.RunBare(append([]string{"--config", e.ConfigPath}, args...)...)
}

// RunBare runs `nxtcron args...` to its end, without adding --config.
func (e *Env) RunBare(args ...string) Result {
	e.t.Helper()
	p := e.StartBare(strings.Join(args, " "), args...)
	code := p.Wait()
	return Result{Code: code, Stdout: p.Stdout(), Stderr: p.Stderr()}
}

// StoreRuns reads every slot record of job ("" for all jobs) from the
// store through `nxtcron runs -o json`, newest first.
func (e *Env) StoreRuns(job string) []Run {
	e.t.Helper()
	args := []string{"runs", "-o", "json", "--limit", "100000"}
	if job != "" {
		args = append(args, job)
	}
	res := e.Run(args...)
	require.Equal(e.t, 0, res.Code, "nxtcron runs: %s", res.Stderr)
	var runs []Run
	require.NoError(e.t, json.Unmarshal([]byte(res.Stdout), &runs), "nxtcron runs -o json printed %q", res.Stdout)
	return runs
}

// Proc is a process of the binary that a test started.
type Proc struct {
	t    *testing.T
	Name string
	Args []string

	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stdout is everything the process wrote to stdout so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr is everything the process wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Exited reports whether the process has ended (and been reaped).
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (by its pid).
func (p *Proc) Signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig), "signalling %s (pid %d)", p.Name, p.Pid())
}

// Wait waits for the process to end and returns its exit code (-1 when a
// signal killed it); it fails the test when the process outlives waitFor.
func (p *Proc) Wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitFor):
		p.t.Fatalf("%s (pid %d) still running after %s", p.Name, p.Pid(), waitFor)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM and returns the exit code.
func (p *Proc) Stop() int {
	p.t.Helper()
	p.Signal(syscall.SIGTERM)
	return p.Wait()
}

// kill ends the process with SIGKILL if it still runs, and reaps it.
func (p *Proc) kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

func (p *Proc) state() string {
	if !p.Exited() {
		return "running"
	}
	return p.cmd.ProcessState.String()
}

// LogLine is one JSON log line (log.format json).
type LogLine map[string]any

// Str returns a string field ("" when absent or not a string).
func (l LogLine) Str(key string) string {
	s, _ := l[key].(string)
	return s
}

// Logs parses the JSON lines the process wrote to stderr so far.
func (p *Proc) Logs() []LogLine { return parseLogs(p.Stderr()) }

// Logs parses the JSON lines the command wrote to stderr.
func (r Result) Logs() []LogLine { return parseLogs(r.Stderr) }

// parseLogs parses the JSON lines of s; other lines are left out.
func parseLogs(s string) []LogLine {
	var out []LogLine
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var l LogLine
		if json.Unmarshal(line, &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// WaitLog waits for a log line with message msg for which match (when not
// nil) holds, and returns it. It fails at once when the process exits.
func (p *Proc) WaitLog(msg string, match func(LogLine) bool) LogLine {
	p.t.Helper()
	var found LogLine
	eventually(p.t, fmt.Sprintf("%s to log %q", p.Name, msg), func() (bool, string) {
		exited := p.Exited()
		for _, l := range p.Logs() {
			if l.Str("msg") == msg && (match == nil || match(l)) {
				found = l
				return true, ""
			}
		}
		if exited {
			p.t.Fatalf("%s exited (%s) before logging %q", p.Name, p.state(), msg)
		}
		return false, fmt.Sprintf("%d log lines", len(p.Logs()))
	})
	return found
}

// lockedBuffer is a bytes.Buffer safe for the process's writer and the
// test's readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Daemon is a running `nxtcron serve`.
type Daemon struct {
	*Proc
	// Addr is the HTTP listener (host:port) and URL its base URL.
	Addr, URL string
	// Sandbox is the in-process sandbox, nil when the config has none.
	Sandbox *Sandbox
	// Token is the admin token the helpers send ("" sends none).
	Token string
}

// Serve starts `nxtcron serve` with ConfigPath and waits until it logs
// its address.
func (e *Env) Serve() *Daemon {
	e.t.Helper()
	return e.ServeConfig(e.ConfigPath)
}

// ServeConfig starts `nxtcron serve` with another config file (a second
// replica's, say) and waits until it logs its address.
func (e *Env) ServeConfig(configPath string) *Daemon {
	e.t.Helper()
	p := e.StartBare("serve", "--config", configPath, "serve")
	line := p.WaitLog("nxtcron serving", nil)
	addr := line.Str("listen")
	require.NotEmpty(e.t, addr, "the serving log line has no listen address: %v", line)
	d := &Daemon{Proc: p, Addr: addr, URL: "http://" + addr, Token: e.AdminToken}
	if u := line.Str("sandbox"); u != "" {
		d.Sandbox = &Sandbox{t: e.t, URL: u}
	}
	return d
}

// Do sends a request with the given bearer token ("" for none) and returns
// the status and body.
func (d *Daemon) Do(method, path, token string, body io.Reader) (int, []byte) {
	d.t.Helper()
	return do(d.t, method, d.URL+path, token, body)
}

// Get sends GET path with the daemon's token.
func (d *Daemon) Get(path string) (int, []byte) {
	d.t.Helper()
	return d.Do(http.MethodGet, path, d.Token, nil)
}

// GetJSON requires GET path to answer 200 and decodes the body into v.
func (d *Daemon) GetJSON(path string, v any) {
	d.t.Helper()
	status, body := d.Get(path)
	require.Equal(d.t, http.StatusOK, status, "GET %s: %s", path, body)
	require.NoError(d.t, json.Unmarshal(body, v), "GET %s: %s", path, body)
}

// Runs is GET /api/runs for job ("" for every job).
func (d *Daemon) Runs(job string) RunsResponse {
	d.t.Helper()
	var r RunsResponse
	d.GetJSON("/api/runs?limit=10000&job="+job, &r)
	return r
}

// WaitRuns polls /api/runs of job until cond holds and returns what it
// saw. It fails at once when the daemon exits.
func (d *Daemon) WaitRuns(job, what string, cond func(RunsResponse) bool) RunsResponse {
	d.t.Helper()
	var r RunsResponse
	eventually(d.t, what, func() (bool, string) {
		if d.Exited() {
			d.t.Fatalf("%s exited (%s) while waiting for %s", d.Name, d.state(), what)
		}
		r = d.Runs(job)
		if cond(r) {
			return true, ""
		}
		b, _ := json.Marshal(r)
		return false, string(b)
	})
	return r
}

// WaitRunning waits until /api/runs shows an attempt of job that this
// daemon owns, and returns it: the moment a test may stop or kill it.
func (d *Daemon) WaitRunning(job string) Attempt {
	d.t.Helper()
	owner := d.Owner()
	var running Attempt
	d.WaitRuns(job, fmt.Sprintf("%s to run an attempt of %s", d.Name, job), func(r RunsResponse) bool {
		for _, a := range r.Running {
			if a.Job == job && a.Owner == owner {
				running = a
				return true
			}
		}
		return false
	})
	return running
}

// Owner is the replica id the daemon claims slots with (from its log).
func (d *Daemon) Owner() string {
	d.t.Helper()
	return d.WaitLog("scheduler started", nil).Str("owner")
}

// do sends a request with the given bearer token ("" for none) and returns
// the status and body.
func do(t testing.TB, method, url, token string, body io.Reader) (int, []byte) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	resp, b := doRequest(t, method, url, h, body)
	return resp.StatusCode, b
}

// doRequest sends a request with the given headers and returns the
// response (its body read and closed) and the body.
func doRequest(t testing.TB, method, url string, h http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "%s %s", method, url)
	return resp, b
}

// Run is a slot record as `nxtcron runs -o json` and /api/runs show it.
type Run struct {
	ID          int64      `json:"id"`
	Job         string     `json:"job"`
	Slot        string     `json:"slot"`
	Trigger     string     `json:"trigger"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	Fence       int64      `json:"fence"`
	Owner       string     `json:"owner"`
	Rows        int64      `json:"rows"`
	Error       string     `json:"error"`
	StartedAt   *time.Time `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	MissedLast  string     `json:"missed_last"`
	MissedCount int        `json:"missed_count"`
}

// SlotTime parses the record's slot.
func (r Run) SlotTime(t testing.TB) time.Time {
	t.Helper()
	s, err := time.Parse(time.RFC3339, r.Slot)
	require.NoError(t, err, "slot of record %d", r.ID)
	return s
}

// Attempt is an attempt that holds a claim, as /api/runs shows it.
type Attempt struct {
	SlotID  int64  `json:"slot_id"`
	Job     string `json:"job"`
	Slot    string `json:"slot"`
	Trigger string `json:"trigger"`
	Attempt int    `json:"attempt"`
	Fence   int64  `json:"fence"`
	RunID   string `json:"run_id"`
	Owner   string `json:"owner"`
	Status  string `json:"status"`
}

// RunsResponse is the body of GET /api/runs.
type RunsResponse struct {
	Runs    []Run     `json:"runs"`
	Running []Attempt `json:"running"`
}

// Count returns how many records have status.
func (r RunsResponse) Count(status string) int {
	n := 0
	for _, run := range r.Runs {
		if run.Status == status {
			n++
		}
	}
	return n
}

// Sandbox speaks the admin API of a sandbox: a `nxtcron sandbox` process
// (Proc set) or a daemon's in-process one.
type Sandbox struct {
	t *testing.T
	// URL is the base URL: authority, GraphQL endpoints and admin API.
	URL string
	// Proc is the sandbox process, nil for an in-process sandbox.
	Proc *Proc
}

// StartSandbox starts `nxtcron sandbox --admin --listen 127.0.0.1:0
// flags...` and waits until it prints its URL.
func (e *Env) StartSandbox(flags ...string) *Sandbox {
	e.t.Helper()
	p := e.StartBare("sandbox", append([]string{"sandbox", "--admin", "--listen", "127.0.0.1:0"}, flags...)...)
	const prefix = "sandbox listening on "
	var url string
	eventually(e.t, "the sandbox to print its URL", func() (bool, string) {
		if p.Exited() {
			e.t.Fatalf("the sandbox exited (%s): %s", p.state(), p.Stderr())
		}
		for line := range strings.Lines(p.Stdout()) {
			if u, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
				url = u
				return true, ""
			}
		}
		return false, p.Stdout()
	})
	return &Sandbox{t: e.t, URL: url, Proc: p}
}

// AddFault posts a fault (JSON, as docs/sandbox.md describes it).
func (s *Sandbox) AddFault(fault string) {
	s.t.Helper()
	status, body := do(s.t, http.MethodPost, s.URL+"/sandbox/faults", "", strings.NewReader(fault))
	require.Equal(s.t, http.StatusOK, status, "adding fault %s: %s", fault, body)
}

// Settings patches the sandbox's knobs (JSON).
func (s *Sandbox) Settings(patch string) {
	s.t.Helper()
	status, body := do(s.t, http.MethodPut, s.URL+"/sandbox/settings", "", strings.NewReader(patch))
	require.Equal(s.t, http.StatusOK, status, "patching settings %s: %s", patch, body)
}

// Stats reads the sandbox's counters.
func (s *Sandbox) Stats() SandboxStats {
	s.t.Helper()
	status, body := do(s.t, http.MethodGet, s.URL+"/sandbox/stats", "", nil)
	require.Equal(s.t, http.StatusOK, status, "reading stats: %s", body)
	var st SandboxStats
	require.NoError(s.t, json.Unmarshal(body, &st), "stats: %s", body)
	return st
}

// SandboxStats is the body of GET /sandbox/stats.
type SandboxStats struct {
	TokenRequests   map[string]TokenCounts   `json:"token_requests"`
	ReuseDetected   int64                    `json:"reuse_detected"`
	GraphQLRequests map[string]GraphQLCounts `json:"graphql_requests"`
	RowsServed      int64                    `json:"rows_served"`
}

// TokenCounts counts the token requests of one grant type.
type TokenCounts struct {
	OK    int64 `json:"ok"`
	Error int64 `json:"error"`
}

// GraphQLCounts counts the requests of one GraphQL endpoint by outcome.
type GraphQLCounts struct {
	OK                 int64 `json:"ok"`
	Error              int64 `json:"error"`
	Unauthorized       int64 `json:"unauthorized"`
	RateLimited        int64 `json:"rate_limited"`
	OutstandingLimited int64 `json:"outstanding_limited"`
}

// Service is the counts of the service endpoint (/api/graphql-service).
func (s SandboxStats) Service() GraphQLCounts { return s.GraphQLRequests["graphql-service"] }
