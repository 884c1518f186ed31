package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sandboxProc is `nxtcron sandbox` running as a child process.
type sandboxProc struct {
	URL  string
	cmd  *exec.Cmd
	done chan error
}

// sandboxOptions are the flags of one sandbox process.
type sandboxOptions struct {
	Rows      int
	Latency   time.Duration
	RateLimit int
}

// startSandbox starts `bin sandbox` on 127.0.0.1:0 with one company of
// o.Rows rows per table and the admin API, and waits for its URL.
func startSandbox(ctx context.Context, bin string, o sandboxOptions) (*sandboxProc, error) {
	cmd := exec.CommandContext(ctx, bin, "sandbox",
		"--listen", "127.0.0.1:0",
		"--latency", o.Latency.String(),
		"--rate-limit", strconv.Itoa(o.RateLimit),
		"--rows", strconv.Itoa(o.Rows),
		"--companies", "1",
		"--admin")
	cmd.Env = childEnv()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("starting the sandbox: %w", err)
	}
	// A cancelled benchmark stops the sandbox as a shutdown would.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the sandbox: %w", err)
	}
	s := &sandboxProc{cmd: cmd, done: make(chan error, 1)}
	lines := bufio.NewReader(out)
	line, err := lines.ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("reading the sandbox's address: %w", err)
	}
	const prefix = "sandbox listening on "
	if !strings.HasPrefix(line, prefix) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("reading the sandbox's address: unexpected first line %q", line)
	}
	s.URL = strings.TrimSpace(strings.TrimPrefix(line, prefix))
	go func() {
		_, _ = io.Copy(io.Discard, lines)
		s.done <- cmd.Wait()
	}()
	return s, nil
}

// Stop ends the sandbox (SIGTERM, by its pid) and waits for it.
func (s *sandboxProc) Stop() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping the sandbox: %w", err)
	}
	select {
	case err := <-s.done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return fmt.Errorf("waiting for the sandbox: %w", err)
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		return errors.New("the sandbox did not stop within 15s of SIGTERM; killed")
	}
}

// endpointStats is one endpoint of GET /sandbox/stats.
type endpointStats struct {
	OK                 int64 `json:"ok"`
	Error              int64 `json:"error"`
	Unauthorized       int64 `json:"unauthorized"`
	RateLimited        int64 `json:"rate_limited"`
	OutstandingLimited int64 `json:"outstanding_limited"`
}

// sandboxStats is what GET /sandbox/stats answers (the parts used here).
type sandboxStats struct {
	GraphQLRequests struct {
		Service endpointStats `json:"graphql-service"`
	} `json:"graphql_requests"`
	RowsServed int64 `json:"rows_served"`
}

// Stats reads the sandbox's counters.
func (s *sandboxProc) Stats(ctx context.Context) (sandboxStats, error) {
	var st sandboxStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/sandbox/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("reading the sandbox's stats: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("reading the sandbox's stats: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("decoding the sandbox's stats: %w", err)
	}
	return st, nil
}

// childEnv is the environment of child processes: this one's, without the
// variables that would point nxtcron elsewhere.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NXTCRON_STORE_DSN", "NXTCRON_CONFIG", "NXTCRON_ADMIN_TOKEN", "BNXT_CLIENT_SECRET", "BNXT_WEB_SECRET":
			continue
		}
		env = append(env, kv)
	}
	return env
}
