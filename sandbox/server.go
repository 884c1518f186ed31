package sandbox

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
	"sync/atomic"
	"time"

	"github.com/nxtcron/nxtcron/sandbox/connect"
	"github.com/nxtcron/nxtcron/sandbox/graph"
)

// TraceHeader is the header every response carries, with a fresh id.
const TraceHeader = "x-vbc-traceid"

// Server is the sandbox: Visma Connect, the two Business NXT GraphQL
// endpoints and the admin API behind one base URL. Its zero value is ready to
// use with default options: httptest.NewServer(&sandbox.Server{}).
type Server struct {
	once    sync.Once
	initErr error
	initial *Options // from New; nil means DefaultOptions

	mu   sync.RWMutex
	opts Options

	provider *connect.Provider
	engine   *graph.Engine
	faults   faultSet
	limiter  rateLimiter
	stats    graphQLCounters

	lnMu    sync.Mutex
	httpSrv *http.Server
	ln      net.Listener
	served  chan struct{} // closed when the serve goroutine returns
	serveEr error
}

// New returns a sandbox with opts, or the problems with them.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("invalid sandbox options: %w", err)
	}
	s := &Server{initial: &opts}
	if err := s.init(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) init() error {
	s.once.Do(func() {
		opts := DefaultOptions()
		if s.initial != nil {
			opts = *s.initial
		}
		if err := opts.Validate(); err != nil {
			s.initErr = fmt.Errorf("invalid sandbox options: %w", err)
			return
		}
		p, err := connect.New(opts.connect())
		if err != nil {
			s.initErr = fmt.Errorf("starting connect emulator: %w", err)
			return
		}
		loc, err := time.LoadLocation(opts.ServerTimezone)
		if err != nil {
			s.initErr = fmt.Errorf("loading server time zone: %w", err)
			return
		}
		s.provider = p
		s.engine = graph.New(graphOptions(opts, loc))
		s.opts = opts
	})
	return s.initErr
}

func graphOptions(o Options, loc *time.Location) graph.Options {
	return graph.Options{
		Companies:        o.Companies,
		Rows:             o.Rows,
		Location:         loc,
		Latency:          o.Latency,
		ConcurrencyLimit: o.ConcurrencyLimit,
	}
}

// Options returns the options in effect.
func (s *Server) Options() Options {
	if s.init() != nil {
		return Options{}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.opts
}

// Apply changes the options at once: token lifetimes and refresh token rules
// for the next token request, data and limits for the next GraphQL request.
// Listen cannot change on a running server and is kept.
func (s *Server) Apply(opts Options) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	opts.Listen = s.opts.Listen
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("invalid sandbox options: %w", err)
	}
	loc, err := time.LoadLocation(opts.ServerTimezone)
	if err != nil {
		return fmt.Errorf("loading server time zone: %w", err)
	}
	if err := s.provider.SetOptions(opts.connect()); err != nil {
		return fmt.Errorf("applying connect options: %w", err)
	}
	s.engine.SetOptions(graphOptions(opts, loc))
	s.opts = opts
	return nil
}

// Provider returns the Visma Connect emulator.
func (s *Server) Provider() *connect.Provider {
	if s.init() != nil {
		return nil
	}
	return s.provider
}

// Engine returns the GraphQL engine.
func (s *Server) Engine() *graph.Engine {
	if s.init() != nil {
		return nil
	}
	return s.engine
}

// AddFault injects a fault (see Fault).
func (s *Server) AddFault(f Fault) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("invalid fault: %w", err)
	}
	return s.faults.add(f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// Faults returns the active faults.
func (s *Server) Faults() []Fault { return s.faults.list() }

func (s *Server) now() time.Time {
	s.mu.RLock()
	f := s.opts.Now
	s.mu.RUnlock()
	if f == nil {
		return time.Now()
	}
	return f()
}

// ServeHTTP serves every endpoint of the sandbox.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(TraceHeader, newTraceID())
	if err := s.init(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	switch path := r.URL.Path; {
	case path == connect.PathGraphQL:
		s.serveGraphQL(w, r, EndpointGraphQL)
	case path == connect.PathGraphQLService:
		s.serveGraphQL(w, r, EndpointGraphQLService)
	case path == connect.PathToken:
		s.serveToken(w, r)
	case connect.Handles(path):
		s.provider.ServeHTTP(w, r)
	case path == "/sandbox" || strings.HasPrefix(path, "/sandbox/"):
		s.serveAdmin(w, r)
	case path == "/":
		s.serveIndex(w, r)
	default:
		http.NotFound(w, r)
	}
}

func newTraceID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// Listen starts serving on addr ("" means Options.Listen) in the background.
// URL then returns the base URL.
func (s *Server) Listen(addr string) error {
	if err := s.init(); err != nil {
		return err
	}
	if addr == "" {
		addr = s.Options().Listen
	}
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.ln != nil {
		return errors.New("sandbox is already listening")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for the sandbox: %w", err)
	}
	s.ln = ln
	s.httpSrv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan struct{})
	srv, served := s.httpSrv, s.served
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.lnMu.Lock()
			s.serveEr = err
			s.lnMu.Unlock()
		}
	}()
	return nil
}

// Start listens on Options.Listen and serves until ctx is done or Close or
// Shutdown is called.
func (s *Server) Start(ctx context.Context) error {
	if err := s.Listen(""); err != nil {
		return err
	}
	s.lnMu.Lock()
	served := s.served
	s.lnMu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = s.Shutdown(shutdownCtx)
		case <-served:
		}
	}()
	return nil
}

// Run listens on Options.Listen and serves until ctx is done, then shuts down
// gracefully (in-flight requests get 5 seconds).
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(""); err != nil {
		return err
	}
	s.lnMu.Lock()
	served := s.served
	s.lnMu.Unlock()
	select {
	case <-ctx.Done():
	case <-served:
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.Shutdown(shutdownCtx)
}

// URL returns the base URL the server listens on, e.g. http://127.0.0.1:8700,
// or "" before Listen. An unspecified listen address is reported as
// 127.0.0.1.
func (s *Server) URL() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.ln == nil {
		return ""
	}
	addr, ok := s.ln.Addr().(*net.TCPAddr)
	if !ok {
		return "http://" + s.ln.Addr().String()
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// Shutdown stops the listener and waits for in-flight requests until ctx is
// done. It returns the error that stopped serving, if any.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lnMu.Lock()
	srv, served := s.httpSrv, s.served
	s.lnMu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	<-served
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.serveEr != nil {
		return fmt.Errorf("serving the sandbox: %w", s.serveEr)
	}
	if err != nil {
		return fmt.Errorf("shutting the sandbox down: %w", err)
	}
	return nil
}

// Close stops the server at once, dropping in-flight requests.
func (s *Server) Close() error {
	s.lnMu.Lock()
	srv, served := s.httpSrv, s.served
	s.lnMu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-served
	if err != nil {
		return fmt.Errorf("closing the sandbox: %w", err)
	}
	return nil
}

// EndpointStats counts the requests of one GraphQL endpoint by outcome.
type EndpointStats struct {
	OK                 int64 `json:"ok"`
	Error              int64 `json:"error"`
	Unauthorized       int64 `json:"unauthorized"`
	RateLimited        int64 `json:"rate_limited"`
	OutstandingLimited int64 `json:"outstanding_limited"`
}

// GraphQLStats counts the requests of both GraphQL endpoints.
type GraphQLStats struct {
	GraphQL        EndpointStats `json:"graphql"`
	GraphQLService EndpointStats `json:"graphql-service"`
}

// Stats is what GET /sandbox/stats answers.
type Stats struct {
	TokenRequests   connect.TokenStats `json:"token_requests"`
	ReuseDetected   int64              `json:"reuse_detected"`
	GraphQLRequests GraphQLStats       `json:"graphql_requests"`
	RowsServed      int64              `json:"rows_served"`
}

type endpointCounters struct {
	ok, err, unauthorized, rateLimited, outstandingLimited atomic.Int64
}

func (c *endpointCounters) snapshot() EndpointStats {
	return EndpointStats{
		OK:                 c.ok.Load(),
		Error:              c.err.Load(),
		Unauthorized:       c.unauthorized.Load(),
		RateLimited:        c.rateLimited.Load(),
		OutstandingLimited: c.outstandingLimited.Load(),
	}
}

type graphQLCounters struct {
	user, service endpointCounters
	rows          atomic.Int64
}

func (c *graphQLCounters) endpoint(name string) *endpointCounters {
	if name == EndpointGraphQLService {
		return &c.service
	}
	return &c.user
}

// Stats returns the counters since the server started.
func (s *Server) Stats() Stats {
	if s.init() != nil {
		return Stats{}
	}
	ps := s.provider.Stats()
	return Stats{
		TokenRequests: ps.TokenRequests,
		ReuseDetected: ps.ReuseDetected,
		GraphQLRequests: GraphQLStats{
			GraphQL:        s.stats.user.snapshot(),
			GraphQLService: s.stats.service.snapshot(),
		},
		RowsServed: s.stats.rows.Load(),
	}
}

// TokenURL returns the token endpoint under base, such as URL().
func TokenURL(base string) string { return strings.TrimRight(base, "/") + connect.PathToken }

// GraphQLURL returns the user-token GraphQL endpoint under base.
func GraphQLURL(base string) string { return strings.TrimRight(base, "/") + connect.PathGraphQL }

// GraphQLServiceURL returns the service-token GraphQL endpoint under base.
func GraphQLServiceURL(base string) string {
	return strings.TrimRight(base, "/") + connect.PathGraphQLService
}
