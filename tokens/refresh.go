package tokens

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/store"
)

// Errors of refresh-token connections; match with errors.Is. Both wrap
// ErrPermanent too: a run that needs the connection fails for good.
var (
	// ErrNeedsReenroll: the provider refused the connection's refresh token
	// (invalid_grant); a person must sign in again with
	// `nxtcron tokens enroll CONN`. Nothing asks the provider for the
	// connection until then.
	ErrNeedsReenroll = errors.New("connection needs a new enrollment")
	// ErrNotEnrolled: the connection has no refresh token yet.
	ErrNotEnrolled = errors.New("connection is not enrolled")
)

// Defaults of refresh-token rotation.
const (
	// DefaultRefreshLease is how long a replica holds a connection's refresh
	// lease: longer than one exchange (DefaultExchangeTimeout) plus the
	// store write that ends it.
	DefaultRefreshLease = 30 * time.Second
	// DefaultExchangeTimeout bounds one exchange of a refresh token at the
	// token endpoint (retries included). It runs on a context that neither
	// shutdown nor job cancellation cancels: once a one-time refresh token
	// is sent, its successor must be stored.
	DefaultExchangeTimeout = 20 * time.Second

	// storeTimeout bounds one store operation of a rotation.
	storeTimeout = 10 * time.Second
	// maxStaleReads bounds the re-reads of one rotation when the record
	// keeps changing under it.
	maxStaleReads = 20
	// saveBackoffMax caps the pause between attempts to store a rotation
	// after the exchange succeeded.
	saveBackoffMax = 5 * time.Second
)

// refreshSource is the Source of a refresh_token connection: the access
// token and the rotating refresh token live in the store, shared by every
// job and replica; a rotation runs under the connection's durable lease.
type refreshSource struct {
	name      string
	cfg       *oauth2.Config
	m         *Manager
	ts        store.TokenStore
	codec     *accessCodec
	log       *zap.Logger
	metrics   *metrics.Metrics
	lifetime  time.Duration // refresh_token_lifetime
	keepalive time.Duration

	mu       sync.Mutex
	inflight *flight
	// pending is a rotation the provider answered but the store did not
	// take yet: its tokens are the only valid ones, kept in memory while
	// the write is retried.
	pending *pendingRotation
	// After a failed renewal the cached token (heldHash) is handed out
	// without asking again until heldUntil.
	heldHash  string
	heldUntil time.Time
}

type pendingRotation struct {
	generation int64
	rotation   store.Rotation
	access     entry
}

var _ Source = (*refreshSource)(nil)

func newRefreshSource(m *Manager, c config.Connection) (*refreshSource, error) {
	tokenURL, err := tokenEndpoint(c.Authority)
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", c.Name, err)
	}
	if c.ClientID == "" {
		return nil, fmt.Errorf("connection %q: client_id is empty", c.Name)
	}
	s := &refreshSource{
		name: c.Name,
		cfg: &oauth2.Config{
			ClientID:     c.ClientID,
			ClientSecret: c.ClientSecret.Reveal(),
			Endpoint:     oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader},
			Scopes:       c.Scopes,
		},
		m:         m,
		ts:        m.ts,
		codec:     m.codec,
		log:       m.opts.Logger.With(zap.String("connection", c.Name)),
		metrics:   m.opts.Metrics,
		lifetime:  c.RefreshTokenLifetime.D(),
		keepalive: c.Keepalive.D(),
	}
	return s, nil
}

func (s *refreshSource) now() time.Time { return s.m.opts.Now() }

// needsReenroll is the one error of a connection whose refresh token was
// refused, saying what to do.
func needsReenroll(connection, why string) error {
	if why == "" {
		why = "its refresh token was refused"
	}
	return fmt.Errorf("connection %q needs a new enrollment: %s; a person must sign in again: run `nxtcron tokens enroll %s` and open the link it prints: %w",
		connection, why, connection, errors.Join(ErrNeedsReenroll, ErrPermanent))
}

func notEnrolled(connection string) error {
	return fmt.Errorf("connection %q has no refresh token yet: enroll the job user with `nxtcron tokens enroll %s` (or import a refresh token with `nxtcron tokens import %s`): %w",
		connection, connection, connection, errors.Join(ErrNotEnrolled, ErrPermanent))
}

// state reads the connection's record and turns the states that cannot
// give a token into their errors.
func (s *refreshSource) state(ctx context.Context) (store.TokenState, error) {
	st, err := s.ts.TokenState(ctx, s.name)
	if errors.Is(err, store.ErrNotFound) {
		s.m.setNeedsReenroll(s.name, true)
		return st, notEnrolled(s.name)
	}
	if err != nil {
		return st, fmt.Errorf("reading the tokens of connection %q: %w", s.name, err)
	}
	if st.Status == store.TokenStatusNeedsReenroll {
		s.m.setNeedsReenroll(s.name, true)
		return st, needsReenroll(s.name, st.StatusMessage)
	}
	if st.RefreshCipher == nil {
		s.m.setNeedsReenroll(s.name, true)
		return st, notEnrolled(s.name)
	}
	return st, nil
}

// access opens the record's access token, if it has one.
func (s *refreshSource) access(st store.TokenState) (entry, bool) {
	if st.Access == nil {
		return entry{}, false
	}
	e, err := s.codec.open(s.name, st.Access)
	if err != nil {
		s.log.Warn("the stored access token does not open; refreshing", zap.Error(err))
		return entry{}, false
	}
	return e, true
}

// Token implements Source.
func (s *refreshSource) Token(ctx context.Context) (Token, error) {
	if tok, ok, err := s.pendingToken(); ok || err != nil {
		return tok, err
	}
	st, err := s.state(ctx)
	if err != nil {
		if !errors.Is(err, ErrPermanent) {
			// The store is unreachable: the access token this process
			// saw last serves while it is valid. The refresh token is
			// never used without the store.
			if e, ok := s.codec.lastOpened(s.name); ok && s.now().Before(e.Token.Expiry) {
				s.log.Warn("reading the token state failed; using the access token in memory until it expires",
					zap.String("token_id", e.Token.ID()), zap.Time("expires_at", e.Token.Expiry), zap.Error(err))
				return e.Token, nil
			}
		}
		return Token{}, err
	}
	cached, ok := s.access(st)
	now := s.now()
	if ok && (now.Before(cached.RenewAt) || (now.Before(cached.Token.Expiry) && s.held(cached.Token.Hash, now))) {
		return cached.Token, nil
	}
	tok, err := s.fetch(ctx, -1)
	if err == nil {
		return tok, nil
	}
	if ctx.Err() == nil && ok && !errors.Is(err, ErrNeedsReenroll) && s.now().Before(cached.Token.Expiry) {
		s.hold(cached.Token.Hash, s.now().Add(renewRetry))
		s.log.Warn("refreshing the access token failed; using the cached one until it expires",
			zap.String("token_id", cached.Token.ID()), zap.Time("expires_at", cached.Token.Expiry),
			zap.Duration("next_try_in", renewRetry), zap.Error(err))
		return cached.Token, nil
	}
	return Token{}, err
}

func (s *refreshSource) held(hash string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heldHash == hash && now.Before(s.heldUntil)
}

func (s *refreshSource) hold(hash string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heldHash, s.heldUntil = hash, until
}

// pendingToken hands out the access token of a rotation whose store write
// is still being retried; ok is false when there is none.
func (s *refreshSource) pendingToken() (Token, bool, error) {
	s.mu.Lock()
	p := s.pending
	s.mu.Unlock()
	if p == nil {
		return Token{}, false, nil
	}
	if s.now().Before(p.access.Token.Expiry) {
		return p.access.Token, true, nil
	}
	return Token{}, false, fmt.Errorf("connection %q: the rotated refresh token is not stored yet (the store refuses the write); retrying", s.name)
}

// Invalidate implements Source: after a 401 the stored access token goes
// if it is still the one that failed, so the next Token rotates.
func (s *refreshSource) Invalidate(hash string) {
	s.codec.forget(s.name, hash)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.m.st.InvalidateAccessToken(ctx, s.name, hash); err != nil {
		s.log.Warn("invalidating the cached access token failed", zap.Error(err))
		return
	}
	s.log.Info("access token refused with a 401; dropped from the store if still the current one",
		zap.String("token_id", Token{Hash: hash}.ID()))
}

// fetch joins the rotation in progress or starts one. forceGen >= 0 asks
// for a rotation even though the access token is fresh, unless the
// generation moved past forceGen meanwhile (keepalive). The rotation runs
// on its own context; ctx bounds only the wait.
func (s *refreshSource) fetch(ctx context.Context, forceGen int64) (Token, error) {
	s.mu.Lock()
	f := s.inflight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		s.inflight = f
		s.mu.Unlock()
		s.m.goBG(func() {
			f.tok, f.err = s.rotate(context.WithoutCancel(ctx), forceGen)
			s.mu.Lock()
			s.inflight = nil
			s.mu.Unlock()
			close(f.done)
		})
	} else {
		s.mu.Unlock()
	}
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return Token{}, fmt.Errorf("waiting for a token for connection %q: %w", s.name, context.Cause(ctx))
	}
}

// rotate obtains a fresh access token: from the store when another replica
// rotated meanwhile, else by rotating the refresh token under the lease.
func (s *refreshSource) rotate(ctx context.Context, forceGen int64) (Token, error) {
	waitUntil := time.Now().Add(s.m.lease + 5*time.Second)
	poll := 100 * time.Millisecond
	for reads := 0; ; reads++ {
		if tok, ok, err := s.pendingToken(); ok || err != nil {
			return tok, err
		}
		rctx, cancel := context.WithTimeout(ctx, storeTimeout)
		st, err := s.state(rctx)
		cancel()
		if err != nil {
			return Token{}, err
		}
		cached, ok := s.access(st)
		if forceGen >= 0 && st.Generation != forceGen {
			forceGen = -1 // someone rotated meanwhile: the keepalive is served
		}
		if forceGen < 0 && ok && s.now().Before(cached.RenewAt) {
			return cached.Token, nil
		}
		if reads >= maxStaleReads {
			return Token{}, fmt.Errorf("refreshing the token of connection %q: the stored record keeps changing", s.name)
		}
		lctx, cancel := context.WithTimeout(ctx, storeTimeout)
		_, err = s.ts.LeaseRefresh(lctx, s.name, s.m.owner, st.Generation, s.m.lease)
		cancel()
		switch {
		case err == nil:
			return s.exchange(ctx, st)
		case errors.Is(err, store.ErrStale):
			continue // another replica rotated, or an operator enrolled: read again
		case errors.Is(err, store.ErrLeaseHeld):
			// Another replica is rotating: use the current token while it
			// is valid, else wait for theirs.
			if ok && s.now().Before(cached.Token.Expiry) {
				return cached.Token, nil
			}
			if time.Now().After(waitUntil) {
				return Token{}, fmt.Errorf("refreshing the token of connection %q: waited for another replica's rotation: %w", s.name, err)
			}
			select {
			case <-time.After(poll):
			case <-s.m.closing:
				return Token{}, fmt.Errorf("refreshing the token of connection %q: shutting down", s.name)
			}
			poll = min(2*poll, time.Second)
			reads = 0
		default:
			return Token{}, fmt.Errorf("refreshing the token of connection %q: %w", s.name, err)
		}
	}
}

// exchange swaps the leased refresh token at the token endpoint and stores
// the result (tx2). st is the record the lease was taken on.
func (s *refreshSource) exchange(ctx context.Context, st store.TokenState) (Token, error) {
	gen := st.Generation
	refresh, err := s.m.keys.Open(purposeRefresh, st.RefreshCipher)
	if err != nil {
		s.release(ctx, gen)
		return Token{}, fmt.Errorf("refreshing the token of connection %q: %w", s.name, err)
	}
	xctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, s.m.opts.HTTPClient), s.m.exchangeTimeout)
	defer cancel()
	fetchedAt := s.now()
	t, err := s.request(xctx, string(refresh))
	if err != nil {
		return Token{}, s.exchangeFailed(ctx, gen, err)
	}
	s.metrics.TokenRefresh(s.name, "ok")
	lifetime := lifetimeOf(t)
	e := entry{
		Token:     Token{Value: config.Secret(t.AccessToken), Expiry: fetchedAt.Add(lifetime), Hash: HashToken(t.AccessToken)},
		FetchedAt: fetchedAt,
	}
	e.RenewAt = e.Token.Expiry.Add(-renewAhead(lifetime))
	s.codec.remember(s.name, e)
	next := t.RefreshToken // x/oauth2 keeps the old one when the answer has none
	rot := store.Rotation{}
	if d, ok := refreshLifetimeOf(t); ok {
		exp := fetchedAt.Add(d)
		rot.RefreshExpiresAt = &exp
	}
	if rot.RefreshCipher, err = s.m.keys.Seal(purposeRefresh, []byte(next)); err == nil {
		rot.Access, err = sealAccess(s.m.keys, e)
	}
	if err != nil {
		// Sealing does not fail short of a broken random source; the
		// rotated token cannot be kept safely.
		s.log.Error("CRITICAL: sealing the rotated refresh token failed; it is lost", zap.Bool("critical", true), zap.Error(err))
		return Token{}, fmt.Errorf("refreshing the token of connection %q: %w", s.name, err)
	}
	sctx, scancel := context.WithTimeout(ctx, storeTimeout)
	done, err := s.ts.CompleteRefresh(sctx, s.name, s.m.owner, gen, rot)
	scancel()
	if errors.Is(err, store.ErrStale) && done.Connection != "" && done.Generation != gen {
		// Our lease ran out during the exchange and another replica
		// stored a rotation (with a grace period, the same successor).
		s.log.Warn("another replica stored a newer refresh token during this exchange; adopting it",
			zap.Int64("generation", gen), zap.Int64("stored_generation", done.Generation))
		return e.Token, nil
	}
	if err != nil {
		s.keepPending(&pendingRotation{generation: gen, rotation: rot, access: e}, err)
		return e.Token, nil
	}
	s.stored(done)
	s.log.Info("refresh token rotated",
		zap.Int64("generation", done.Generation), zap.String("token_id", e.Token.ID()),
		zap.Duration("lifetime", lifetime), zap.Time("renew_at", e.RenewAt))
	return e.Token, nil
}

// request sends the refresh token, retrying transient failures within the
// exchange's deadline: if the provider rotated but its answer was lost, the
// same token again within the provider's grace period gets the same
// successor.
func (s *refreshSource) request(ctx context.Context, refresh string) (*oauth2.Token, error) {
	delays := []time.Duration{500 * time.Millisecond, 2 * time.Second}
	for attempt := 0; ; attempt++ {
		t, err := s.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
		if err == nil {
			return t, nil
		}
		err = classify(err)
		if errors.Is(err, ErrPermanent) || attempt >= len(delays) {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delays[attempt] {
			return nil, err
		}
		s.log.Warn("refreshing the access token failed; retrying with the same refresh token",
			zap.Int("attempt", attempt+1), zap.Duration("delay", delays[attempt]), zap.Error(err))
		select {
		case <-time.After(delays[attempt]):
		case <-ctx.Done():
			return nil, err
		}
	}
}

// exchangeFailed handles a refused or failed exchange: invalid_grant marks
// the connection needs_reenroll; anything else releases the lease.
func (s *refreshSource) exchangeFailed(ctx context.Context, gen int64, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		s.metrics.TokenRefresh(s.name, "invalid_grant")
		why := fmt.Sprintf("Visma Connect refused its refresh token on %s (invalid_grant", s.now().UTC().Format(time.RFC3339))
		if re.ErrorDescription != "" {
			why += ": " + re.ErrorDescription
		}
		why += ")"
		mctx, cancel := context.WithTimeout(ctx, storeTimeout)
		_, merr := s.ts.MarkNeedsReenroll(mctx, s.name, s.m.owner, gen, why)
		cancel()
		if merr != nil && !errors.Is(merr, store.ErrStale) {
			s.log.Error("recording that the connection needs a new enrollment failed", zap.Error(merr))
		}
		if errors.Is(merr, store.ErrStale) {
			// Another replica stored a newer token meanwhile: ours was
			// stale, theirs is good.
			s.log.Warn("refresh token refused, but another replica stored a newer one", zap.Int64("generation", gen))
			return fmt.Errorf("refreshing the token of connection %q: the refresh token changed meanwhile; retry", s.name)
		}
		s.m.setNeedsReenroll(s.name, true)
		rerr := needsReenroll(s.name, why)
		s.log.Error("the refresh token was refused; the connection needs a new enrollment",
			zap.String("action", "nxtcron tokens enroll "+s.name), zap.Error(rerr))
		return rerr
	}
	s.metrics.TokenRefresh(s.name, "error")
	s.release(ctx, gen)
	s.log.Warn("refreshing the access token failed",
		zap.String("token_endpoint", s.cfg.Endpoint.TokenURL), zap.Bool("permanent", errors.Is(err, ErrPermanent)), zap.Error(err))
	return fmt.Errorf("refreshing the token of connection %q: %w", s.name, err)
}

func (s *refreshSource) release(ctx context.Context, gen int64) {
	rctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := s.ts.ReleaseRefresh(rctx, s.name, s.m.owner, gen); err != nil {
		s.log.Warn("releasing the refresh lease failed; it runs out by itself", zap.Error(err))
	}
}

// stored publishes a stored rotation or enrollment in the metrics.
func (s *refreshSource) stored(st store.TokenState) {
	s.m.setNeedsReenroll(s.name, false)
	s.m.setExpiry(s.name, st.RefreshExpiresAt)
}

// keepPending keeps a rotation the store refused in memory and retries the
// write in the background until it is stored, or another replica stored a
// newer generation. The old refresh token is never used again.
func (s *refreshSource) keepPending(p *pendingRotation, err error) {
	s.mu.Lock()
	s.pending = p
	s.mu.Unlock()
	s.log.Error("CRITICAL: storing the rotated refresh token failed; keeping it in memory and retrying",
		zap.Bool("critical", true), zap.Int64("generation", p.generation), zap.Error(err))
	s.m.goBG(func() { s.savePending(p) })
}

func (s *refreshSource) savePending(p *pendingRotation) {
	backoff := 250 * time.Millisecond
	clear := func() {
		s.mu.Lock()
		if s.pending == p {
			s.pending = nil
		}
		s.mu.Unlock()
	}
	for attempt := 2; ; attempt++ {
		last := false
		select {
		case <-time.After(backoff):
		case <-s.m.abandon:
			last = true
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		done, err := s.ts.CompleteRefresh(ctx, s.name, s.m.owner, p.generation, p.rotation)
		if errors.Is(err, store.ErrStale) && done.Generation != p.generation && done.Connection != "" {
			cancel()
			clear()
			s.log.Warn("another replica stored a newer refresh token; dropping the rotation kept in memory",
				zap.Int64("generation", p.generation), zap.Int64("stored_generation", done.Generation))
			return
		}
		cancel()
		if err == nil {
			clear()
			s.stored(done)
			s.log.Info("the rotated refresh token is stored", zap.Int64("generation", done.Generation), zap.Int("attempts", attempt))
			return
		}
		if last {
			s.log.Error("CRITICAL: shutting down with a rotated refresh token that the store did not take; "+
				"unless the provider's grace period saves it, the connection will need a new enrollment",
				zap.Bool("critical", true), zap.Int64("generation", p.generation), zap.Error(err))
			return
		}
		s.log.Error("CRITICAL: storing the rotated refresh token failed again",
			zap.Bool("critical", true), zap.Int("attempt", attempt), zap.Duration("next_try_in", backoff), zap.Error(err))
		backoff = min(2*backoff, saveBackoffMax)
	}
}

// keepaliveStep refreshes the metrics from the store and rotates the
// refresh token when it has not changed for keepalive (measured with the
// database's clock), so that a sliding expiry never runs out while no job
// uses the connection.
func (s *refreshSource) keepaliveStep(ctx context.Context, dbNow time.Time) {
	st, err := s.state(ctx)
	if err != nil {
		if !errors.Is(err, ErrPermanent) {
			s.log.Warn("keepalive: reading the token state failed", zap.Error(err))
		}
		return
	}
	s.m.setNeedsReenroll(s.name, false)
	s.m.setExpiry(s.name, st.RefreshExpiresAt)
	if st.RefreshedAt != nil && dbNow.Sub(*st.RefreshedAt) < s.keepalive {
		return
	}
	if st.LeaseOwner != "" && st.LeaseUntil != nil && st.LeaseUntil.After(dbNow) {
		return // someone is rotating right now
	}
	s.log.Info("keepalive: rotating the refresh token", zap.Duration("keepalive", s.keepalive), zap.Timep("refreshed_at", st.RefreshedAt))
	if _, err := s.fetch(ctx, st.Generation); err != nil {
		s.log.Warn("keepalive: rotating the refresh token failed", zap.Error(err))
	}
}

// refreshLifetimeOf reads how long the new refresh token lives from the
// token response, when the provider says (refresh_token_expires_in, or
// refresh_expires_in); Visma Connect does not.
func refreshLifetimeOf(t *oauth2.Token) (time.Duration, bool) {
	for _, key := range []string{"refresh_token_expires_in", "refresh_expires_in"} {
		var secs float64
		switch v := t.Extra(key).(type) {
		case float64:
			secs = v
		case string:
			secs, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		if secs > 0 {
			return time.Duration(secs * float64(time.Second)), true
		}
	}
	return 0, false
}
