package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/store"
)

// Errors of this package; match with errors.Is.
var (
	// ErrPermanent marks a refusal by the token endpoint that asking again
	// will not change (wrong client id or secret, a scope the client may not
	// have): fix the configuration or the client in the Visma Developer
	// Portal.
	ErrPermanent = errors.New("permanent token error")
	// ErrUnknownConnection: no connection of that name is configured.
	ErrUnknownConnection = errors.New("unknown connection")
	// ErrUnsupportedGrant: the connection's grant has no Source in this build.
	ErrUnsupportedGrant = errors.New("grant not supported by this build")
)

// Defaults and fixed rules of token handling.
const (
	// DefaultLifetime is the lifetime assumed when the token response has no
	// expires_in.
	DefaultLifetime = 300 * time.Second
	// MaxRenewAhead caps how long before its expiry a token is renewed; the
	// lead time is min(MaxRenewAhead, lifetime/4).
	MaxRenewAhead = 5 * time.Minute
	// TokenPath is the token endpoint's path under the authority.
	TokenPath = "/connect/token"

	// fetchTimeout bounds one request to the token endpoint. The request runs
	// on a context of its own (callers that stop waiting do not cancel it for
	// the others), so it needs a bound of its own.
	fetchTimeout = 30 * time.Second
	// renewRetry is how long a cached token that is due for renewal but not
	// expired is used without asking again after a renewal failed.
	renewRetry = 15 * time.Second
	// defaultHTTPTimeout is the time-out of the HTTP client made when
	// Options.HTTPClient is nil.
	defaultHTTPTimeout = 30 * time.Second
)

// Token is an access token. Its value is a config.Secret so that printing or
// logging a Token shows no secret.
type Token struct {
	Value config.Secret
	// Expiry is when the provider stops accepting the token.
	Expiry time.Time
	// Hash is the hex SHA-256 of Value: compare tokens and report 401s by it.
	Hash string
}

// HashToken returns the hex SHA-256 of a token value, the Hash of a Token.
func HashToken(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

// ID returns a short, loggable name for the token: the first 12 characters of
// its hash.
func (t Token) ID() string {
	if len(t.Hash) < 12 {
		return t.Hash
	}
	return t.Hash[:12]
}

// Source hands out access tokens for one connection. It is safe for
// concurrent use.
type Source interface {
	// Token returns a token that is valid now, renewing the cached one when
	// it is due.
	Token(ctx context.Context) (Token, error)
	// Invalidate forgets the cached token if its hash is still hash. Call it
	// after a 401 with the hash of the token the request carried.
	Invalidate(hash string)
}

// Options configure a Manager.
type Options struct {
	// Connections are the configured connections; an authority of "sandbox"
	// must already be replaced by the sandbox's base URL.
	Connections []config.Connection
	// HTTPClient talks to the token endpoints; nil means a client with a
	// 30 s time-out.
	HTTPClient *http.Client
	// Now is the clock that decides expiry; nil means time.Now.
	Now func() time.Time
	// Logger receives token events; nil means no logging.
	Logger *zap.Logger
	// Metrics counts token requests; nil records nothing.
	Metrics *metrics.Metrics

	// Store keeps the access tokens (shared by every job and replica) and
	// the refresh tokens, sealed with Keys. It must implement
	// store.TokenStore. Without a Store, access tokens are cached in
	// memory and refresh_token connections are refused.
	Store store.Store
	// Keys seal every token the store holds; required with Store.
	Keys *Keyring
	// Owner names this replica in refresh leases; default a random id.
	Owner string
	// PublicURL is http.public_url: the base of enrollment links and of
	// the redirect URIs.
	PublicURL string
	// RefreshLease and ExchangeTimeout default to DefaultRefreshLease and
	// DefaultExchangeTimeout; tests shorten them.
	RefreshLease    time.Duration
	ExchangeTimeout time.Duration
}

// Manager holds the Sources of the configured connections.
type Manager struct {
	opts            Options
	conns           map[string]config.Connection
	sources         map[string]*clientCredentials
	refresh         map[string]*refreshSource
	noStore         map[string]string // refresh_token connections refused for want of a store
	st              store.Store
	ts              store.TokenStore
	keys            *Keyring
	codec           *accessCodec
	owner           string
	lease           time.Duration
	exchangeTimeout time.Duration

	// bg counts rotations and pending store writes; Close waits for them.
	bg          sync.WaitGroup
	bgMu        sync.Mutex
	closed      bool          // set by Close: new work runs in its caller
	closing     chan struct{} // closed by Close: stop waiting for leases
	abandon     chan struct{} // closed when Close is done or gives up waiting
	closeOnce   sync.Once
	abandonOnce sync.Once
}

// NewManager checks the connections and makes a Source for each.
func NewManager(opts Options) (*Manager, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.RefreshLease <= 0 {
		opts.RefreshLease = DefaultRefreshLease
	}
	if opts.ExchangeTimeout <= 0 {
		opts.ExchangeTimeout = DefaultExchangeTimeout
	}
	m := &Manager{
		opts:            opts,
		conns:           map[string]config.Connection{},
		sources:         map[string]*clientCredentials{},
		refresh:         map[string]*refreshSource{},
		noStore:         map[string]string{},
		st:              opts.Store,
		keys:            opts.Keys,
		owner:           opts.Owner,
		lease:           opts.RefreshLease,
		exchangeTimeout: opts.ExchangeTimeout,
		closing:         make(chan struct{}),
		abandon:         make(chan struct{}),
	}
	if m.owner == "" {
		m.owner = "nxtcron-" + randomID(6)
	}
	if opts.Store != nil {
		ts, ok := opts.Store.(store.TokenStore)
		if !ok {
			return nil, fmt.Errorf("configuring token sources: store %T cannot keep refresh tokens (no store.TokenStore)", opts.Store)
		}
		if opts.Keys == nil {
			return nil, fmt.Errorf("configuring token sources: a store needs encryption keys: %w", ErrNoKeys)
		}
		m.ts = ts
		m.codec = newAccessCodec(opts.Keys)
	}
	var errs []error
	for _, c := range opts.Connections {
		if c.Name == "" {
			errs = append(errs, errors.New("connection without a name"))
			continue
		}
		if _, dup := m.conns[c.Name]; dup {
			errs = append(errs, fmt.Errorf("connection %q: defined twice", c.Name))
			continue
		}
		m.conns[c.Name] = c
		switch c.Grant {
		case config.GrantClientCredentials:
			var ca cache = newMemoryCache()
			if m.st != nil {
				ca = &storeCache{st: m.st, codec: m.codec}
			}
			s, err := newClientCredentials(c, opts, ca)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			m.sources[c.Name] = s
		case config.GrantRefreshToken:
			if m.st == nil {
				m.noStore[c.Name] = c.Grant
				continue
			}
			s, err := newRefreshSource(m, c)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			m.refresh[c.Name] = s
		default:
			errs = append(errs, fmt.Errorf("connection %q: unknown grant %q (want %s or %s)",
				c.Name, c.Grant, config.GrantClientCredentials, config.GrantRefreshToken))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configuring token sources: %w", err)
	}
	return m, nil
}

// Source returns the Source of a connection.
func (m *Manager) Source(connection string) (Source, error) {
	if s, ok := m.sources[connection]; ok {
		return s, nil
	}
	if s, ok := m.refresh[connection]; ok {
		return s, nil
	}
	if grant, ok := m.noStore[connection]; ok {
		return nil, fmt.Errorf("connection %q: grant %s needs a store: %w", connection, grant, ErrUnsupportedGrant)
	}
	names := make([]string, 0, len(m.conns))
	for n := range m.conns {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("connection %q (configured: %s): %w", connection, strings.Join(names, ", "), ErrUnknownConnection)
}

// Owner is the name of this replica in refresh leases.
func (m *Manager) Owner() string { return m.owner }

// Close stops the background work: it waits (until ctx is done) for
// rotations in flight and for rotated tokens whose store write is being
// retried, so that a shutdown never drops the only valid refresh token
// while the store can still take it.
func (m *Manager) Close(ctx context.Context) error {
	m.bgMu.Lock()
	m.closed = true
	m.bgMu.Unlock()
	m.closeOnce.Do(func() { close(m.closing) })
	done := make(chan struct{})
	go func() {
		m.bg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		m.abandonOnce.Do(func() { close(m.abandon) })
		<-done
		err = fmt.Errorf("closing the token manager: %w", context.Cause(ctx))
	}
	m.abandonOnce.Do(func() { close(m.abandon) })
	return err
}

// goBG runs f in a goroutine that Close waits for, or, once Close has
// begun, in the caller.
func (m *Manager) goBG(f func()) {
	m.bgMu.Lock()
	if m.closed {
		m.bgMu.Unlock()
		f()
		return
	}
	m.bg.Add(1)
	m.bgMu.Unlock()
	go func() {
		defer m.bg.Done()
		f()
	}()
}

func (m *Manager) setNeedsReenroll(connection string, on bool) {
	if m.opts.Metrics == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	m.opts.Metrics.ConnectionNeedsReenroll.WithLabelValues(connection).Set(v)
}

func (m *Manager) setExpiry(connection string, at *time.Time) {
	if m.opts.Metrics == nil || at == nil {
		return
	}
	m.opts.Metrics.RefreshTokenExpiry.WithLabelValues(connection).Set(float64(at.Unix()))
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// entry is what the cache keeps per connection: the token and when to renew
// it. A store-backed cache keeps both (encrypted) so that every replica renews
// at the same moment.
type entry struct {
	Token     Token
	RenewAt   time.Time
	FetchedAt time.Time
}

// cache keeps one token per connection. The in-memory cache serves a single
// process; a store-backed one (store.Store's access-token methods) shares the
// token between replicas.
type cache interface {
	Load(ctx context.Context, connection string) (entry, bool, error)
	Save(ctx context.Context, connection string, e entry) error
	// Invalidate drops the connection's entry if its token hash is hash.
	Invalidate(ctx context.Context, connection, hash string) error
}

// clientCredentials is the Source of a client-credentials connection.
type clientCredentials struct {
	name    string
	cfg     *clientcredentials.Config
	client  *http.Client
	now     func() time.Time
	log     *zap.Logger
	metrics *metrics.Metrics
	cache   cache

	mu sync.Mutex
	// inflight is the request to the token endpoint in progress, if any;
	// every caller that needs a new token meanwhile waits for it.
	inflight *flight
	// After a failed renewal, the cached token (hash heldHash) is handed
	// out without asking again until heldUntil, so a failing token
	// endpoint is not asked once per GraphQL request.
	heldHash  string
	heldUntil time.Time
}

// flight is one request to the token endpoint; done is closed when tok and
// err are set.
type flight struct {
	done chan struct{}
	tok  Token
	err  error
}

var _ Source = (*clientCredentials)(nil)

func newClientCredentials(c config.Connection, opts Options, ca cache) (*clientCredentials, error) {
	tokenURL, err := tokenEndpoint(c.Authority)
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", c.Name, err)
	}
	if c.ClientID == "" {
		return nil, fmt.Errorf("connection %q: client_id is empty", c.Name)
	}
	cfg := &clientcredentials.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret.Reveal(),
		TokenURL:     tokenURL,
		Scopes:       c.Scopes,
		// Visma Connect takes HTTP Basic; auto-detection would send a second
		// request with the secret in the body after every refusal.
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	if c.TenantID != "" {
		cfg.EndpointParams = url.Values{"tenant_id": {c.TenantID}}
	}
	s := &clientCredentials{
		name:    c.Name,
		cfg:     cfg,
		client:  opts.HTTPClient,
		now:     opts.Now,
		log:     opts.Logger.With(zap.String("connection", c.Name)),
		metrics: opts.Metrics,
		cache:   ca,
	}
	return s, nil
}

// tokenEndpoint returns the token endpoint of an authority (its base URL).
func tokenEndpoint(authority string) (string, error) {
	if authority == config.AuthoritySandbox {
		return "", errors.New(`authority "sandbox" has not been replaced by the sandbox's URL`)
	}
	u, err := url.Parse(authority)
	if err != nil {
		return "", fmt.Errorf("authority %q: %w", authority, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("authority %q: want an http or https URL such as https://connect.visma.com", authority)
	}
	return strings.TrimRight(authority, "/") + TokenPath, nil
}

// Token implements Source.
func (s *clientCredentials) Token(ctx context.Context) (Token, error) {
	cached, ok := s.load(ctx)
	now := s.now()
	if ok && (now.Before(cached.RenewAt) || (now.Before(cached.Token.Expiry) && s.held(cached.Token.Hash, now))) {
		return cached.Token, nil
	}
	tok, err := s.fetch(ctx)
	if err == nil {
		return tok, nil
	}
	if ctx.Err() == nil && ok && s.now().Before(cached.Token.Expiry) {
		s.hold(cached.Token.Hash, s.now().Add(renewRetry))
		s.log.Warn("renewing the access token failed; using the cached one until it expires",
			zap.String("token_id", cached.Token.ID()), zap.Time("expires_at", cached.Token.Expiry),
			zap.Duration("next_try_in", renewRetry), zap.Error(err))
		return cached.Token, nil
	}
	return Token{}, err
}

func (s *clientCredentials) held(hash string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heldHash == hash && now.Before(s.heldUntil)
}

func (s *clientCredentials) hold(hash string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heldHash, s.heldUntil = hash, until
}

// Invalidate implements Source.
func (s *clientCredentials) Invalidate(hash string) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	if err := s.cache.Invalidate(ctx, s.name, hash); err != nil {
		s.log.Warn("invalidating the cached access token failed", zap.Error(err))
		return
	}
	s.log.Info("access token refused with a 401; dropped from the cache if still the current one",
		zap.String("token_id", Token{Hash: hash}.ID()))
}

func (s *clientCredentials) load(ctx context.Context) (entry, bool) {
	e, ok, err := s.cache.Load(ctx, s.name)
	if err != nil {
		s.log.Warn("reading the token cache failed; asking the token endpoint", zap.Error(err))
		return entry{}, false
	}
	return e, ok
}

// fetch returns the result of the request to the token endpoint in progress,
// starting one if none is. The request runs on its own context so that a
// caller who gives up does not fail it for the others; ctx bounds the wait.
func (s *clientCredentials) fetch(ctx context.Context) (Token, error) {
	s.mu.Lock()
	f := s.inflight
	if f == nil {
		// A request that ended since the caller looked may have left a
		// fresh token: no need for another one.
		if e, ok := s.load(ctx); ok && s.now().Before(e.RenewAt) {
			s.mu.Unlock()
			return e.Token, nil
		}
		f = &flight{done: make(chan struct{})}
		s.inflight = f
		go s.run(context.WithoutCancel(ctx), f)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return Token{}, fmt.Errorf("waiting for a token for connection %q: %w", s.name, context.Cause(ctx))
	}
}

// run performs one request to the token endpoint and publishes its result.
func (s *clientCredentials) run(ctx context.Context, f *flight) {
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, s.client), fetchTimeout)
	defer cancel()
	f.tok, f.err = s.request(ctx)
	s.mu.Lock()
	s.inflight = nil
	s.mu.Unlock()
	close(f.done)
}

func (s *clientCredentials) request(ctx context.Context) (Token, error) {
	fetchedAt := s.now()
	t, err := s.cfg.Token(ctx)
	if err != nil {
		s.metrics.TokenRefresh(s.name, "error")
		err = classify(err)
		s.log.Warn("requesting an access token failed",
			zap.String("token_endpoint", s.cfg.TokenURL), zap.Bool("permanent", errors.Is(err, ErrPermanent)), zap.Error(err))
		return Token{}, fmt.Errorf("requesting a token for connection %q: %w", s.name, err)
	}
	s.metrics.TokenRefresh(s.name, "ok")
	lifetime := lifetimeOf(t)
	tok := Token{
		Value:  config.Secret(t.AccessToken),
		Expiry: fetchedAt.Add(lifetime),
		Hash:   HashToken(t.AccessToken),
	}
	e := entry{Token: tok, RenewAt: tok.Expiry.Add(-renewAhead(lifetime)), FetchedAt: fetchedAt}
	if err := s.cache.Save(ctx, s.name, e); err != nil {
		s.log.Warn("saving the access token in the cache failed", zap.Error(err))
	}
	s.log.Info("access token obtained",
		zap.String("token_id", tok.ID()), zap.Duration("lifetime", lifetime),
		zap.Time("expires_at", tok.Expiry), zap.Time("renew_at", e.RenewAt))
	return tok, nil
}

// lifetimeOf reads expires_in from the token response; without one (or with
// a nonsensical one) the token counts as valid for DefaultLifetime.
func lifetimeOf(t *oauth2.Token) time.Duration {
	var secs float64
	switch v := t.Extra("expires_in").(type) {
	case float64:
		secs = v
	case string: // some providers send a string; unparsable counts as absent
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs <= 0 {
		return DefaultLifetime
	}
	return time.Duration(secs * float64(time.Second))
}

// renewAhead is how long before its expiry a token of this lifetime is
// renewed.
func renewAhead(lifetime time.Duration) time.Duration {
	return min(MaxRenewAhead, lifetime/4)
}

// permanentCodes are RFC 6749 error codes that asking again will not change.
var permanentCodes = map[string]bool{
	"invalid_client":         true,
	"invalid_grant":          true,
	"invalid_scope":          true,
	"unauthorized_client":    true,
	"unsupported_grant_type": true,
}

// classify marks permanent refusals with ErrPermanent and shortens errors
// without an RFC 6749 code, whose text would otherwise carry the whole
// response body.
func classify(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	if re.ErrorCode == "" {
		status := "no response"
		if re.Response != nil {
			status = re.Response.Status
		}
		err = &statusError{status: status, err: re}
		if re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("%w: %w", ErrPermanent, err)
		}
		return err
	}
	if permanentCodes[re.ErrorCode] {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return err
}

// statusError is a token endpoint failure without an RFC 6749 error code.
type statusError struct {
	status string
	err    *oauth2.RetrieveError
}

func (e *statusError) Error() string { return "token endpoint answered " + e.status }
func (e *statusError) Unwrap() error { return e.err }

// memoryCache is the in-process cache.
type memoryCache struct {
	mu sync.Mutex
	m  map[string]entry
}

func newMemoryCache() *memoryCache { return &memoryCache{m: map[string]entry{}} }

func (c *memoryCache) Load(_ context.Context, connection string) (entry, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[connection]
	return e, ok, nil
}

func (c *memoryCache) Save(_ context.Context, connection string, e entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[connection] = e
	return nil
}

func (c *memoryCache) Invalidate(_ context.Context, connection, hash string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[connection]; ok && e.Token.Hash == hash {
		delete(c.m, connection)
	}
	return nil
}
