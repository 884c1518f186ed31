package tokens

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/sandbox/connect"
	"github.com/nxtcron/nxtcron/store"
)

// enrollRig is a rig plus the daemon's HTTP side: the enrollment routes on
// a real server, and a Manager whose clock may run ahead of the sandbox's.
type enrollRig struct {
	*rig
	m      *Manager
	web    string // public_url
	offset atomic.Int64
}

func newEnrollRig(t *testing.T, conn func(*config.Connection)) *enrollRig {
	t.Helper()
	e := &enrollRig{rig: newRig(t)}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.web = srv.URL
	c := e.conn()
	if conn != nil {
		conn(&c)
	}
	e.m = e.replica("replica-a", func(o *Options) {
		o.Connections = []config.Connection{c}
		o.PublicURL = e.web
		o.Now = func() time.Time { return e.clock.Now().Add(time.Duration(e.offset.Load())) }
	})
	require.NoError(t, e.m.MountEnrollment(mux))
	return e
}

func (e *enrollRig) link() string {
	e.t.Helper()
	l, err := NewLink(e.keys, e.web, e.m.conns[userConnName], e.clock.Now())
	require.NoError(e.t, err)
	return l.URL
}

// requireNothingStored: no record, and no code swapped at the provider
// unless swapped says so.
func (e *enrollRig) requireNothingStored() {
	e.t.Helper()
	_, err := e.st.TokenState(context.Background(), userConnName)
	require.ErrorIs(e.t, err, store.ErrNotFound, "nothing stored")
}

// browser is a plain HTTP client with a cookie jar, as a person's browser.
type browser struct {
	t *testing.T
	c *http.Client
	// stopAt, when set, stops following redirects to URLs with this
	// prefix (the callback), so a test can tamper with them.
	stopAt string
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	b := &browser{t: t}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	b.c = &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if b.stopAt != "" && strings.HasPrefix(req.URL.String(), b.stopAt) {
			return http.ErrUseLastResponse
		}
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		return nil
	}}
	return b
}

type page struct {
	status int
	body   string
	url    *url.URL
	header http.Header
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return page{status: resp.StatusCode, body: string(body), url: resp.Request.URL, header: resp.Header}
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(b.t, err)
	return b.do(req)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// signIn fills in the sandbox's login form of p (email, password sandbox)
// and submits it with action ("login" or "cancel").
func (b *browser) signIn(p page, email, action string) page {
	b.t.Helper()
	require.Equal(b.t, http.StatusOK, p.status, p.body)
	require.Contains(b.t, p.body, `<form id="login"`)
	form := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	form.Set("email", email)
	form.Set("password", connect.UserPassword)
	form.Set("action", action)
	target := p.url.ResolveReference(&url.URL{Path: connect.PathAuthorize})
	req, err := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// TestEnrollThroughTheBrowser: the whole flow over HTTP, as a person does
// it; then the link is spent.
func TestEnrollThroughTheBrowser(t *testing.T) {
	e := newEnrollRig(t, func(c *config.Connection) { c.ExpectedEmail = "Job.User@example.com" })
	b := newBrowser(t)
	link := e.link()
	login := b.get(link)
	require.True(t, strings.HasPrefix(login.url.String(), e.url+connect.PathAuthorize), login.url.String())
	q := login.url.Query()
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.NotEmpty(t, q.Get("code_challenge"))
	require.NotEmpty(t, q.Get("state"))
	require.NotEmpty(t, q.Get("nonce"))
	require.Equal(t, e.web+"/signin-oidc", q.Get("redirect_uri"))
	require.Contains(t, strings.Fields(q.Get("scope")), "offline_access")

	done := b.signIn(login, connect.JobUserEmail, "login")
	require.Equal(t, http.StatusOK, done.status, done.body)
	require.Equal(t, "/signin-oidc", done.url.Path)
	require.Contains(t, done.body, "Enrolled")
	require.Contains(t, done.body, "job.user@example.com")

	st := e.state()
	require.Equal(t, store.TokenStatusOK, st.Status)
	require.Equal(t, int64(1), st.Generation)
	require.Equal(t, "job.user@example.com", st.EnrolledAs)
	require.NotNil(t, st.RefreshExpiresAt)
	require.True(t, e.clock.Now().Add(365*24*time.Hour).Equal(*st.RefreshExpiresAt))
	require.NotNil(t, st.Access)
	require.Equal(t, int64(1), e.stats().TokenRequests.AuthorizationCode.OK)
	require.Equal(t, 0.0, testutil.ToFloat64(e.metrics.ConnectionNeedsReenroll.WithLabelValues(userConnName)))

	// The access token of the enrollment serves the first run; the refresh
	// token works.
	tok, err := source(t, e.m, userConnName).Token(context.Background())
	require.NoError(t, err)
	require.Equal(t, st.Access.Hash, tok.Hash)
	require.Zero(t, e.stats().TokenRequests.RefreshToken.OK)
	refresh := e.storedRefresh()

	// The link is spent.
	again := newBrowser(t).get(link)
	require.Equal(t, http.StatusForbidden, again.status)
	require.Contains(t, again.body, "used already")
	require.Contains(t, again.body, "nxtcron tokens enroll nightly-user")
	require.Equal(t, int64(1), e.state().Generation)

	e.clock.Add(2 * time.Hour)
	tok2, err := source(t, e.m, userConnName).Token(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), e.stats().TokenRequests.RefreshToken.OK)
	require.Equal(t, int64(2), e.state().Generation)

	secrets := []string{refresh, e.storedRefresh(), tok.Value.Reveal(), tok2.Value.Reveal(), connect.WebClientSecret}
	e.requireStoreHasNoSecret(secrets...)
	requireNoLeak(t, e.logs, nil, secrets...)
	for _, s := range secrets {
		require.NotContains(t, done.body, s)
	}
}

// TestEnrollLinkRefusals: nothing works without a valid link.
func TestEnrollLinkRefusals(t *testing.T) {
	e := newEnrollRig(t, nil)
	otherKeys, err := NewKeyring([][]byte{[]byte("0123456789abcdef0123456789abcdef")})
	require.NoError(t, err)
	c := e.m.conns[userConnName]
	expired, err := NewLink(e.keys, e.web, c, e.clock.Now().Add(-LinkTTL-time.Second))
	require.NoError(t, err)
	foreign, err := NewLink(otherKeys, e.web, c, e.clock.Now())
	require.NoError(t, err)
	other := c
	other.Name = "finance-user"
	otherConn, err := NewLink(e.keys, e.web, other, e.clock.Now())
	require.NoError(t, err)
	good := e.link()
	tampered := strings.Replace(good, "?t=", "?t=x", 1)

	for _, tc := range []struct {
		name, url string
		status    int
		contains  string
	}{
		{"expired", expired.URL, http.StatusForbidden, "expired at"},
		{"signed with another key", foreign.URL, http.StatusForbidden, "not one nxtcron made"},
		{"tampered", tampered, http.StatusForbidden, "not one nxtcron made"},
		{"no token", e.web + "/enroll/nightly-user", http.StatusForbidden, "not one nxtcron made"},
		{"another connection's link", strings.Replace(otherConn.URL, "/enroll/finance-user", "/enroll/nightly-user", 1), http.StatusForbidden, `made for connection &#34;finance-user&#34;`},
		{"unknown connection", otherConn.URL, http.StatusNotFound, "No refresh_token connection named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newBrowser(t).get(tc.url)
			require.Equal(t, tc.status, p.status, p.body)
			require.Contains(t, p.body, tc.contains)
			require.Equal(t, e.web, p.url.Scheme+"://"+p.url.Host, "no redirect to the provider")
		})
	}
	e.requireNothingStored()
	require.Zero(t, e.stats().TokenRequests.AuthorizationCode.OK+e.stats().TokenRequests.AuthorizationCode.Error)
}

// TestEnrollCallbackRefusals: a valid link, then something wrong on the way
// back; each is a clear page and nothing is stored.
func TestEnrollCallbackRefusals(t *testing.T) {
	t.Run("bad state", func(t *testing.T) {
		e := newEnrollRig(t, nil)
		b := newBrowser(t)
		b.stopAt = e.web + "/signin-oidc"
		back := b.signIn(b.get(e.link()), connect.JobUserEmail, "login")
		require.Equal(t, http.StatusFound, back.status)
		cb, err := url.Parse(back.header.Get("Location"))
		require.NoError(t, err)
		q := cb.Query()
		q.Set("state", "forged-"+q.Get("state"))
		cb.RawQuery = q.Encode()
		p := b.get(cb.String())
		require.Equal(t, http.StatusBadRequest, p.status)
		require.Contains(t, p.body, "state parameter does not match")
		// The session is spent: the genuine callback fails too.
		p = b.get(back.header.Get("Location"))
		require.Equal(t, http.StatusBadRequest, p.status)
		require.Contains(t, p.body, "No enrollment in progress")
		e.requireNothingStored()
		require.Zero(t, e.stats().TokenRequests.AuthorizationCode.OK)
	})
	t.Run("wrong nonce", func(t *testing.T) {
		e := newEnrollRig(t, nil)
		b := newBrowser(t)
		b.stopAt = e.url // stop at the provider: swap the nonce
		start := b.get(e.link())
		require.Equal(t, http.StatusFound, start.status)
		authz, err := url.Parse(start.header.Get("Location"))
		require.NoError(t, err)
		q := authz.Query()
		q.Set("nonce", "a-nonce-of-the-attackers-choice")
		authz.RawQuery = q.Encode()
		b.stopAt = ""
		p := b.signIn(b.get(authz.String()), connect.JobUserEmail, "login")
		require.Equal(t, http.StatusBadRequest, p.status, p.body)
		require.Contains(t, p.body, "nonce does not match")
		e.requireNothingStored()
	})
	t.Run("wrong user", func(t *testing.T) {
		e := newEnrollRig(t, func(c *config.Connection) { c.ExpectedEmail = connect.JobUserEmail })
		b := newBrowser(t)
		p := b.signIn(b.get(e.link()), connect.OtherUserEmail, "login")
		require.Equal(t, http.StatusForbidden, p.status, p.body)
		require.Contains(t, p.body, "You signed in as other.user@example.com")
		require.Contains(t, p.body, "accepts only job.user@example.com")
		require.Contains(t, p.body, "Nothing was stored")
		e.requireNothingStored()
	})
	t.Run("expired ID token", func(t *testing.T) {
		e := newEnrollRig(t, nil)
		b := newBrowser(t)
		b.stopAt = e.web + "/signin-oidc"
		back := b.signIn(b.get(e.link()), connect.JobUserEmail, "login")
		require.Equal(t, http.StatusFound, back.status)
		e.offset.Store(int64(6 * time.Minute)) // nxtcron's clock is past the ID token's 5 minutes
		p := b.get(back.header.Get("Location"))
		require.Equal(t, http.StatusBadRequest, p.status, p.body)
		require.Contains(t, p.body, "The ID token is not valid")
		require.Contains(t, p.body, "expired")
		e.requireNothingStored()
	})
	t.Run("cancelled at the provider", func(t *testing.T) {
		e := newEnrollRig(t, nil)
		b := newBrowser(t)
		p := b.signIn(b.get(e.link()), connect.JobUserEmail, "cancel")
		require.Equal(t, http.StatusBadRequest, p.status, p.body)
		require.Contains(t, p.body, "access_denied")
		e.requireNothingStored()
	})
	t.Run("no session in this browser", func(t *testing.T) {
		e := newEnrollRig(t, nil)
		b := newBrowser(t)
		b.stopAt = e.web + "/signin-oidc"
		back := b.signIn(b.get(e.link()), connect.JobUserEmail, "login")
		p := newBrowser(t).get(back.header.Get("Location"))
		require.Equal(t, http.StatusBadRequest, p.status)
		require.Contains(t, p.body, "No enrollment in progress")
		e.requireNothingStored()
	})
	t.Run("replayed callback", func(t *testing.T) {
		e := newEnrollRig(t, nil)
		b := newBrowser(t)
		b.stopAt = e.web + "/signin-oidc"
		back := b.signIn(b.get(e.link()), connect.JobUserEmail, "login")
		cb := back.header.Get("Location")
		cookies := b.c.Jar.Cookies(back.url)
		cookies = append(cookies, b.c.Jar.Cookies(mustURL(t, e.web))...)
		var session *http.Cookie
		for _, ck := range cookies {
			if ck.Name == sessionCookie {
				session = ck
			}
		}
		require.NotNil(t, session)
		ok := b.get(cb)
		require.Equal(t, http.StatusOK, ok.status, ok.body)
		gen := e.state().Generation
		// The same callback again, with the cookie put back.
		req, err := http.NewRequest(http.MethodGet, cb, nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: session.Value})
		p := newBrowser(t).do(req)
		require.Equal(t, http.StatusBadRequest, p.status)
		require.Contains(t, p.body, "used already")
		require.Equal(t, gen, e.state().Generation)
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

// TestEnrollIssuerWithTrailingSlash: the issuer is compared without a
// trailing slash.
func TestEnrollIssuerWithTrailingSlash(t *testing.T) {
	e := newEnrollRig(t, nil)
	opts := e.sb.Options()
	opts.Issuer = e.url + "/"
	require.NoError(t, e.sb.Apply(opts))
	b := newBrowser(t)
	p := b.signIn(b.get(e.link()), connect.JobUserEmail, "login")
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Equal(t, store.TokenStatusOK, e.state().Status)
}

// TestSessionCookieIsSealed: the cookie reveals neither the PKCE verifier
// nor the nonce.
func TestSessionCookieIsSealed(t *testing.T) {
	e := newEnrollRig(t, nil)
	b := newBrowser(t)
	b.stopAt = e.url
	start := b.get(e.link())
	var value string
	for _, ck := range b.c.Jar.Cookies(mustURL(t, e.web)) {
		if ck.Name == sessionCookie {
			value = ck.Value
		}
	}
	require.NotEmpty(t, value)
	raw, err := base64.RawURLEncoding.DecodeString(value)
	require.NoError(t, err)
	plain, err := e.keys.Open(purposeSession, raw)
	require.NoError(t, err)
	var s session
	require.NoError(t, json.Unmarshal(plain, &s))
	authz, err := url.Parse(start.header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, s.Nonce, authz.Query().Get("nonce"))
	require.NotContains(t, string(raw), s.Verifier)
	require.NotContains(t, value, s.Nonce)
	require.Contains(t, start.header.Get("Set-Cookie"), "HttpOnly")
	require.Contains(t, start.header.Get("Set-Cookie"), "SameSite=Lax")
}
