package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/scheduler"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/web"
)

// Options configure a Daemon.
type Options struct {
	Config *config.Config
	Logger *zap.Logger
	// Owner names this replica in claims; default ReplicaID().
	Owner string
	// Clock drives the scheduler; default the real clock.
	Clock scheduler.Clock
}

// Daemon is a running nxtcron: scheduler, HTTP server, store.
type Daemon struct {
	rt      *Runtime
	sched   *scheduler.Scheduler
	web     *web.Server
	ln      net.Listener
	srv     *http.Server
	log     *zap.Logger
	unlock  func() error
	metrics *metrics.Metrics

	reloadMu sync.Mutex
	stopOnce sync.Once
	health   *storeHealth
	// Set by Start: Stop ends the health loop and waits for it and for
	// the HTTP server's goroutine.
	stopHealth context.CancelFunc
	healthDone chan struct{}
	served     chan struct{}
}

// New prepares a daemon: it opens (and migrates) the store, starts the
// in-process sandbox when enabled, loads the jobs and binds the HTTP
// listener. Nothing is scheduled until Start.
func New(ctx context.Context, o Options) (_ *Daemon, err error) {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if err := checkListen(cfg); err != nil {
		return nil, err
	}
	d := &Daemon{log: log, metrics: metrics.New()}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if dsn := cfg.Store.DSN.Reveal(); strings.HasPrefix(dsn, "sqlite:") {
		d.unlock, err = sqlite.Lock(strings.TrimPrefix(dsn, "sqlite:"))
		if err != nil {
			return nil, err
		}
	}
	owner := o.Owner
	if owner == "" {
		owner = ReplicaID()
	}
	d.rt, err = Open(ctx, cfg, log, OpenOptions{Migrate: cfg.Store.Migrate != "off", Connect: true, Owner: owner, Metrics: d.metrics})
	if err != nil {
		return nil, err
	}
	if cfg.Store.Migrate == "off" {
		if err := checkMigrations(ctx, d.rt); err != nil {
			return nil, err
		}
	}
	d.sched, err = scheduler.New(scheduler.Options{
		Store:             d.rt.Store,
		Runner:            d.rt.Runner,
		Owner:             owner,
		Clock:             o.Clock,
		HeartbeatInterval: cfg.Scheduler.HeartbeatInterval.D(),
		LeaseTimeout:      cfg.Scheduler.LeaseTimeout.D(),
		ShutdownGrace:     cfg.Scheduler.ShutdownGrace.D(),
		Retention:         cfg.Scheduler.Retention.D(),
		Logger:            log.With(zap.String("component", "scheduler"), zap.String("owner", owner)),
		Metrics:           d.metrics,
	})
	if err != nil {
		return nil, err
	}
	d.health = &storeHealth{store: d.rt.Store, metrics: d.metrics}
	d.web = web.New(web.Options{
		Store:      d.rt.Store,
		Jobs:       d.rt,
		Scheduler:  d.sched,
		Metrics:    d.metrics,
		Ready:      d.health.ready,
		AdminToken: cfg.HTTP.AdminToken,
		Loopback:   isLoopback(cfg.HTTP.Listen),
		Logger:     log.With(zap.String("component", "web")),
	})
	d.web.MountTokens(d.rt.Tokens)
	if err := d.rt.Tokens.MountEnrollment(d.web); err != nil {
		return nil, err
	}
	d.ln, err = net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	d.srv = &http.Server{Handler: d.web, ReadHeaderTimeout: 10 * time.Second}
	return d, nil
}

// Start syncs the jobs with the store, starts the scheduler and serves HTTP.
func (d *Daemon) Start(ctx context.Context) error {
	if err := d.sched.SetJobs(ctx, d.rt.Jobs()); err != nil {
		return fmt.Errorf("registering jobs: %w", err)
	}
	if err := d.sched.Start(ctx); err != nil {
		return fmt.Errorf("starting scheduler: %w", err)
	}
	d.rt.Tokens.StartKeepalive(ctx)
	// The health loop lives until Stop, not until ctx ends: Start's
	// context need not outlive the call.
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.stopHealth, d.healthDone, d.served = cancel, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.healthDone)
		d.health.run(hctx)
	}()
	go func() {
		defer close(d.served)
		var err error
		if tls := d.rt.Config.HTTP; tls.TLSCertFile != "" {
			err = d.srv.ServeTLS(d.ln, tls.TLSCertFile, tls.TLSKeyFile)
		} else {
			err = d.srv.Serve(d.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server stopped", zap.Error(err))
		}
	}()
	d.log.Info("nxtcron serving",
		zap.String("listen", d.Addr()),
		zap.Int("jobs", len(d.rt.Jobs())),
		zap.String("sandbox", d.rt.sandboxURL()))
	return nil
}

// Addr is the HTTP listener's address (useful with port 0).
func (d *Daemon) Addr() string { return d.ln.Addr().String() }

// SandboxURL is the in-process sandbox's base URL, "" when off.
func (d *Daemon) SandboxURL() string { return d.rt.sandboxURL() }

// Runtime exposes the daemon's runtime (store, jobs) to embedders and tests.
func (d *Daemon) Runtime() *Runtime { return d.rt }

// Reload re-reads every job file, validates the set and swaps it in
// atomically; on any problem the old set stays and the error lists them all.
func (d *Daemon) Reload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cfg, err := config.Load(d.rt.Config.Path)
	if err != nil {
		return err
	}
	// Connections, store and HTTP settings need a restart; jobs reload.
	cfg.Connections = d.rt.Config.Connections
	js, err := jobs.Load(cfg)
	if err != nil {
		return err
	}
	if err := d.sched.SetJobs(ctx, js); err != nil {
		return err
	}
	d.rt.setJobs(js)
	d.log.Info("jobs reloaded", zap.Int("jobs", len(js)))
	return nil
}

// Stop stops claiming, drains running attempts (recorded interrupted after
// shutdown_grace), stops HTTP and closes the store.
func (d *Daemon) Stop(ctx context.Context) error {
	var err error
	d.stopOnce.Do(func() {
		err = d.sched.Stop(ctx)
		if d.stopHealth != nil {
			d.stopHealth()
			<-d.healthDone
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if herr := d.srv.Shutdown(sctx); herr != nil {
			err = errors.Join(err, herr)
		}
		if d.served != nil {
			<-d.served // Shutdown closed the listener: Serve has returned
		}
		d.close()
	})
	return err
}

func (d *Daemon) close() {
	if d.ln != nil {
		d.ln.Close()
	}
	if d.rt != nil {
		d.rt.Close()
	}
	if d.unlock != nil {
		if err := d.unlock(); err != nil {
			d.log.Warn("releasing store lock", zap.Error(err))
		}
	}
}

// checkListen refuses a listener reachable from other hosts without an
// admin token.
func checkListen(cfg *config.Config) error {
	if !isLoopback(cfg.HTTP.Listen) && cfg.HTTP.AdminToken.IsZero() {
		return fmt.Errorf("http.admin_token is required when http.listen (%s) is not a loopback address", cfg.HTTP.Listen)
	}
	return nil
}

func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkMigrations(ctx context.Context, rt *Runtime) error {
	ms, err := rt.Store.Migrations(ctx)
	if err != nil {
		return fmt.Errorf("reading store migrations: %w", err)
	}
	for _, m := range ms {
		if !m.Applied {
			return fmt.Errorf("store migration %d (%s) is not applied and store.migrate is off: run nxtcron migrate up", m.Version, m.Name)
		}
	}
	return nil
}

func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// storeHealth checks the store every few seconds for /readyz and the
// nxtcron_store_up gauge: reachable, and every migration applied.
type storeHealth struct {
	store   store.Store
	metrics *metrics.Metrics

	mu  sync.Mutex
	err error
}

func (h *storeHealth) run(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		h.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *storeHealth) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := h.store.Ping(cctx)
	if err == nil {
		var ms []store.Migration
		ms, err = h.store.Migrations(cctx)
		for _, m := range ms {
			if !m.Applied && err == nil {
				err = fmt.Errorf("store migration %d (%s) is not applied", m.Version, m.Name)
			}
		}
	}
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
	if err == nil {
		h.metrics.StoreUp.Set(1)
	} else {
		h.metrics.StoreUp.Set(0)
	}
}

func (h *storeHealth) ready(ctx context.Context) error {
	h.check(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}
