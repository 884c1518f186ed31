package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// problemLine is how validate prints a problem: file:line: key.path: message.
var problemLine = regexp.MustCompile(`^(.+?):(\d+): ([A-Za-z0-9_.\[\]]+): (.+)$`)

// problem is one parsed problem line.
type problem struct {
	File string // absolute
	Line int
	Key  string
	Msg  string
}

// parseProblems parses every line of out as a problem (files relative to
// dir, the process's working directory), failing on any other line.
func parseProblems(t *testing.T, dir, out string) []problem {
	t.Helper()
	var ps []problem
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		m := problemLine.FindStringSubmatch(line)
		require.NotNil(t, m, "not a file:line: key.path: message line: %q", line)
		n, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		file := m[1]
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		ps = append(ps, problem{File: file, Line: n, Key: m[3], Msg: m[4]})
	}
	return ps
}

// brokenJob has one problem on each of the lines 1, 2, 12, 17 and 18.
const brokenJob = `schedule: "* * *"
connection: servcie
companies: all
query: |
  query($cid: Int, $first: Int, $after: String) {
    useCompany(no: $cid) {
      generalLedgerAccount(first: $first, after: $after, orderBy: [{accountNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items { accountNo name }
      }
    }
    other: useCompany(no: 1002) { generalLedgerAccount { totalCount } }
  }
page_size: 3
sink:
  type: file
  path: out/{compnay}.ndjson
bogus_key: 1
`

// TestValidate checks that validate reports every problem of a broken
// job file, one file:line: key.path: message line each, and exits 1; and
// that a valid set exits 0.
func TestValidate(t *testing.T) {
	e := NewEnv(t)
	e.WriteConfig(Config{})
	e.WriteJob("good", Job{})
	broken := e.WriteFile("jobs.d/broken.yaml", brokenJob)

	res := e.Run("validate")
	require.Equal(t, 1, res.Code, "stdout: %s\nstderr: %s", res.Stdout, res.Stderr)
	require.Empty(t, res.Stdout)
	type at struct {
		Line int
		Key  string
		Msg  string
	}
	var got []at
	for _, p := range parseProblems(t, e.Dir, res.Stderr) {
		require.Equal(t, broken, p.File, "only the broken file has problems")
		got = append(got, at{p.Line, p.Key, p.Msg})
	}
	require.Equal(t, []at{
		{1, "schedule", "expected 5 or 6 fields, found 3"},
		{2, "connection", `connection "servcie" not found in config.yaml (did you mean "service"?)`},
		{12, "query", "useCompany must take no: $cid (nxtcron runs the query once per company), not no: 1002"},
		{17, "sink.path", "unknown placeholder {compnay} (did you mean {company}?)"},
		{18, "bogus_key", "unknown key"},
	}, got)

	t.Run("a problem in config.yaml", func(t *testing.T) {
		cfg := e.WriteConfig(Config{LeaseTimeout: "100ms"})
		line := 1 + strings.Count(cfg[:strings.Index(cfg, "lease_timeout")], "\n")
		res := e.Run("validate")
		require.Equal(t, 1, res.Code)
		ps := parseProblems(t, e.Dir, res.Stderr)
		require.Len(t, ps, 1, res.Stderr)
		require.Equal(t, e.ConfigPath, ps[0].File)
		require.Equal(t, line, ps[0].Line)
		require.Equal(t, "scheduler.lease_timeout", ps[0].Key)
		require.Equal(t, "must be longer than heartbeat_interval (250ms), not 100ms", ps[0].Msg)
	})

	t.Run("valid", func(t *testing.T) {
		e.WriteConfig(Config{})
		require.NoError(t, os.Remove(broken))
		res := e.Run("validate")
		require.Equal(t, 0, res.Code, res.Stderr)
		require.Equal(t, e.ConfigPath+": ok (1 connections, 1 jobs)\n", res.Stdout)
	})
}

// TestUsageErrorsExit2 checks that a wrong command line exits 2 and says
// how to get help.
func TestUsageErrorsExit2(t *testing.T) {
	e := NewEnv(t)
	e.WriteConfig(Config{})
	e.WriteJob("accounts", Job{})
	for _, c := range []struct {
		name        string
		args        []string
		errContains string
	}{
		{"run without JOB", []string{"run"}, "accepts 1 arg(s), received 0"},
		{"run with two jobs", []string{"run", "accounts", "other"}, "accepts 1 arg(s), received 2"},
		{"unknown flag", []string{"run", "accounts", "--fast"}, "unknown flag: --fast"},
		{"force without full", []string{"run", "accounts", "--force"}, "--force only goes with --full"},
		{"bad output format", []string{"runs", "-o", "yaml"}, `--output: "yaml" is not table or json`},
		{"unknown command", []string{"runn", "accounts"}, `unknown command "runn"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := e.Run(c.args...)
			require.Equal(t, 2, res.Code, "stderr: %s", res.Stderr)
			require.Contains(t, res.Stderr, c.errContains)
			require.Contains(t, res.Stderr, "nxtcron --help")
		})
	}
}
