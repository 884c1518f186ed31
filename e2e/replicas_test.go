package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

// The tests of this file run several `nxtcron serve` processes on one
// Postgres schema, as Kubernetes runs replicas, and check from the store
// and the sinks that every slot is accounted for exactly once.

// replicaJob is the job every replica runs: the chart of accounts of both
// sandbox companies, three pages each, every second.
const replicaJob = "accounts"

// owners maps each replica's claim owner to its daemon.
func owners(ds ...*Daemon) map[string]*Daemon {
	m := map[string]*Daemon{}
	for _, d := range ds {
		m[d.Owner()] = d
	}
	return m
}

// TestReplicasRunEverySlotOnce runs three replicas with one shared sandbox
// whose latency makes an attempt last a second or two. It SIGKILLs the
// replica that owns a running attempt, restarts another one, and then
// checks that every slot of the whole run was recorded once (succeeded,
// or skipped and missed per the overlap and catchup rules), that the
// killed replica's slot was taken over as a new attempt that succeeded,
// that nothing was claimed or committed by the killed replica after it
// died, and that the file sink holds one complete file per company for
// every succeeded slot.
func TestReplicasRunEverySlotOnce(t *testing.T) {
	e := NewEnv(t)
	schema := pgSchema(t)
	st := pgStore(t, schema)
	pgKeys(e)
	sb := e.StartSandbox("--rows", "7", "--latency", "400ms")
	e.WriteConfig(Config{StoreDSN: pgDSN(t), StoreSchema: schema, SandboxURL: sb.URL})
	e.WriteJob(replicaJob, Job{Schedule: "@every 1s"})

	// Three replicas start at once: their migrations and job
	// registrations race too.
	var live []*Daemon
	for i := range 3 {
		p := e.Start(fmt.Sprintf("replica-%d", i), "serve")
		live = append(live, e.daemonOf(p))
	}
	byOwner := owners(live...)
	require.Len(t, byOwner, 3, "three replicas, three owners")
	live[0].WaitRuns(replicaJob, "three succeeded slots", func(r RunsResponse) bool { return r.Count("succeeded") >= 3 })

	// SIGKILL a replica once the store shows it owns a running attempt
	// that has just started (so that it cannot finish before it dies).
	lost := waitFreshAttempt(t, live[0], st, func(a Attempt) bool { return byOwner[a.Owner] != nil })
	victim := byOwner[lost.Owner]
	victimOwner := victim.Owner()
	victim.Signal(syscall.SIGKILL)
	require.Equal(t, -1, victim.Wait(), "the victim died of SIGKILL")
	killedAt := dbNow(t, st)
	live = slices.DeleteFunc(live, func(d *Daemon) bool { return d == victim })

	// Restart another replica (SIGTERM: it releases what it runs).
	require.Equal(t, 0, live[0].Stop(), "serve exits 0 on SIGTERM")
	live = append(live[1:], e.Serve())

	// The killed replica's slot is taken over and succeeds.
	watch := live[0]
	watch.WaitRuns(replicaJob, "the killed replica's slot to be taken over and succeed", func(r RunsResponse) bool {
		for _, run := range r.Runs {
			if run.ID == lost.SlotID {
				return run.Status == "succeeded"
			}
		}
		return false
	})
	// Whatever the restarted replica released is taken over too, and
	// a few more slots run.
	eventually(t, "no released slot left and two more successes", func() (bool, string) {
		r := watch.Runs(replicaJob)
		after, interrupted := 0, 0
		for _, run := range r.Runs {
			switch {
			case run.Status == "interrupted":
				interrupted++
			case run.Status == "succeeded" && run.ID > lost.SlotID:
				after++
			}
		}
		return interrupted == 0 && after >= 2, fmt.Sprintf("%d interrupted, %d succeeded after", interrupted, after)
	})

	// Stop everything; the attempts running now may end interrupted.
	running, err := st.Running(t.Context())
	require.NoError(t, err)
	stopFrom := dbNow(t, st)
	for _, d := range live {
		require.Equal(t, 0, d.Stop(), "serve exits 0 on SIGTERM")
	}

	runs := e.StoreRuns(replicaJob)
	spans := requireContiguous(t, runs, time.Second)
	require.GreaterOrEqual(t, len(spans), 8)
	for _, s := range spans {
		r := s.run
		switch r.Status {
		case "succeeded":
			require.Equal(t, int64(sandboxRows*len(sandboxCompanies)), r.Rows, "record %d", r.ID)
			as := slotAttempts(t, st, r.ID)
			require.Len(t, as, r.Attempts)
			last := as[len(as)-1]
			require.Equal(t, store.StatusSucceeded, last.Status, "record %d: the last attempt succeeded", r.ID)
			require.Equal(t, r.Fence, last.Fence, "record %d: the slot's fence is its last attempt's", r.ID)
			for _, a := range as[:len(as)-1] {
				require.Contains(t, []string{store.StatusLost, store.StatusInterrupted}, a.Status,
					"record %d attempt %d: only lost or released attempts come before the success", r.ID, a.Attempt)
			}
		case "skipped":
			require.Contains(t, r.Error, "running on", "record %d: skipped because the job ran (overlap: skip)", r.ID)
			require.Zero(t, r.Attempts)
		case "missed":
			require.Zero(t, r.Attempts)
		case "interrupted":
			held := slices.ContainsFunc(running, func(a store.Attempt) bool { return a.SlotID == r.ID })
			require.True(t, held || !s.first.Before(stopFrom.Add(-time.Second)),
				"record %d was interrupted but not running when the replicas were stopped: %+v", r.ID, r)
		default:
			t.Fatalf("record %d: status %s: %+v", r.ID, r.Status, r)
		}
	}

	// The killed replica's slot: its attempt was lost, another replica's
	// succeeded.
	as := slotAttempts(t, st, lost.SlotID)
	require.GreaterOrEqual(t, len(as), 2, "taken over as a new attempt")
	require.Equal(t, victimOwner, as[lost.Attempt-1].Owner)
	require.Equal(t, store.StatusLost, as[lost.Attempt-1].Status, "the killed replica's attempt: %+v", as[lost.Attempt-1])
	require.NotEqual(t, victimOwner, as[len(as)-1].Owner)
	require.Equal(t, store.StatusSucceeded, as[len(as)-1].Status)
	require.Greater(t, as[len(as)-1].Fence, lost.Fence, "a takeover draws a larger fencing token")

	// Nothing is the dead replica's after its death.
	all, err := st.Slots(t.Context(), store.SlotFilter{Job: replicaJob, Limit: 100000})
	require.NoError(t, err)
	for _, sl := range all {
		for _, a := range slotAttempts(t, st, sl.ID) {
			if a.Owner == victimOwner {
				require.True(t, a.StartedAt.Before(killedAt), "the dead replica started attempt %d of slot %d after it died", a.Attempt, sl.ID)
				if a.Status == store.StatusSucceeded {
					require.True(t, a.FinishedAt.Before(killedAt), "the dead replica finished attempt %d of slot %d after it died", a.Attempt, sl.ID)
				}
			}
		}
	}

	requireSinkMatchesStore(t, e, spans)
}

// requireSinkMatchesStore checks the file sink against the slot records:
// every succeeded slot has one complete file per company from its
// succeeding attempt, and every other file is a complete file of an
// earlier attempt of a slot that was taken over (the file sink is
// at-least-once across a takeover, and its files say which attempt wrote
// them).
func requireSinkMatchesStore(t *testing.T, e *Env, spans []span) {
	t.Helper()
	bySlot := map[time.Time]Run{}
	for _, s := range spans {
		bySlot[s.first] = s.run
	}
	want := map[string]bool{}
	for _, s := range spans {
		if s.run.Status != "succeeded" {
			continue
		}
		for _, c := range sandboxCompanies {
			path := e.OutFile(replicaJob, c, s.first, s.run.Attempts)
			requireAccounts(t, path, sandboxRows)
			want[path] = true
		}
	}
	for _, f := range e.OutFiles() {
		if want[f] {
			continue
		}
		slot, attempt := parseOutFile(t, f)
		r, ok := bySlot[slot]
		require.True(t, ok, "file %s belongs to no slot record", f)
		require.Less(t, attempt, r.Attempts, "file %s: only an earlier attempt of a slot may leave an extra file (record %+v)", f, r)
		requireAccounts(t, f, sandboxRows)
	}
}

// parseOutFile reads the slot and attempt of a file the default sink of
// WriteJob wrote: out/JOB/COMPANY/SLOT-ATTEMPT.ndjson.
func parseOutFile(t *testing.T, path string) (time.Time, int) {
	t.Helper()
	base := strings.TrimSuffix(filepath.Base(path), ".ndjson")
	i := strings.LastIndex(base, "-")
	require.Positive(t, i, "file %s", path)
	slot, err := time.Parse("20060102T150405-0700", base[:i])
	require.NoError(t, err, "file %s", path)
	attempt, err := strconv.Atoi(base[i+1:])
	require.NoError(t, err, "file %s", path)
	return slot.UTC(), attempt
}

// freshAge is how recently an attempt a test interrupts must have started:
// with 400 ms per GraphQL request and three pages per company, an attempt
// lasts more than a second, so one younger than this cannot finish before
// the test acts.
const freshAge = 500 * time.Millisecond

// waitFreshAttempt polls d's /api/runs until it shows a running attempt
// of replicaJob for which ok holds and that, by the store's clock, started
// less than freshAge ago, and returns it.
func waitFreshAttempt(t *testing.T, d *Daemon, st store.Store, ok func(Attempt) bool) Attempt {
	t.Helper()
	var found Attempt
	eventually(t, "a freshly started attempt", func() (bool, string) {
		r := d.Runs(replicaJob)
		for _, a := range r.Running {
			if !ok(a) {
				continue
			}
			for _, sa := range slotAttempts(t, st, a.SlotID) {
				if sa.Fence == a.Fence && sa.Status == store.StatusRunning && dbNow(t, st).Sub(sa.StartedAt) < freshAge {
					found = a
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("running: %+v", r.Running)
	})
	return found
}

// daemonOf waits until a started serve process logs its address.
func (e *Env) daemonOf(p *Proc) *Daemon {
	e.t.Helper()
	line := p.WaitLog("nxtcron serving", nil)
	addr := line.Str("listen")
	require.NotEmpty(e.t, addr, "the serving log line has no listen address: %v", line)
	return &Daemon{Proc: p, Addr: addr, URL: "http://" + addr, Token: e.AdminToken}
}

// TestReplicasCatchUpAfterAllStopped stops every replica for several slots
// and starts one: the newest slot of the gap runs (trigger catchup), the
// others become one missed record, and the replica says so in its log and
// metrics.
func TestReplicasCatchUpAfterAllStopped(t *testing.T) {
	e := NewEnv(t)
	schema := pgSchema(t)
	st := pgStore(t, schema)
	pgKeys(e)
	sb := e.StartSandbox("--rows", "7")
	e.WriteConfig(Config{StoreDSN: pgDSN(t), StoreSchema: schema, SandboxURL: sb.URL})
	e.WriteJob(replicaJob, Job{Schedule: "@every 1s", Extra: "catchup: 2s"})

	a, b := e.Serve(), e.Serve()
	a.WaitRuns(replicaJob, "three succeeded slots", func(r RunsResponse) bool { return r.Count("succeeded") >= 3 })
	require.Equal(t, 0, a.Stop())
	require.Equal(t, 0, b.Stop())
	before := requireContiguous(t, e.StoreRuns(replicaJob), time.Second)
	lastBefore := before[len(before)-1].last

	// Six slots go by with no replica running.
	waitDBTime(t, st, lastBefore.Add(6*time.Second))

	c := e.Serve()
	c.WaitRuns(replicaJob, "two succeeded slots after the restart", func(r RunsResponse) bool {
		n := 0
		for _, run := range r.Runs {
			if run.Status == "succeeded" && run.SlotTime(t).After(lastBefore) {
				n++
			}
		}
		return n >= 2
	})
	missedLog := c.WaitLog("slots missed: due while no replica ran, only the newest within catchup runs", nil)
	missedMetric := metricValue(t, c, `nxtcron_slots_missed_total{job="accounts"}`)
	require.Equal(t, 0, c.Stop())

	spans := requireContiguous(t, e.StoreRuns(replicaJob), time.Second)
	i := slices.IndexFunc(spans, func(s span) bool { return s.first.After(lastBefore) })
	require.GreaterOrEqual(t, i, 0)
	require.GreaterOrEqual(t, len(spans)-i, 2)
	missed, caught := spans[i], spans[i+1]
	require.Equal(t, "missed", missed.run.Status, "the gap: %+v", missed.run)
	require.Equal(t, lastBefore.Add(time.Second), missed.first, "the gap starts after the last slot before the stop")
	require.Equal(t, caught.first.Add(-time.Second), missed.last, "the gap ends before the caught-up slot")
	require.GreaterOrEqual(t, missed.count, 5, "six seconds without replicas leave at least five slots behind")
	require.Equal(t, "catchup", caught.run.Trigger, "the newest slot of the gap: %+v", caught.run)
	require.Equal(t, "succeeded", caught.run.Status)
	require.EqualValues(t, missed.count, missedLog["count"], "the log names the gap")
	require.InDelta(t, float64(missed.count), missedMetric, 0.5, "nxtcron_slots_missed_total counts the gap's slots")
	for _, s := range spans[:i] {
		// What ran when the replicas stopped was released; older than the
		// 2s catchup when the next replica came, it stays interrupted.
		if s.run.Status == "interrupted" {
			require.Contains(t, s.run.Error, "catchup", "record %+v", s.run)
		}
	}
	for _, s := range spans {
		if s.run.Status == "succeeded" {
			for _, co := range sandboxCompanies {
				requireAccounts(t, e.OutFile(replicaJob, co, s.first, s.run.Attempts), sandboxRows)
			}
		}
	}
}

// metricValue reads one sample of the daemon's /metrics (0 when absent).
func metricValue(t *testing.T, d *Daemon, sample string) float64 {
	t.Helper()
	status, body := d.Get("/metrics")
	require.Equal(t, http.StatusOK, status)
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, "%s", sc.Text())
			return f
		}
	}
	return 0
}
