package connect

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// tokenResponse is the JSON answer of the token endpoint (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

func (p *Provider) counter(grantType string) *grantCounter {
	switch grantType {
	case GrantClientCredentials:
		return &p.ccCount
	case GrantAuthorizationCode:
		return &p.acCount
	case GrantRefreshToken:
		return &p.rtCount
	}
	return nil
}

func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		WriteOAuthError(w, http.StatusMethodNotAllowed, ErrCodeInvalidRequest, "the token endpoint accepts POST only")
		return
	}
	form, oerr := parsePostForm(r)
	grantType := ""
	if form != nil {
		grantType = form.Get("grant_type")
	}
	counter := p.counter(grantType)
	var resp *tokenResponse
	if oerr == nil {
		resp, oerr = p.token(r, form, grantType)
	}
	if oerr != nil {
		if counter != nil {
			counter.err.Add(1)
		}
		writeOAuthError(w, oerr)
		return
	}
	counter.ok.Add(1)
	if d := holdFrom(r.Context()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return // the caller is gone, and with it the answer
		}
	}
	writeNoStoreJSON(w, http.StatusOK, resp)
}

// parsePostForm reads an application/x-www-form-urlencoded body and refuses
// repeated parameters (RFC 6749 §3.2).
func parsePostForm(r *http.Request) (url.Values, *oauthError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errInvalidRequest("the request body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return nil, errInvalidRequest("malformed request body")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, errInvalidRequest("parameter " + k + " is repeated")
		}
	}
	return r.PostForm, nil
}

// authenticateClient checks client credentials given by HTTP Basic (with
// form-urlencoded id and secret, RFC 6749 §2.3.1) or in the form body.
func authenticateClient(r *http.Request, form url.Values) (*client, *oauthError) {
	if r.Header.Get("Authorization") != "" {
		rawID, rawSecret, ok := r.BasicAuth()
		if !ok {
			return nil, &oauthError{code: ErrCodeInvalidClient, description: "unsupported client authentication method", basic: true}
		}
		id, err1 := url.QueryUnescape(rawID)
		secret, err2 := url.QueryUnescape(rawSecret)
		if err1 != nil || err2 != nil {
			return nil, &oauthError{code: ErrCodeInvalidClient, description: "malformed client credentials", basic: true}
		}
		if form.Get("client_secret") != "" {
			return nil, errInvalidRequest("the client authenticated with more than one method")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return nil, errInvalidRequest("client_id differs from the authenticated client")
		}
		return checkClient(id, secret, true)
	}
	id := form.Get("client_id")
	if id == "" {
		return nil, &oauthError{code: ErrCodeInvalidClient, description: "client authentication is required"}
	}
	return checkClient(id, form.Get("client_secret"), false)
}

func checkClient(id, secret string, basic bool) (*client, *oauthError) {
	c := clients[id]
	if c == nil {
		return nil, &oauthError{code: ErrCodeInvalidClient, description: "unknown client", basic: basic}
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		return nil, &oauthError{code: ErrCodeInvalidClient, description: "invalid client secret", basic: basic}
	}
	return c, nil
}

func (p *Provider) token(r *http.Request, form url.Values, grantType string) (*tokenResponse, *oauthError) {
	c, oerr := authenticateClient(r, form)
	if oerr != nil {
		return nil, oerr
	}
	switch grantType {
	case "":
		return nil, errInvalidRequest("grant_type is required")
	case GrantClientCredentials, GrantAuthorizationCode, GrantRefreshToken:
	default:
		return nil, &oauthError{code: ErrCodeUnsupportedGrantType, description: "grant type " + grantType + " is not supported"}
	}
	if !c.allows(grantType) {
		return nil, &oauthError{code: ErrCodeUnauthorizedClient, description: "client " + c.id + " may not use grant type " + grantType}
	}
	now := p.now()
	var g grant
	var refresh string
	switch grantType {
	case GrantClientCredentials:
		scopes, err := c.checkScopes(form.Get("scope"))
		if err != nil {
			return nil, &oauthError{code: ErrCodeInvalidScope, description: err.Error()}
		}
		g = grant{client: c, scopes: scopes, tenantID: form.Get("tenant_id"), authTime: now}
	case GrantAuthorizationCode:
		g, refresh, oerr = p.redeemCode(c, form, now)
	case GrantRefreshToken:
		g, refresh, oerr = p.redeemRefresh(c, form, now)
	}
	if oerr != nil {
		return nil, oerr
	}
	return p.issue(r, g, refresh, now)
}

func (p *Provider) issue(r *http.Request, g grant, refresh string, now time.Time) (*tokenResponse, *oauthError) {
	issuer := p.Issuer(r)
	ttl := p.Options().AccessTokenTTL
	at, err := p.signAccessToken(g, issuer, BaseURL(r)+g.client.apiPath, now, ttl)
	if err != nil {
		return nil, &oauthError{code: errCodeServerError, description: err.Error()}
	}
	resp := &tokenResponse{
		AccessToken:  at,
		TokenType:    "Bearer",
		ExpiresIn:    int64(ttl / time.Second),
		Scope:        strings.Join(g.scopes, " "),
		RefreshToken: refresh,
	}
	if g.user != nil && slices.Contains(g.scopes, "openid") {
		if resp.IDToken, err = p.signIDToken(g, issuer, at, now); err != nil {
			return nil, &oauthError{code: errCodeServerError, description: err.Error()}
		}
	}
	return resp, nil
}

// authCode is an issued authorization code.
type authCode struct {
	client      *client
	user        *user
	redirectURI string
	scopes      []string
	nonce       string
	challenge   string
	authTime    time.Time
	expires     time.Time
}

func (p *Provider) redeemCode(c *client, form url.Values, now time.Time) (grant, string, *oauthError) {
	code, redirectURI, verifier := form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier")
	switch {
	case code == "":
		return grant{}, "", errInvalidRequest("code is required")
	case redirectURI == "":
		return grant{}, "", errInvalidRequest("redirect_uri is required")
	case verifier == "":
		return grant{}, "", errInvalidRequest("code_verifier is required (PKCE)")
	case !validPKCEValue(verifier):
		return grant{}, "", errInvalidRequest("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")
	}
	p.mu.Lock()
	p.sweepLocked(now)
	ac := p.codes[code]
	delete(p.codes, code) // single use, whatever happens next
	p.mu.Unlock()
	switch {
	case ac == nil:
		return grant{}, "", errInvalidGrant("invalid, expired or already used authorization code")
	case !now.Before(ac.expires):
		return grant{}, "", errInvalidGrant("the authorization code expired")
	case ac.client != c:
		return grant{}, "", errInvalidGrant("the authorization code was issued to another client")
	case ac.redirectURI != redirectURI:
		return grant{}, "", errInvalidGrant("redirect_uri does not match the authorization request")
	case s256(verifier) != ac.challenge:
		return grant{}, "", errInvalidGrant("code_verifier does not match the code challenge")
	}
	g := grant{client: c, user: ac.user, scopes: ac.scopes, nonce: ac.nonce, authTime: ac.authTime}
	refresh := ""
	if slices.Contains(ac.scopes, "offline_access") && c.allows(GrantRefreshToken) {
		p.mu.Lock()
		refresh = p.newChainLocked(c, ac.user, ac.scopes, now)
		p.mu.Unlock()
	}
	return g, refresh, nil
}

func (p *Provider) redeemRefresh(c *client, form url.Values, now time.Time) (grant, string, *oauthError) {
	tok := form.Get("refresh_token")
	if tok == "" {
		return grant{}, "", errInvalidRequest("refresh_token is required")
	}
	// A narrower scope may be asked for; check it before the token is
	// consumed.
	var requested []string
	if s := form.Get("scope"); s != "" {
		requested = strings.Fields(s)
	}
	p.mu.Lock()
	if rt := p.tokens[tok]; rt != nil && rt.chain.client == c {
		for _, s := range requested {
			if !slices.Contains(rt.chain.scopes, s) {
				p.mu.Unlock()
				return grant{}, "", &oauthError{code: ErrCodeInvalidScope, description: "scope " + s + " was not granted to the refresh token"}
			}
		}
	}
	p.mu.Unlock()
	ch, next, oerr := p.redeem(tok, c, now)
	if oerr != nil {
		return grant{}, "", oerr
	}
	scopes := ch.scopes
	if len(requested) > 0 {
		scopes = requested
	}
	return grant{client: c, user: ch.user, scopes: scopes, authTime: ch.login}, next, nil
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// validPKCEValue checks a code verifier or challenge (RFC 7636 §4.1).
func validPKCEValue(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.', r == '_', r == '~':
		default:
			return false
		}
	}
	return true
}
