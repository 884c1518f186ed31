package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/tokens"
)

const tokensConfig = `store:
  dsn: sqlite:var/nxtcron.db
  encryption_keys_file: var/nxtcron.keys
log: {level: error, format: json}
sandbox: {enabled: false}
http: {public_url: "https://nxtcron.example.com/"}
connections:
  - name: nightly-user
    grant: refresh_token
    authority: https://connect.example.test
    client_id: web_client
    client_secret: web-secret-value
    expected_email: job.user@example.com
  - name: finance-user
    grant: refresh_token
    authority: https://connect.example.test
    client_id: web_client
    client_secret: web-secret-value
jobs: []
`

// cli runs the command tree in-process with stdin as standard input.
func cli(t *testing.T, dir, stdin string, args ...string) (int, string, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	require.NoError(t, err)
	_, err = f.WriteString(stdin)
	require.NoError(t, err)
	_, err = f.Seek(0, 0)
	require.NoError(t, err)
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old; f.Close() }()
	var out, errOut bytes.Buffer
	code := run(append([]string{"--config", filepath.Join(dir, "config.yaml")}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(b)
}

func TestTokensCommands(t *testing.T) {
	t.Setenv("NXTCRON_STORE_DSN", "")
	t.Setenv("NXTCRON_CONFIG", "")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(tokensConfig), 0o600))

	code, out, errOut := cli(t, dir, "", "tokens", "list")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "nightly-user  refresh_token  not_enrolled")
	require.Contains(t, out, "nightly-user: nxtcron tokens enroll nightly-user")
	fi, err := os.Stat(filepath.Join(dir, "var", "nxtcron.keys"))
	require.True(t, os.IsNotExist(err), "list needs no key: %v", fi)

	// enroll prints a link under public_url, valid once.
	code, out, errOut = cli(t, dir, "", "tokens", "enroll", "nightly-user")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "https://nxtcron.example.com/enroll/nightly-user?t=")
	require.Contains(t, out, "as job.user@example.com")
	require.Contains(t, out, "redirect URI in the Visma Developer Portal: https://nxtcron.example.com/signin-oidc")
	fi, err = os.Stat(filepath.Join(dir, "var", "nxtcron.keys"))
	require.NoError(t, err, "a key file is generated for SQLite")
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	const refresh = "imported-refresh-token-5f2c9d"
	code, out, errOut = cli(t, dir, refresh+"\n", "tokens", "import", "nightly-user")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "connection nightly-user: refresh token stored (generation 1")
	code, out, _ = cli(t, dir, "", "tokens", "list", "-o", "json")
	require.Equal(t, 0, code)
	var list []tokens.Status
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list, 2)
	require.Equal(t, "nightly-user", list[1].Connection)
	require.Equal(t, tokens.StatusOK, list[1].Status)
	require.NotNil(t, list[1].RefreshExpiresAt)
	require.NotContains(t, out, refresh)

	// Rotate the key: a new one first, the old one after; rekey; drop the
	// old one.
	keyFile := filepath.Join(dir, "var", "nxtcron.keys")
	oldKeys, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	fresh := newKey(t)
	require.NoError(t, os.WriteFile(keyFile, []byte(fresh+"\n"+string(oldKeys)), 0o600))
	code, out, errOut = cli(t, dir, "", "tokens", "rekey")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "re-encrypted 2 values")
	require.NoError(t, os.WriteFile(keyFile, []byte(fresh+"\n"), 0o600))
	code, _, errOut = cli(t, dir, "", "tokens", "enroll", "nightly-user")
	require.Equal(t, 0, code, errOut)

	// A wrong key is refused.
	require.NoError(t, os.WriteFile(keyFile, []byte(newKey(t)+"\n"), 0o600))
	code, _, errOut = cli(t, dir, "", "tokens", "enroll", "nightly-user")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "do not match the store's")
	require.NoError(t, os.WriteFile(keyFile, []byte(fresh+"\n"), 0o600))

	code, out, errOut = cli(t, dir, "", "tokens", "rename", "nightly-user", "finance-user")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "tokens of connection nightly-user now belong to connection finance-user")
	code, _, errOut = cli(t, dir, "", "tokens", "rename", "nightly-user", "finance-user")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `connection "finance-user" has stored tokens already`)
	code, _, errOut = cli(t, dir, "", "tokens", "rename", "finance-user", "nighty-user")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `did you mean "nightly-user"?`)

	code, out, errOut = cli(t, dir, "", "tokens", "revoke", "--local", "finance-user")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "connection finance-user: tokens forgotten")
	code, out, _ = cli(t, dir, "", "tokens", "list")
	require.Equal(t, 0, code)
	require.Contains(t, out, "finance-user  refresh_token  not_enrolled")
	code, _, errOut = cli(t, dir, "", "tokens", "rename", "finance-user", "nightly-user")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `connection "finance-user" has no stored tokens`)

	code, _, _ = cli(t, dir, "", "tokens", "import")
	require.Equal(t, 2, code, "usage error")
	code, _, errOut = cli(t, dir, "two tokens\n", "tokens", "import", "nightly-user")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "want one refresh token")

	for _, f := range []string{"nxtcron.db", "nxtcron.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, "var", f))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		require.False(t, bytes.Contains(b, []byte(refresh)), f)
	}
	require.False(t, strings.Contains(errOut, "web-secret-value"))
}
