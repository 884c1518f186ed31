package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/nxtcron/nxtcron/sandbox/connect"
)

// isLoopback reports whether a request's RemoteAddr is a loopback address.
func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return addr.Unmap().IsLoopback()
}

type adminError struct {
	Error string `json:"error"`
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeAdminError(w http.ResponseWriter, status int, err error) {
	writeAdminJSON(w, status, adminError{Error: err.Error()})
}

// decodeAdmin reads a JSON request body into v, refusing unknown fields.
func decodeAdmin(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding request body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("decoding request body: trailing data after the JSON value")
	}
	return nil
}

// adminRoutes maps each admin path to its handler per method.
func (s *Server) adminRoutes() map[string]map[string]http.HandlerFunc {
	return map[string]map[string]http.HandlerFunc{
		"/sandbox/stats": {
			http.MethodGet: func(w http.ResponseWriter, r *http.Request) { writeAdminJSON(w, http.StatusOK, s.Stats()) },
		},
		"/sandbox/refresh-tokens": {http.MethodPost: s.adminRefreshToken},
		"/sandbox/touch":          {http.MethodPost: s.adminTouch},
		"/sandbox/faults": {
			http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
				writeAdminJSON(w, http.StatusOK, faultsBody{Faults: s.Faults()})
			},
			http.MethodPost:   s.adminAddFault,
			http.MethodDelete: s.adminClearFaults,
		},
		"/sandbox/settings": {
			http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
				writeAdminJSON(w, http.StatusOK, s.Options().settingsJSON())
			},
			http.MethodPut: s.adminSettings,
		},
	}
}

// serveAdmin serves /sandbox/...: only with Options.Admin, only to loopback
// peers.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !s.Options().Admin {
		writeAdminError(w, http.StatusNotFound, errors.New("the admin API is off; start the sandbox with --admin (sandbox.admin: true)"))
		return
	}
	if !isLoopback(r.RemoteAddr) {
		writeAdminError(w, http.StatusForbidden, errors.New("the admin API answers loopback peers only"))
		return
	}
	methods, ok := s.adminRoutes()[r.URL.Path]
	if !ok {
		writeAdminError(w, http.StatusNotFound, fmt.Errorf("no admin endpoint %s", r.URL.Path))
		return
	}
	h, ok := methods[r.Method]
	if !ok {
		allowed := make([]string, 0, len(methods))
		for m := range methods {
			allowed = append(allowed, m)
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeAdminError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s does not accept %s", r.URL.Path, r.Method))
		return
	}
	h(w, r)
}

func (s *Server) adminRefreshToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ClientID string `json:"client_id"`
		Email    string `json:"email"`
		Scope    string `json:"scope"`
	}
	if err := decodeAdmin(r, &req); err != nil {
		writeAdminError(w, http.StatusBadRequest, err)
		return
	}
	if req.ClientID == "" {
		req.ClientID = connect.WebClientID
	}
	if req.Email == "" {
		req.Email = connect.JobUserEmail
	}
	tok, err := s.provider.NewRefreshChain(req.ClientID, req.Email, req.Scope)
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, fmt.Errorf("creating refresh token: %w", err))
		return
	}
	writeAdminJSON(w, http.StatusOK, map[string]string{"refresh_token": tok})
}

// parseTouchTime reads the at of a touch: RFC 3339 with an offset, or a
// server-local time without one ("2025-10-26T02:30:00"), or empty for now.
func parseTouchTime(at string, loc *time.Location, now time.Time) (time.Time, error) {
	if at == "" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", at, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing at %q: want RFC 3339 or server-local 2006-01-02T15:04:05", at)
	}
	return t, nil
}

func (s *Server) adminTouch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Company int    `json:"company"`
		Table   string `json:"table"`
		Count   int    `json:"count"`
		At      string `json:"at"`
	}
	if err := decodeAdmin(r, &req); err != nil {
		writeAdminError(w, http.StatusBadRequest, err)
		return
	}
	loc, err := time.LoadLocation(s.Options().ServerTimezone)
	if err != nil {
		writeAdminError(w, http.StatusInternalServerError, fmt.Errorf("loading server time zone: %w", err))
		return
	}
	at, err := parseTouchTime(req.At, loc, time.Now())
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, err)
		return
	}
	n, err := s.engine.Touch(req.Company, req.Table, req.Count, at)
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, fmt.Errorf("touching rows: %w", err))
		return
	}
	writeAdminJSON(w, http.StatusOK, map[string]int{"touched": n})
}

type faultsBody struct {
	Faults []Fault `json:"faults"`
}

func (s *Server) adminAddFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := decodeAdmin(r, &f); err != nil {
		writeAdminError(w, http.StatusBadRequest, err)
		return
	}
	if err := s.AddFault(f); err != nil {
		writeAdminError(w, http.StatusBadRequest, err)
		return
	}
	writeAdminJSON(w, http.StatusOK, faultsBody{Faults: s.Faults()})
}

func (s *Server) adminClearFaults(w http.ResponseWriter, r *http.Request) {
	s.ClearFaults()
	writeAdminJSON(w, http.StatusOK, faultsBody{Faults: []Fault{}})
}

func (s *Server) adminSettings(w http.ResponseWriter, r *http.Request) {
	patch, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, fmt.Errorf("reading settings: %w", err))
		return
	}
	cur := s.Options()
	next, err := cur.mergeSettings(patch)
	if err == nil && next.Listen != cur.Listen {
		err = errors.New("listen: cannot change while the sandbox runs")
	}
	if err == nil {
		err = s.Apply(next)
	}
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, err)
		return
	}
	writeAdminJSON(w, http.StatusOK, s.Options().settingsJSON())
}

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	base := connect.BaseURL(r)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, `nxtcron sandbox: an emulator of Visma Connect and Business NXT GraphQL

OpenID discovery   %[1]s%[2]s
token endpoint     %[1]s%[3]s
GraphQL (user)     %[1]s%[4]s
GraphQL (service)  %[1]s%[5]s

service client     %[6]s / %[7]s
web client         %[8]s / %[9]s
user               %[10]s / %[11]s
`, base, connect.PathDiscovery, connect.PathToken, connect.PathGraphQL, connect.PathGraphQLService,
		connect.ServiceClientID, connect.ServiceClientSecret, connect.WebClientID, connect.WebClientSecret,
		connect.JobUserEmail, connect.UserPassword)
}
