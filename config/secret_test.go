package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"

	"github.com/nxtcron/nxtcron/config/configtest"
)

// Every secret of a loaded configuration, and every way it could be shown.
func TestSecretsNeverPrinted(t *testing.T) {
	cleanEnv(t)
	const (
		dsnPassword = "pg-Pa55word-leak"
		clientSecr  = "client-Secret-leak"
		fileSecret  = "file-Secret-leak"
		adminToken  = "admin-Token-leak"
		key         = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	)
	dir := t.TempDir()
	writeFile(t, dir, "web.secret", fileSecret+"\n")
	t.Setenv("NXTCRON_TEST_SECRET", clientSecr)
	path := writeFile(t, dir, "config.yaml", `
store:
  dsn: postgres://nx:`+dsnPassword+`@db/nx
  encryption_keys: [`+key+`]
http:
  listen: 0.0.0.0:8080
  admin_token: `+adminToken+`
connections:
  - name: erp
    grant: client_credentials
    client_id: isv_erp
    client_secret: ${NXTCRON_TEST_SECRET}
  - name: web
    grant: refresh_token
    client_id: web
    client_secret_file: web.secret
`)
	cfg, err := Load(path)
	require.NoError(t, err)
	secrets := []string{dsnPassword, clientSecr, fileSecret, adminToken, key}
	require.Equal(t, clientSecr, cfg.Connections[0].ClientSecret.Reveal(), "the secret is there to leak")

	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		fmt.Fprintf(&out, verb+"\n", *cfg)
		fmt.Fprintf(&out, verb+"\n", cfg.Connections[0].ClientSecret)
		fmt.Fprintf(&out, verb+"\n", cfg.Store.EncryptionKeys)
	}
	fmt.Fprintln(&out, cfg.HTTP.AdminToken)
	fmt.Fprint(&out, cfg.Store)

	for _, v := range []any{cfg.Store, cfg.HTTP, cfg.Connections} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		out.Write(b)
	}
	y, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	out.Write(y)

	var zbuf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&zbuf), zap.DebugLevel))
	log.Info("loaded",
		zap.Any("store", cfg.Store),
		zap.Any("connections", cfg.Connections),
		zap.Any("admin_token", cfg.HTTP.AdminToken),
		zap.Stringer("secret", cfg.Connections[1].ClientSecret),
		zap.Reflect("http", cfg.HTTP))
	require.NoError(t, log.Sync())
	require.Contains(t, zbuf.String(), "<secret>")
	out.Write(zbuf.Bytes())

	var sbuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&sbuf, nil)).Info("loaded", "token", cfg.HTTP.AdminToken, "store", cfg.Store)
	out.Write(sbuf.Bytes())

	configtest.AssertNoSecret(t, out.String(), secrets...)
}

// Problems about a secret's key never quote the secret.
func TestSecretsNotInProblems(t *testing.T) {
	cleanEnv(t)
	const dsn = "mysql://root:Sup3r-secret-pw@db/x"
	t.Setenv(EnvStoreDSN, "")
	path := writeFile(t, t.TempDir(), "config.yaml", `
store:
  dsn: `+dsn+`
  encryption_keys: [not-a-Valid-key-but-secret]
http:
  admin_token: {nested: Sup3r-secret-pw}
connections:
  - name: erp
    grant: client_credentials
    client_id: isv_erp
    client_secret: ${NOT_CLOSED-Sup3r-secret-pw
`)
	_, err := Load(path)
	require.Error(t, err)
	require.Len(t, err.(Problems), 4, err.Error())
	configtest.AssertNoSecret(t, err.Error(), "Sup3r-secret-pw", "not-a-Valid-key-but-secret")
}

func TestSecretFormatting(t *testing.T) {
	s := Secret("hunter2")
	require.Equal(t, "<secret>", s.String())
	require.Equal(t, "hunter2", s.Reveal())
	require.Equal(t, `config.Secret("<secret>")`, fmt.Sprintf("%#v", s))
	require.Equal(t, "", Secret("").String(), "an empty secret shows as empty, so a missing one is visible")
	require.True(t, Secret("").IsZero())
}
