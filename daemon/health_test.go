package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/store/sqlite"
	"github.com/nxtcron/nxtcron/web"
)

// readyz serves /readyz as the daemon wires it, over the store at path.
func readyz(t *testing.T, st *sqlite.Store) (func() (int, map[string]string), *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	h := &storeHealth{store: st, metrics: m}
	srv := httptest.NewServer(web.New(web.Options{Store: st, Metrics: m, Ready: h.ready, Loopback: true}))
	t.Cleanup(srv.Close)
	return func() (int, map[string]string) {
		resp, err := http.Get(srv.URL + "/readyz")
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}, m
}

func TestReadyzNeedsEveryMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nxtcron.db")
	st, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	get, m := readyz(t, st)

	status, body := get()
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "not ready", body["status"])
	require.Regexp(t, `^store migration 1 \(00001_\w+\.sql\) is not applied$`, body["error"])
	require.Equal(t, float64(0), testutil.ToFloat64(m.StoreUp))

	require.NoError(t, st.Migrate(t.Context()))
	status, body = get()
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, map[string]string{"status": "ready"}, body)
	require.Equal(t, float64(1), testutil.ToFloat64(m.StoreUp))

	require.NoError(t, st.Close())
	status, body = get()
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, body["error"], "database is closed")
	require.Equal(t, float64(0), testutil.ToFloat64(m.StoreUp))
}
