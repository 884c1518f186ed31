package connect

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// authRequest is a validated authorization request.
type authRequest struct {
	client              *client
	redirectURI         string
	scopes              []string
	state               string
	nonce               string
	codeChallenge       string
	codeChallengeMethod string
}

// authError is a failed authorization request: shown as a page when redirect
// is false, otherwise sent back to the redirect URI (RFC 6749 §4.1.2.1).
type authError struct {
	redirect    bool
	code        string
	description string
}

// authorizeParams are the request parameters carried through the login form.
var authorizeParams = []string{
	"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method", "response_mode", "prompt",
}

func parseAuthorize(form url.Values) (*authRequest, *authError) {
	c := clients[form.Get("client_id")]
	if c == nil {
		return nil, &authError{code: ErrCodeInvalidRequest, description: "unknown client_id " + strconv.Quote(form.Get("client_id"))}
	}
	redirectURI := form.Get("redirect_uri")
	if err := c.checkRedirectURI(redirectURI); err != nil {
		return nil, &authError{code: ErrCodeInvalidRequest, description: err.Error()}
	}
	req := &authRequest{
		client:              c,
		redirectURI:         redirectURI,
		state:               form.Get("state"),
		nonce:               form.Get("nonce"),
		codeChallenge:       form.Get("code_challenge"),
		codeChallengeMethod: form.Get("code_challenge_method"),
	}
	fail := func(code, desc string) (*authRequest, *authError) {
		return req, &authError{redirect: true, code: code, description: desc}
	}
	switch rt := form.Get("response_type"); rt {
	case "code":
	case "":
		return fail(ErrCodeInvalidRequest, "response_type is required")
	default:
		return fail(ErrCodeUnsupportedResponseType, "response_type "+rt+" is not supported; use code")
	}
	if !c.allows(GrantAuthorizationCode) {
		return fail(ErrCodeUnauthorizedClient, "client "+c.id+" may not use the authorization code flow")
	}
	scopes := strings.Fields(form.Get("scope"))
	if !slices.Contains(scopes, "openid") {
		return fail(ErrCodeInvalidScope, "scope must include openid")
	}
	for _, s := range scopes {
		if !slices.Contains(c.scopes, s) {
			return fail(ErrCodeInvalidScope, "scope "+s+" is not allowed for client "+c.id)
		}
		if !slices.Contains(req.scopes, s) {
			req.scopes = append(req.scopes, s)
		}
	}
	switch {
	case req.codeChallenge == "":
		return fail(ErrCodeInvalidRequest, "code_challenge is required (PKCE)")
	case req.codeChallengeMethod == "":
		return fail(ErrCodeInvalidRequest, "code_challenge_method is required and must be S256")
	case req.codeChallengeMethod != "S256":
		return fail(ErrCodeInvalidRequest, "transform algorithm "+req.codeChallengeMethod+" is not supported; use S256")
	case !validPKCEValue(req.codeChallenge):
		return fail(ErrCodeInvalidRequest, "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]")
	}
	if rm := form.Get("response_mode"); rm != "" && rm != "query" {
		return fail(ErrCodeInvalidRequest, "response_mode "+rm+" is not supported; use query")
	}
	return req, nil
}

// redirectTo sends the browser back to the client with params added to the
// redirect URI's query.
func redirectTo(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		writePage(w, http.StatusBadRequest, "Invalid request", "The redirect URI cannot be parsed.")
		return
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			if v != "" {
				q.Add(k, v)
			}
		}
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writePage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return
	}
	if err := r.ParseForm(); err != nil {
		writePage(w, http.StatusBadRequest, "Invalid request", "The request cannot be parsed.")
		return
	}
	req, aerr := parseAuthorize(r.Form)
	if aerr != nil {
		if !aerr.redirect {
			writePage(w, http.StatusBadRequest, "Invalid request", aerr.code+": "+aerr.description)
			return
		}
		redirectTo(w, r, req.redirectURI, url.Values{
			"error":             {aerr.code},
			"error_description": {aerr.description},
			"state":             {req.state},
		})
		return
	}
	if r.Method == http.MethodGet {
		p.writeLogin(w, r.Form, "", "")
		return
	}
	if r.PostForm.Get("action") == "cancel" {
		redirectTo(w, r, req.redirectURI, url.Values{
			"error":             {ErrCodeAccessDenied},
			"error_description": {"the user cancelled the sign-in"},
			"state":             {req.state},
		})
		return
	}
	email := r.PostForm.Get("email")
	u := userByEmail(email)
	if u == nil || r.PostForm.Get("password") != u.password {
		p.writeLogin(w, r.Form, email, "Unknown email or wrong password.")
		return
	}
	now := p.now()
	code := randomString(32)
	p.mu.Lock()
	p.sweepLocked(now)
	p.codes[code] = &authCode{
		client:      req.client,
		user:        u,
		redirectURI: req.redirectURI,
		scopes:      req.scopes,
		nonce:       req.nonce,
		challenge:   req.codeChallenge,
		authTime:    now,
		expires:     now.Add(CodeTTL),
	}
	p.mu.Unlock()
	redirectTo(w, r, req.redirectURI, url.Values{"code": {code}, "state": {req.state}})
}

var loginTemplate = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in - Visma Connect sandbox</title></head>
<body>
<h1>Sign in</h1>
<p>{{.Client}} asks for access to: {{.Scope}}</p>
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>
{{end}}<form id="login" method="post" action="{{.Action}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<label>Email <input type="email" name="email" value="{{.Email}}" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit" name="action" value="login">Sign in</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
</form>
<p>Sandbox users: job.user@example.com and other.user@example.com, password sandbox.</p>
</body>
</html>
`))

type hiddenField struct{ Name, Value string }

func (p *Provider) writeLogin(w http.ResponseWriter, form url.Values, email, errMsg string) {
	var hidden []hiddenField
	for _, name := range authorizeParams {
		if v := form.Get(name); v != "" {
			hidden = append(hidden, hiddenField{name, v})
		}
	}
	c := clients[form.Get("client_id")]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(http.StatusOK)
	_ = loginTemplate.Execute(w, map[string]any{
		"Client": c.name,
		"Scope":  form.Get("scope"),
		"Error":  errMsg,
		"Action": PathAuthorize,
		"Hidden": hidden,
		"Email":  email,
	})
}
