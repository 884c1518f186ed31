package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/store"
)

// Statuses of a connection's tokens in `tokens list` and /api/tokens.
const (
	// StatusOK: the refresh token worked the last time it was used.
	StatusOK = "ok"
	// StatusExpiring: ok, but the refresh token's absolute expiry is
	// within ExpiryWarning: enroll again before it.
	StatusExpiring = "expiring"
	// StatusExpired: the refresh token's absolute expiry has passed.
	StatusExpired = "expired"
	// StatusNeedsReenroll: the provider refused the refresh token.
	StatusNeedsReenroll = "needs_reenroll"
	// StatusNotEnrolled: no refresh token yet.
	StatusNotEnrolled = "not_enrolled"
	// StatusCached and StatusEmpty are client-credentials connections with
	// and without a cached access token.
	StatusCached = "cached"
	StatusEmpty  = "empty"
)

// ExpiryWarning is how long before the refresh token's absolute expiry its
// connection reads "expiring".
const ExpiryWarning = 14 * 24 * time.Hour

// RevokePath is the revocation endpoint's path under the authority.
const RevokePath = "/connect/revoke"

// Status is what `tokens list` and /api/tokens show of one connection's
// tokens. It never holds a token.
type Status struct {
	Connection string `json:"connection"`
	Grant      string `json:"grant,omitempty"`
	// Configured is false for stored tokens of a connection config.yaml no
	// longer names (rename or revoke them).
	Configured       bool       `json:"configured"`
	Status           string     `json:"status"`
	NeedsReenroll    bool       `json:"needs_reenroll"`
	Message          string     `json:"message,omitempty"`
	Action           string     `json:"action,omitempty"`
	Generation       int64      `json:"generation"`
	EnrolledAs       string     `json:"enrolled_as,omitempty"`
	EnrolledAt       *time.Time `json:"enrolled_at,omitempty"`
	RefreshedAt      *time.Time `json:"refreshed_at,omitempty"`
	RefreshExpiresAt *time.Time `json:"refresh_expires_at,omitempty"`
	AccessExpiresAt  *time.Time `json:"access_expires_at,omitempty"`
	LeaseOwner       string     `json:"lease_owner,omitempty"`
	LeaseUntil       *time.Time `json:"lease_until,omitempty"`
	// KeyID names the key the refresh (else access) token is sealed with.
	KeyID string `json:"key_id,omitempty"`
}

// List describes the tokens of every configured connection and of every
// stored one, by connection name; now decides "expiring" and "expired".
func List(ctx context.Context, ts store.TokenStore, conns []config.Connection, now time.Time) ([]Status, error) {
	states, err := ts.TokenStates(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]store.TokenState{}
	for _, st := range states {
		byName[st.Connection] = st
	}
	var out []Status
	seen := map[string]bool{}
	for _, c := range conns {
		st, ok := byName[c.Name]
		out = append(out, describe(c.Name, c.Grant, true, st, ok, now))
		seen[c.Name] = true
	}
	for _, st := range states {
		if !seen[st.Connection] {
			grant := config.GrantClientCredentials
			if st.RefreshCipher != nil || st.Generation > 0 {
				grant = config.GrantRefreshToken
			}
			out = append(out, describe(st.Connection, grant, false, st, true, now))
		}
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Connection, b.Connection) })
	return out, nil
}

func describe(name, grant string, configured bool, st store.TokenState, stored bool, now time.Time) Status {
	s := Status{Connection: name, Grant: grant, Configured: configured}
	if stored {
		s.Generation = st.Generation
		s.EnrolledAs = st.EnrolledAs
		s.EnrolledAt = st.EnrolledAt
		s.RefreshedAt = st.RefreshedAt
		s.RefreshExpiresAt = st.RefreshExpiresAt
		s.LeaseOwner = st.LeaseOwner
		s.LeaseUntil = st.LeaseUntil
		s.Message = st.StatusMessage
		if st.Access != nil {
			exp := st.Access.Expiry
			s.AccessExpiresAt = &exp
			s.KeyID = CipherKeyID(st.Access.Cipher)
		}
		if st.RefreshCipher != nil {
			s.KeyID = CipherKeyID(st.RefreshCipher)
		}
	}
	enroll := fmt.Sprintf("nxtcron tokens enroll %s", name)
	switch {
	case grant == config.GrantClientCredentials && stored && st.Access != nil:
		s.Status = StatusCached
	case grant == config.GrantClientCredentials:
		s.Status = StatusEmpty
	case stored && st.Status == store.TokenStatusNeedsReenroll:
		s.Status, s.NeedsReenroll = StatusNeedsReenroll, true
		s.Action = "a person must sign in again: " + enroll
	case !stored || st.RefreshCipher == nil:
		s.Status, s.NeedsReenroll = StatusNotEnrolled, true
		s.Action = enroll + " (or: nxtcron tokens import " + name + ")"
	case st.RefreshExpiresAt != nil && !now.Before(*st.RefreshExpiresAt):
		s.Status, s.NeedsReenroll = StatusExpired, true
		s.Action = "the refresh token expired: " + enroll
	case st.RefreshExpiresAt != nil && st.RefreshExpiresAt.Sub(now) < ExpiryWarning:
		s.Status = StatusExpiring
		s.Action = fmt.Sprintf("enroll again before %s: %s", st.RefreshExpiresAt.UTC().Format(time.RFC3339), enroll)
	default:
		s.Status = StatusOK
	}
	if !configured {
		s.Action = fmt.Sprintf("no connection %q in config.yaml: nxtcron tokens rename %s NEW, or nxtcron tokens revoke %s", name, name, name)
	}
	return s
}

// List describes the tokens of the Manager's connections and of every
// stored one (see List).
func (m *Manager) List(ctx context.Context) ([]Status, error) {
	if m.ts == nil {
		return nil, errors.New("listing tokens: the token manager has no store")
	}
	return List(ctx, m.ts, m.opts.Connections, m.opts.Now())
}

// Import stores a refresh token obtained elsewhere (the stdin of `nxtcron
// tokens import`) as the connection's new chain, as an enrollment would;
// its absolute expiry is counted from now.
func Import(ctx context.Context, ts store.TokenStore, k *Keyring, c config.Connection, refreshToken string, now time.Time) (store.TokenState, error) {
	if c.Grant != config.GrantRefreshToken {
		return store.TokenState{}, fmt.Errorf("connection %q has grant %s; only refresh_token connections take a refresh token", c.Name, c.Grant)
	}
	refreshToken = strings.TrimSpace(refreshToken)
	if refreshToken == "" || strings.ContainsAny(refreshToken, " \t\r\n") {
		return store.TokenState{}, errors.New("want one refresh token (without spaces) on standard input")
	}
	sealed, err := k.Seal(purposeRefresh, []byte(refreshToken))
	if err != nil {
		return store.TokenState{}, err
	}
	e := store.Enrollment{RefreshCipher: sealed}
	if c.RefreshTokenLifetime > 0 {
		exp := now.Add(c.RefreshTokenLifetime.D()).UTC()
		e.RefreshExpiresAt = &exp
	}
	st, err := ts.Enroll(ctx, c.Name, e)
	if err != nil {
		return store.TokenState{}, fmt.Errorf("importing the refresh token of connection %q: %w", c.Name, err)
	}
	return st, nil
}

// Revoke tells the provider to revoke the connection's refresh token (RFC
// 7009, which ends its whole chain) and forgets every token of the
// connection. With remote false, or for a client-credentials connection, it
// only forgets. It reports whether the provider was asked.
func Revoke(ctx context.Context, ts store.TokenStore, k *Keyring, c config.Connection, client *http.Client, remote bool) (bool, error) {
	st, err := ts.TokenState(ctx, c.Name)
	if err != nil {
		return false, err
	}
	asked := false
	if remote && c.Grant == config.GrantRefreshToken && st.RefreshCipher != nil {
		refresh, err := k.Open(purposeRefresh, st.RefreshCipher)
		if err != nil {
			return false, fmt.Errorf("revoking the refresh token of connection %q: %w", c.Name, err)
		}
		if err := revoke(ctx, client, c, string(refresh)); err != nil {
			return false, fmt.Errorf("revoking the refresh token of connection %q (nothing was forgotten; --local forgets it without asking the provider): %w", c.Name, err)
		}
		asked = true
	}
	if err := ts.DeleteTokens(ctx, c.Name); err != nil {
		return asked, err
	}
	return asked, nil
}

func revoke(ctx context.Context, client *http.Client, c config.Connection, token string) error {
	if c.Authority == config.AuthoritySandbox {
		return errors.New(`authority "sandbox" has not been replaced by the sandbox's URL`)
	}
	endpoint := strings.TrimRight(c.Authority, "/") + RevokePath
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret.Reveal()))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", endpoint, resp.Status)
	}
	return nil
}
