package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sandbox"
)

// cleanEnv blanks the environment variables the defaults and Load read, so
// the developer's shell cannot change a test's outcome.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{EnvStoreDSN, "NXTCRON_ADMIN_TOKEN", "BNXT_CLIENT_SECRET", "BNXT_WEB_SECRET"} {
		t.Setenv(k, "")
	}
}

// unsetEnv removes k for the test (t.Setenv restores it afterwards).
func unsetEnv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "")
	require.NoError(t, os.Unsetenv(k))
}

func TestLoadInvalid(t *testing.T) {
	cleanEnv(t)
	unsetEnv(t, "NXTCRON_TEST_UNSET_VARIABLE")
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)

	// One file per problem; the exact message, file:line: key: message.
	tests := []struct {
		file string
		want string
	}{
		{"bad_yaml_syntax.yaml", `testdata/bad_yaml_syntax.yaml:2: invalid YAML: did not find expected key`},
		{"bad_not_mapping.yaml", `testdata/bad_not_mapping.yaml:1: the file must be a mapping of keys, not a list`},
		{"bad_multiple_documents.yaml", `testdata/bad_multiple_documents.yaml:2: only one YAML document is allowed`},
		{"bad_unknown_key.yaml", `testdata/bad_unknown_key.yaml:3: shedulr: unknown key (did you mean "scheduler"?)`},
		{"bad_unknown_key_nested.yaml", `testdata/bad_unknown_key_nested.yaml:8: connections[1].clinet_id: unknown key (did you mean "client_id"?)`},
		{"bad_duplicate_key.yaml", `testdata/bad_duplicate_key.yaml:3: log.level: duplicate key (first set on line 2)`},
		{"bad_store_migrate.yaml", `testdata/bad_store_migrate.yaml:2: store.migrate: must be auto or off, not "automatic" (did you mean "auto"?)`},
		{"bad_store_dsn.yaml", `testdata/bad_store_dsn.yaml:2: store.dsn: must be sqlite:PATH or postgres://...`},
		{"bad_store_schema.yaml", `testdata/bad_store_schema.yaml:2: store.schema: must be a lower-case SQL identifier (letters, digits, _), not "Nxt-Cron"`},
		{"bad_encryption_keys_both.yaml", `testdata/bad_encryption_keys_both.yaml:3: store.encryption_keys_file: set only one of encryption_keys and encryption_keys_file`},
		{"bad_encryption_key.yaml", `testdata/bad_encryption_key.yaml:4: store.encryption_keys[1]: must be 32 bytes in base64 (make one with: openssl rand -base64 32)`},
		{"bad_log_level.yaml", `testdata/bad_log_level.yaml:2: log.level: must be debug, info, warn or error, not "verbose"`},
		{"bad_log_format.yaml", `testdata/bad_log_format.yaml:1: log.format: must be auto, console or json, not "jsn" (did you mean "json"?)`},
		{"bad_listen.yaml", `testdata/bad_listen.yaml:2: http.listen: must be host:port, as in 127.0.0.1:8080, not "8080"`},
		{"bad_admin_token_required.yaml", `testdata/bad_admin_token_required.yaml:2: http.admin_token: required when http.listen (0.0.0.0:8080) is not a loopback address (or set NXTCRON_ADMIN_TOKEN)`},
		{"bad_public_url.yaml", `testdata/bad_public_url.yaml:2: http.public_url: must be an http:// or https:// URL, not "nxtcron.example.com"`},
		{"bad_tls_half.yaml", `testdata/bad_tls_half.yaml:2: http.tls_cert_file: needs tls_key_file too (set both or neither)`},
		{"bad_tls_missing_file.yaml", `testdata/bad_tls_missing_file.yaml:2: http.tls_cert_file: stat {dir}/testdata-missing-cert.pem: no such file or directory`},
		{"bad_duration_negative.yaml", `testdata/bad_duration_negative.yaml:2: scheduler.shutdown_grace: must be a positive duration, not -5s`},
		{"bad_lease_timeout.yaml", `testdata/bad_lease_timeout.yaml:3: scheduler.lease_timeout: must be longer than heartbeat_interval (30s), not 30s`},
		// Only the bad key: lease_timeout is not compared with a default.
		{"bad_heartbeat_interval.yaml", `testdata/bad_heartbeat_interval.yaml:2: scheduler.heartbeat_interval: must be a duration like 90s, 15m, 2h or 90d, not "soon"`},
		{"bad_duration_syntax.yaml", `testdata/bad_duration_syntax.yaml:2: scheduler.retention: must be a duration like 90s, 15m, 2h or 90d, not "90 days"`},
		{"bad_sandbox_knob.yaml", `testdata/bad_sandbox_knob.yaml:3: sandbox.companies: 0 must be between 1 and 1000`},
		{"bad_sandbox_unknown_knob.yaml", `testdata/bad_sandbox_unknown_knob.yaml:2: sandbox.row: unknown key (did you mean "rows"?)`},
		{"bad_sandbox_disabled.yaml", `testdata/bad_sandbox_disabled.yaml:3: connections[0]: uses the sandbox, but sandbox.enabled is false`},
		{"bad_connection_name_empty.yaml", `testdata/bad_connection_name_empty.yaml:2: connections[0].name: required`},
		{"bad_connection_name_duplicate.yaml", `testdata/bad_connection_name_duplicate.yaml:6: connections[1].name: "erp" is already the name of connections[0]`},
		{"bad_grant.yaml", `testdata/bad_grant.yaml:3: connections[0].grant: must be client_credentials or refresh_token, not "refresh" (did you mean "refresh_token"?)`},
		{"bad_authority.yaml", `testdata/bad_authority.yaml:4: connections[0].authority: must be sandbox or an https:// URL (http:// only on a loopback host), not "http://connect.visma.com"`},
		{"bad_graphql_url.yaml", `testdata/bad_graphql_url.yaml:6: connections[0].graphql_url: must be sandbox or an https:// URL (http:// only on a loopback host), not "business.visma.net/api/graphql-service"`},
		{"bad_client_id_long.yaml", `testdata/bad_client_id_long.yaml:4: connections[0].client_id: must be at most 24 characters for client_credentials (Business NXT stores it in its User table), not 30`},
		{"bad_client_secret_missing.yaml", `testdata/bad_client_secret_missing.yaml:2: connections[0].client_secret: required (or client_secret_file)`},
		{"bad_client_secret_both.yaml", `testdata/bad_client_secret_both.yaml:6: connections[0].client_secret_file: set only one of client_secret and client_secret_file`},
		{"bad_client_secret_file_missing.yaml", `testdata/bad_client_secret_file_missing.yaml:5: connections[0].client_secret_file: reading secret file: open {dir}/no-such-secret.txt: no such file or directory`},
		{"bad_scopes_empty.yaml", `testdata/bad_scopes_empty.yaml:6: connections[0].scopes: must list at least one scope`},
		{"bad_limits.yaml", `testdata/bad_limits.yaml:6: connections[0].limits.requests_per_minute: must be positive, not 0`},
		{"bad_keepalive_on_service.yaml", `testdata/bad_keepalive_on_service.yaml:6: connections[0].keepalive: only applies to grant refresh_token`},
		{"bad_redirect_path.yaml", `testdata/bad_redirect_path.yaml:6: connections[0].redirect_path: must be a path starting with /, not "signin-oidc"`},
		{"bad_timezone.yaml", `testdata/bad_timezone.yaml:2: defaults.timezone: unknown time zone "Europe/Olso"`},
		{"bad_catchup_zero.yaml", `testdata/bad_catchup_zero.yaml:2: defaults.catchup: must be a positive duration, not 0s`},
		{"bad_env_unset.yaml", `testdata/bad_env_unset.yaml:2: http.admin_token: environment variable NXTCRON_TEST_UNSET_VARIABLE is not set (give a default with ${NXTCRON_TEST_UNSET_VARIABLE:-...})`},
		{"bad_env_syntax.yaml", `testdata/bad_env_syntax.yaml:2: log.level: unterminated ${ (write $$ for a literal $)`},
		{"bad_int_type.yaml", `testdata/bad_int_type.yaml:6: connections[0].limits.requests_per_minute: must be an integer, not "lots"`},
		{"bad_bool_type.yaml", `testdata/bad_bool_type.yaml:2: sandbox.enabled: must be true or false, not "yes"`},
		{"bad_list_type.yaml", `testdata/bad_list_type.yaml:1: jobs: must be a list`},
		{"bad_jobs_glob.yaml", `testdata/bad_jobs_glob.yaml:1: jobs[0]: invalid glob: syntax error in pattern`},
		{"bad_secret_not_string.yaml", `testdata/bad_secret_not_string.yaml:2: http.admin_token: must be a string`},
	}
	files, err := filepath.Glob("testdata/bad_*.yaml")
	require.NoError(t, err)
	require.Len(t, tests, len(files), "every testdata/bad_*.yaml has a case, and every case a file")
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tt.file))
			require.Error(t, err)
			require.Nil(t, cfg)
			var ps Problems
			require.True(t, errors.As(err, &ps), "error is Problems: %v", err)
			require.Equal(t, strings.ReplaceAll(tt.want, "{dir}", dir), err.Error())
		})
	}
}

func TestLoadReadError(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	var ps Problems
	require.False(t, errors.As(err, &ps), "a missing file is not a Problems")
}

func TestProblemsCollectsEverythingSorted(t *testing.T) {
	cleanEnv(t)
	path := writeFile(t, t.TempDir(), "config.yaml", `
log: {level: loud}
store:
  migrate: sometimes
connections:
  - name: a
    grant: client_credentials
    client_id: a
    frobnicate: 1
scheduler:
  lease_timeout: 1s
`)
	_, err := Load(path)
	var ps Problems
	require.True(t, errors.As(err, &ps))
	var lines []int
	for _, p := range ps {
		lines = append(lines, p.Line)
		require.Equal(t, DisplayPath(path), p.File)
	}
	require.Equal(t, []int{2, 4, 6, 9, 11}, lines, err.Error())
	require.Equal(t, []string{"log.level", "store.migrate", "connections[0].client_secret", "connections[0].frobnicate", "scheduler.lease_timeout"},
		keys(ps), err.Error())
}

func keys(ps Problems) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Key)
	}
	return out
}

func TestDefault(t *testing.T) {
	cleanEnv(t)
	sb := sandbox.DefaultOptions()
	sb.Listen = "127.0.0.1:0"
	want := Config{
		Store: Store{
			DSN:                "sqlite:var/nxtcron.db",
			Schema:             "nxtcron",
			Migrate:            "auto",
			EncryptionKeysFile: "var/nxtcron.keys",
		},
		HTTP: HTTP{
			Listen:    "127.0.0.1:8080",
			PublicURL: "http://127.0.0.1:8080",
		},
		Log: Log{Level: "info", Format: "auto"},
		Scheduler: Scheduler{
			HeartbeatInterval: Duration(10 * time.Second),
			LeaseTimeout:      Duration(60 * time.Second),
			ShutdownGrace:     Duration(90 * time.Second),
			Retention:         Duration(90 * 24 * time.Hour),
		},
		Sandbox: Sandbox{Enabled: true, Options: sb},
		Connections: []Connection{
			{
				Name:         "service",
				Grant:        GrantClientCredentials,
				Authority:    AuthoritySandbox,
				ClientID:     "isv_sandbox_service",
				ClientSecret: "sandbox-service-secret",
				Scopes:       []string{"business-graphql-service-api:access-group-based"},
				GraphQLURL:   GraphQLSandbox,
				Limits:       Limits{RequestsPerMinute: 588, ConcurrencyPerCompany: 8},
			},
			{
				Name:                 "nightly-user",
				Grant:                GrantRefreshToken,
				Authority:            AuthoritySandbox,
				ClientID:             "sandbox_web",
				ClientSecret:         "sandbox-web-secret",
				Scopes:               []string{"openid", "profile", "email", "business-graphql-api:access-group-based", "offline_access"},
				RedirectPath:         "/signin-oidc",
				Keepalive:            Duration(24 * time.Hour),
				RefreshTokenLifetime: DefaultRefreshTokenLifetime,
				GraphQLURL:           GraphQLSandbox,
				Limits:               Limits{RequestsPerMinute: 588, ConcurrencyPerCompany: 8},
			},
		},
		Jobs:     []string{"jobs.d/*.yaml"},
		Defaults: Defaults{Timezone: "UTC", Catchup: Duration(6 * time.Hour), Timeout: Duration(time.Hour)},
	}
	require.Equal(t, want, Default())
}

func TestDefaultReadsEnvironment(t *testing.T) {
	cleanEnv(t)
	t.Setenv("NXTCRON_ADMIN_TOKEN", "from-env-admin")
	t.Setenv("BNXT_CLIENT_SECRET", "from-env-service")
	t.Setenv("BNXT_WEB_SECRET", "from-env-web")
	d := Default()
	require.Equal(t, "from-env-admin", d.HTTP.AdminToken.Reveal())
	require.Equal(t, "from-env-service", d.Connections[0].ClientSecret.Reveal())
	require.Equal(t, "from-env-web", d.Connections[1].ClientSecret.Reveal())
}

func TestLoadEmptyIsDefaultsResolved(t *testing.T) {
	cleanEnv(t)
	cfg, err := Load("testdata/empty.yaml")
	require.NoError(t, err)
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)

	want := Default()
	want.Path = filepath.Join(dir, "empty.yaml")
	want.Store.DSN = Secret("sqlite:" + filepath.Join(dir, "var/nxtcron.db"))
	want.Store.EncryptionKeysFile = filepath.Join(dir, "var/nxtcron.keys")
	want.Jobs = []string{filepath.Join(dir, "jobs.d/*.yaml")}
	require.Equal(t, want, *cfg)
}

func TestLoadFull(t *testing.T) {
	cleanEnv(t)
	t.Setenv("NXTCRON_TEST_DB_PASSWORD", "pg-pass")
	t.Setenv("NXTCRON_TEST_SECRET", "erp-secret")
	t.Setenv("NXTCRON_TEST_OLD_KEY", "HyAdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=")
	cfg, err := Load("testdata/valid_full.yaml")
	require.NoError(t, err)
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)

	want := Config{
		Path: filepath.Join(dir, "valid_full.yaml"),
		Store: Store{
			DSN:     "postgres://nxtcron:pg-pass@db.internal:5432/nxtcron?sslmode=require",
			Schema:  "cron_state",
			Migrate: "off",
			EncryptionKeys: []Secret{
				"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
				"HyAdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=",
			},
		},
		HTTP: HTTP{
			Listen:      "0.0.0.0:8443",
			PublicURL:   "https://nxtcron.example.com",
			AdminToken:  "s3cr3t-from-file",
			TLSCertFile: filepath.Join(dir, "tls/cert.pem"),
			TLSKeyFile:  filepath.Join(dir, "tls/key.pem"),
		},
		Log: Log{Level: "debug", Format: "json"},
		Scheduler: Scheduler{
			HeartbeatInterval: Duration(250 * time.Millisecond),
			LeaseTimeout:      Duration(3 * time.Second),
			ShutdownGrace:     Duration(2 * time.Minute),
			Retention:         Duration(36 * time.Hour),
		},
		Sandbox: Sandbox{Enabled: false, Options: sandbox.Options{
			Listen:             "127.0.0.1:8701",
			Issuer:             "https://connect.example.test",
			Companies:          3,
			Rows:               1000,
			ServerTimezone:     "Europe/Stockholm",
			AccessTokenTTL:     30 * time.Minute,
			RefreshTokenUsage:  "reuse",
			RefreshGrace:       10 * time.Second,
			RefreshSlidingTTL:  30 * 24 * time.Hour,
			RefreshAbsoluteTTL: 365 * 24 * time.Hour,
			ReuseDetection:     false,
			RateLimit:          0,
			ConcurrencyLimit:   4,
			Latency:            25 * time.Millisecond,
			Compression:        "always-br",
			Admin:              true,
		}},
		Connections: []Connection{
			{
				Name:         "erp",
				Grant:        GrantClientCredentials,
				Authority:    "https://connect.visma.com",
				ClientID:     "isv_acme_nightly",
				ClientSecret: "erp-secret",
				Scopes:       []string{"business-graphql-service-api:access-group-based-readonly"},
				TenantID:     "4f1c",
				GraphQLURL:   "https://business.visma.net/api/graphql-service",
				Limits:       Limits{RequestsPerMinute: 300, ConcurrencyPerCompany: 2},
				Line:         40,
			},
			{
				Name:                 "finance-user",
				Grant:                GrantRefreshToken,
				Authority:            "http://127.0.0.1:8700",
				ClientID:             "acme_web",
				ClientSecret:         "s3cr3t-from-file",
				Scopes:               []string{"openid", "email", "business-graphql-api:access-group-based", "offline_access"},
				RedirectPath:         "/callback",
				ExpectedEmail:        "jobs@example.com",
				RefreshTokenLifetime: DefaultRefreshTokenLifetime,
				Keepalive:            Duration(12 * time.Hour),
				GraphQLURL:           "http://127.0.0.1:8700/api/graphql",
				Limits:               Limits{RequestsPerMinute: 100, ConcurrencyPerCompany: 1},
				Line:                 49,
			},
		},
		Jobs:     []string{filepath.Join(dir, "jobs/*.yaml"), "/etc/nxtcron/jobs.d/*.yaml"},
		Defaults: Defaults{Timezone: "Europe/Oslo", Catchup: Duration(2 * time.Hour), Timeout: Duration(45 * time.Minute)},
	}
	require.Equal(t, want, *cfg)
}

func TestConnectionDefaults(t *testing.T) {
	cleanEnv(t)
	path := writeFile(t, t.TempDir(), "config.yaml", `
connections:
  - name: svc
    grant: client_credentials
    client_id: isv_x
    client_secret: s
  - name: user
    grant: refresh_token
    client_id: web_x
    client_secret: s
  - name: local
    grant: client_credentials
    authority: sandbox
    client_id: isv_sandbox_service
    client_secret: s
`)
	cfg, err := Load(path)
	require.NoError(t, err)
	svc, user, local := cfg.Connections[0], cfg.Connections[1], cfg.Connections[2]

	require.Equal(t, "https://connect.visma.com", svc.Authority)
	require.Equal(t, "https://business.visma.net/api/graphql-service", svc.GraphQLURL)
	require.Equal(t, []string{"business-graphql-service-api:access-group-based"}, svc.Scopes)
	require.Equal(t, Limits{RequestsPerMinute: 588, ConcurrencyPerCompany: 8}, svc.Limits)
	require.Empty(t, svc.RedirectPath)
	require.Zero(t, svc.Keepalive)

	require.Equal(t, "https://connect.visma.com", user.Authority)
	require.Equal(t, "https://business.visma.net/api/graphql", user.GraphQLURL)
	require.Equal(t, []string{"openid", "profile", "email", "business-graphql-api:access-group-based", "offline_access"}, user.Scopes)
	require.Equal(t, "/signin-oidc", user.RedirectPath)
	require.Equal(t, Duration(24*time.Hour), user.Keepalive)

	require.Equal(t, GraphQLSandbox, local.GraphQLURL, "a sandbox authority defaults to the sandbox GraphQL endpoint")
	require.Equal(t, []int{3, 7, 11}, []int{svc.Line, user.Line, local.Line})
}

func TestPublicURLFollowsListen(t *testing.T) {
	cleanEnv(t)
	tests := []struct {
		yaml string
		want string
	}{
		{"http: {listen: 127.0.0.1:9090}", "http://127.0.0.1:9090"},
		{"http: {listen: '[::1]:9090'}", "http://[::1]:9090"},
		{"http: {listen: ':9090', admin_token: t}", "http://127.0.0.1:9090"},
		{"http: {listen: 127.0.0.1:9090, public_url: 'https://cron.example.com/'}", "https://cron.example.com"},
		{"http: {listen: 127.0.0.1:9443, tls_cert_file: c.pem, tls_key_file: k.pem}", "https://127.0.0.1:9443"},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "c.pem", "x")
			writeFile(t, dir, "k.pem", "x")
			cfg, err := Load(writeFile(t, dir, "config.yaml", tt.yaml))
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.HTTP.PublicURL)
		})
	}
}

func TestRelativePathsResolveAgainstConfigDir(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	writeFile(t, dir, "etc/tls/c.pem", "x")
	writeFile(t, dir, "etc/tls/k.pem", "x")
	writeFile(t, dir, "etc/secrets/admin", "admin-token\n")
	writeFile(t, dir, "etc/config.yaml", `
store:
  dsn: sqlite:state/nxtcron.db?_pragma=busy_timeout(5000)
  encryption_keys_file: keys/nxtcron.keys
http:
  admin_token_file: secrets/admin
  tls_cert_file: tls/c.pem
  tls_key_file: tls/k.pem
jobs: [jobs.d/*.yaml, /abs/jobs/*.yaml]
`)
	// Load from another working directory, by a relative path.
	t.Chdir(dir)
	cfg, err := Load("etc/config.yaml")
	require.NoError(t, err)
	etc := filepath.Join(dir, "etc")
	require.Equal(t, filepath.Join(etc, "config.yaml"), cfg.Path)
	require.Equal(t, "sqlite:"+filepath.Join(etc, "state/nxtcron.db")+"?_pragma=busy_timeout(5000)", cfg.Store.DSN.Reveal())
	require.Equal(t, filepath.Join(etc, "keys/nxtcron.keys"), cfg.Store.EncryptionKeysFile)
	require.Equal(t, filepath.Join(etc, "tls/c.pem"), cfg.HTTP.TLSCertFile)
	require.Equal(t, filepath.Join(etc, "tls/k.pem"), cfg.HTTP.TLSKeyFile)
	require.Equal(t, "admin-token", cfg.HTTP.AdminToken.Reveal())
	require.Equal(t, []string{filepath.Join(etc, "jobs.d/*.yaml"), "/abs/jobs/*.yaml"}, cfg.Jobs)
}

func TestResolveDSN(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"sqlite:var/x.db", "sqlite:/etc/nx/var/x.db"},
		{"sqlite:/data/x.db", "sqlite:/data/x.db"},
		{"sqlite:x.db?mode=rwc", "sqlite:/etc/nx/x.db?mode=rwc"},
		{"sqlite::memory:", "sqlite::memory:"},
		{"sqlite:file:x.db?cache=shared", "sqlite:file:x.db?cache=shared"},
		{"postgres://u:p@h/db", "postgres://u:p@h/db"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, resolveDSN("/etc/nx", tt.dsn), tt.dsn)
	}
}

func TestEnvStoreDSNWins(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "config.yaml", "store: {dsn: 'sqlite:from-file.db'}\n")

	cfg, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, "sqlite:"+filepath.Join(dir, "from-file.db"), cfg.Store.DSN.Reveal())

	t.Setenv(EnvStoreDSN, "postgres://u:p@db/nxtcron")
	cfg, err = Load(path)
	require.NoError(t, err)
	require.Equal(t, "postgres://u:p@db/nxtcron", cfg.Store.DSN.Reveal())

	t.Setenv(EnvStoreDSN, "mysql://nope")
	_, err = Load(path)
	require.EqualError(t, err, DisplayPath(path)+":1: store.dsn: must be sqlite:PATH or postgres://... (from NXTCRON_STORE_DSN)")
}

func TestSecretFileTwin(t *testing.T) {
	cleanEnv(t)
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"one trailing newline trimmed", "hunter2\n", "hunter2"},
		{"only one", "hunter2\n\n", "hunter2\n"},
		{"crlf", "hunter2\r\n", "hunter2"},
		{"no newline", "hunter2", "hunter2"},
		{"inner whitespace kept", " hunter 2 \n", " hunter 2 "},
		{"never expanded", "${HOME}$$\n", "${HOME}$$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "conf/creds/erp", tt.content)
			path := writeFile(t, dir, "conf/config.yaml", `
connections:
  - name: erp
    grant: client_credentials
    client_id: isv_erp
    client_secret_file: creds/erp
`)
			cfg, err := Load(path)
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.Connections[0].ClientSecret.Reveal())
		})
	}
}

func TestSecretFilePathIsExpanded(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	writeFile(t, dir, "creds/admin", "tok\n")
	t.Setenv("NXTCRON_TEST_CREDS", filepath.Join(dir, "creds"))
	cfg, err := Load(writeFile(t, dir, "config.yaml", "http: {admin_token_file: '${NXTCRON_TEST_CREDS}/admin'}\n"))
	require.NoError(t, err)
	require.Equal(t, "tok", cfg.HTTP.AdminToken.Reveal())
}

func TestExpansionInValues(t *testing.T) {
	cleanEnv(t)
	t.Setenv("NXTCRON_TEST_LEVEL", "debug")
	t.Setenv("NXTCRON_TEST_RPM", "120")
	t.Setenv("NXTCRON_TEST_EMPTY", "")
	unsetEnv(t, "NXTCRON_TEST_UNSET")
	path := writeFile(t, t.TempDir(), "config.yaml", `
# ${NXTCRON_TEST_UNSET} in a comment is not expanded
log:
  level: ${NXTCRON_TEST_LEVEL}
  format: ${NXTCRON_TEST_UNSET:-json}
store:
  schema: ${NXTCRON_TEST_EMPTY:-nx}_state
connections:
  - name: erp
    grant: client_credentials
    client_id: id$$x
    client_secret: "pa$$word-${NXTCRON_TEST_UNSET:-}$x"
    tenant_id: $NXTCRON_TEST_LEVEL
    limits:
      requests_per_minute: ${NXTCRON_TEST_RPM}
`)
	cfg, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, "debug", cfg.Log.Level)
	require.Equal(t, "json", cfg.Log.Format, "default when unset")
	require.Equal(t, "nx_state", cfg.Store.Schema, "default when empty")
	c := cfg.Connections[0]
	require.Equal(t, "id$x", c.ClientID, "$$ is a literal $")
	require.Equal(t, "pa$word-$x", c.ClientSecret.Reveal())
	require.Equal(t, "$NXTCRON_TEST_LEVEL", c.TenantID, "only ${...} expands")
	require.Equal(t, 120, c.Limits.RequestsPerMinute, "a plain ${VAR} resolves as if written in place")
}

func TestExpandQuotedNumberStaysString(t *testing.T) {
	cleanEnv(t)
	t.Setenv("NXTCRON_TEST_RPM", "120")
	path := writeFile(t, t.TempDir(), "config.yaml", `
connections:
  - name: erp
    grant: client_credentials
    client_id: x
    client_secret: s
    limits: {requests_per_minute: "${NXTCRON_TEST_RPM}"}
`)
	_, err := Load(path)
	require.EqualError(t, err, DisplayPath(path)+`:7: connections[0].limits.requests_per_minute: must be an integer, not "120"`)
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "B_2": "b"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want, errContains string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x${A}y${B_2}z", want: "xalphaybz"},
		{in: "${A:-def}", want: "alpha"},
		{in: "${EMPTY:-def}", want: "def"},
		{in: "${MISSING:-def}", want: "def"},
		{in: "${MISSING:-}", want: ""},
		{in: "${MISSING:-a:-b}", want: "a:-b"},
		{in: "${EMPTY}", want: ""},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "$$$$${A}", want: "$$alpha"},
		{in: "cost: 5$", want: "cost: 5$"},
		{in: "$A", want: "$A"},
		{in: "${MISSING}", errContains: "environment variable MISSING is not set"},
		{in: "${A", errContains: "unterminated ${"},
		{in: "${}", errContains: `invalid variable name ""`},
		{in: "${1A}", errContains: `invalid variable name "1A"`},
		{in: "${A B}", errContains: `invalid variable name "A B"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Expand(tt.in, lookup)
			if tt.errContains != "" {
				require.ErrorContains(t, err, tt.errContains)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	cleanEnv(t)
	path := writeFile(t, t.TempDir(), "config.yaml", `
x-common: &common
  grant: client_credentials
  authority: https://connect.visma.com
  client_secret: shared
connections:
  - <<: *common
    name: a
    client_id: isv_a
  - <<: *common
    name: b
    client_id: isv_b
    client_secret: own
`)
	_, err := Load(path)
	// Unknown top-level keys are errors, extension keys included.
	require.EqualError(t, err, DisplayPath(path)+`:2: x-common: unknown key`)

	path = writeFile(t, t.TempDir(), "config.yaml", `
connections:
  - &common
    name: a
    grant: client_credentials
    authority: https://connect.visma.com
    client_id: isv_a
    client_secret: shared
  - <<: *common
    name: b
    client_secret: own
`)
	cfg, err := Load(path)
	require.NoError(t, err)
	a, b := cfg.Connections[0], cfg.Connections[1]
	require.Equal(t, "a", a.Name)
	require.Equal(t, "b", b.Name)
	require.Equal(t, "isv_a", b.ClientID, "merged")
	require.Equal(t, "own", b.ClientSecret.Reveal(), "explicit keys win over merged ones")
	require.Equal(t, GrantClientCredentials, b.Grant)
}

func TestAliasBombIsAProblemNotAHang(t *testing.T) {
	cleanEnv(t)
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("a" + itoa(i) + ": &a" + itoa(i) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + itoa(i-1))
		}
		b.WriteString("]\n")
	}
	b.WriteString("scheduler: {retention: *a9}\n")
	start := time.Now()
	_, err := Load(writeFile(t, t.TempDir(), "config.yaml", b.String()))
	require.Error(t, err)
	require.Contains(t, err.Error(), "document too large or too deeply nested")
	require.Less(t, time.Since(start), 10*time.Second)
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestNullKeepsDefault(t *testing.T) {
	cleanEnv(t)
	cfg, err := Load(writeFile(t, t.TempDir(), "config.yaml", "http:\nlog:\n  level:\nscheduler: ~\n"))
	require.NoError(t, err)
	d := Default()
	require.Equal(t, d.HTTP.Listen, cfg.HTTP.Listen)
	require.Equal(t, "info", cfg.Log.Level)
	require.Equal(t, d.Scheduler, cfg.Scheduler)
}

func TestDidYouMean(t *testing.T) {
	tests := []struct {
		got        string
		candidates []string
		want       string
	}{
		{"servcie", []string{"service", "nightly-user"}, ` (did you mean "service"?)`},
		{"Client_ID", []string{"client_id", "client_secret"}, ` (did you mean "client_id"?)`},
		{"shedulr", []string{"store", "scheduler", "sandbox"}, ` (did you mean "scheduler"?)`},
		{"ab", []string{"xy", "cd"}, ""},
		{"postgres", []string{"file", "stdout"}, ""},
		{"fiel", []string{"file", "stdout"}, ` (did you mean "file"?)`},
		{"retries", []string{"retry", "timeout"}, ` (did you mean "retry"?)`},
		{"ret", []string{"retry"}, ""},
		{"", []string{"a"}, ""},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, DidYouMean(tt.got, tt.candidates), tt.got)
	}
}

func TestProblemFormat(t *testing.T) {
	ps := Problems{
		{File: "b.yaml", Line: 1, Key: "x", Message: "m1"},
		{File: "a.yaml", Line: 9, Key: "y", Message: "m2"},
		{File: "a.yaml", Line: 2, Message: "m3"},
		{File: "a.yaml", Line: 9, Key: "z", Message: "m4"},
	}
	require.EqualError(t, ps.Err(), "a.yaml:2: m3\na.yaml:9: y: m2\na.yaml:9: z: m4\nb.yaml:1: x: m1")
	require.NoError(t, Problems(nil).Err())
}

func TestDisplayPath(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	require.Equal(t, filepath.Join("testdata", "x.yaml"), DisplayPath(filepath.Join(wd, "testdata", "x.yaml")))
	require.Equal(t, "/elsewhere/x.yaml", DisplayPath("/elsewhere/x.yaml"))
}

// writeFile writes content to dir/name (making directories) and returns the
// path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestTrailingDocumentSeparatorIsAllowed(t *testing.T) {
	cleanEnv(t)
	cfg, err := Load(writeFile(t, t.TempDir(), "config.yaml", "log: {level: debug}\n---\n# nothing more\n"))
	require.NoError(t, err)
	require.Equal(t, "debug", cfg.Log.Level)
}
