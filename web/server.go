package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/store"
)

// JobSource gives the current job set (it changes on reload).
type JobSource interface {
	Jobs() []*jobs.Job
}

// Trigger starts a manual run in the background.
type Trigger interface {
	Trigger(ctx context.Context, job string, o store.RunOptions) (store.Claim, error)
}

// Options configure the Server.
type Options struct {
	Store     store.Store
	Jobs      JobSource
	Scheduler Trigger
	Metrics   *metrics.Metrics
	// Ready reports whether the daemon can do its work (store reachable,
	// migrations current).
	Ready      func(context.Context) error
	AdminToken config.Secret
	// Loopback reports whether the daemon listens on loopback only; with no
	// admin token the API is then open.
	Loopback bool
	Logger   *zap.Logger
	// Now is the clock for next-slot computations; default time.Now.
	Now func() time.Time
}

// Server is the daemon's HTTP handler.
type Server struct {
	o   Options
	mux *http.ServeMux
	log *zap.Logger
}

// New builds the handler.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, mux: http.NewServeMux(), log: o.Logger}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if o.Metrics != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	s.mux.Handle("GET /api/jobs", s.admin(s.listJobs))
	s.mux.Handle("GET /api/runs", s.admin(s.listRuns))
	s.mux.Handle("POST /api/jobs/{job}/run", s.admin(s.runJob))
	s.mux.Handle("POST /api/jobs/{job}/pause", s.admin(s.pauseJob(true)))
	s.mux.Handle("POST /api/jobs/{job}/resume", s.admin(s.pauseJob(false)))
	s.mux.Handle("GET /{$}", s.admin(s.dashboard))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Handle mounts an extra handler (enrollment, for one) on the server's mux.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.o.Ready != nil {
		if err := s.o.Ready(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// admin guards the API and the dashboard with the admin token.
func (s *Server) admin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nxtcron"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token"})
			return
		}
		h(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	want := s.o.AdminToken.Reveal()
	if want == "" {
		return s.o.Loopback
	}
	// The scheme is case-insensitive (RFC 9110, 11.1): "bearer" is Bearer.
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	views, err := Jobs(r.Context(), s.o.Store, s.o.Jobs.Jobs(), s.o.Now(), 3)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": views})
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.SlotFilter{Job: q.Get("job")}
	if st := q.Get("status"); st != "" {
		f.Statuses = strings.Split(st, ",")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: expected a number from 1 to 10000"})
			return
		}
		f.Limit = n
	}
	js := s.o.Jobs.Jobs()
	runs, err := Runs(r.Context(), s.o.Store, js, f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	running, err := s.o.Store.Running(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	zones := zonesOf(js)
	att := make([]AttemptView, 0, len(running))
	for _, a := range running {
		if f.Job == "" || a.Job == f.Job {
			att = append(att, Attempt(a, zones[a.Job]))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": runs, "running": att})
}

func (s *Server) findJob(name string) bool { return s.job(name) != nil }

func (s *Server) job(name string) *jobs.Job {
	for _, j := range s.o.Jobs.Jobs() {
		if j.Name == name {
			return j
		}
	}
	return nil
}

func (s *Server) runJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("job")
	job := s.job(name)
	if job == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("job %q not found", name)})
		return
	}
	var o store.RunOptions
	// A body of unknown length (chunked, ContentLength -1) counts too:
	// ignoring it would run every company when one was asked for.
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil && !errors.Is(err, io.EOF) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
			return
		}
	}
	// The rules of `nxtcron run --full [--force]`.
	if o.Force && !o.Full {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "force only goes with full"})
		return
	}
	if o.Full && !o.Force && job.Incremental != nil && job.Sink.Type != "postgres" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf(
			"full re-delivers every row of %s to its %s sink; add \"force\": true to do it anyway", job.Name, job.Sink.Type)})
		return
	}
	claim, err := s.o.Scheduler.Trigger(r.Context(), name, o)
	if errors.Is(err, store.ErrBusy) || errors.Is(err, store.ErrConflict) {
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{
		"job": claim.Job, "slot_id": claim.SlotID, "run_id": claim.RunID, "attempt": claim.Attempt, "fence": claim.Fence,
	})
}

func (s *Server) pauseJob(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("job")
		if !s.findJob(name) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("job %q not found", name)})
			return
		}
		if err := s.o.Store.SetPaused(r.Context(), name, paused); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"job": name, "paused": paused})
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("api request failed", zap.String("path", r.URL.Path), zap.Error(err))
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
