package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/sandbox/connect"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
)

const userConnName = "nightly-user"

// fullStore is what the daemon's stores are: store.Store and
// store.TokenStore.
type fullStore interface {
	store.Store
	store.TokenStore
}

// rig is a sandbox, a SQLite store and the keys: everything replicas share.
type rig struct {
	t       *testing.T
	sb      *sandbox.Server
	url     string
	dbPath  string // SQLite only
	st      fullStore
	keys    *Keyring
	clock   *clock
	logs    *observer.ObservedLogs
	logger  *zap.Logger
	metrics *metrics.Metrics
	client  *http.Client
}

type rigOption func(*sandbox.Options)

func withGrace(d time.Duration) rigOption {
	return func(o *sandbox.Options) { o.RefreshGrace = d }
}

func withAccessTTL(d time.Duration) rigOption {
	return func(o *sandbox.Options) { o.AccessTokenTTL = d }
}

// newRig starts a sandbox (one-time refresh tokens, reuse detection on,
// grace 0 unless an option says otherwise) on the rig's clock, and opens a
// migrated SQLite store in a temporary directory.
func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	r := &rig{t: t, clock: newClock(), metrics: metrics.New()}
	so := sandbox.DefaultOptions()
	so.Listen = "127.0.0.1:0"
	so.RefreshTokenUsage = string(connect.OneTime)
	so.RefreshGrace = 0
	so.ReuseDetection = true
	so.Admin = true
	so.Now = r.clock.Now
	for _, o := range opts {
		o(&so)
	}
	sb, err := sandbox.New(so)
	require.NoError(t, err)
	require.NoError(t, sb.Listen("127.0.0.1:0"))
	t.Cleanup(func() { _ = sb.Close() })
	r.sb, r.url = sb, sb.URL()

	r.dbPath = filepath.Join(t.TempDir(), "nxtcron.db")
	st, err := sqlite.Open(context.Background(), r.dbPath, sqlite.Options{Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	r.st = st

	r.keys, err = OpenKeys(context.Background(), r.st, KeyOptions{
		Store:    config.Store{EncryptionKeysFile: filepath.Join(t.TempDir(), "nxtcron.keys")},
		Generate: true,
	})
	require.NoError(t, err)

	core, logs := observer.New(zapcore.DebugLevel)
	r.logs, r.logger = logs, zap.New(core)
	r.client = &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(r.client.CloseIdleConnections)
	return r
}

func (r *rig) conn() config.Connection {
	return config.Connection{
		Name:                 userConnName,
		Grant:                config.GrantRefreshToken,
		Authority:            r.url,
		ClientID:             connect.WebClientID,
		ClientSecret:         connect.WebClientSecret,
		Scopes:               append([]string(nil), connect.WebClientScopes...),
		RedirectPath:         "/signin-oidc",
		Keepalive:            config.Duration(24 * time.Hour),
		RefreshTokenLifetime: config.Duration(365 * 24 * time.Hour),
	}
}

func (r *rig) serviceConn() config.Connection {
	return config.Connection{
		Name:         "service",
		Grant:        config.GrantClientCredentials,
		Authority:    r.url,
		ClientID:     connect.ServiceClientID,
		ClientSecret: connect.ServiceClientSecret,
		Scopes:       []string{connect.ScopeGraphQLService},
	}
}

// replica makes a Manager as one replica of the daemon would.
func (r *rig) replica(owner string, mod ...func(*Options)) *Manager {
	r.t.Helper()
	o := Options{
		Connections:  []config.Connection{r.conn(), r.serviceConn()},
		HTTPClient:   r.client,
		Now:          r.clock.Now,
		Logger:       r.logger.With(zap.String("owner", owner)),
		Metrics:      r.metrics,
		Store:        r.st,
		Keys:         r.keys,
		Owner:        owner,
		PublicURL:    "http://127.0.0.1:1",
		RefreshLease: 2 * time.Second,
	}
	for _, f := range mod {
		f(&o)
	}
	m, err := NewManager(o)
	require.NoError(r.t, err)
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(r.t, m.Close(ctx))
	})
	return m
}

func source(t *testing.T, m *Manager, name string) Source {
	t.Helper()
	s, err := m.Source(name)
	require.NoError(t, err)
	return s
}

// newChain starts a refresh token chain at the sandbox, as a login would.
func (r *rig) newChain(email string) string {
	r.t.Helper()
	tok, err := r.sb.Provider().NewRefreshChain(connect.WebClientID, email, "")
	require.NoError(r.t, err)
	return tok
}

// enrollChain imports a fresh chain of the job user and returns its first
// refresh token.
func (r *rig) enrollChain() string {
	r.t.Helper()
	tok := r.newChain(connect.JobUserEmail)
	_, err := Import(context.Background(), r.st, r.keys, r.conn(), tok, r.clock.Now())
	require.NoError(r.t, err)
	return tok
}

func (r *rig) state() store.TokenState {
	r.t.Helper()
	st, err := r.st.TokenState(context.Background(), userConnName)
	require.NoError(r.t, err)
	return st
}

// storedRefresh opens the refresh token the store holds now.
func (r *rig) storedRefresh() string {
	r.t.Helper()
	st := r.state()
	require.NotNil(r.t, st.RefreshCipher)
	plain, err := r.keys.Open(purposeRefresh, st.RefreshCipher)
	require.NoError(r.t, err)
	return string(plain)
}

func (r *rig) stats() sandbox.Stats { return r.sb.Stats() }

// spend uses a refresh token at the token endpoint the way another client
// would, and returns the refresh token it was rotated to.
func (r *rig) spend(refresh string) (string, int) {
	r.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
	req, err := http.NewRequest(http.MethodPost, r.url+connect.PathToken, strings.NewReader(form.Encode()))
	require.NoError(r.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(connect.WebClientID, connect.WebClientSecret)
	resp, err := r.client.Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.RefreshToken, resp.StatusCode
}

// requireStoreHasNoSecret reads the store's files byte by byte and fails if
// any of the secrets is in them.
func (r *rig) requireStoreHasNoSecret(secrets ...string) {
	r.t.Helper()
	files, err := filepath.Glob(r.dbPath + "*")
	require.NoError(r.t, err)
	require.NotEmpty(r.t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(r.t, err)
		for _, s := range secrets {
			require.NotEmpty(r.t, s)
			require.Falsef(r.t, bytes.Contains(b, []byte(s)), "%s holds a token in clear text", filepath.Base(f))
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting for "+what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
