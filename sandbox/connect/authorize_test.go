package connect_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sandbox/connect"
)

func TestAuthorizationCodeFlow(t *testing.T) {
	p, srv := start(t, nil)
	cb := callbackServer(t)
	redirectURI := cb.URL + "/signin-oidc"
	verifier, challenge := pkce()

	r, final := login(t, authorizeURL(srv, url.Values{"redirect_uri": {redirectURI}, "code_challenge": {challenge}}),
		connect.JobUserEmail, connect.UserPassword)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "/signin-oidc", final.Path)
	require.Equal(t, "state-123", final.Query().Get("state"))
	code := final.Query().Get("code")
	require.NotEmpty(t, code)

	tok := exchangeCode(t, srv, code, redirectURI, verifier)
	require.Equal(t, http.StatusOK, tok.status, tok.raw)
	require.Equal(t, "Bearer", tok.str("token_type"))
	require.EqualValues(t, 3600, tok.body["expires_in"])
	require.Equal(t, strings.Join(connect.WebClientScopes, " "), tok.str("scope"))
	require.NotEmpty(t, tok.str("refresh_token"))

	// The ID token verifies with go-oidc against the discovery document.
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, srv.URL)
	require.NoError(t, err)
	require.Equal(t, srv.URL+connect.PathToken, provider.Endpoint().TokenURL)
	idt, err := provider.Verifier(&oidc.Config{ClientID: connect.WebClientID}).Verify(ctx, tok.str("id_token"))
	require.NoError(t, err)
	require.Equal(t, "nonce-456", idt.Nonce)
	require.NoError(t, idt.VerifyAccessToken(tok.str("access_token")))
	var claims struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	require.NoError(t, idt.Claims(&claims))
	require.Equal(t, connect.JobUserEmail, claims.Email)
	require.Equal(t, "Job User", claims.Name)

	// The access token is for /api/graphql.
	hdr, at := parseToken(t, tok.str("access_token"), &testKey().PublicKey)
	require.Equal(t, "at+JWT", hdr.ExtraHeaders["typ"])
	require.Equal(t, srv.URL+"/api/graphql", at["aud"])
	require.Equal(t, idt.Subject, at["sub"])
	require.Equal(t, connect.WebClientID, at["client_id"])
	c, err := p.VerifyAccessToken(tok.str("access_token"), srv.URL, srv.URL+connect.PathGraphQL)
	require.NoError(t, err)
	require.True(t, c.HasScope(connect.ScopeGraphQL))

	// The code is single use.
	requireOAuthError(t, exchangeCode(t, srv, code, redirectURI, verifier), 400, "invalid_grant")

	// The refresh token works and its answer carries a new ID token.
	rt := refresh(t, srv, tok.str("refresh_token"))
	require.Equal(t, http.StatusOK, rt.status, rt.raw)
	require.NotEqual(t, tok.str("refresh_token"), rt.str("refresh_token"))
	idt2, err := provider.Verifier(&oidc.Config{ClientID: connect.WebClientID}).Verify(ctx, rt.str("id_token"))
	require.NoError(t, err)
	require.Equal(t, idt.Subject, idt2.Subject)

	st := p.Stats().TokenRequests
	require.Equal(t, connect.GrantCounts{OK: 1, Error: 1}, st.AuthorizationCode)
	require.Equal(t, connect.GrantCounts{OK: 1}, st.RefreshToken)
}

func TestAuthorizeWithoutOfflineAccess(t *testing.T) {
	_, srv := start(t, nil)
	cb := callbackServer(t)
	verifier, challenge := pkce()
	code := loginCode(t, srv, cb, challenge, url.Values{"scope": {"openid " + connect.ScopeGraphQL}, "nonce": {""}})
	tok := exchangeCode(t, srv, code, cb.URL+"/signin-oidc", verifier)
	require.Equal(t, http.StatusOK, tok.status, tok.raw)
	require.NotContains(t, tok.body, "refresh_token")
	_, idClaims := parseToken(t, tok.str("id_token"), &testKey().PublicKey)
	require.NotContains(t, idClaims, "nonce")
	require.NotContains(t, idClaims, "email", "no email scope, no email claim")
}

func TestAuthorizeAppLocalAndOtherUser(t *testing.T) {
	_, srv := start(t, nil)
	_, challenge := pkce()
	authURL := authorizeURL(srv, url.Values{"redirect_uri": {"https://app.local:12345/signin-oidc"}, "code_challenge": {challenge}})
	page := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, authURL))
	require.Equal(t, http.StatusOK, page.status)
	pageURL, err := url.Parse(authURL)
	require.NoError(t, err)
	f := parseLoginForm(t, page.raw, pageURL)
	f.fields.Set("email", connect.OtherUserEmail)
	f.fields.Set("password", connect.UserPassword)
	resp, err := noRedirect.PostForm(f.action, f.fields)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "https", loc.Scheme)
	require.Equal(t, "app.local:12345", loc.Host)
	require.Equal(t, "/signin-oidc", loc.Path)
	require.NotEmpty(t, loc.Query().Get("code"))
	require.Equal(t, "state-123", loc.Query().Get("state"))
}

func TestLoginWrongPasswordAndCancel(t *testing.T) {
	_, srv := start(t, nil)
	cb := callbackServer(t)
	_, challenge := pkce()
	authURL := authorizeURL(srv, url.Values{"redirect_uri": {cb.URL + "/cb"}, "code_challenge": {challenge}})

	r, final := login(t, authURL, connect.JobUserEmail, "wrong")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, connect.PathAuthorize, final.Path, "no redirect on bad credentials")
	require.Contains(t, r.raw, "wrong password")
	f := parseLoginForm(t, r.raw, final)
	require.Equal(t, challenge, f.fields.Get("code_challenge"), "the request survives the retry")

	r, _ = login(t, authURL, "nobody@example.com", connect.UserPassword)
	require.Contains(t, r.raw, "wrong password")

	f.fields.Set("action", "cancel")
	resp, err := noRedirect.PostForm(f.action, f.fields)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "access_denied", loc.Query().Get("error"))
	require.Equal(t, "state-123", loc.Query().Get("state"))
}

func TestAuthorizeErrors(t *testing.T) {
	_, srv := start(t, nil)
	cb := callbackServer(t)
	_, challenge := pkce()
	good := url.Values{"redirect_uri": {cb.URL + "/cb"}, "code_challenge": {challenge}}
	with := func(changes url.Values) url.Values {
		q := url.Values{}
		for k, v := range good {
			q[k] = v
		}
		for k, v := range changes {
			q[k] = v
		}
		return q
	}

	// Without a valid client and redirect URI there is nobody to redirect to:
	// an error page.
	for _, tc := range []struct {
		name    string
		params  url.Values
		message string
	}{
		{"unknown client", with(url.Values{"client_id": {"nobody"}}), "unknown client_id"},
		{"missing redirect_uri", with(url.Values{"redirect_uri": {""}}), "redirect_uri is required"},
		{"localhost", with(url.Values{"redirect_uri": {"http://localhost:8080/signin-oidc"}}), "localhost"},
		{"https localhost", with(url.Values{"redirect_uri": {"https://localhost:5001/signin-oidc"}}), "localhost"},
		{"unregistered host", with(url.Values{"redirect_uri": {"https://evil.example.com/cb"}}), "not registered"},
		{"http app.local", with(url.Values{"redirect_uri": {"http://app.local:1234/cb"}}), "not registered"},
		{"fragment", with(url.Values{"redirect_uri": {cb.URL + "/cb#x"}}), "fragment"},
		{"service client", with(url.Values{"client_id": {connect.ServiceClientID}}), "no redirect URIs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, noRedirect, mustRequest(t, http.MethodGet, authorizeURL(srv, tc.params)))
			require.Equal(t, http.StatusBadRequest, r.status, r.raw)
			require.Empty(t, r.header.Get("Location"))
			require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/html"))
			require.Contains(t, r.raw, tc.message)
		})
	}

	// With a valid client and redirect URI the error goes back to the client.
	for _, tc := range []struct {
		name   string
		params url.Values
		code   string
	}{
		{"missing code_challenge", with(url.Values{"code_challenge": {""}}), "invalid_request"},
		{"plain PKCE", with(url.Values{"code_challenge_method": {"plain"}}), "invalid_request"},
		{"missing code_challenge_method", with(url.Values{"code_challenge_method": {""}}), "invalid_request"},
		{"malformed code_challenge", with(url.Values{"code_challenge": {"short"}}), "invalid_request"},
		{"no openid", with(url.Values{"scope": {connect.ScopeGraphQL + " offline_access"}}), "invalid_scope"},
		{"unknown scope", with(url.Values{"scope": {"openid admin"}}), "invalid_scope"},
		{"service scope", with(url.Values{"scope": {"openid " + connect.ScopeGraphQLService}}), "invalid_scope"},
		{"implicit flow", with(url.Values{"response_type": {"token"}}), "unsupported_response_type"},
		{"missing response_type", with(url.Values{"response_type": {""}}), "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, noRedirect, mustRequest(t, http.MethodGet, authorizeURL(srv, tc.params)))
			require.Equal(t, http.StatusFound, r.status, r.raw)
			loc, err := url.Parse(r.header.Get("Location"))
			require.NoError(t, err)
			require.Equal(t, cb.URL+"/cb", loc.Scheme+"://"+loc.Host+loc.Path)
			require.Equal(t, tc.code, loc.Query().Get("error"))
			require.NotEmpty(t, loc.Query().Get("error_description"))
			require.Equal(t, "state-123", loc.Query().Get("state"))
			require.Empty(t, loc.Query().Get("code"))
		})
	}
}

func TestCodeExchangeErrors(t *testing.T) {
	clock := newFakeClock()
	_, srv := start(t, func(o *connect.Options) { o.Now = clock.Now })
	cb := callbackServer(t)
	redirectURI := cb.URL + "/signin-oidc"

	t.Run("wrong verifier burns the code", func(t *testing.T) {
		verifier, challenge := pkce()
		other, _ := pkce()
		code := loginCode(t, srv, cb, challenge, nil)
		r := exchangeCode(t, srv, code, redirectURI, other)
		requireOAuthError(t, r, 400, "invalid_grant")
		require.Contains(t, r.str("error_description"), "code_verifier")
		requireOAuthError(t, exchangeCode(t, srv, code, redirectURI, verifier), 400, "invalid_grant")
	})
	t.Run("redirect_uri mismatch", func(t *testing.T) {
		verifier, challenge := pkce()
		code := loginCode(t, srv, cb, challenge, nil)
		r := exchangeCode(t, srv, code, cb.URL+"/elsewhere", verifier)
		requireOAuthError(t, r, 400, "invalid_grant")
		require.Contains(t, r.str("error_description"), "redirect_uri")
	})
	t.Run("expired code", func(t *testing.T) {
		verifier, challenge := pkce()
		code := loginCode(t, srv, cb, challenge, nil)
		clock.Advance(connect.CodeTTL)
		r := exchangeCode(t, srv, code, redirectURI, verifier)
		requireOAuthError(t, r, 400, "invalid_grant")
		require.Contains(t, r.str("error_description"), "expired")
	})
	t.Run("code within its lifetime", func(t *testing.T) {
		verifier, challenge := pkce()
		code := loginCode(t, srv, cb, challenge, nil)
		clock.Advance(connect.CodeTTL - time.Second)
		r := exchangeCode(t, srv, code, redirectURI, verifier)
		require.Equal(t, http.StatusOK, r.status, r.raw)
	})
}
