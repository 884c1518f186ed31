package connect_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sandbox/connect"
)

func newChain(t *testing.T, p *connect.Provider) string {
	t.Helper()
	tok, err := p.NewRefreshChain(connect.WebClientID, connect.JobUserEmail, "")
	require.NoError(t, err)
	require.NotEmpty(t, tok)
	return tok
}

func TestRefreshOneTimeRotation(t *testing.T) {
	p, srv := start(t, nil)
	tok := newChain(t, p)
	seen := map[string]bool{tok: true}
	for i := range 25 {
		r := refresh(t, srv, tok)
		require.Equal(t, http.StatusOK, r.status, "rotation %d: %s", i, r.raw)
		next := r.str("refresh_token")
		require.NotEmpty(t, next)
		require.False(t, seen[next], "rotation %d returned a token seen before", i)
		seen[next] = true
		require.NotEmpty(t, r.str("id_token"))
		c, err := p.VerifyAccessToken(r.str("access_token"), srv.URL, srv.URL+connect.PathGraphQL)
		require.NoError(t, err)
		require.Equal(t, "3f1c9a52-6b0e-4d8e-9a57-0c2b8f7d1e01", c.Subject)
		tok = next
	}
	require.Equal(t, connect.GrantCounts{OK: 25}, p.Stats().TokenRequests.RefreshToken)
	require.Zero(t, p.Stats().ReuseDetected)
}

func TestRefreshReuseMode(t *testing.T) {
	p, srv := start(t, func(o *connect.Options) { o.RefreshTokenUsage = connect.Reuse })
	tok := newChain(t, p)
	accessTokens := map[string]bool{}
	for i := range 5 {
		r := refresh(t, srv, tok)
		require.Equal(t, http.StatusOK, r.status, "use %d: %s", i, r.raw)
		require.Equal(t, tok, r.str("refresh_token"))
		accessTokens[r.str("access_token")] = true
	}
	require.Len(t, accessTokens, 5)
	require.Zero(t, p.Stats().ReuseDetected)
}

func TestRefreshGrace(t *testing.T) {
	clock := newFakeClock()
	p, srv := start(t, func(o *connect.Options) {
		o.Now = clock.Now
		o.RefreshGrace = 10 * time.Second
	})
	a := newChain(t, p)
	r := refresh(t, srv, a)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	b := r.str("refresh_token")

	// Within the grace period the consumed token answers with the same
	// successor.
	clock.Advance(5 * time.Second)
	r = refresh(t, srv, a)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, b, r.str("refresh_token"))
	clock.Advance(4 * time.Second)
	r = refresh(t, srv, a)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, b, r.str("refresh_token"))

	// The successor still works.
	r = refresh(t, srv, b)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	c := r.str("refresh_token")
	require.NotEqual(t, b, c)

	// After the grace period it is reuse: refused, and the chain is revoked.
	clock.Advance(time.Second)
	requireOAuthError(t, refresh(t, srv, a), 400, "invalid_grant")
	requireOAuthError(t, refresh(t, srv, c), 400, "invalid_grant")
	require.EqualValues(t, 1, p.Stats().ReuseDetected)
}

func TestReuseDetection(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		p, srv := start(t, nil)
		a := newChain(t, p)
		b := refresh(t, srv, a).str("refresh_token")
		c := refresh(t, srv, b).str("refresh_token")
		require.NotEmpty(t, c)

		r := refresh(t, srv, a)
		requireOAuthError(t, r, 400, "invalid_grant")
		require.Contains(t, r.str("error_description"), "already used")
		r = refresh(t, srv, c)
		requireOAuthError(t, r, 400, "invalid_grant")
		require.Contains(t, r.str("error_description"), "revoked")
		require.EqualValues(t, 1, p.Stats().ReuseDetected)
		require.Equal(t, connect.GrantCounts{OK: 2, Error: 2}, p.Stats().TokenRequests.RefreshToken)

		// Another chain of the same user is not affected.
		d := newChain(t, p)
		require.Equal(t, http.StatusOK, refresh(t, srv, d).status)
	})
	t.Run("off", func(t *testing.T) {
		p, srv := start(t, func(o *connect.Options) { o.ReuseDetection = false })
		a := newChain(t, p)
		b := refresh(t, srv, a).str("refresh_token")
		requireOAuthError(t, refresh(t, srv, a), 400, "invalid_grant")
		r := refresh(t, srv, b)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		require.EqualValues(t, 1, p.Stats().ReuseDetected, "reuse is counted even when it revokes nothing")
	})
}

func TestRefreshConcurrentUseRotatesOnce(t *testing.T) {
	p, srv := start(t, nil)
	a := newChain(t, p)
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = refresh(t, srv, a).status
		})
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			ok++
		}
	}
	require.Equal(t, 1, ok, "statuses %v", statuses)
}

func TestRefreshExpiry(t *testing.T) {
	clock := newFakeClock()
	p, srv := start(t, func(o *connect.Options) {
		o.Now = clock.Now
		o.RefreshSlidingTTL = time.Hour
		o.RefreshAbsoluteTTL = 3 * time.Hour
	})

	t.Run("sliding", func(t *testing.T) {
		tok := newChain(t, p)
		clock.Advance(59 * time.Minute)
		r := refresh(t, srv, tok)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		clock.Advance(time.Hour)
		r = refresh(t, srv, r.str("refresh_token"))
		requireOAuthError(t, r, 400, "invalid_grant")
		require.Contains(t, r.str("error_description"), "expired")
	})
	t.Run("absolute", func(t *testing.T) {
		tok := newChain(t, p)
		for range 3 { // used at 59, 118 and 177 minutes: each use slides the expiry
			clock.Advance(59 * time.Minute)
			r := refresh(t, srv, tok)
			require.Equal(t, http.StatusOK, r.status, r.raw)
			tok = r.str("refresh_token")
		}
		clock.Advance(3 * time.Minute) // 180 minutes after the login
		r := refresh(t, srv, tok)
		requireOAuthError(t, r, 400, "invalid_grant")
		require.Contains(t, r.str("error_description"), "expired")
	})
	t.Run("reuse mode slides too", func(t *testing.T) {
		opts := p.Options()
		opts.RefreshTokenUsage = connect.Reuse
		require.NoError(t, p.SetOptions(opts))
		tok := newChain(t, p)
		for range 2 {
			clock.Advance(50 * time.Minute)
			require.Equal(t, http.StatusOK, refresh(t, srv, tok).status)
		}
		clock.Advance(time.Hour)
		requireOAuthError(t, refresh(t, srv, tok), 400, "invalid_grant")
	})
}

func TestRefreshScope(t *testing.T) {
	p, srv := start(t, nil)
	tok := newChain(t, p)
	form := func(scope string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "scope": {scope}}
	}
	r := postForm(t, tokenURL(srv), form("openid admin"), connect.WebClientID, connect.WebClientSecret)
	requireOAuthError(t, r, 400, "invalid_scope")

	// The refused request did not consume the token.
	r = postForm(t, tokenURL(srv), form(connect.ScopeGraphQL), connect.WebClientID, connect.WebClientSecret)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, connect.ScopeGraphQL, r.str("scope"))
	require.NotContains(t, r.body, "id_token", "no openid scope, no ID token")
	c, err := p.VerifyAccessToken(r.str("access_token"), srv.URL, srv.URL+connect.PathGraphQL)
	require.NoError(t, err)
	require.Equal(t, []string{connect.ScopeGraphQL}, c.Scopes())
}

func TestNewRefreshChainErrors(t *testing.T) {
	p, _ := start(t, nil)
	for _, tc := range []struct{ client, email, scope, err string }{
		{"nobody", connect.JobUserEmail, "", "unknown client"},
		{connect.ServiceClientID, connect.JobUserEmail, "", "does not use refresh tokens"},
		{connect.WebClientID, "who@example.com", "", "unknown user"},
		{connect.WebClientID, connect.JobUserEmail, "openid admin", "not allowed"},
		{connect.WebClientID, connect.JobUserEmail, "openid", "offline_access"},
	} {
		_, err := p.NewRefreshChain(tc.client, tc.email, tc.scope)
		require.ErrorContains(t, err, tc.err)
	}
}

func TestHoldAfterCommit(t *testing.T) {
	p, srv := start(t, func(o *connect.Options) { o.ReuseDetection = false })
	held := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.ServeHTTP(w, r.WithContext(connect.WithHoldAfterCommit(r.Context(), 5*time.Second)))
	}))
	t.Cleanup(held.Close)

	a := newChain(t, p)
	impatient := &http.Client{Timeout: 300 * time.Millisecond}
	_, err := impatient.PostForm(held.URL+connect.PathToken, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {a},
		"client_id": {connect.WebClientID}, "client_secret": {connect.WebClientSecret},
	})
	require.Error(t, err, "the client gives up while the answer is held")

	// The rotation was committed before the hold: the old token is consumed
	// and the client never saw its successor.
	require.Equal(t, connect.GrantCounts{OK: 1}, p.Stats().TokenRequests.RefreshToken)
	requireOAuthError(t, refresh(t, srv, a), 400, "invalid_grant")
}
