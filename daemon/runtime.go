package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/bnxt"
	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/postgres"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/tokens"
)

// Runtime is what every verb needs: the store, the job set, token sources
// and clients, and (when enabled) the in-process sandbox.
type Runtime struct {
	Config  *config.Config
	Logger  *zap.Logger
	Metrics *metrics.Metrics
	Store   store.Store
	Sandbox *sandbox.Server
	Tokens  *tokens.Manager
	Runner  *jobs.Runner
	// Keys seal the stored tokens (loaded with Connect or Keys).
	Keys *tokens.Keyring

	mu      sync.RWMutex
	jobs    []*jobs.Job
	clients map[string]*bnxt.Client
	conns   []config.Connection
}

// OpenOptions tune Open.
type OpenOptions struct {
	// Migrate applies store migrations (serve does unless store.migrate is
	// off); verbs that only read leave it false and fail on an old schema.
	Migrate bool
	// NoJobs skips loading job files (migrate, sandbox-free verbs).
	NoJobs bool
	// Connect starts the in-process sandbox (when a connection uses it) and
	// sets up token sources and the runner: verbs that run jobs need it,
	// verbs that only read state do not.
	Connect bool
	// Keys loads the encryption keys (and checks them against the store)
	// without Connect; Connect implies it.
	Keys bool
	// Owner names this process in refresh-token leases; default
	// ReplicaID().
	Owner   string
	Metrics *metrics.Metrics
}

// Open builds a Runtime from cfg.
func Open(ctx context.Context, cfg *config.Config, log *zap.Logger, o OpenOptions) (_ *Runtime, err error) {
	if log == nil {
		log = zap.NewNop()
	}
	rt := &Runtime{Config: cfg, Logger: log, Metrics: o.Metrics, clients: map[string]*bnxt.Client{}}
	defer func() {
		if err != nil {
			rt.Close()
		}
	}()

	rt.Store, err = OpenStore(ctx, cfg, log, o.Migrate)
	if err != nil {
		return nil, err
	}

	if o.Connect || o.Keys {
		if !o.Migrate {
			// The key check lives in a migrated table: say what is missing.
			if err := checkMigrations(ctx, rt); err != nil {
				return nil, err
			}
		}
		if rt.Keys, err = OpenKeys(ctx, cfg, rt.Store, log); err != nil {
			return nil, err
		}
	}

	if !o.NoJobs {
		js, err := jobs.Load(cfg)
		if err != nil {
			return nil, err
		}
		rt.jobs = js
	}
	if !o.Connect {
		return rt, nil
	}

	conns := append([]config.Connection(nil), cfg.Connections...)
	if usesSandbox(conns) {
		if !cfg.Sandbox.Enabled {
			return nil, errors.New("a connection uses the sandbox but sandbox.enabled is false")
		}
		rt.Sandbox, err = sandbox.New(cfg.Sandbox.Options)
		if err != nil {
			return nil, fmt.Errorf("starting sandbox: %w", err)
		}
		if err := rt.Sandbox.Listen(cfg.Sandbox.Listen); err != nil {
			return nil, fmt.Errorf("starting sandbox on %s: %w", cfg.Sandbox.Listen, err)
		}
		log.Info("sandbox listening", zap.String("url", rt.Sandbox.URL()))
	}
	conns = resolveSandbox(conns, rt.sandboxURL())
	rt.conns = conns

	owner := o.Owner
	if owner == "" {
		owner = ReplicaID()
	}
	rt.Tokens, err = tokens.NewManager(tokens.Options{
		Connections: conns,
		HTTPClient:  &http.Client{Timeout: 30 * time.Second},
		Logger:      log.With(zap.String("component", "tokens")),
		Metrics:     o.Metrics,
		Store:       rt.Store,
		Keys:        rt.Keys,
		Owner:       owner,
		PublicURL:   cfg.HTTP.PublicURL,
	})
	if err != nil {
		return nil, fmt.Errorf("setting up connections: %w", err)
	}
	rt.Runner = &jobs.Runner{Store: rt.Store, Clients: rt, Logger: log.With(zap.String("component", "runner")), Metrics: o.Metrics}
	return rt, nil
}

// OpenKeys loads the encryption keys and checks them against the store's
// key check. With SQLite a missing key file is generated; with Postgres it
// is an error (replicas must share their keys).
func OpenKeys(ctx context.Context, cfg *config.Config, st store.Store, log *zap.Logger) (*tokens.Keyring, error) {
	ts, ok := st.(store.TokenStore)
	if !ok {
		return nil, fmt.Errorf("store %T cannot keep tokens", st)
	}
	k, err := tokens.OpenKeys(ctx, ts, tokens.KeyOptions{
		Store:    cfg.Store,
		Generate: strings.HasPrefix(cfg.Store.DSN.Reveal(), "sqlite:"),
		Logger:   log.With(zap.String("component", "tokens")),
	})
	if err != nil {
		return nil, fmt.Errorf("encryption keys: %w", err)
	}
	return k, nil
}

// Connections returns the configured connections with "sandbox" resolved
// to the in-process sandbox (only after Open with Connect).
func (rt *Runtime) Connections() []config.Connection {
	return rt.conns
}

// OpenStore opens the store that store.dsn names.
func OpenStore(ctx context.Context, cfg *config.Config, log *zap.Logger, migrate bool) (store.Store, error) {
	dsn := cfg.Store.DSN.Reveal()
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		st, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: migrate, Logger: log.With(zap.String("component", "store"))})
		if err != nil {
			return nil, fmt.Errorf("opening store %s: %w", path, err)
		}
		return st, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		st, err := postgres.Open(ctx, dsn, postgres.Options{
			Schema: cfg.Store.Schema, Migrate: migrate, Logger: log.With(zap.String("component", "store")),
		})
		if err != nil {
			return nil, err // it names the schema, never the DSN (a secret)
		}
		return st, nil
	default:
		return nil, errors.New("store.dsn: expected sqlite:PATH or postgres://...")
	}
}

func usesSandbox(conns []config.Connection) bool {
	for _, c := range conns {
		if c.Authority == config.AuthoritySandbox || c.GraphQLURL == config.GraphQLSandbox {
			return true
		}
	}
	return false
}

// resolveSandbox points "sandbox" authorities and GraphQL URLs at the
// in-process emulator.
func resolveSandbox(conns []config.Connection, base string) []config.Connection {
	for i := range conns {
		c := &conns[i]
		if c.Authority == config.AuthoritySandbox {
			c.Authority = base
		}
		if c.GraphQLURL == config.GraphQLSandbox {
			if c.Grant == config.GrantClientCredentials {
				c.GraphQLURL = base + "/api/graphql-service"
			} else {
				c.GraphQLURL = base + "/api/graphql"
			}
		}
	}
	return conns
}

func (rt *Runtime) sandboxURL() string {
	if rt.Sandbox == nil {
		return ""
	}
	return rt.Sandbox.URL()
}

// Jobs returns the current job set.
func (rt *Runtime) Jobs() []*jobs.Job {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.jobs
}

// Job returns one job by name.
func (rt *Runtime) Job(name string) (*jobs.Job, error) {
	var names []string
	for _, j := range rt.Jobs() {
		if j.Name == name {
			return j, nil
		}
		names = append(names, j.Name)
	}
	return nil, fmt.Errorf("job %q not found%s", name, config.DidYouMean(name, names))
}

func (rt *Runtime) setJobs(js []*jobs.Job) {
	rt.mu.Lock()
	rt.jobs = js
	rt.mu.Unlock()
}

// Client implements jobs.Clients: one Business NXT client per connection,
// made on first use.
func (rt *Runtime) Client(name string) (*bnxt.Client, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if c, ok := rt.clients[name]; ok {
		return c, nil
	}
	var conn *config.Connection
	for i := range rt.conns {
		if rt.conns[i].Name == name {
			conn = &rt.conns[i]
		}
	}
	if conn == nil {
		return nil, fmt.Errorf("connection %q not found", name)
	}
	src, err := rt.Tokens.Source(name)
	if err != nil {
		return nil, err
	}
	// bnxt names the connection in its own log lines.
	log := rt.Logger.With(zap.String("component", "bnxt"))
	// The request budget is the access token's, which every replica shares:
	// take it from the store when the store can share it, else bnxt budgets
	// this process alone.
	var limiter bnxt.Limiter
	if budget, ok := rt.Store.(store.Budget); ok {
		limiter = bnxt.NewBudgetLimiter(budget, bnxt.BudgetOptions{
			Key: name, PerMinute: conn.Limits.RequestsPerMinute, Logger: log.With(zap.String("connection", name)),
		})
	}
	c, err := bnxt.New(bnxt.Options{
		URL:                   conn.GraphQLURL,
		Connection:            name,
		Tokens:                src,
		Logger:                log,
		Metrics:               rt.Metrics,
		RequestsPerMinute:     conn.Limits.RequestsPerMinute,
		ConcurrencyPerCompany: conn.Limits.ConcurrencyPerCompany,
		Limiter:               limiter,
	})
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", name, err)
	}
	rt.clients[name] = c
	return c, nil
}

// Close releases the store and stops the sandbox.
func (rt *Runtime) Close() {
	if rt.Tokens != nil {
		// Rotations in flight and rotated tokens not yet stored need the
		// sandbox and the store: they go first.
		ctx, cancel := context.WithTimeout(context.Background(), tokens.DefaultExchangeTimeout+10*time.Second)
		if err := rt.Tokens.Close(ctx); err != nil {
			rt.Logger.Error("closing the token manager", zap.Error(err))
		}
		cancel()
	}
	if rt.Sandbox != nil {
		rt.Sandbox.Close()
	}
	if rt.Store != nil {
		if err := rt.Store.Close(); err != nil {
			rt.Logger.Warn("closing store", zap.Error(err))
		}
	}
}

// ReplicaID names this process in claims: host, pid and a random suffix.
func ReplicaID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "nxtcron"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomSuffix())
}
