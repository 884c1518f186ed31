package web_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

// POST run keeps the rules of `nxtcron run`: full on an incremental job whose
// sink appends re-delivers every row, and needs force.
func TestAPIRunFullNeedsForceOnAnAppendingSink(t *testing.T) {
	e := newEnv(t, envOptions{loopback: true})

	got := e.json("POST", "/api/jobs/associates/run", "", `{"full": true}`, http.StatusBadRequest)
	require.Equal(t, `full re-delivers every row of associates to its file sink; add "force": true to do it anyway`, got["error"])
	got = e.json("POST", "/api/jobs/associates/run", "", `{"force": true}`, http.StatusBadRequest)
	require.Equal(t, `force only goes with full`, got["error"])
	slots, err := e.st.Slots(t.Context(), store.SlotFilter{})
	require.NoError(t, err)
	require.Empty(t, slots, "a refused request claims nothing")

	claim := e.json("POST", "/api/jobs/associates/run", "", `{"full": true, "force": true}`, http.StatusAccepted)
	run := e.waitRun("", int64(claim["slot_id"].(float64)), store.StatusSucceeded)
	require.Equal(t, map[string]any{"full": true, "force": true}, run["options"])

	// A job that is not incremental reads every row anyway.
	claim = e.json("POST", "/api/jobs/ledger/run", "", `{"full": true}`, http.StatusAccepted)
	e.waitRun("", int64(claim["slot_id"].(float64)), store.StatusSucceeded)
}
