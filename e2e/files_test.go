package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Config is what WriteConfig puts in config.yaml. Zero fields take the
// defaults the tests want: a SQLite store in the test's directory, HTTP on
// 127.0.0.1:0, JSON logs, short scheduler intervals, the in-process
// sandbox, and one client-credentials connection named "service".
type Config struct {
	// StoreDSN defaults to sqlite:<Dir>/nxtcron.db.
	StoreDSN string
	// StoreSchema is store.schema (Postgres); "" leaves the default.
	StoreSchema string
	// Listen defaults to 127.0.0.1:0.
	Listen string
	// AdminToken is http.admin_token as written (a literal or ${VAR});
	// "" leaves it unset.
	AdminToken string
	// LogLevel defaults to info.
	LogLevel string
	// HeartbeatInterval, LeaseTimeout and ShutdownGrace default to 250ms,
	// 3s and 500ms.
	HeartbeatInterval, LeaseTimeout, ShutdownGrace string
	// SandboxURL points the connection at a separate sandbox
	// (StartSandbox) and turns the in-process one off.
	SandboxURL string
	// Sandbox holds more knobs of the in-process sandbox, as YAML flow
	// entries ("rows: 7, latency: 2s"); it always gets admin: true.
	Sandbox string
	// ClientSecret is the connection's secret line as written; default
	// "client_secret: sandbox-service-secret".
	ClientSecret string
	// Defaults are YAML flow entries of the defaults section
	// ("catchup: 2s").
	Defaults string
}

// WriteConfig writes config.yaml and returns its text. With a store other
// than SQLite (which makes its own key file) it also writes the encryption
// key file once, so that every replica of the test shares one key.
func (e *Env) WriteConfig(c Config) string {
	e.t.Helper()
	if c.StoreDSN != "" && !strings.HasPrefix(c.StoreDSN, "sqlite:") {
		if _, err := os.Stat(e.Path("nxtcron.keys")); os.IsNotExist(err) {
			key := make([]byte, 32)
			_, err := rand.Read(key)
			require.NoError(e.t, err)
			require.NoError(e.t, os.WriteFile(e.Path("nxtcron.keys"), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600))
		}
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "store:\n  dsn: %s\n  encryption_keys_file: %s\n",
		or(c.StoreDSN, "sqlite:"+e.Path("nxtcron.db")), e.Path("nxtcron.keys"))
	if c.StoreSchema != "" {
		fmt.Fprintf(&b, "  schema: %s\n", c.StoreSchema)
	}
	fmt.Fprintf(&b, "http:\n  listen: %s\n", or(c.Listen, "127.0.0.1:0"))
	if c.AdminToken != "" {
		fmt.Fprintf(&b, "  admin_token: %s\n", c.AdminToken)
	}
	fmt.Fprintf(&b, "log: {level: %s, format: json}\n", or(c.LogLevel, "info"))
	fmt.Fprintf(&b, "scheduler:\n  heartbeat_interval: %s\n  lease_timeout: %s\n  shutdown_grace: %s\n",
		or(c.HeartbeatInterval, "250ms"), or(c.LeaseTimeout, "3s"), or(c.ShutdownGrace, "500ms"))
	authority, graphql := "sandbox", "sandbox"
	if c.SandboxURL != "" {
		b.WriteString("sandbox: {enabled: false}\n")
		authority, graphql = c.SandboxURL, c.SandboxURL+"/api/graphql-service"
	} else {
		knobs := "enabled: true, listen: 127.0.0.1:0, admin: true"
		if c.Sandbox != "" {
			knobs += ", " + c.Sandbox
		}
		fmt.Fprintf(&b, "sandbox: {%s}\n", knobs)
	}
	fmt.Fprintf(&b, `connections:
  - name: service
    grant: client_credentials
    authority: %s
    client_id: isv_sandbox_service
    %s
    scopes: [business-graphql-service-api:access-group-based]
    graphql_url: %s
jobs: [jobs.d/*.yaml]
`, authority, or(c.ClientSecret, "client_secret: sandbox-service-secret"), graphql)
	if c.Defaults != "" {
		fmt.Fprintf(&b, "defaults: {%s}\n", c.Defaults)
	}
	e.WriteFile("config.yaml", b.String())
	return b.String()
}

// accountsQuery reads the chart of accounts of one company, page by page.
const accountsQuery = `query($cid: Int, $first: Int, $after: String) {
  useCompany(no: $cid) {
    generalLedgerAccount(first: $first, after: $after, orderBy: [{accountNo: ASC}]) {
      pageInfo { hasNextPage endCursor }
      items { accountNo name }
    }
  }
}`

// onceAYear is a schedule that has no slot while a test runs: the job runs
// only when a test asks for it.
const onceAYear = "0 0 1 1 *"

// Job is what WriteJob puts in a job file.
type Job struct {
	// Schedule defaults to onceAYear.
	Schedule string
	// Companies defaults to "all".
	Companies string
	// Query defaults to accountsQuery.
	Query string
	// PageSize defaults to 3.
	PageSize int
	// Sink is the sink section as a YAML flow map; default a file sink
	// writing <Dir>/out/{job}/{company}/{slot}-{attempt}.ndjson.
	Sink string
	// Extra are more top-level lines ("catchup: 2s").
	Extra string
}

// WriteJob writes jobs.d/<name>.yaml and returns its path.
func (e *Env) WriteJob(name string, j Job) string {
	e.t.Helper()
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	if j.PageSize == 0 {
		j.PageSize = 3
	}
	var b strings.Builder
	fmt.Fprintf(&b, "schedule: %q\nconnection: service\ncompanies: %s\nquery: |\n",
		or(j.Schedule, onceAYear), or(j.Companies, "all"))
	for line := range strings.Lines(or(j.Query, accountsQuery)) {
		b.WriteString("  " + line)
	}
	fmt.Fprintf(&b, "\npage_size: %d\nsink: %s\n", j.PageSize,
		or(j.Sink, fmt.Sprintf("{type: file, path: %q}", e.Path("out", "{job}", "{company}", "{slot}-{attempt}.ndjson"))))
	if j.Extra != "" {
		b.WriteString(strings.TrimSpace(j.Extra) + "\n")
	}
	return e.WriteFile(filepath.Join("jobs.d", name+".yaml"), b.String())
}

// OutFile is where the default file sink of WriteJob puts a company's rows
// of one attempt of a slot (of a job in UTC).
func (e *Env) OutFile(job string, company int64, slot time.Time, attempt int) string {
	return e.Path("out", job, fmt.Sprint(company), fmt.Sprintf("%s-%d.ndjson", slot.UTC().Format("20060102T150405-0700"), attempt))
}

// OutFiles lists every file under <Dir>/out, as absolute paths, sorted.
func (e *Env) OutFiles() []string {
	e.t.Helper()
	var files []string
	err := filepath.WalkDir(e.Path("out"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(e.t, err)
	slices.Sort(files)
	return files
}

// readNDJSON reads an ndjson file: one JSON object per line.
func readNDJSON(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row), "%s: line %d: %q", path, len(rows)+1, sc.Text())
		rows = append(rows, row)
	}
	require.NoError(t, sc.Err())
	return rows
}

// requireAccounts checks that path holds the chart of accounts as
// accountsQuery reads it: n rows, accountNo ascending and distinct, each
// with a name.
func requireAccounts(t testing.TB, path string, n int) {
	t.Helper()
	rows := readNDJSON(t, path)
	require.Len(t, rows, n, "rows in %s", path)
	prev := -1.0
	for i, r := range rows {
		no, ok := r["accountNo"].(float64)
		require.True(t, ok, "%s: row %d has no accountNo: %v", path, i+1, r)
		require.Greater(t, no, prev, "%s: row %d: accountNo not ascending", path, i+1)
		prev = no
		require.NotEmpty(t, r["name"], "%s: row %d has no name", path, i+1)
		require.Len(t, r, 2, "%s: row %d: only the selected fields", path, i+1)
	}
}

// span is the slots one record stands for: a missed record covers
// first..last (count slots), any other record its one slot.
type span struct {
	run         Run
	first, last time.Time
	count       int
}

// requireContiguous checks that records (of one job whose schedule is
// "@every step") cover every slot from the earliest to the latest exactly
// once, and returns their spans ordered by slot.
func requireContiguous(t testing.TB, records []Run, step time.Duration) []span {
	t.Helper()
	require.NotEmpty(t, records)
	spans := make([]span, 0, len(records))
	for _, r := range records {
		s := span{run: r, first: r.SlotTime(t), count: 1}
		s.last = s.first
		if r.Status == "missed" {
			last, err := time.Parse(time.RFC3339, r.MissedLast)
			require.NoError(t, err, "missed_last of record %d", r.ID)
			s.last, s.count = last, r.MissedCount
			require.Equal(t, int(s.last.Sub(s.first)/step)+1, s.count,
				"missed record %d: %s..%s should count every slot between", r.ID, r.Slot, r.MissedLast)
		}
		require.Zero(t, s.first.UnixNano()%int64(step), "record %d: slot %s is not a multiple of %s since the epoch", r.ID, r.Slot, step)
		spans = append(spans, s)
	}
	slices.SortFunc(spans, func(a, b span) int { return a.first.Compare(b.first) })
	for i := 1; i < len(spans); i++ {
		prev, cur := spans[i-1], spans[i]
		require.Equal(t, prev.last.Add(step), cur.first,
			"slot records must follow each other without gap or overlap: record %d (%s %s..%s) then record %d (%s %s)",
			prev.run.ID, prev.run.Status, prev.first.Format(time.RFC3339), prev.last.Format(time.RFC3339),
			cur.run.ID, cur.run.Status, cur.first.Format(time.RFC3339))
	}
	return spans
}
