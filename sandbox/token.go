package sandbox

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/nxtcron/nxtcron/sandbox/connect"
)

// serveToken is the token endpoint with the token faults applied.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	fault := s.faults.take(EndpointToken)
	if fault == nil {
		s.provider.ServeHTTP(w, r)
		return
	}
	switch fault.Kind {
	case FaultUnauthorized, FaultTooManyRequests, FaultInternalError, FaultBadGateway:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if r.ParseForm() == nil {
			s.provider.CountTokenError(r.PostForm.Get("grant_type"))
		}
	}
	switch fault.Kind {
	case FaultUnauthorized:
		connect.WriteOAuthError(w, http.StatusUnauthorized, connect.ErrCodeInvalidClient, "client authentication failed (sandbox fault)")
	case FaultTooManyRequests:
		writeTooManyRequests(w, time.Duration(fault.RetryAfter)*time.Second)
	case FaultInternalError, FaultBadGateway:
		status, _ := strconv.Atoi(fault.Kind)
		writeStatus(w, status)
	case FaultSlow:
		if fault.Phase == PhaseAfterRotate {
			s.provider.ServeHTTP(w, r.WithContext(connect.WithHoldAfterCommit(r.Context(), fault.Delay)))
			return
		}
		if sleep(r.Context(), fault.Delay) {
			s.provider.ServeHTTP(w, r)
		}
	case FaultTruncated:
		var rec bufferedResponse
		rec.header = http.Header{}
		s.provider.ServeHTTP(&rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		body := rec.body.Bytes()
		body = body[:len(body)/2]
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.statusCode())
		_, _ = w.Write(body)
	default:
		s.provider.ServeHTTP(w, r)
	}
}

// bufferedResponse collects a response to change it before it is sent.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) statusCode() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}
