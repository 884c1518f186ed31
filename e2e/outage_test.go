package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/postgres/pgtest"
)

// TestStoreOutage takes the database away from a running replica (a TCP
// proxy between them cuts every connection and refuses new ones) while it
// runs an attempt, for longer than the lease, and brings it back: the
// daemon stays up, /readyz and nxtcron_store_up say not ready during the
// outage while /healthz stays alive, the attempt that lost its lease is
// cancelled and later taken over, and scheduling resumes by itself; every
// slot stays accounted for.
func TestStoreOutage(t *testing.T) {
	e := NewEnv(t)
	schema := pgSchema(t)
	st := pgStore(t, schema)
	proxy, viaProxy := pgtest.NewProxy(t, pgDSN(t))
	pgKeys(e)
	sb := e.StartSandbox("--rows", "7", "--latency", "400ms")
	e.WriteConfig(Config{StoreDSN: viaProxy, StoreSchema: schema, SandboxURL: sb.URL})
	e.WriteJob(replicaJob, Job{Schedule: "@every 1s"})

	d := e.Serve()
	d.WaitRuns(replicaJob, "two succeeded slots", func(r RunsResponse) bool { return r.Count("succeeded") >= 2 })
	status, _ := d.Get("/readyz")
	require.Equal(t, http.StatusOK, status)

	// The database goes away in the middle of an attempt.
	owner := d.Owner()
	running := waitFreshAttempt(t, d, st, func(a Attempt) bool { return a.Owner == owner })
	proxy.Down()
	eventually(t, "/readyz to report not ready", func() (bool, string) {
		status, body := d.Get("/readyz")
		return status == http.StatusServiceUnavailable, fmt.Sprintf("%d %s", status, body)
	})
	status, _ = d.Get("/healthz")
	require.Equal(t, http.StatusOK, status, "the process is alive")
	require.Zero(t, metricValue(t, d, "nxtcron_store_up"))
	// The attempt's heartbeats fail for a whole lease: it is cancelled
	// rather than left running unfenced.
	d.WaitLog("lease lost; cancelling the attempt", func(l LogLine) bool { return l.Str("run_id") == running.RunID })
	d.WaitLog("reading the store's clock", nil)
	require.False(t, d.Exited(), "the daemon survives the outage")

	proxy.Up()
	up := dbNow(t, st)
	eventually(t, "/readyz to report ready again", func() (bool, string) {
		status, body := d.Get("/readyz")
		return status == http.StatusOK, fmt.Sprintf("%d %s", status, body)
	})
	require.Equal(t, float64(1), metricValue(t, d, "nxtcron_store_up"))
	d.WaitRuns(replicaJob, "the lost slot to be taken over and two slots after the outage to succeed", func(r RunsResponse) bool {
		taken, after := false, 0
		for _, run := range r.Runs {
			if run.ID == running.SlotID && run.Status == "succeeded" {
				taken = true
			}
			if run.Status == "succeeded" && run.SlotTime(t).After(up) {
				after++
			}
		}
		return taken && after >= 2
	})
	require.Equal(t, 0, d.Stop(), "serve exits 0 on SIGTERM after the outage")

	// Every slot is accounted for; the lost attempt was interrupted and
	// its slot completed by a new attempt.
	spans := requireContiguous(t, e.StoreRuns(replicaJob), time.Second)
	for _, s := range spans {
		require.Contains(t, []string{"succeeded", "skipped", "missed", "interrupted"}, s.run.Status, "record %+v", s.run)
	}
	as := slotAttempts(t, st, running.SlotID)
	require.GreaterOrEqual(t, len(as), 2, "the slot was taken over")
	require.Equal(t, store.StatusLost, as[running.Attempt-1].Status, "the attempt that lost its lease: %+v", as[running.Attempt-1])
	require.Equal(t, store.StatusSucceeded, as[len(as)-1].Status)
	requireSinkMatchesStore(t, e, spans)
}
