package connect_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sandbox/connect"
)

func TestDiscoveryAndJWKS(t *testing.T) {
	_, srv := start(t, nil)
	r := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, srv.URL+connect.PathDiscovery))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, srv.URL, r.str("issuer"))
	require.Equal(t, srv.URL+"/connect/authorize", r.str("authorization_endpoint"))
	require.Equal(t, srv.URL+"/connect/token", r.str("token_endpoint"))
	require.Equal(t, srv.URL+"/connect/userinfo", r.str("userinfo_endpoint"))
	require.Equal(t, srv.URL+"/connect/revoke", r.str("revocation_endpoint"))
	require.Equal(t, srv.URL+"/connect/endsession", r.str("end_session_endpoint"))
	require.Equal(t, srv.URL+"/.well-known/openid-configuration/jwks", r.str("jwks_uri"))
	require.Equal(t, []any{"S256"}, r.body["code_challenge_methods_supported"])
	require.Equal(t, []any{"RS256"}, r.body["id_token_signing_alg_values_supported"])
	require.ElementsMatch(t, []any{"authorization_code", "client_credentials", "refresh_token"}, r.body["grant_types_supported"])

	jwks := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, r.str("jwks_uri")))
	require.Equal(t, http.StatusOK, jwks.status)
	keys := jwks.body["keys"].([]any)
	require.Len(t, keys, 1)
	key := keys[0].(map[string]any)
	require.Equal(t, "RSA", key["kty"])
	require.Equal(t, "RS256", key["alg"])
	require.Equal(t, "sig", key["use"])
	require.NotEmpty(t, key["kid"])
	require.NotContains(t, key, "d", "the private exponent must not be published")
}

func TestIssuerOption(t *testing.T) {
	_, srv := start(t, func(o *connect.Options) { o.Issuer = "https://connect.visma.com/" })
	r := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, srv.URL+connect.PathDiscovery))
	require.Equal(t, "https://connect.visma.com", r.str("issuer"))
	require.Equal(t, srv.URL+"/connect/token", r.str("token_endpoint"), "endpoints stay reachable")
	tok := serviceToken(t, srv, nil)
	_, claims := parseToken(t, tok.str("access_token"), &testKey().PublicKey)
	require.Equal(t, "https://connect.visma.com", claims["iss"])
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(t, err)
	return req
}

func TestClientCredentials(t *testing.T) {
	p, srv := start(t, nil)
	for _, tc := range []struct {
		name  string
		basic bool
		scope string
	}{
		{"basic", true, connect.ScopeGraphQLService},
		{"form body", false, connect.ScopeGraphQLService},
		{"readonly", true, connect.ScopeGraphQLServiceReadonly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {tc.scope}}
			var r response
			if tc.basic {
				r = postForm(t, tokenURL(srv), form, connect.ServiceClientID, connect.ServiceClientSecret)
			} else {
				form.Set("client_id", connect.ServiceClientID)
				form.Set("client_secret", connect.ServiceClientSecret)
				r = postForm(t, tokenURL(srv), form)
			}
			require.Equal(t, http.StatusOK, r.status, r.raw)
			require.Equal(t, "no-store", r.header.Get("Cache-Control"))
			require.Equal(t, "Bearer", r.str("token_type"))
			require.EqualValues(t, 3600, r.body["expires_in"])
			require.Equal(t, tc.scope, r.str("scope"))
			require.NotContains(t, r.body, "refresh_token")
			require.NotContains(t, r.body, "id_token")

			hdr, claims := parseToken(t, r.str("access_token"), &testKey().PublicKey)
			require.Equal(t, "at+JWT", hdr.ExtraHeaders["typ"])
			require.Equal(t, "RS256", hdr.Algorithm)
			require.Equal(t, p.KeySet().Keys[0].KeyID, hdr.KeyID)
			require.Equal(t, srv.URL, claims["iss"])
			require.Equal(t, srv.URL+"/api/graphql-service", claims["aud"])
			require.Equal(t, connect.ServiceClientID, claims["sub"])
			require.Equal(t, connect.ServiceClientID, claims["client_id"])
			require.Equal(t, tc.scope, claims["scope"])
			require.NotEmpty(t, claims["jti"])
			require.NotContains(t, claims, "tenant_id")
			iat := claims["iat"].(float64)
			require.Equal(t, iat, claims["nbf"].(float64))
			require.Equal(t, iat+3600, claims["exp"].(float64))
			require.InDelta(t, float64(time.Now().Unix()), iat, 5)

			c, err := p.VerifyAccessToken(r.str("access_token"), srv.URL, srv.URL+connect.PathGraphQLService)
			require.NoError(t, err)
			require.True(t, c.HasScope(tc.scope))
			_, err = p.VerifyAccessToken(r.str("access_token"), srv.URL, srv.URL+connect.PathGraphQL)
			require.ErrorIs(t, err, connect.ErrWrongAudience)
		})
	}
	t.Run("tenant_id is echoed as a claim", func(t *testing.T) {
		r := serviceToken(t, srv, url.Values{"tenant_id": {"tenant-42"}})
		_, claims := parseToken(t, r.str("access_token"), &testKey().PublicKey)
		require.Equal(t, "tenant-42", claims["tenant_id"])
		c, err := p.VerifyAccessToken(r.str("access_token"), srv.URL, srv.URL+connect.PathGraphQLService)
		require.NoError(t, err)
		require.Equal(t, "tenant-42", c.TenantID)
	})
	t.Run("no scope grants every allowed scope", func(t *testing.T) {
		r := postForm(t, tokenURL(srv), url.Values{"grant_type": {"client_credentials"}}, connect.ServiceClientID, connect.ServiceClientSecret)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		require.Equal(t, connect.ScopeGraphQLService+" "+connect.ScopeGraphQLServiceReadonly, r.str("scope"))
	})
	t.Run("access token ttl option", func(t *testing.T) {
		opts := p.Options()
		opts.AccessTokenTTL = 90 * time.Second
		require.NoError(t, p.SetOptions(opts))
		r := serviceToken(t, srv, nil)
		require.EqualValues(t, 90, r.body["expires_in"])
		_, claims := parseToken(t, r.str("access_token"), &testKey().PublicKey)
		require.Equal(t, claims["iat"].(float64)+90, claims["exp"].(float64))
	})
	st := p.Stats().TokenRequests.ClientCredentials
	require.Equal(t, connect.GrantCounts{OK: 6, Error: 0}, st)
}

func TestTokenEndpointErrors(t *testing.T) {
	p, srv := start(t, nil)
	svc := func(extra url.Values) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "scope": {connect.ScopeGraphQLService}}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	web := func(extra url.Values) url.Values {
		f := url.Values{"client_id": {connect.WebClientID}, "client_secret": {connect.WebClientSecret}}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	for _, tc := range []struct {
		name      string
		form      url.Values
		basic     []string
		status    int
		code      string
		wwwAuth   string
		errSubstr string
	}{
		{"wrong secret basic", svc(nil), []string{connect.ServiceClientID, "nope"}, 401, "invalid_client", `Basic realm="Visma Connect sandbox"`, "secret"},
		{"wrong secret form", svc(url.Values{"client_id": {connect.ServiceClientID}, "client_secret": {"nope"}}), nil, 401, "invalid_client", "", "secret"},
		{"unknown client basic", svc(nil), []string{"who", "ever"}, 401, "invalid_client", `Basic realm="Visma Connect sandbox"`, "unknown client"},
		{"unknown client form", svc(url.Values{"client_id": {"who"}, "client_secret": {"ever"}}), nil, 401, "invalid_client", "", "unknown client"},
		{"no client authentication", svc(nil), nil, 401, "invalid_client", "", "required"},
		{"two authentication methods", svc(url.Values{"client_secret": {connect.ServiceClientSecret}}), []string{connect.ServiceClientID, connect.ServiceClientSecret}, 400, "invalid_request", "", "more than one"},
		{"missing grant_type", url.Values{"scope": {connect.ScopeGraphQLService}}, []string{connect.ServiceClientID, connect.ServiceClientSecret}, 400, "invalid_request", "", "grant_type"},
		{"unsupported grant", url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}, []string{connect.ServiceClientID, connect.ServiceClientSecret}, 400, "unsupported_grant_type", "", "password"},
		{"bad scope", svc(url.Values{"scope": {"business-graphql-api:access-group-based"}}), []string{connect.ServiceClientID, connect.ServiceClientSecret}, 400, "invalid_scope", "", "not allowed"},
		{"unknown scope", svc(url.Values{"scope": {connect.ScopeGraphQLService + " admin"}}), []string{connect.ServiceClientID, connect.ServiceClientSecret}, 400, "invalid_scope", "", "admin"},
		{"web client with client credentials", web(url.Values{"grant_type": {"client_credentials"}}), nil, 400, "unauthorized_client", "", "may not use"},
		{"service client with refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, []string{connect.ServiceClientID, connect.ServiceClientSecret}, 400, "unauthorized_client", "", "may not use"},
		{"service client with authorization code", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, []string{connect.ServiceClientID, connect.ServiceClientSecret}, 400, "unauthorized_client", "", "may not use"},
		{"missing refresh_token", web(url.Values{"grant_type": {"refresh_token"}}), nil, 400, "invalid_request", "", "refresh_token is required"},
		{"unknown refresh_token", web(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}), nil, 400, "invalid_grant", "", "unknown"},
		{"missing code", web(url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {"http://127.0.0.1:1/cb"}, "code_verifier": {strings.Repeat("a", 43)}}), nil, 400, "invalid_request", "", "code is required"},
		{"missing redirect_uri", web(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {strings.Repeat("a", 43)}}), nil, 400, "invalid_request", "", "redirect_uri"},
		{"missing code_verifier", web(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"http://127.0.0.1:1/cb"}}), nil, 400, "invalid_request", "", "code_verifier"},
		{"short code_verifier", web(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"http://127.0.0.1:1/cb"}, "code_verifier": {"short"}}), nil, 400, "invalid_request", "", "43 to 128"},
		{"bad code", web(url.Values{"grant_type": {"authorization_code"}, "code": {"bogus"}, "redirect_uri": {"http://127.0.0.1:1/cb"}, "code_verifier": {strings.Repeat("a", 43)}}), nil, 400, "invalid_grant", "", "authorization code"},
		{"repeated parameter", url.Values{"grant_type": {"client_credentials", "client_credentials"}}, []string{connect.ServiceClientID, connect.ServiceClientSecret}, 400, "invalid_request", "", "repeated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := postForm(t, tokenURL(srv), tc.form, tc.basic...)
			requireOAuthError(t, r, tc.status, tc.code)
			require.Equal(t, tc.wwwAuth, r.header.Get("WWW-Authenticate"))
			require.Contains(t, r.str("error_description"), tc.errSubstr)
		})
	}
	t.Run("not a form", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, tokenURL(srv), strings.NewReader(`{"grant_type":"client_credentials"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		requireOAuthError(t, do(t, http.DefaultClient, req), 400, "invalid_request")
	})
	t.Run("GET", func(t *testing.T) {
		r := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, tokenURL(srv)))
		requireOAuthError(t, r, http.StatusMethodNotAllowed, "invalid_request")
		require.Equal(t, "POST", r.header.Get("Allow"))
	})
	t.Run("malformed basic header", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, tokenURL(srv), strings.NewReader(svc(nil).Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Basic !!!")
		r := do(t, http.DefaultClient, req)
		requireOAuthError(t, r, 401, "invalid_client")
		require.NotEmpty(t, r.header.Get("WWW-Authenticate"))
	})
	st := p.Stats().TokenRequests
	require.Zero(t, st.ClientCredentials.OK+st.RefreshToken.OK+st.AuthorizationCode.OK)
	require.EqualValues(t, 10, st.ClientCredentials.Error)
	require.EqualValues(t, 3, st.RefreshToken.Error)
	require.EqualValues(t, 6, st.AuthorizationCode.Error)
}

func TestBasicCredentialsAreFormDecoded(t *testing.T) {
	// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic
	// encoding; a client that does not encode them still works when they
	// hold no special characters.
	_, srv := start(t, nil)
	req, err := http.NewRequest(http.MethodPost, tokenURL(srv), strings.NewReader("grant_type=client_credentials"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(connect.ServiceClientID, connect.ServiceClientSecret)
	r := do(t, http.DefaultClient, req)
	require.Equal(t, http.StatusOK, r.status, r.raw)
}

func TestAccessTokenVerification(t *testing.T) {
	clock := newFakeClock()
	p, srv := start(t, func(o *connect.Options) { o.Now = clock.Now })
	tok := serviceToken(t, srv, nil).str("access_token")
	aud := srv.URL + connect.PathGraphQLService

	_, err := p.VerifyAccessToken(tok, srv.URL, aud)
	require.NoError(t, err)
	_, err = p.VerifyAccessToken(tok, "https://connect.visma.com", aud)
	require.ErrorIs(t, err, connect.ErrInvalidToken)
	_, err = p.VerifyAccessToken("not.a.jwt", srv.URL, aud)
	require.ErrorIs(t, err, connect.ErrInvalidToken)

	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	_, err = p.VerifyAccessToken(tampered, srv.URL, aud)
	require.ErrorIs(t, err, connect.ErrInvalidToken)

	clock.Advance(time.Hour - time.Second)
	_, err = p.VerifyAccessToken(tok, srv.URL, aud)
	require.NoError(t, err)
	clock.Advance(time.Second)
	_, err = p.VerifyAccessToken(tok, srv.URL, aud)
	require.ErrorIs(t, err, connect.ErrTokenExpired)
}

func TestIDTokenIsNotAnAccessToken(t *testing.T) {
	p, srv := start(t, nil)
	cb := callbackServer(t)
	verifier, challenge := pkce()
	code := loginCode(t, srv, cb, challenge, nil)
	r := exchangeCode(t, srv, code, cb.URL+"/signin-oidc", verifier)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	_, err := p.VerifyAccessToken(r.str("id_token"), srv.URL, connect.WebClientID)
	require.ErrorIs(t, err, connect.ErrInvalidToken)
	require.ErrorContains(t, err, "at+JWT")
}

func TestRevoke(t *testing.T) {
	p, srv := start(t, nil)
	revokeURL := srv.URL + connect.PathRevoke
	webAuth := []string{connect.WebClientID, connect.WebClientSecret}

	t.Run("refresh token revokes its chain", func(t *testing.T) {
		first, err := p.NewRefreshChain(connect.WebClientID, connect.JobUserEmail, "")
		require.NoError(t, err)
		second := refresh(t, srv, first).str("refresh_token")
		require.NotEmpty(t, second)
		r := postForm(t, revokeURL, url.Values{"token": {first}, "token_type_hint": {"refresh_token"}}, webAuth...)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		requireOAuthError(t, refresh(t, srv, second), 400, "invalid_grant")
	})
	t.Run("access token", func(t *testing.T) {
		tok := serviceToken(t, srv, nil).str("access_token")
		r := postForm(t, revokeURL, url.Values{"token": {tok}}, connect.ServiceClientID, connect.ServiceClientSecret)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		_, err := p.VerifyAccessToken(tok, srv.URL, srv.URL+connect.PathGraphQLService)
		require.ErrorIs(t, err, connect.ErrTokenRevoked)
	})
	t.Run("another client's token is left alone", func(t *testing.T) {
		tok := serviceToken(t, srv, nil).str("access_token")
		r := postForm(t, revokeURL, url.Values{"token": {tok}}, webAuth...)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		_, err := p.VerifyAccessToken(tok, srv.URL, srv.URL+connect.PathGraphQLService)
		require.NoError(t, err)
	})
	t.Run("unknown token", func(t *testing.T) {
		r := postForm(t, revokeURL, url.Values{"token": {"whatever"}}, webAuth...)
		require.Equal(t, http.StatusOK, r.status, r.raw)
	})
	t.Run("missing token", func(t *testing.T) {
		requireOAuthError(t, postForm(t, revokeURL, url.Values{}, webAuth...), 400, "invalid_request")
	})
	t.Run("bad client", func(t *testing.T) {
		requireOAuthError(t, postForm(t, revokeURL, url.Values{"token": {"x"}}, connect.WebClientID, "wrong"), 401, "invalid_client")
	})
}

func TestUserinfo(t *testing.T) {
	_, srv := start(t, nil)
	cb := callbackServer(t)
	verifier, challenge := pkce()
	code := loginCode(t, srv, cb, challenge, nil)
	at := exchangeCode(t, srv, code, cb.URL+"/signin-oidc", verifier).str("access_token")
	get := func(tok string) response {
		req := mustRequest(t, http.MethodGet, srv.URL+connect.PathUserinfo)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		return do(t, http.DefaultClient, req)
	}
	r := get(at)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, map[string]any{"sub": "3f1c9a52-6b0e-4d8e-9a57-0c2b8f7d1e01", "email": connect.JobUserEmail, "email_verified": true, "name": "Job User"}, r.body)

	r = get("")
	require.Equal(t, http.StatusUnauthorized, r.status)
	r = get(at + "x")
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Contains(t, r.header.Get("WWW-Authenticate"), `error="invalid_token"`)
	r = get(serviceToken(t, srv, nil).str("access_token"))
	require.Equal(t, http.StatusForbidden, r.status)
	require.Contains(t, r.header.Get("WWW-Authenticate"), "insufficient_scope")
}

func TestEndSession(t *testing.T) {
	_, srv := start(t, nil)
	cb := callbackServer(t)
	verifier, challenge := pkce()
	code := loginCode(t, srv, cb, challenge, nil)
	idToken := exchangeCode(t, srv, code, cb.URL+"/signin-oidc", verifier).str("id_token")

	q := url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {cb.URL + "/signed-out"}, "state": {"bye"}}
	resp, err := noRedirect.Get(srv.URL + connect.PathEndSession + "?" + q.Encode())
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "/signed-out", loc.Path)
	require.Equal(t, "bye", loc.Query().Get("state"))

	r := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, srv.URL+connect.PathEndSession))
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.raw, "signed out")

	q = url.Values{"client_id": {connect.WebClientID}, "post_logout_redirect_uri": {"http://localhost:1/x"}}
	r = do(t, noRedirect, mustRequest(t, http.MethodGet, srv.URL+connect.PathEndSession+"?"+q.Encode()))
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Empty(t, r.header.Get("Location"))
}

func TestStatsJSONShape(t *testing.T) {
	p, _ := start(t, nil)
	b, err := json.Marshal(p.Stats())
	require.NoError(t, err)
	require.JSONEq(t, `{"token_requests":{"client_credentials":{"ok":0,"error":0},"refresh_token":{"ok":0,"error":0},"authorization_code":{"ok":0,"error":0}},"reuse_detected":0}`, string(b))
}

func TestOptionsValidate(t *testing.T) {
	require.NoError(t, connect.DefaultOptions().Validate())
	bad := connect.Options{RefreshTokenUsage: "sometimes", RefreshGrace: -1, Issuer: "connect.visma.com"}
	err := bad.Validate()
	for _, want := range []string{"access token ttl", "refresh token usage", "refresh grace", "sliding", "absolute", "issuer"} {
		require.ErrorContains(t, err, want)
	}
	_, err = connect.New(bad)
	require.Error(t, err)
}
