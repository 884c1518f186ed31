package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/sandbox/connect"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/tokens"
	"github.com/nxtcron/nxtcron/web"
)

// TestAPITokens: /api/tokens reports every connection's token state, needs
// the admin token, and never shows a token.
func TestAPITokens(t *testing.T) {
	ctx := context.Background()
	sb, err := sandbox.New(sandbox.DefaultOptions())
	require.NoError(t, err)
	sbSrv := httptest.NewServer(sb)
	t.Cleanup(sbSrv.Close)

	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "nxtcron.db"), sqlite.Options{Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	keys, err := tokens.OpenKeys(ctx, st, tokens.KeyOptions{Store: config.Store{EncryptionKeysFile: filepath.Join(dir, "keys")}, Generate: true})
	require.NoError(t, err)

	user := config.Connection{
		Name: "nightly-user", Grant: config.GrantRefreshToken, Authority: sbSrv.URL,
		ClientID: connect.WebClientID, ClientSecret: connect.WebClientSecret, Scopes: connect.WebClientScopes,
		RedirectPath: "/signin-oidc", Keepalive: config.Duration(24 * time.Hour), RefreshTokenLifetime: config.Duration(30 * 24 * time.Hour),
	}
	service := config.Connection{
		Name: "service", Grant: config.GrantClientCredentials, Authority: sbSrv.URL,
		ClientID: connect.ServiceClientID, ClientSecret: connect.ServiceClientSecret, Scopes: []string{connect.ScopeGraphQLService},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	m, err := tokens.NewManager(tokens.Options{Connections: []config.Connection{user, service}, Store: st, Keys: keys, HTTPClient: client})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close(ctx)) })

	refresh, err := sb.Provider().NewRefreshChain(connect.WebClientID, connect.JobUserEmail, "")
	require.NoError(t, err)
	_, err = tokens.Import(ctx, st, keys, user, refresh, time.Now())
	require.NoError(t, err)
	var secrets []string
	for _, name := range []string{"nightly-user", "service"} {
		src, err := m.Source(name)
		require.NoError(t, err)
		tok, err := src.Token(ctx)
		require.NoError(t, err)
		secrets = append(secrets, tok.Value.Reveal())
	}
	secrets = append(secrets, refresh, connect.WebClientSecret, connect.ServiceClientSecret)

	srv := web.New(web.Options{Store: st, AdminToken: "admin-secret-1234"})
	srv.MountTokens(m)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)

	resp, err := client.Get(ts.URL + "/api/tokens")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	req, err := http.NewRequest(http.MethodGet, ts.URL+"/api/tokens", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer admin-secret-1234")
	resp, err = client.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	for _, s := range secrets {
		require.NotContains(t, string(body), s)
	}
	var got struct {
		Tokens []tokens.Status `json:"tokens"`
	}
	require.NoError(t, json.Unmarshal(body, &got))
	require.Len(t, got.Tokens, 2)
	u := got.Tokens[0]
	require.Equal(t, "nightly-user", u.Connection)
	require.Equal(t, tokens.StatusOK, u.Status)
	require.False(t, u.NeedsReenroll)
	require.Equal(t, int64(2), u.Generation, "imported, then rotated once")
	require.NotNil(t, u.RefreshExpiresAt)
	require.NotNil(t, u.AccessExpiresAt)
	require.Equal(t, keys.SealingKeyID(), u.KeyID)
	require.Equal(t, "service", got.Tokens[1].Connection)
	require.Equal(t, tokens.StatusCached, got.Tokens[1].Status)
	for _, field := range []string{`"needs_reenroll"`, `"generation"`, `"refresh_expires_at"`, `"status"`} {
		require.True(t, strings.Contains(string(body), field), field)
	}
}
