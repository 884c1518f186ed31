package connect

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Errors of VerifyAccessToken; the returned error wraps one of them.
var (
	ErrInvalidToken  = errors.New("invalid token")
	ErrTokenExpired  = errors.New("token expired")
	ErrWrongAudience = errors.New("token audience does not match")
	ErrTokenRevoked  = errors.New("token revoked")
)

// AccessClaims are the claims of an access token.
type AccessClaims struct {
	Issuer    string           `json:"iss"`
	Audience  jwt.Audience     `json:"aud"`
	Subject   string           `json:"sub"`
	ClientID  string           `json:"client_id"`
	Scope     string           `json:"scope"`
	TenantID  string           `json:"tenant_id,omitempty"`
	ID        string           `json:"jti"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	Expiry    *jwt.NumericDate `json:"exp"`
}

// Scopes returns the granted scopes.
func (c *AccessClaims) Scopes() []string { return strings.Fields(c.Scope) }

// HasScope reports whether scope was granted.
func (c *AccessClaims) HasScope(scope string) bool { return slices.Contains(c.Scopes(), scope) }

// grant is what a token response is made from.
type grant struct {
	client   *client
	user     *user // nil for client credentials
	scopes   []string
	tenantID string
	nonce    string
	authTime time.Time
}

func (p *Provider) signAccessToken(g grant, issuer, audience string, now time.Time, ttl time.Duration) (string, error) {
	claims := map[string]any{
		"iss":       issuer,
		"aud":       audience,
		"client_id": g.client.id,
		"scope":     strings.Join(g.scopes, " "),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(ttl).Unix(),
		"jti":       randomString(16),
	}
	if g.user != nil {
		claims["sub"] = g.user.sub
		claims["auth_time"] = g.authTime.Unix()
		claims["idp"] = "local"
	} else {
		claims["sub"] = g.client.id
	}
	if g.tenantID != "" {
		claims["tenant_id"] = g.tenantID
	}
	tok, err := jwt.Signed(p.atSigner).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing access token: %w", err)
	}
	return tok, nil
}

func (p *Provider) signIDToken(g grant, issuer, accessToken string, now time.Time) (string, error) {
	sum := sha256.Sum256([]byte(accessToken))
	claims := map[string]any{
		"iss":       issuer,
		"aud":       g.client.id,
		"sub":       g.user.sub,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(IDTokenTTL).Unix(),
		"auth_time": g.authTime.Unix(),
		"at_hash":   base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]),
		"idp":       "local",
	}
	if slices.Contains(g.scopes, "email") {
		claims["email"] = g.user.email
		claims["email_verified"] = true
	}
	if slices.Contains(g.scopes, "profile") {
		claims["name"] = g.user.name
	}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	tok, err := jwt.Signed(p.idSigner).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing id token: %w", err)
	}
	return tok, nil
}

// parseAccessToken checks the signature, type, issuer, validity period and
// revocation of an access token, not its audience.
func (p *Provider) parseAccessToken(raw, issuer string) (*AccessClaims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, fmt.Errorf("%w: malformed token", ErrInvalidToken)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: expected one signature", ErrInvalidToken)
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") {
		return nil, fmt.Errorf("%w: token type %q is not at+JWT", ErrInvalidToken, typ)
	}
	var c AccessClaims
	if err := tok.Claims(&p.key.PublicKey, &c); err != nil {
		return nil, fmt.Errorf("%w: signature verification failed", ErrInvalidToken)
	}
	if c.Issuer != issuer {
		return nil, fmt.Errorf("%w: issuer %q is not %q", ErrInvalidToken, c.Issuer, issuer)
	}
	now := p.now()
	if c.Expiry == nil || !now.Before(c.Expiry.Time()) {
		return nil, fmt.Errorf("%w: the token expired", ErrTokenExpired)
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Time()) {
		return nil, fmt.Errorf("%w: the token is not valid yet", ErrInvalidToken)
	}
	p.mu.Lock()
	_, revoked := p.revoked[c.ID]
	p.mu.Unlock()
	if revoked {
		return nil, fmt.Errorf("%w: the token was revoked", ErrTokenRevoked)
	}
	return &c, nil
}

// VerifyAccessToken checks an access token presented to the resource at
// audience (a full URL such as http://127.0.0.1:8700/api/graphql): its RS256
// signature by this provider's key, the at+JWT type, the issuer, the validity
// period, revocation, and the audience. Scopes are the caller's to check.
func (p *Provider) VerifyAccessToken(raw, issuer, audience string) (*AccessClaims, error) {
	c, err := p.parseAccessToken(raw, issuer)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.Audience, audience) {
		return nil, fmt.Errorf("%w: token is for %s, not %s", ErrWrongAudience, strings.Join(c.Audience, " "), audience)
	}
	return c, nil
}

// KeySet returns the public signing keys (what the JWKS endpoint serves).
func (p *Provider) KeySet() jose.JSONWebKeySet { return p.jwks }
