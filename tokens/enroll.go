package tokens

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/store"
)

// Enrollment: `nxtcron tokens enroll CONN` prints a signed one-time link to
// public_url/enroll/CONN; opening it sends the browser to the authorize
// endpoint (state, nonce, PKCE S256) with a sealed session cookie; the
// callback at public_url + redirect_path swaps the code, verifies the ID
// token and stores the refresh token.

// Enrollment rules.
const (
	// LinkTTL is how long an enrollment link is valid.
	LinkTTL = 30 * time.Minute
	// EnrollPath is the path of enrollment links, before the connection.
	EnrollPath = "/enroll/"
	// sessionTTL bounds the sign-in at the provider.
	sessionTTL = 15 * time.Minute
	// sessionCookie carries the sealed session from the link to the
	// callback (the same browser).
	sessionCookie = "nxtcron_enroll"
	// enrollTimeout bounds the provider requests of one enrollment step.
	enrollTimeout = 30 * time.Second
)

// Link is a signed one-time enrollment link.
type Link struct {
	URL     string
	Expires time.Time
}

type linkClaims struct {
	Connection string `json:"c"`
	ID         string `json:"id"`
	Expires    int64  `json:"exp"`
}

// NewLink makes the one-time enrollment link of a refresh_token connection
// under publicURL, valid for LinkTTL from now and signed with a key derived
// from the first encryption key.
func NewLink(k *Keyring, publicURL string, c config.Connection, now time.Time) (Link, error) {
	if c.Grant != config.GrantRefreshToken {
		return Link{}, fmt.Errorf("connection %q has grant %s; only refresh_token connections are enrolled", c.Name, c.Grant)
	}
	exp := now.Add(LinkTTL).Truncate(time.Second)
	payload, err := json.Marshal(linkClaims{Connection: c.Name, ID: randomString(16), Expires: exp.Unix()})
	if err != nil {
		return Link{}, err
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, k.keys[0].link)
	mac.Write([]byte(p))
	tok := p + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	u := strings.TrimRight(publicURL, "/") + EnrollPath + url.PathEscape(c.Name) + "?t=" + tok
	return Link{URL: u, Expires: exp}, nil
}

// errLink is every refusal of a link; the page says what to do.
var errLink = errors.New("invalid enrollment link")

// verifyLink checks a link's signature (with any configured key), its
// connection and its expiry.
func verifyLink(k *Keyring, tok, connection string, now time.Time) (linkClaims, error) {
	p, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return linkClaims{}, fmt.Errorf("malformed: %w", errLink)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return linkClaims{}, fmt.Errorf("malformed signature: %w", errLink)
	}
	valid := false
	for _, key := range k.keys {
		mac := hmac.New(sha256.New, key.link)
		mac.Write([]byte(p))
		if hmac.Equal(mac.Sum(nil), got) {
			valid = true
		}
	}
	if !valid {
		return linkClaims{}, fmt.Errorf("bad signature: %w", errLink)
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return linkClaims{}, fmt.Errorf("malformed payload: %w", errLink)
	}
	var c linkClaims
	if err := json.Unmarshal(raw, &c); err != nil || c.ID == "" {
		return linkClaims{}, fmt.Errorf("malformed payload: %w", errLink)
	}
	if c.Connection != connection {
		return linkClaims{}, fmt.Errorf("made for connection %q: %w", c.Connection, errLink)
	}
	if !now.Before(time.Unix(c.Expires, 0)) {
		return linkClaims{}, fmt.Errorf("expired at %s: %w", time.Unix(c.Expires, 0).UTC().Format(time.RFC3339), errLink)
	}
	return c, nil
}

// session is what the sealed cookie carries from the link to the callback.
type session struct {
	Connection string `json:"c"`
	LinkID     string `json:"l"`
	State      string `json:"s"`
	Nonce      string `json:"n"`
	Verifier   string `json:"v"`
	Expires    int64  `json:"e"`
}

// Mux is where the enrollment routes are mounted (web.Server, or an
// http.ServeMux).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

var redirectPathRE = regexp.MustCompile(`^/[A-Za-z0-9._~/-]*$`)

// MountEnrollment mounts GET /enroll/{connection} and the callback of each
// refresh_token connection (its redirect_path; connections may share one).
// It refuses a redirect path that collides with another route.
func (m *Manager) MountEnrollment(mux Mux) (err error) {
	if len(m.refresh) == 0 {
		return nil
	}
	defer func() {
		if r := recover(); r != nil { // http.ServeMux panics on conflicting patterns
			err = fmt.Errorf("mounting the enrollment routes: %v", r)
		}
	}()
	mux.Handle("GET "+EnrollPath+"{connection}", http.HandlerFunc(m.serveEnroll))
	var paths []string
	for _, s := range m.refresh {
		p := m.conns[s.name].RedirectPath
		if !redirectPathRE.MatchString(p) || p == "/" || strings.HasPrefix(p, EnrollPath) {
			return fmt.Errorf("connection %q: redirect_path %q cannot be served (want a path such as /signin-oidc)", s.name, p)
		}
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		mux.Handle("GET "+p, http.HandlerFunc(m.serveCallback))
	}
	return nil
}

// provider reads the connection's discovery document.
func (m *Manager) provider(ctx context.Context, c config.Connection) (*oidc.Provider, string, error) {
	ctx = oidc.ClientContext(ctx, m.opts.HTTPClient)
	authority := strings.TrimRight(c.Authority, "/")
	// The issuer is compared below, without a trailing slash.
	p, err := oidc.NewProvider(oidc.InsecureIssuerURLContext(ctx, authority), authority)
	if err != nil {
		return nil, "", fmt.Errorf("reading the OpenID configuration of %s: %w", authority, err)
	}
	var claims struct {
		Issuer string `json:"issuer"`
	}
	if err := p.Claims(&claims); err != nil || claims.Issuer == "" {
		return nil, "", fmt.Errorf("the OpenID configuration of %s names no issuer", authority)
	}
	return p, claims.Issuer, nil
}

func (m *Manager) oauthConfig(c config.Connection, ep oauth2.Endpoint) *oauth2.Config {
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret.Reveal(),
		Endpoint:     ep,
		RedirectURL:  strings.TrimRight(m.opts.PublicURL, "/") + c.RedirectPath,
		Scopes:       c.Scopes,
	}
}

// serveEnroll checks a link, spends it and sends the browser to sign in.
func (m *Manager) serveEnroll(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("connection")
	log := m.opts.Logger.With(zap.String("connection", name), zap.String("remote", r.RemoteAddr))
	if _, ok := m.refresh[name]; !ok {
		writePage(w, http.StatusNotFound, "Unknown connection",
			fmt.Sprintf("No refresh_token connection named %q is configured.", name), "")
		return
	}
	c := m.conns[name]
	again := fmt.Sprintf("Make a new link with: nxtcron tokens enroll %s", name)
	link, err := verifyLink(m.keys, r.URL.Query().Get("t"), name, m.opts.Now())
	if err != nil {
		log.Warn("enrollment link refused", zap.Error(err))
		writePage(w, http.StatusForbidden, "This enrollment link is not valid",
			"The link is "+describeLinkError(err)+". Nothing was changed.", again)
		return
	}
	if !slices.Contains(c.Scopes, "openid") || !slices.Contains(c.Scopes, "offline_access") {
		writePage(w, http.StatusInternalServerError, "The connection cannot be enrolled",
			fmt.Sprintf("Connection %q must ask for the scopes openid and offline_access (connections[].scopes in config.yaml).", name), "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), enrollTimeout)
	defer cancel()
	p, _, err := m.provider(ctx, c)
	if err != nil { // before the link is spent: it can be opened again
		log.Warn("enrollment: the provider is unreachable", zap.Error(err))
		writePage(w, http.StatusBadGateway, "Visma Connect cannot be reached", err.Error(), "Try the same link again in a moment.")
		return
	}
	if err := m.ts.UseOnce(ctx, "link:"+link.ID, markerExpiry()); err != nil {
		if errors.Is(err, store.ErrUsed) {
			log.Warn("enrollment link used twice", zap.String("link_id", link.ID))
			writePage(w, http.StatusForbidden, "This enrollment link was used already",
				"Each link works once. Nothing was changed.", again)
			return
		}
		log.Error("enrollment: recording the link's use failed", zap.Error(err))
		writePage(w, http.StatusInternalServerError, "The enrollment failed", "The store did not answer.", "Try the same link again in a moment.")
		return
	}
	sess := session{
		Connection: name,
		LinkID:     link.ID,
		State:      randomString(32),
		Nonce:      randomString(32),
		Verifier:   oauth2.GenerateVerifier(),
		Expires:    m.opts.Now().Add(sessionTTL).Unix(),
	}
	plain, err := json.Marshal(sess)
	if err == nil {
		var sealed []byte
		if sealed, err = m.keys.Seal(purposeSession, plain); err == nil {
			http.SetCookie(w, &http.Cookie{
				Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: "/",
				MaxAge: int(sessionTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
				Secure: strings.HasPrefix(m.opts.PublicURL, "https://"),
			})
		}
	}
	if err != nil {
		writePage(w, http.StatusInternalServerError, "The enrollment failed", "The session could not be sealed.", again)
		return
	}
	target := m.oauthConfig(c, p.Endpoint()).AuthCodeURL(sess.State,
		oauth2.S256ChallengeOption(sess.Verifier), oidc.Nonce(sess.Nonce))
	log.Info("enrollment started; redirecting to sign in", zap.String("link_id", link.ID), zap.String("expected_email", c.ExpectedEmail))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, target, http.StatusFound)
}

func describeLinkError(err error) string {
	msg := strings.TrimSuffix(err.Error(), ": "+errLink.Error())
	switch {
	case strings.HasPrefix(msg, "expired"):
		return msg
	case strings.HasPrefix(msg, "made for"):
		return msg
	}
	return "not one nxtcron made (" + msg + ")"
}

// serveCallback finishes an enrollment: state, code, ID token, user.
func (m *Manager) serveCallback(w http.ResponseWriter, r *http.Request) {
	log := m.opts.Logger.With(zap.String("remote", r.RemoteAddr))
	restart := "Start again with a new link: nxtcron tokens enroll CONNECTION"
	sess, err := m.readSession(r)
	// The session cookie is spent whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if err != nil {
		log.Warn("enrollment callback without a valid session", zap.Error(err))
		writePage(w, http.StatusBadRequest, "No enrollment in progress",
			"This browser has no enrollment in progress ("+err.Error()+"). Open the enrollment link in the browser you sign in with; each link works once. Nothing was stored.", restart)
		return
	}
	name := sess.Connection
	log = log.With(zap.String("connection", name), zap.String("link_id", sess.LinkID))
	restart = fmt.Sprintf("Start again with a new link: nxtcron tokens enroll %s", name)
	c, ok := m.conns[name]
	if _, isRefresh := m.refresh[name]; !ok || !isRefresh || c.RedirectPath != r.URL.Path {
		writePage(w, http.StatusBadRequest, "Wrong callback", "This callback does not belong to the enrollment in progress. Nothing was stored.", restart)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(sess.State)) != 1 {
		log.Warn("enrollment callback with a wrong state")
		writePage(w, http.StatusBadRequest, "The sign-in does not match",
			"The state parameter does not match the enrollment in progress (an old or forged callback). Nothing was stored.", restart)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), enrollTimeout)
	defer cancel()
	if err := m.ts.UseOnce(ctx, "session:"+sess.State, markerExpiry()); err != nil {
		log.Warn("enrollment callback replayed", zap.Error(err))
		writePage(w, http.StatusBadRequest, "This sign-in was used already", "Nothing was stored.", restart)
		return
	}
	if e := q.Get("error"); e != "" {
		log.Warn("enrollment: the provider refused", zap.String("error", e), zap.String("error_description", q.Get("error_description")))
		writePage(w, http.StatusBadRequest, "Visma Connect did not sign in",
			fmt.Sprintf("Visma Connect answered %s: %s. Nothing was stored.", e, q.Get("error_description")), restart)
		return
	}
	code := q.Get("code")
	if code == "" {
		writePage(w, http.StatusBadRequest, "No authorization code", "The callback carries no code. Nothing was stored.", restart)
		return
	}
	who, st, err := m.finishEnrollment(ctx, c, sess, code)
	if err != nil {
		var pe *pageError
		if errors.As(err, &pe) {
			log.Warn("enrollment refused", zap.Error(err))
			writePage(w, pe.status, pe.title, pe.msg+" Nothing was stored.", restart)
			return
		}
		log.Error("enrollment failed", zap.Error(err))
		writePage(w, http.StatusBadGateway, "The enrollment failed", err.Error()+". Nothing was stored.", restart)
		return
	}
	m.setNeedsReenroll(name, false)
	m.setExpiry(name, st.RefreshExpiresAt)
	log.Info("connection enrolled", zap.String("enrolled_as", who), zap.Int64("generation", st.Generation), zap.Timep("refresh_expires_at", st.RefreshExpiresAt))
	msg := fmt.Sprintf("Connection %q now runs as %s (generation %d).", name, who, st.Generation)
	if st.RefreshExpiresAt != nil {
		msg += fmt.Sprintf(" Its refresh token expires around %s at the latest; enroll again before then.", st.RefreshExpiresAt.UTC().Format(time.RFC3339))
	}
	writePage(w, http.StatusOK, "Enrolled", msg, "You can close this window. nxtcron keeps the token alive from now on.")
}

// markerExpiry is how long the store keeps a single-use marker: well past
// the end of any link or session it records (the store prunes by its own
// clock, so leave room for skew).
func markerExpiry() time.Time {
	return time.Now().Add(LinkTTL + sessionTTL + time.Hour)
}

// pageError is a refusal the page explains.
type pageError struct {
	status     int
	title, msg string
}

func (e *pageError) Error() string { return e.title + ": " + e.msg }

func (m *Manager) readSession(r *http.Request) (session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return session{}, errors.New("no session cookie")
	}
	raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return session{}, errors.New("malformed session cookie")
	}
	plain, err := m.keys.Open(purposeSession, raw)
	if err != nil {
		return session{}, errors.New("the session cookie was not made by this nxtcron")
	}
	var s session
	if err := json.Unmarshal(plain, &s); err != nil {
		return session{}, errors.New("malformed session")
	}
	if !m.opts.Now().Before(time.Unix(s.Expires, 0)) {
		return session{}, fmt.Errorf("the session expired at %s", time.Unix(s.Expires, 0).UTC().Format(time.RFC3339))
	}
	return s, nil
}

// finishEnrollment swaps the code, verifies the ID token and the user,
// and stores the refresh token. It returns who enrolled.
func (m *Manager) finishEnrollment(ctx context.Context, c config.Connection, sess session, code string) (string, store.TokenState, error) {
	p, issuer, err := m.provider(ctx, c)
	if err != nil {
		return "", store.TokenState{}, err
	}
	cfg := m.oauthConfig(c, p.Endpoint())
	fetchedAt := m.opts.Now()
	t, err := cfg.Exchange(oidc.ClientContext(ctx, m.opts.HTTPClient), code, oauth2.VerifierOption(sess.Verifier))
	if err != nil {
		return "", store.TokenState{}, fmt.Errorf("swapping the authorization code: %w", classify(err))
	}
	rawID, _ := t.Extra("id_token").(string)
	if rawID == "" {
		return "", store.TokenState{}, &pageError{http.StatusBadGateway, "No ID token", "Visma Connect answered without an ID token (is the openid scope allowed?)."}
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: c.ClientID, SkipIssuerCheck: true, Now: m.opts.Now}).Verify(ctx, rawID)
	if err != nil {
		return "", store.TokenState{}, &pageError{http.StatusBadRequest, "The ID token is not valid", err.Error() + "."}
	}
	if strings.TrimRight(idt.Issuer, "/") != strings.TrimRight(issuer, "/") {
		return "", store.TokenState{}, &pageError{http.StatusBadRequest, "The ID token is not valid",
			fmt.Sprintf("It was issued by %q, not %q.", idt.Issuer, issuer)}
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(sess.Nonce)) != 1 {
		return "", store.TokenState{}, &pageError{http.StatusBadRequest, "The ID token is not valid", "Its nonce does not match this enrollment (a replayed sign-in)."}
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(t.AccessToken); err != nil {
			return "", store.TokenState{}, &pageError{http.StatusBadRequest, "The ID token is not valid", "Its at_hash does not match the access token."}
		}
	}
	var claims struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		return "", store.TokenState{}, fmt.Errorf("reading the ID token's claims: %w", err)
	}
	who := claims.Email
	if who == "" {
		who = "subject " + idt.Subject
	}
	if c.ExpectedEmail != "" && !strings.EqualFold(claims.Email, c.ExpectedEmail) {
		return "", store.TokenState{}, &pageError{http.StatusForbidden, "Wrong user",
			fmt.Sprintf("You signed in as %s, but connection %q accepts only %s. Sign out of Visma Connect (or use a private window) and open a new link as that user.",
				who, c.Name, c.ExpectedEmail)}
	}
	if t.RefreshToken == "" {
		return "", store.TokenState{}, &pageError{http.StatusBadGateway, "No refresh token",
			"Visma Connect issued no refresh token: the application must be allowed offline_access in the Visma Developer Portal."}
	}
	sealed, err := m.keys.Seal(purposeRefresh, []byte(t.RefreshToken))
	if err != nil {
		return "", store.TokenState{}, err
	}
	e := store.Enrollment{RefreshCipher: sealed, EnrolledAs: who}
	lifetime := lifetimeOf(t)
	ae := entry{
		Token:     Token{Value: config.Secret(t.AccessToken), Expiry: fetchedAt.Add(lifetime), Hash: HashToken(t.AccessToken)},
		FetchedAt: fetchedAt,
	}
	ae.RenewAt = ae.Token.Expiry.Add(-renewAhead(lifetime))
	if e.Access, err = sealAccess(m.keys, ae); err != nil {
		return "", store.TokenState{}, err
	}
	if d, ok := refreshLifetimeOf(t); ok {
		exp := fetchedAt.Add(d).UTC()
		e.RefreshExpiresAt = &exp
	} else if c.RefreshTokenLifetime > 0 {
		exp := fetchedAt.Add(c.RefreshTokenLifetime.D()).UTC()
		e.RefreshExpiresAt = &exp
	}
	st, err := m.ts.Enroll(ctx, c.Name, e)
	if err != nil {
		return "", store.TokenState{}, err
	}
	return who, st, nil
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="robots" content="noindex"><title>{{.Title}} - nxtcron</title></head>
<body>
<h1>{{.Title}}</h1>
<p id="message">{{.Message}}</p>
{{if .Next}}<p id="next">{{.Next}}</p>
{{end}}</body>
</html>
`))

func writePage(w http.ResponseWriter, status int, title, message, next string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, map[string]string{"Title": title, "Message": message, "Next": next})
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
