package connect_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sandbox/connect"
)

// testKey is shared by the tests' providers: generating a key per test would
// dominate the run time under -race.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// fakeClock is a clock the tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// start runs a provider with the default options changed by mutate.
func start(t *testing.T, mutate func(*connect.Options)) (*connect.Provider, *httptest.Server) {
	t.Helper()
	opts := connect.DefaultOptions()
	opts.Key = testKey()
	if mutate != nil {
		mutate(&opts)
	}
	p, err := connect.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// postForm posts form to url, with HTTP Basic credentials when basic is
// {id, secret}.
func postForm(t *testing.T, u string, form url.Values, basic ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	return do(t, http.DefaultClient, req)
}

func do(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &r.body), string(raw))
	}
	return r
}

func tokenURL(srv *httptest.Server) string { return srv.URL + connect.PathToken }

// requireOAuthError checks an RFC 6749 §5.2 error answer.
func requireOAuthError(t *testing.T, r response, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.status, r.raw)
	require.Equal(t, code, r.str("error"), r.raw)
	require.NotEmpty(t, r.str("error_description"), r.raw)
	require.Equal(t, "no-store", r.header.Get("Cache-Control"))
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"))
}

func serviceToken(t *testing.T, srv *httptest.Server, extra url.Values) response {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {connect.ScopeGraphQLService}}
	for k, v := range extra {
		form[k] = v
	}
	r := postForm(t, tokenURL(srv), form, connect.ServiceClientID, connect.ServiceClientSecret)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	return r
}

// refresh redeems a refresh token for the web client.
func refresh(t *testing.T, srv *httptest.Server, tok string) response {
	t.Helper()
	return postForm(t, tokenURL(srv), url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {tok},
		"client_id":     {connect.WebClientID},
		"client_secret": {connect.WebClientSecret},
	})
}

// parseToken verifies a JWT with key and returns its header and claims.
func parseToken(t *testing.T, raw string, key *rsa.PublicKey) (jose.Header, map[string]any) {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	var claims map[string]any
	require.NoError(t, tok.Claims(key, &claims))
	require.Len(t, tok.Headers, 1)
	return tok.Headers[0], claims
}

func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// callbackServer is a client's redirect target; it answers 200 to anything.
func callbackServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "callback reached")
	}))
	t.Cleanup(srv.Close)
	return srv
}

var (
	formActionRE = regexp.MustCompile(`<form[^>]*\baction="([^"]*)"`)
	inputRE      = regexp.MustCompile(`<input\b([^>]*)>`)
	attrRE       = regexp.MustCompile(`\b(name|value|type)="([^"]*)"`)
)

// loginForm is the parsed sign-in form of the authorize page.
type loginForm struct {
	action string
	fields url.Values
}

func parseLoginForm(t *testing.T, page string, pageURL *url.URL) loginForm {
	t.Helper()
	m := formActionRE.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	action, err := pageURL.Parse(html.UnescapeString(m[1]))
	require.NoError(t, err)
	fields := url.Values{}
	for _, in := range inputRE.FindAllStringSubmatch(page, -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(in[1], -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		if attrs["type"] == "hidden" {
			fields.Set(attrs["name"], attrs["value"])
		}
	}
	return loginForm{action: action.String(), fields: fields}
}

// authorizeURL builds an authorization request for the web client.
func authorizeURL(srv *httptest.Server, params url.Values) string {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {connect.WebClientID},
		"scope":                 {strings.Join(connect.WebClientScopes, " ")},
		"state":                 {"state-123"},
		"nonce":                 {"nonce-456"},
		"code_challenge_method": {"S256"},
	}
	for k, v := range params {
		q[k] = v
	}
	for k, v := range q {
		if len(v) == 1 && v[0] == "" {
			delete(q, k)
		}
	}
	return srv.URL + connect.PathAuthorize + "?" + q.Encode()
}

// login drives the authorize page like a browser with a plain http.Client:
// GET the form, POST the credentials, follow the redirect. It returns the
// final response (the callback's) and the URL it ended at.
func login(t *testing.T, authURL, email, password string) (response, *url.URL) {
	t.Helper()
	page, err := http.Get(authURL)
	require.NoError(t, err)
	body, err := io.ReadAll(page.Body)
	require.NoError(t, err)
	require.NoError(t, page.Body.Close())
	require.Equal(t, http.StatusOK, page.StatusCode, string(body))
	require.True(t, strings.HasPrefix(page.Header.Get("Content-Type"), "text/html"))
	f := parseLoginForm(t, string(body), page.Request.URL)
	f.fields.Set("email", email)
	f.fields.Set("password", password)
	resp, err := http.PostForm(f.action, f.fields)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}, resp.Request.URL
}

// noRedirect is a client that returns redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

// loginCode logs the job user in and returns the authorization code.
func loginCode(t *testing.T, srv, cb *httptest.Server, challenge string, extra url.Values) string {
	t.Helper()
	params := url.Values{"redirect_uri": {cb.URL + "/signin-oidc"}, "code_challenge": {challenge}}
	for k, v := range extra {
		params[k] = v
	}
	r, final := login(t, authorizeURL(srv, params), connect.JobUserEmail, connect.UserPassword)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "callback reached", r.raw)
	code := final.Query().Get("code")
	require.NotEmpty(t, code, final.String())
	return code
}

func exchangeCode(t *testing.T, srv *httptest.Server, code, redirectURI, verifier string) response {
	t.Helper()
	return postForm(t, tokenURL(srv), url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
	}, connect.WebClientID, connect.WebClientSecret)
}
