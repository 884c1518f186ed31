package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// benchQuery is the job's query: every column of associate, the incremental
// order of a nightly import. bareFetch sends the same text.
const benchQuery = `query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Associate) {
  useCompany(no: $cid) {
    associate(first: $first, after: $after, filter: $filter,
              orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]) {
      pageInfo { hasNextPage endCursor }
      items {
        associateNo name shortName customerNo supplierNo countryNo
        emailAddress phone gln createdDate changedTimestamp
      }
    }
  }
}
`

// company is the sandbox's only company.
const company = 1001

// runSpec is one `nxtcron run` of the benchmark's job.
type runSpec struct {
	// Job names the job (and its file). The sink keeps each job's
	// watermark: every run gets a job of its own, so that each is a first
	// run, reading every row.
	Job               string
	Bin               string
	Dir               string // a fresh directory for its config, job and state
	SandboxURL        string
	StoreDSN          string // "" for SQLite in Dir
	StoreSchema       string
	SinkDSN           string
	Table             string // schema.table
	PageSize          int
	RequestsPerMinute int
}

// runResult is what one `nxtcron run` took.
type runResult struct {
	Elapsed time.Duration
	MaxRSS  int64 // bytes
	Stderr  string
}

var configTemplate = template.Must(template.New("config").Parse(`store:
  dsn: {{printf "%q" .StoreDSN}}
  schema: {{.StoreSchema}}
  encryption_keys_file: state/nxtcron.keys
sandbox: {enabled: false}
log: {level: warn, format: json}
connections:
  - name: service
    grant: client_credentials
    authority: {{.SandboxURL}}
    client_id: isv_sandbox_service
    client_secret: sandbox-service-secret
    scopes: [business-graphql-service-api:access-group-based]
    graphql_url: {{.SandboxURL}}/api/graphql-service
    limits: {requests_per_minute: {{.RequestsPerMinute}}, concurrency_per_company: 8}
jobs: [jobs.d/*.yaml]
`))

var jobTemplate = template.Must(template.New("job").Parse(`description: The benchmark's import (make bench)
schedule: "@daily"
connection: service
companies: [1001]
query: |
{{.Query}}page_size: {{.PageSize}}
incremental:
  field: changedTimestamp
  key: [associateNo]
  lookback: 5m
  server_timezone: Europe/Oslo
sink:
  type: postgres
  dsn: {{printf "%q" .SinkDSN}}
  table: {{.Table}}
  key: [associateNo]
  mode: upsert
  columns: typed
timeout: 2h
`))

// writeRun writes spec's config.yaml, job file and encryption key.
func writeRun(spec runSpec) error {
	if err := os.MkdirAll(filepath.Join(spec.Dir, "jobs.d"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(spec.Dir, "state"), 0o700); err != nil {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(spec.Dir, "state", "nxtcron.keys"),
		[]byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	data := struct {
		runSpec
		Query string
	}{spec, indent(benchQuery, "  ")}
	if data.StoreDSN == "" {
		data.StoreDSN = "sqlite:state/nxtcron.db"
	}
	if data.StoreSchema == "" {
		data.StoreSchema = "nxtcron"
	}
	var cfg, job bytes.Buffer
	if err := configTemplate.Execute(&cfg, data); err != nil {
		return err
	}
	if err := jobTemplate.Execute(&job, data); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(spec.Dir, "config.yaml"), cfg.Bytes(), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(spec.Dir, "jobs.d", spec.Job+".yaml"), job.Bytes(), 0o600)
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}

// runNxtcron runs `nxtcron run` of the job in spec.Dir as a child process and
// measures its wall time and peak RSS.
func runNxtcron(ctx context.Context, spec runSpec) (runResult, error) {
	if err := writeRun(spec); err != nil {
		return runResult{}, fmt.Errorf("writing the run's files: %w", err)
	}
	cmd := exec.CommandContext(ctx, spec.Bin, "--config", filepath.Join(spec.Dir, "config.yaml"), "run", spec.Job)
	cmd.Dir = spec.Dir
	cmd.Env = childEnv()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Minute
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	res := runResult{Elapsed: time.Since(start), Stderr: stderr.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSS = ru.Maxrss * 1024 // KiB on Linux
		}
	}
	if err != nil {
		return res, fmt.Errorf("nxtcron run: %w\n%s", err, res.Stderr)
	}
	return res, nil
}
