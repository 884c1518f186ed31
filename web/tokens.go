package web

import (
	"context"
	"net/http"

	"github.com/nxtcron/nxtcron/tokens"
)

// TokenLister describes the connections' tokens (tokens.Manager does).
type TokenLister interface {
	List(ctx context.Context) ([]tokens.Status, error)
}

// MountTokens serves GET /api/tokens (behind the admin token): the state of
// every connection's tokens, with status, generation, expiries and
// needs_reenroll, never a token.
func (s *Server) MountTokens(l TokenLister) {
	s.mux.Handle("GET /api/tokens", s.admin(func(w http.ResponseWriter, r *http.Request) {
		list, err := l.List(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if list == nil {
			list = []tokens.Status{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"tokens": list})
	}))
}
