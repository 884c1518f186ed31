package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/config/configtest"
	"github.com/nxtcron/nxtcron/sinks/file"
	"github.com/nxtcron/nxtcron/sinks/stdout"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testConfig loads testdata/nxtcron.yaml: the default sandbox connections
// (service, nightly-user), defaults {Europe/Oslo, 2h, 20m}.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	for _, k := range []string{config.EnvStoreDSN, "NXTCRON_ADMIN_TOKEN", "BNXT_CLIENT_SECRET", "BNXT_WEB_SECRET"} {
		t.Setenv(k, "") // the environment of the shell must not change the outcome
	}
	cfg, err := config.Load("testdata/nxtcron.yaml")
	require.NoError(t, err)
	return cfg
}

// loadTestFile is LoadFile with the test sink types (the real table plus
// memory).
func loadTestFile(cfg *config.Config, path string) (*Job, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, err
	}
	job, _, ps := loadFile(cfg, abs, data, testTypes)
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return job, nil
}

func TestLoadFileInvalid(t *testing.T) {
	cfg := testConfig(t)
	t.Setenv("NXTCRON_TEST_UNSET_OUT", "")
	require.NoError(t, os.Unsetenv("NXTCRON_TEST_UNSET_OUT"))
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)

	// One file per problem; the exact message, file:line: key: message.
	tests := []struct {
		file string
		want string
	}{
		{"bad_catchup.yaml", `testdata/bad_catchup.yaml:15: catchup: must be a positive duration, not -1h`},
		{"bad_companies_duplicate.yaml", `testdata/bad_companies_duplicate.yaml:18: companies[2]: company 1001 is listed twice`},
		{"bad_companies_empty.yaml", `testdata/bad_companies_empty.yaml:15: companies: must list at least one company id, or be all`},
		{"bad_companies_id.yaml", `testdata/bad_companies_id.yaml:15: companies[1]: must be a positive company id, not "-5"`},
		{"bad_companies_value.yaml", `testdata/bad_companies_value.yaml:15: companies: must be all or a list of company ids (vismaNetCompanyId), not "some"`},
		{"bad_connection_missing.yaml", `testdata/bad_connection_missing.yaml:1: connection: required: the name of a connection in testdata/nxtcron.yaml`},
		{"bad_connection_unknown.yaml", `testdata/bad_connection_unknown.yaml:2: connection: connection "servcie" not found in testdata/nxtcron.yaml (did you mean "service"?)`},
		{"bad_duplicate_key.yaml", `testdata/bad_duplicate_key.yaml:15: connection: duplicate key (first set on line 2)`},
		{"bad_fragment_cycle.yaml", `testdata/bad_fragment_cycle.yaml:12: query: fragment cycle: Account spreads Account`},
		{"bad_fragment_undefined.yaml", `testdata/bad_fragment_undefined.yaml:8: query: fragment Account is not defined`},
		{"bad_incremental_field_not_selected.yaml", `testdata/bad_incremental_field_not_selected.yaml:13: incremental.field: changedTimestamp must be selected (without an alias) under items of useCompany.associate`},
		{"bad_incremental_key_missing.yaml", `testdata/bad_incremental_key_missing.yaml:13: incremental.key: required: the fields that identify a row, as in [associateNo] (rows re-read inside the lookback are dropped by key)`},
		{"bad_incremental_key_not_selected.yaml", `testdata/bad_incremental_key_not_selected.yaml:14: incremental.key[0]: customerNo must be selected (without an alias) under items of useCompany.associate`},
		{"bad_incremental_lookback.yaml", `testdata/bad_incremental_lookback.yaml:15: incremental.lookback: must not be negative, not -5m`},
		{"bad_incremental_no_filter.yaml", `testdata/bad_incremental_no_filter.yaml:6: query: an incremental job needs filter: $filter on useCompany.associate, with $filter: FilterExpression_Associate declared`},
		{"bad_incremental_no_orderby.yaml", `testdata/bad_incremental_no_orderby.yaml:6: query: an incremental job needs a total order on useCompany.associate: orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]`},
		{"bad_incremental_orderby_desc.yaml", `testdata/bad_incremental_orderby_desc.yaml:7: query: orderBy of useCompany.associate must start with the incremental field and then the key, in order: orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}] (found [{changedTimestamp: ASC}, {associateNo: DESC}])`},
		{"bad_incremental_orderby_wrong.yaml", `testdata/bad_incremental_orderby_wrong.yaml:7: query: orderBy of useCompany.associate must start with the incremental field and then the key, in order: orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}] (found [{associateNo: ASC}, {changedTimestamp: ASC}])`},
		{"bad_incremental_server_timezone.yaml", `testdata/bad_incremental_server_timezone.yaml:15: incremental.server_timezone: unknown time zone "Oslo"`},
		{"bad_name_mismatch.yaml", `testdata/bad_name_mismatch.yaml:1: name: "associates" must match the file name bad_name_mismatch.yaml (name defaults to the file's stem)`},
		{"bad_nested_no_pageinfo.yaml", `testdata/bad_nested_no_pageinfo.yaml:10: query: nested connection joindown_OrderLine_via_Order must select pageInfo { hasNextPage } so a truncated import is noticed`},
		{"bad_overlap_allow_append.yaml", `testdata/bad_overlap_allow_append.yaml:16: overlap: allow is refused with a sink in append mode: two runs at once would append the same rows twice`},
		{"bad_overlap_allow_incremental.yaml", `testdata/bad_overlap_allow_incremental.yaml:18: overlap: allow is refused for an incremental job: two runs at once would race on the watermark`},
		{"bad_overlap_unknown.yaml", `testdata/bad_overlap_unknown.yaml:15: overlap: must be skip or allow, not "skipp" (did you mean "skip"?)`},
		{"bad_page_size.yaml", `testdata/bad_page_size.yaml:15: page_size: must be between 1 and 10000, not 20000`},
		{"bad_pagination_path_missing.yaml", `testdata/bad_pagination_path_missing.yaml:16: pagination.path: useCompany.generalLedgerAcount is not a field of the query (paged connections: useCompany.generalLedgerAccount)`},
		{"bad_pagination_path_not_paged.yaml", `testdata/bad_pagination_path_not_paged.yaml:16: pagination.path: useCompany is not a paged connection (a field selecting pageInfo and items, with after: $after)`},
		{"bad_parallelism.yaml", `testdata/bad_parallelism.yaml:15: parallelism: must be at least 1, not 0`},
		{"bad_query_after_nonnull.yaml", `testdata/bad_query_after_nonnull.yaml:4: query: $after must be nullable (String, not String!): the first page has no cursor`},
		{"bad_query_both.yaml", `testdata/bad_query_both.yaml:15: query_file: set only one of query and query_file`},
		{"bad_query_cid_literal.yaml", `testdata/bad_query_cid_literal.yaml:5: query: useCompany must take no: $cid (nxtcron runs the query once per company), not no: 1001`},
		{"bad_query_cid_type.yaml", `testdata/bad_query_cid_type.yaml:4: query: $cid must be declared Int, not String`},
		{"bad_query_file_missing.yaml", `testdata/bad_query_file_missing.yaml:3: query_file: reading query file: open {dir}/no-such-query.graphql: no such file or directory`},
		{"bad_query_file_syntax.yaml", `testdata/broken.graphql:7: query: GraphQL syntax error: Expected Name, found <EOF>`},
		{"bad_query_filter_not_passed.yaml", `testdata/bad_query_filter_not_passed.yaml:4: query: $filter is declared but useCompany.generalLedgerAccount does not take filter: $filter`},
		{"bad_query_filter_type.yaml", `testdata/bad_query_filter_type.yaml:4: query: $filter must be declared FilterExpression_Associate (the filter type of associate), not FilterExpression_Order`},
		{"bad_query_first_literal.yaml", `testdata/bad_query_first_literal.yaml:6: query: useCompany.generalLedgerAccount must take first: $first, not first: 100`},
		{"bad_query_missing.yaml", `testdata/bad_query_missing.yaml:1: query: required: the GraphQL query (or query_file)`},
		{"bad_query_mutation.yaml", `testdata/bad_query_mutation.yaml:4: query: must be a query, not a mutation`},
		{"bad_query_no_after.yaml", `testdata/bad_query_no_after.yaml:6: query: useCompany.generalLedgerAccount selects pageInfo and items but does not take after: $after; nxtcron pages with first: $first, after: $after`},
		{"bad_query_no_paged.yaml", `testdata/bad_query_no_paged.yaml:3: query: no paged connection: nxtcron needs a field selecting pageInfo { hasNextPage endCursor } and items, with first: $first, after: $after`},
		{"bad_query_pageinfo_fields.yaml", `testdata/bad_query_pageinfo_fields.yaml:7: query: pageInfo of useCompany.generalLedgerAccount must select endCursor`},
		{"bad_query_several_paged.yaml", `testdata/bad_query_several_paged.yaml:10: query: has several paged connections (useCompany.generalLedgerAccount, useCompany.associate): set pagination.path to the one to page through`},
		{"bad_query_syntax.yaml", `testdata/bad_query_syntax.yaml:11: query: GraphQL syntax error: Expected Name, found <EOF>`},
		{"bad_query_syntax_token.yaml", `testdata/bad_query_syntax_token.yaml:6: query: GraphQL syntax error: Expected Name, found { (column 55 of the query)`},
		{"bad_query_two_operations.yaml", `testdata/bad_query_two_operations.yaml:12: query: must contain exactly one operation, found 2`},
		{"bad_query_undeclared_variable.yaml", `testdata/bad_query_undeclared_variable.yaml:6: query: $first is used but not declared`},
		{"bad_query_unused_variable.yaml", `testdata/bad_query_unused_variable.yaml:4: query: $from is declared but never used`},
		{"bad_retry_attempts.yaml", `testdata/bad_retry_attempts.yaml:15: retry.attempts: must be at least 1 (it counts the first attempt), not 0`},
		{"bad_retry_backoff.yaml", `testdata/bad_retry_backoff.yaml:17: retry.backoff: must be a positive duration, not 0s`},
		{"bad_schedule_fields.yaml", `testdata/bad_schedule_fields.yaml:4: schedule: expected 5 or 6 fields, found 4`},
		{"bad_schedule_missing.yaml", `testdata/bad_schedule_missing.yaml:1: schedule: required, as in "30 2 * * *" or "@every 1h"`},
		{"bad_schedule_tz.yaml", `testdata/bad_schedule_tz.yaml:1: schedule: CRON_TZ= is not allowed in a schedule; set timezone instead`},
		{"bad_sink_env_unset.yaml", `testdata/bad_sink_env_unset.yaml:14: sink.path: environment variable NXTCRON_TEST_UNSET_OUT is not set (give a default with ${NXTCRON_TEST_UNSET_OUT:-...})`},
		{"bad_sink_field_error.yaml", `testdata/bad_sink_field_error.yaml:15: sink.path: must contain {company}: each company is committed to its own file`},
		{"bad_sink_missing.yaml", `testdata/bad_sink_missing.yaml:1: sink: required: where the rows go, as in {type: file, path: out/{job}/{company}/{slot}.ndjson}`},
		{"bad_sink_not_mapping.yaml", `testdata/bad_sink_not_mapping.yaml:12: sink: must be a mapping with a type (one of file, postgres, stdout, webhook, memory)`},
		{"bad_sink_type_missing.yaml", `testdata/bad_sink_type_missing.yaml:12: sink.type: required (one of file, postgres, stdout, webhook, memory)`},
		{"bad_sink_type_unknown.yaml", `testdata/bad_sink_type_unknown.yaml:13: sink.type: unknown sink type "fiel" (one of file, postgres, stdout, webhook, memory) (did you mean "file"?)`},
		{"bad_sink_unknown_key.yaml", `testdata/bad_sink_unknown_key.yaml:14: sink.pth: unknown key (did you mean "path"?)`},
		{"bad_timeout.yaml", `testdata/bad_timeout.yaml:15: timeout: must be a positive duration, not 0s`},
		{"bad_timezone.yaml", `testdata/bad_timezone.yaml:2: timezone: unknown time zone "Europe/Olso"`},
		{"bad_unknown_key.yaml", `testdata/bad_unknown_key.yaml:15: retries: unknown key (did you mean "retry"?)`},
		{"bad_variables_filter_not_passed.yaml", `testdata/bad_variables_filter_not_passed.yaml:16: variables.filter: the query does not pass $filter to its paged connection (filter: $filter)`},
		{"bad_variables_not_mapping.yaml", `testdata/bad_variables_not_mapping.yaml:15: variables: must be a mapping`},
		{"bad_variables_required_missing.yaml", `testdata/bad_variables_required_missing.yaml:4: query: $from is required (Int!) and has no default: set it under variables`},
		{"bad_variables_reserved.yaml", `testdata/bad_variables_reserved.yaml:16: variables.first: $first is set by nxtcron (cid: each company, first: page_size, after: the cursor)`},
		{"bad_variables_undeclared.yaml", `testdata/bad_variables_undeclared.yaml:16: variables.from: the query does not declare $from`},
		{"bad_yaml_syntax.yaml", `testdata/bad_yaml_syntax.yaml:3: invalid YAML: found unexpected end of stream`},
	}
	files, err := filepath.Glob("testdata/bad_*.yaml")
	require.NoError(t, err)
	require.Len(t, tests, len(files), "every testdata/bad_*.yaml has a case, and every case a file")
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			job, err := loadTestFile(cfg, filepath.Join("testdata", tt.file))
			require.Nil(t, job)
			var ps config.Problems
			require.True(t, errors.As(err, &ps), "error is config.Problems: %v", err)
			require.Equal(t, strings.ReplaceAll(tt.want, "{dir}", dir), err.Error())
		})
	}
}

func TestLoadFileReadError(t *testing.T) {
	cfg := testConfig(t)
	_, err := LoadFile(cfg, filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// jobSummary is the golden form of a loaded job.
type jobSummary struct {
	Name           string              `yaml:"name"`
	Description    string              `yaml:"description"`
	File           string              `yaml:"file"`
	Schedule       string              `yaml:"schedule"`
	Timezone       string              `yaml:"timezone"`
	NextAfter      []string            `yaml:"next_after_2026_01_01"`
	Connection     string              `yaml:"connection"`
	Companies      any                 `yaml:"companies"`
	Variables      map[string]any      `yaml:"variables"`
	PageSize       int                 `yaml:"page_size"`
	Parallelism    int                 `yaml:"parallelism"`
	Paged          pagedSummary        `yaml:"paged"`
	Incremental    *incrementalSummary `yaml:"incremental"`
	SinkType       string              `yaml:"sink_type"`
	Sink           any                 `yaml:"sink"`
	Timeout        string              `yaml:"timeout"`
	Retry          string              `yaml:"retry"`
	Overlap        string              `yaml:"overlap"`
	Catchup        string              `yaml:"catchup"`
	ScheduleHash   string              `yaml:"schedule_hash"`
	DefinitionHash string              `yaml:"definition_hash"`
}

type pagedSummary struct {
	Path         string   `yaml:"path"`
	Table        string   `yaml:"table"`
	Fields       []string `yaml:"fields,flow"`
	Nested       []string `yaml:"nested,flow"`
	UsesCompany  bool     `yaml:"uses_company"`
	HasFilterVar bool     `yaml:"has_filter_var"`
}

type incrementalSummary struct {
	Field          string   `yaml:"field"`
	Key            []string `yaml:"key"`
	Lookback       string   `yaml:"lookback"`
	ServerTimezone string   `yaml:"server_timezone"`
}

func summarize(t *testing.T, j *Job) jobSummary {
	t.Helper()
	s := jobSummary{
		Name:        j.Name,
		Description: j.Description,
		File:        config.DisplayPath(j.File),
		Schedule:    j.Schedule,
		Timezone:    j.Location.String(),
		Connection:  j.Connection,
		Companies:   "all",
		Variables:   j.Variables,
		PageSize:    j.PageSize,
		Parallelism: j.Parallelism,
		Paged: pagedSummary{
			Path:         strings.Join(j.Paged.Path, "."),
			Table:        j.Paged.Table,
			Fields:       j.Paged.Fields,
			UsesCompany:  j.Paged.UsesCompany,
			HasFilterVar: j.Paged.HasFilterVar,
		},
		SinkType:       j.Sink.Type,
		Sink:           j.Sink.Config,
		Timeout:        config.FormatDuration(j.Timeout),
		Retry:          fmt.Sprintf("%d attempts, %s apart", j.Retry.Attempts, config.FormatDuration(j.Retry.Backoff)),
		Overlap:        j.Overlap,
		Catchup:        config.FormatDuration(j.Catchup),
		ScheduleHash:   j.ScheduleHash,
		DefinitionHash: j.DefinitionHash,
	}
	if j.Companies != nil {
		s.Companies = j.Companies
	}
	for _, n := range j.Paged.Nested {
		s.Paged.Nested = append(s.Paged.Nested, strings.Join(n, "."))
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 3 {
		at = j.Cron.Next(at)
		s.NextAfter = append(s.NextAfter, at.UTC().Format(time.RFC3339))
	}
	if inc := j.Incremental; inc != nil {
		s.Incremental = &incrementalSummary{inc.Field, inc.Key, config.FormatDuration(inc.Lookback), inc.ServerTimezone.String()}
	}
	return s
}

// The valid jobs, loaded through Load, as a golden summary.
func TestLoadValidGolden(t *testing.T) {
	cfg := testConfig(t)
	jobs, err := Load(cfg)
	require.NoError(t, err)
	var sums []jobSummary
	for _, j := range jobs {
		sums = append(sums, summarize(t, j))
	}
	got, err := yaml.Marshal(sums)
	require.NoError(t, err)
	golden := filepath.Join("testdata", "valid.golden.yaml")
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "run go test ./jobs -run TestLoadValidGolden -update to accept")
}

func TestDefaults(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	path := writeJob(t, dir, "minimal.yaml", `
schedule: "0 3 * * *"
connection: service
query: |
  query($cid: Int, $first: Int, $after: String) {
    useCompany(no: $cid) {
      associate(first: $first, after: $after) { pageInfo { hasNextPage endCursor } items { associateNo } }
    }
  }
sink: {type: stdout}
`)
	j, err := LoadFile(cfg, path)
	require.NoError(t, err)
	require.Equal(t, "minimal", j.Name, "name defaults to the file's stem")
	require.Equal(t, path, j.File)
	require.Equal(t, "Europe/Oslo", j.Location.String(), "defaults.timezone")
	require.Nil(t, j.Companies, "companies defaults to all")
	require.Equal(t, map[string]any{}, j.Variables)
	require.Equal(t, DefaultPageSize, j.PageSize)
	require.Equal(t, 500, j.PageSize)
	require.Equal(t, 4, j.Parallelism)
	require.Nil(t, j.Incremental)
	require.Equal(t, 20*time.Minute, j.Timeout, "defaults.timeout")
	require.Equal(t, Retry{Attempts: 1, Backoff: time.Minute}, j.Retry)
	require.Equal(t, OverlapSkip, j.Overlap)
	require.Equal(t, 2*time.Hour, j.Catchup, "defaults.catchup")
	require.Equal(t, stdout.Type.Name, j.Sink.Type)
	require.Equal(t, stdout.Type.New(), j.Sink.Config, "the sink type's own defaults")

	// incremental with only its required key.
	path = writeJob(t, dir, "inc.yaml", `
schedule: "0 3 * * *"
connection: service
query: |
  query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Associate) {
    useCompany(no: $cid) {
      associate(first: $first, after: $after, filter: $filter, orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]) {
        pageInfo { hasNextPage endCursor } items { associateNo changedTimestamp }
      }
    }
  }
incremental: {key: [associateNo]}
sink: {type: file, path: "out/{company}/{slot}.ndjson"}
`)
	j, err = LoadFile(cfg, path)
	require.NoError(t, err)
	require.Equal(t, "changedTimestamp", j.Incremental.Field)
	require.Equal(t, []string{"associateNo"}, j.Incremental.Key)
	require.Equal(t, 5*time.Minute, j.Incremental.Lookback)
	require.Equal(t, "Europe/Oslo", j.Incremental.ServerTimezone.String())
	require.Equal(t, &file.Config{Path: "out/{company}/{slot}.ndjson", Format: file.FormatNDJSON}, j.Sink.Config)
}

const hashBase = `
name: h
description: first words
schedule: "0 3 * * *"
timezone: Europe/Oslo
connection: service
companies: [1001]
query: |
  query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Associate, $n: Int) {
    useCompany(no: $cid) {
      associate(first: $first, after: $after, filter: $filter, orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items { associateNo changedTimestamp joindown_X(first: $n) { pageInfo { hasNextPage } items { a } } }
      }
    }
  }
variables: {n: 10}
page_size: 500
parallelism: 4
incremental: {field: changedTimestamp, key: [associateNo], lookback: 5m, server_timezone: Europe/Oslo}
sink: {type: memory, mode: upsert, dsn: "postgres://u:pw1@db/x", table: t}
timeout: 30m
retry: {attempts: 3, backoff: 1m}
overlap: skip
catchup: 6h
`

func TestHashes(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	load := func(content string) *Job {
		t.Helper()
		j, err := loadTestFile(cfg, writeJob(t, dir, "h.yaml", content))
		require.NoError(t, err)
		return j
	}
	base := load(hashBase)
	again := load(hashBase)
	require.Equal(t, base.DefinitionHash, again.DefinitionHash, "stable across loads")
	sum := sha256.Sum256([]byte("0 3 * * *\nEurope/Oslo"))
	require.Equal(t, hex.EncodeToString(sum[:]), base.ScheduleHash)

	same := map[string][2]string{
		"description":   {"description: first words", "description: other words"},
		"comments":      {"page_size: 500", "page_size: 500 # a comment\n# another"},
		"flow vs block": {"retry: {attempts: 3, backoff: 1m}", "retry:\n  attempts: 3\n  backoff: 60s"},
		"secret value":  {"pw1@db", "pw2@db"},
		"defaults":      {"overlap: skip\n", ""},
	}
	for name, r := range same {
		t.Run("same/"+name, func(t *testing.T) {
			changed := strings.Replace(hashBase, r[0], r[1], 1)
			require.NotEqual(t, hashBase, changed)
			require.Equal(t, base.DefinitionHash, load(changed).DefinitionHash)
		})
	}

	differ := map[string][2]string{
		"schedule":    {`"0 3 * * *"`, `"0 4 * * *"`},
		"timezone":    {"timezone: Europe/Oslo", "timezone: UTC"},
		"connection":  {"connection: service", "connection: nightly-user"},
		"companies":   {"companies: [1001]", "companies: [1001, 1002]"},
		"all":         {"companies: [1001]", "companies: all"},
		"query":       {"items { associateNo changedTimestamp", "items { associateNo name changedTimestamp"},
		"variables":   {"{n: 10}", "{n: 11}"},
		"page_size":   {"page_size: 500", "page_size: 501"},
		"parallelism": {"parallelism: 4", "parallelism: 2"},
		"lookback":    {"lookback: 5m", "lookback: 6m"},
		"server zone": {"server_timezone: Europe/Oslo}", "server_timezone: Europe/Stockholm}"},
		"sink":        {"table: t", "table: u"},
		"sink mode":   {"mode: upsert", "mode: replace"},
		"timeout":     {"timeout: 30m", "timeout: 31m"},
		"retry":       {"attempts: 3", "attempts: 4"},
		"backoff":     {"backoff: 1m", "backoff: 2m"},
		"catchup":     {"catchup: 6h", "catchup: 7h"},
	}
	for name, r := range differ {
		t.Run("differs/"+name, func(t *testing.T) {
			changed := strings.Replace(hashBase, r[0], r[1], 1)
			require.NotEqual(t, hashBase, changed)
			j := load(changed)
			require.NotEqual(t, base.DefinitionHash, j.DefinitionHash)
			scheduleChanged := name == "schedule" || name == "timezone"
			require.Equal(t, scheduleChanged, base.ScheduleHash != j.ScheduleHash)
		})
	}
	t.Run("differs/overlap", func(t *testing.T) {
		// overlap: allow is refused for incremental jobs: compare two
		// non-incremental ones.
		plain := strings.Replace(hashBase, "incremental: {field: changedTimestamp, key: [associateNo], lookback: 5m, server_timezone: Europe/Oslo}\n", "", 1)
		a, b := load(plain), load(strings.Replace(plain, "overlap: skip", "overlap: allow", 1))
		require.NotEqual(t, a.DefinitionHash, b.DefinitionHash)
		require.NotEqual(t, a.DefinitionHash, base.DefinitionHash, "dropping incremental changes the definition")
	})
}

func TestLoadCollectsEveryProblemOfEveryFile(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	writeJob(t, dir, "a.yaml", "schedule: nope\nconnection: service\nfrobnicate: 1\n")
	writeJob(t, dir, "b.yaml", "schedule: '@daily'\nconnection: nope\n")
	cfg.Jobs = []string{filepath.Join(dir, "*.yaml")}
	jobs, err := Load(cfg)
	require.Nil(t, jobs, "an invalid set loads no job at all")
	var ps config.Problems
	require.True(t, errors.As(err, &ps))
	a, b := config.DisplayPath(filepath.Join(dir, "a.yaml")), config.DisplayPath(filepath.Join(dir, "b.yaml"))
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%s:%d %s", p.File, p.Line, p.Key))
	}
	require.Equal(t, []string{
		a + ":1 schedule", a + ":1 query", a + ":1 sink", a + ":3 frobnicate",
		b + ":1 query", b + ":1 sink", b + ":2 connection",
	}, got, err.Error())
}

func TestLoadDuplicateNames(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	job := `schedule: "@daily"
connection: service
query_file: ` + filepath.Join(mustAbs(t, "testdata/valid/ledger.graphql")) + `
sink: {type: stdout}
`
	writeJob(t, dir, "one/ledger.yaml", job)
	second := writeJob(t, dir, "two/ledger.yaml", "# the same job again\n"+job)
	cfg.Jobs = []string{filepath.Join(dir, "one/*.yaml"), filepath.Join(dir, "two/*.yaml")}
	_, err := Load(cfg)
	// The name is not written: the problem goes on the file's first key.
	require.EqualError(t, err, fmt.Sprintf("%s:2: name: job \"ledger\" is also defined in %s",
		config.DisplayPath(second), config.DisplayPath(filepath.Join(dir, "one/ledger.yaml"))))
}

func TestLoadGlobs(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	job := "schedule: \"@daily\"\nconnection: service\nquery_file: " + mustAbs(t, "testdata/valid/ledger.graphql") + "\nsink: {type: stdout}\n"
	writeJob(t, dir, "b.yaml", job)
	writeJob(t, dir, "a.yaml", job)
	writeJob(t, dir, ".#a.yaml", "an editor's lock file: not YAML at all: [")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "dir.yaml"), 0o755))
	// Overlapping globs load a file once.
	cfg.Jobs = []string{filepath.Join(dir, "*.yaml"), filepath.Join(dir, "a.*")}
	jobs, err := Load(cfg)
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	require.Equal(t, "a", jobs[0].Name, "sorted by name")
	require.Equal(t, "b", jobs[1].Name)

	cfg.Jobs = []string{filepath.Join(dir, "nothing/*.yaml")}
	jobs, err = Load(cfg)
	require.NoError(t, err)
	require.Empty(t, jobs)
}

func TestNameMustBeUsable(t *testing.T) {
	cfg := testConfig(t)
	path := writeJob(t, t.TempDir(), "my job.yaml", "schedule: '@daily'\n")
	_, err := LoadFile(cfg, path)
	require.ErrorContains(t, err, config.DisplayPath(path)+`:1: name: "my job" must be letters, digits, '.', '_' or '-', starting with a letter or digit`)
}

func TestExpansionInJobFiles(t *testing.T) {
	cfg := testConfig(t)
	t.Setenv("NXTCRON_TEST_OUT", "/data/exports")
	t.Setenv("NXTCRON_TEST_N", "25")
	t.Setenv("NXTCRON_TEST_ZONE", "UTC")
	path := writeJob(t, t.TempDir(), "exp.yaml", `
description: to ${NXTCRON_TEST_OUT}, cost $$5
schedule: "0 3 * * *"
timezone: ${NXTCRON_TEST_ZONE}
connection: service
query: |
  query($cid: Int, $first: Int, $after: String, $n: Int) {
    useCompany(no: $cid) {
      associate(first: $first, after: $after, filter: {name: {_like: "${HOME}$$"}}) {
        pageInfo { hasNextPage endCursor }
        items { associateNo joindown_X(first: $n) { pageInfo { hasNextPage } items { a } } }
      }
    }
  }
variables:
  n: ${NXTCRON_TEST_N}
sink: {type: file, path: "${NXTCRON_TEST_OUT}/{job}/{company}/{date}.ndjson"}
`)
	j, err := LoadFile(cfg, path)
	require.NoError(t, err)
	require.Equal(t, "to /data/exports, cost $5", j.Description)
	require.Equal(t, "UTC", j.Location.String())
	require.Equal(t, map[string]any{"n": 25}, j.Variables, "a plain ${VAR} resolves as if written in place")
	require.Contains(t, j.Query, `{name: {_like: "${HOME}$$"}}`, "the query is never expanded")
	require.Equal(t, "/data/exports/{job}/{company}/{date}.ndjson", j.Sink.Config.(*file.Config).Path)
}

func TestQueryFileIsNotExpanded(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	t.Setenv("NXTCRON_TEST_Q", "elsewhere")
	data, err := os.ReadFile("testdata/valid/ledger.graphql")
	require.NoError(t, err)
	writeJob(t, dir, "${NXTCRON_TEST_Q}.graphql", string(data))
	path := writeJob(t, dir, "q.yaml", "schedule: '@daily'\nconnection: service\nquery_file: ${NXTCRON_TEST_Q}.graphql\nsink: {type: stdout}\n")
	j, err := LoadFile(cfg, path)
	require.NoError(t, err)
	require.Equal(t, string(data), j.Query)
}

func TestSinkSecretFileTwin(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	const dsn = "postgres://warehouse:Very-secret-pw@db/dw"
	writeJob(t, dir, "secrets/dw", dsn+"\n")
	job := strings.Replace(hashBase, `dsn: "postgres://u:pw1@db/x"`, "dsn_file: secrets/dw", 1)
	path := writeJob(t, dir, "h.yaml", job)
	j, err := loadTestFile(cfg, path)
	require.NoError(t, err)
	require.Equal(t, config.Secret(dsn), j.Sink.Config.(*memoryConfig).DSN, "read relative to the job file, one newline trimmed")

	// Nothing a job shows carries the secret.
	out := fmt.Sprintf("%v %+v %#v %v", *j, *j, j.Sink, j.Sink.Config)
	y, err := yaml.Marshal(j.Sink.Config)
	require.NoError(t, err)
	configtest.AssertNoSecret(t, out+string(y)+j.DefinitionHash, "Very-secret-pw")

	both := strings.Replace(hashBase, `dsn: "postgres://u:pw1@db/x"`, `dsn: "postgres://u:Very-secret-pw@db/x", dsn_file: secrets/dw`, 1)
	_, err = loadTestFile(cfg, writeJob(t, dir, "h.yaml", both))
	require.EqualError(t, err, config.DisplayPath(path)+":21: sink.dsn_file: set only one of dsn and dsn_file")
	configtest.AssertNoSecret(t, err.Error(), "Very-secret-pw")
}

func TestSinkFieldErrorLines(t *testing.T) {
	cfg := testConfig(t)
	sinkLine := `sink: {type: memory, mode: upsert, dsn: "postgres://u:pw1@db/x", table: t}`
	require.Contains(t, hashBase, sinkLine)
	tests := []struct{ sink, want string }{
		{"sink:\n  type: memory\n  key: [associateNo,\n        nope]\n  table: t\n", ":24: sink.key[1]: nope is not selected under items"},
		{"sink:\n  type: memory\n  mode: upsert\n", ":21: sink.table: required"},
	}
	for _, tt := range tests {
		path := writeJob(t, t.TempDir(), "h.yaml", strings.Replace(hashBase, sinkLine+"\n", tt.sink, 1))
		_, err := loadTestFile(cfg, path)
		require.EqualError(t, err, config.DisplayPath(path)+tt.want)
	}
}

func TestQueryProblemLines(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	tests := []struct {
		name, query, want string
	}{
		{
			name:  "literal block: line for line",
			query: "query: |\n  query($cid: Int, $first: Int, $after: String) {\n    useCompany(no: $cid) {\n      associate(first: $first, after: $after) {\n        pageInfo { hasNextPage }\n        items { a }\n      }\n    }\n  }\n",
			want:  ":7: query: pageInfo of useCompany.associate must select endCursor",
		},
		{
			name:  "quoted on the key's line",
			query: `query: "query($cid: Int, $first: Int, $after: String) { useCompany(no: $cid) { associate(first: $first, after: $after) { pageInfo { hasNextPage } items { a } } } }"` + "\n",
			want:  ":3: query: pageInfo of useCompany.associate must select endCursor",
		},
		{
			name:  "folded block: its first line",
			query: "query: >\n  query($cid: Int, $first: Int, $after: String) {\n    useCompany(no: $cid) {\n      associate(first: $first, after: $after) {\n        pageInfo { hasNextPage }\n        items { a } } } }\n",
			want:  ":4: query: pageInfo of useCompany.associate must select endCursor",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeJob(t, dir, "l.yaml", "schedule: '@daily'\nconnection: service\n"+tt.query+"sink: {type: stdout}\n")
			_, err := LoadFile(cfg, path)
			require.EqualError(t, err, config.DisplayPath(path)+tt.want)
		})
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	require.NoError(t, err)
	return abs
}

// writeJob writes content to dir/name (making directories) and returns the
// path.
func writeJob(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
