package postgres_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/config/configtest"
	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/sinks/postgres"
	"github.com/nxtcron/nxtcron/sinks/webhook"
)

// loaderDir is a directory with a config.yaml (one service connection) and
// an empty jobs.d, for loading job files as nxtcron validate does.
func loaderDir(t *testing.T) (string, *config.Config) {
	t.Helper()
	for _, k := range []string{config.EnvStoreDSN, "NXTCRON_ADMIN_TOKEN", "BNXT_CLIENT_SECRET", "BNXT_WEB_SECRET"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "jobs.d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(`store: {dsn: "sqlite:state/nxtcron.db"}
sandbox: {enabled: false}
connections:
  - name: service
    grant: client_credentials
    authority: https://connect.visma.com
    client_id: isv_example
    client_secret: example-secret
    scopes: [business-graphql-service-api:access-group-based]
    graphql_url: https://business.visma.net/api/graphql-service
jobs: [jobs.d/*.yaml]
`), 0o600))
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	require.NoError(t, err)
	return dir, cfg
}

// exampleJob matches a complete job file in the docs: a yaml block whose
// first line names it.
var exampleJob = regexp.MustCompile("(?ms)^```yaml\n# jobs\\.d/([a-z-]+)\\.yaml\n(.*?)^```")

// The complete examples in docs/sinks.md load as nxtcron validate loads them.
func TestDocsExamplesLoad(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "sinks.md"))
	require.NoError(t, err)
	dir, cfg := loaderDir(t)
	t.Setenv("WAREHOUSE_DSN", "postgres://nxtcron@warehouse.example.com/warehouse")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.d", "webhook-secret.txt"), []byte("whsec-example\n"), 0o600))

	types := map[string]string{}
	for _, m := range exampleJob.FindAllStringSubmatch(string(doc), -1) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.d", m[1]+".yaml"), []byte(m[2]), 0o600))
		types[m[1]] = ""
	}
	loaded, err := jobs.Load(cfg)
	require.NoError(t, err)
	for _, j := range loaded {
		types[j.Name] = j.Sink.Type
	}
	require.Equal(t, map[string]string{"warehouse-associates": "postgres", "ledger-webhook": "webhook"}, types)
}

// Secrets of both sinks have _file twins, read relative to the job file.
func TestSecretFileTwins(t *testing.T) {
	const dsn = "postgres://nxtcron:file-password-123@warehouse.example.com/warehouse"
	dir, cfg := loaderDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.d", "dsn.txt"), []byte(dsn+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs.d", "secret.txt"), []byte("whsec-from-file\n"), 0o600))
	job := func(name, sink string) (*jobs.Job, error) {
		path := filepath.Join(dir, "jobs.d", name+".yaml")
		require.NoError(t, os.WriteFile(path, []byte(`schedule: "@daily"
connection: service
companies: [1001]
query: |
  query($cid: Int, $first: Int, $after: String) {
    useCompany(no: $cid) {
      associate(first: $first, after: $after) {
        pageInfo { hasNextPage endCursor }
        items { associateNo name }
      }
    }
  }
sink:
`+sink), 0o600))
		return jobs.LoadFile(cfg, path)
	}

	pj, err := job("pg", "  type: postgres\n  dsn_file: dsn.txt\n  table: bnxt.associate\n  key: [associateNo]\n")
	require.NoError(t, err)
	pc := pj.Sink.Config.(*postgres.Config)
	require.Equal(t, dsn, pc.DSN.Reveal())
	configtest.AssertNoSecret(t, fmt.Sprintf("%v %+v %#v %s", pc, pc, pc, pj.DefinitionHash), dsn, "file-password-123")

	wj, err := job("wh", "  type: webhook\n  url: https://hooks.example.com/x\n  secret_file: secret.txt\n")
	require.NoError(t, err)
	require.Equal(t, "whsec-from-file", wj.Sink.Config.(*webhook.Config).Secret.Reveal())

	_, err = job("both", "  type: webhook\n  url: https://hooks.example.com/x\n  secret: a\n  secret_file: secret.txt\n")
	require.ErrorContains(t, err, "sink.secret_file")
	_, err = job("missing", "  type: postgres\n  dsn_file: nope.txt\n  table: bnxt.associate\n  key: [associateNo]\n")
	require.ErrorContains(t, err, "sink.dsn_file")
	_, err = job("bad", "  type: postgres\n  dsn: \"postgres://u:pw-in-error@h:port/db\"\n  table: bnxt.associate\n  key: [associateNo]\n")
	require.ErrorContains(t, err, "sink.dsn: not a valid Postgres connection string")
	configtest.AssertNoSecret(t, err.Error(), "pw-in-error")
}
