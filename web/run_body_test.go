package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

// A body of unknown length (chunked) carries options like any other.
func TestAPIRunChunkedBody(t *testing.T) {
	e := newEnv(t, envOptions{loopback: true})
	post := func(body io.Reader) (int, map[string]any) {
		req, err := http.NewRequestWithContext(t.Context(), "POST", e.url+"/api/jobs/ledger/run", body)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	// io.MultiReader hides the length: the client sends it chunked.
	status, claim := post(io.MultiReader(strings.NewReader(`{"company": 1002}`)))
	require.Equal(t, http.StatusAccepted, status, "%v", claim)
	run := e.waitRun("", int64(claim["slot_id"].(float64)), store.StatusSucceeded)
	require.Equal(t, map[string]any{"company": float64(1002)}, run["options"])
	require.Equal(t, float64(250), run["rows"], "one company only")

	status, got := post(io.MultiReader(strings.NewReader(`{"company": "x"}`)))
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, got["error"], "body: json: cannot unmarshal string")

	// An empty chunked body means no options.
	slot, err := time.Parse(time.RFC3339, run["slot"].(string))
	require.NoError(t, err)
	waitNextSecond(t, slot)
	status, claim = post(io.MultiReader(strings.NewReader("")))
	require.Equal(t, http.StatusAccepted, status, "%v", claim)
	run = e.waitRun("", int64(claim["slot_id"].(float64)), store.StatusSucceeded)
	require.Equal(t, map[string]any{}, run["options"])
}
