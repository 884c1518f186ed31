package connect

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Discovery is the OpenID Provider metadata document.
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	JWKSURI                           string   `json:"jwks_uri"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
}

// DiscoveryFor returns the discovery document as served to r.
func (p *Provider) DiscoveryFor(r *http.Request) Discovery {
	base := BaseURL(r)
	return Discovery{
		Issuer:                            p.Issuer(r),
		JWKSURI:                           base + PathJWKS,
		AuthorizationEndpoint:             base + PathAuthorize,
		TokenEndpoint:                     base + PathToken,
		UserinfoEndpoint:                  base + PathUserinfo,
		EndSessionEndpoint:                base + PathEndSession,
		RevocationEndpoint:                base + PathRevoke,
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access", ScopeGraphQL, ScopeGraphQLService, ScopeGraphQLServiceReadonly},
		ClaimsSupported:                   []string{"sub", "email", "email_verified", "name", "auth_time", "idp", "nonce", "at_hash"},
		GrantTypesSupported:               []string{GrantAuthorizationCode, GrantClientCredentials, GrantRefreshToken},
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post"},
		RevocationEndpointAuthMethods:     []string{"client_secret_basic", "client_secret_post"},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{string(jose.RS256)},
		CodeChallengeMethodsSupported:     []string{"S256"},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	if allowGet(w, r) {
		writeJSON(w, http.StatusOK, p.DiscoveryFor(r))
	}
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if allowGet(w, r) {
		w.Header().Set("Cache-Control", "max-age=3600")
		writeJSON(w, http.StatusOK, p.jwks)
	}
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// BearerToken returns the token of r's "Authorization: Bearer" header, or "".
func BearerToken(r *http.Request) string { return bearerToken(r) }

func (p *Provider) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	raw := bearerToken(r)
	if raw == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="Visma Connect sandbox"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	c, err := p.parseAccessToken(raw, p.Issuer(r))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+strings.ReplaceAll(err.Error(), `"`, `'`)+`"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	u := userBySub(c.Subject)
	if !c.HasScope("openid") || u == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="openid"`)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	info := map[string]any{"sub": u.sub}
	if c.HasScope("email") {
		info["email"] = u.email
		info["email_verified"] = true
	}
	if c.HasScope("profile") {
		info["name"] = u.name
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, info)
}

// serveRevoke implements RFC 7009. Revoking a refresh token revokes its whole
// chain; revoking an access token makes the GraphQL endpoints refuse it. An
// unknown token, or one issued to another client, is answered with 200 and
// changes nothing.
func (p *Provider) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		WriteOAuthError(w, http.StatusMethodNotAllowed, ErrCodeInvalidRequest, "the revocation endpoint accepts POST only")
		return
	}
	form, oerr := parsePostForm(r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	c, oerr := authenticateClient(r, form)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeOAuthError(w, errInvalidRequest("token is required"))
		return
	}
	p.mu.Lock()
	rt := p.tokens[tok]
	if rt != nil && rt.chain.client == c {
		p.revokeChainLocked(rt.chain)
	}
	p.mu.Unlock()
	if rt == nil {
		if claims, err := p.parseAccessToken(tok, p.Issuer(r)); err == nil && claims.ClientID == c.id {
			p.mu.Lock()
			p.revoked[claims.ID] = claims.Expiry.Time()
			p.mu.Unlock()
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// serveEndSession ends the (stateless) session: it redirects to
// post_logout_redirect_uri with state when that URI is valid for the client
// named by client_id or by the audience of id_token_hint, and shows a page
// otherwise.
func (p *Provider) serveEndSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		writePage(w, http.StatusBadRequest, "Invalid request", "The request cannot be parsed.")
		return
	}
	target := r.Form.Get("post_logout_redirect_uri")
	if target == "" {
		writePage(w, http.StatusOK, "Signed out", "You are signed out of the Visma Connect sandbox.")
		return
	}
	c := clients[r.Form.Get("client_id")]
	if hint := r.Form.Get("id_token_hint"); c == nil && hint != "" {
		c = p.clientOfIDToken(hint)
	}
	if c == nil {
		writePage(w, http.StatusBadRequest, "Invalid request", "post_logout_redirect_uri needs client_id or a valid id_token_hint.")
		return
	}
	if err := c.checkRedirectURI(target); err != nil {
		writePage(w, http.StatusBadRequest, "Invalid request", err.Error())
		return
	}
	redirectTo(w, r, target, url.Values{"state": {r.Form.Get("state")}})
}

// clientOfIDToken returns the client an ID token signed by this provider was
// issued to; expired hints are fine (OpenID Connect RP-Initiated Logout).
func (p *Provider) clientOfIDToken(raw string) *client {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil
	}
	var claims jwt.Claims
	if err := tok.Claims(&p.key.PublicKey, &claims); err != nil {
		return nil
	}
	for _, id := range slices.Sorted(maps.Keys(clients)) {
		if claims.Audience.Contains(id) {
			return clients[id]
		}
	}
	return nil
}
