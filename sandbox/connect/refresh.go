package connect

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// chain is one login's refresh tokens.
type chain struct {
	client  *client
	user    *user
	scopes  []string
	login   time.Time // start of the absolute lifetime, and auth_time
	lastUse time.Time // start of the sliding lifetime
	revoked bool
	tokens  []string
}

// expiry is when the chain stops working under opts.
func (c *chain) expiry(opts Options) time.Time {
	sliding := c.lastUse.Add(opts.RefreshSlidingTTL)
	absolute := c.login.Add(opts.RefreshAbsoluteTTL)
	if sliding.Before(absolute) {
		return sliding
	}
	return absolute
}

type refreshToken struct {
	chain      *chain
	consumedAt time.Time // zero while the token is live
	successor  string    // the token it was rotated to
}

// newChainLocked starts a chain as if the user had just logged in and returns
// its first refresh token. p.mu must be held.
func (p *Provider) newChainLocked(c *client, u *user, scopes []string, login time.Time) string {
	ch := &chain{client: c, user: u, scopes: scopes, login: login, lastUse: login}
	p.chains[ch] = struct{}{}
	return p.addTokenLocked(ch)
}

func (p *Provider) addTokenLocked(ch *chain) string {
	tok := randomToken()
	ch.tokens = append(ch.tokens, tok)
	p.tokens[tok] = &refreshToken{chain: ch}
	return tok
}

func (p *Provider) revokeChainLocked(ch *chain) {
	ch.revoked = true
}

// redeem uses a refresh token for client c at now. It returns the chain and
// the refresh token to answer with. The rotation is stored when it returns.
func (p *Provider) redeem(tok string, c *client, now time.Time) (*chain, string, *oauthError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(now)
	rt := p.tokens[tok]
	if rt == nil {
		return nil, "", errInvalidGrant("unknown refresh token")
	}
	ch := rt.chain
	if ch.client != c {
		return nil, "", errInvalidGrant("the refresh token was issued to another client")
	}
	if ch.revoked {
		return nil, "", errInvalidGrant("the refresh token was revoked")
	}
	opts := p.opts
	if !now.Before(ch.expiry(opts)) {
		return nil, "", errInvalidGrant("the refresh token expired")
	}
	if !rt.consumedAt.IsZero() {
		if now.Sub(rt.consumedAt) < opts.RefreshGrace {
			ch.lastUse = now
			return ch, rt.successor, nil
		}
		p.reuseDetected.Add(1)
		if opts.ReuseDetection {
			p.revokeChainLocked(ch)
			return nil, "", errInvalidGrant("the refresh token was already used; its chain is revoked")
		}
		return nil, "", errInvalidGrant("the refresh token was already used")
	}
	ch.lastUse = now
	if opts.RefreshTokenUsage == Reuse {
		return ch, tok, nil
	}
	next := p.addTokenLocked(ch)
	rt.consumedAt = now
	rt.successor = next
	return ch, next, nil
}

// sweepLocked drops expired codes, chains a day past their expiry and the ids
// of revoked access tokens that expired, at most once a minute. p.mu must be held.
func (p *Provider) sweepLocked(now time.Time) {
	if now.Sub(p.swept) < time.Minute {
		return
	}
	p.swept = now
	for code, ac := range p.codes {
		if !now.Before(ac.expires) {
			delete(p.codes, code)
		}
	}
	for ch := range p.chains {
		// Kept a day past expiry, so that an error can still say why.
		if !now.Before(ch.expiry(p.opts).Add(24 * time.Hour)) {
			for _, tok := range ch.tokens {
				delete(p.tokens, tok)
			}
			delete(p.chains, ch)
		}
	}
	for jti, exp := range p.revoked {
		if !now.Before(exp) {
			delete(p.revoked, jti)
		}
	}
}

// NewRefreshChain starts a refresh token chain for the user with email at
// client clientID, as if the user had just logged in through the authorize
// endpoint, and returns its first refresh token. An empty scope means every
// scope the client may have.
func (p *Provider) NewRefreshChain(clientID, email, scope string) (string, error) {
	c := clients[clientID]
	if c == nil {
		return "", fmt.Errorf("unknown client %q", clientID)
	}
	if !c.allows(GrantRefreshToken) {
		return "", fmt.Errorf("client %s does not use refresh tokens", clientID)
	}
	u := userByEmail(email)
	if u == nil {
		return "", fmt.Errorf("unknown user %q", email)
	}
	scopes, err := c.checkScopes(scope)
	if err != nil {
		return "", err
	}
	if !slices.Contains(scopes, "offline_access") {
		return "", errors.New("scope must include offline_access")
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.newChainLocked(c, u, scopes, now), nil
}
