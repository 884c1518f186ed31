package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The authentication scheme is case-insensitive (RFC 9110, 11.1).
func TestAuthSchemeCaseInsensitive(t *testing.T) {
	e := newEnv(t, envOptions{adminToken: adminToken})
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", e.url+"/api/jobs", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", scheme+" "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode, scheme)
	}
	for _, h := range []string{adminToken, "Basic " + adminToken, "Bearer" + adminToken, "Bearer  " + adminToken} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", e.url+"/api/jobs", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", h)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "Authorization: %q", strings.ReplaceAll(h, adminToken, "<token>"))
	}
}
