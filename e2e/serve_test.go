package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The in-process sandbox of these tests serves two companies with this
// many rows per table.
const sandboxRows = 7

var sandboxCompanies = []int64{1001, 1002}

// TestServeRecordsEverySlot runs a job every second until five slots
// succeeded, stops the daemon, and checks that the store recorded every
// slot from the first to the last exactly once and that every succeeded
// slot left one complete file per company.
func TestServeRecordsEverySlot(t *testing.T) {
	e := NewEnv(t)
	e.WriteConfig(Config{Sandbox: "rows: 7"})
	e.WriteJob("accounts", Job{Schedule: "@every 1s"}) // 3 pages per company

	d := e.Serve()
	d.WaitRuns("accounts", "five succeeded slots", func(r RunsResponse) bool { return r.Count("succeeded") >= 5 })
	require.Equal(t, 0, d.Stop(), "serve exits 0 on SIGTERM")
	d.WaitLog("scheduler stopped", nil)

	runs := e.StoreRuns("accounts")
	spans := requireContiguous(t, runs, time.Second)
	want := map[string]bool{} // the files the records call for
	succeeded := 0
	for i, s := range spans {
		r := s.run
		switch r.Status {
		case "succeeded":
			succeeded++
			require.Contains(t, []string{"schedule", "catchup"}, r.Trigger, "record %d", r.ID)
			require.Equal(t, 1, r.Attempts, "record %d: one attempt, no retries", r.ID)
			require.Equal(t, int64(sandboxRows*len(sandboxCompanies)), r.Rows, "record %d", r.ID)
			for _, c := range sandboxCompanies {
				path := e.OutFile("accounts", c, s.first, r.Attempts)
				requireAccounts(t, path, sandboxRows)
				want[path] = true
			}
		case "skipped", "missed":
		case "interrupted":
			// Only the attempt running at SIGTERM can be interrupted (slots
			// after it found it running); a company it finished before may
			// have its (complete) file.
			for _, later := range spans[i+1:] {
				require.Contains(t, []string{"skipped", "missed"}, later.run.Status,
					"record %d follows the interrupted record %d", later.run.ID, r.ID)
			}
			for _, c := range sandboxCompanies {
				path := e.OutFile("accounts", c, s.first, r.Attempts)
				if _, err := os.Stat(path); err == nil {
					requireAccounts(t, path, sandboxRows)
					want[path] = true
				}
			}
		default:
			t.Fatalf("record %d has status %s: %+v", r.ID, r.Status, r)
		}
	}
	require.GreaterOrEqual(t, succeeded, 5)
	got := e.OutFiles()
	for _, f := range got {
		require.True(t, want[f], "file %s belongs to no succeeded slot (leftover temporary file or duplicate delivery)", f)
	}
	require.Len(t, got, len(want), "every succeeded slot has its files")
}

// TestSIGTERMInterruptsThenRestartTakesOver stops the daemon in the middle
// of an attempt (each GraphQL request takes 2 s, the attempt four pages):
// the slot is recorded interrupted, and the next start takes the same slot
// over as attempt 2 and completes it.
func TestSIGTERMInterruptsThenRestartTakesOver(t *testing.T) {
	e := NewEnv(t)
	// A separate sandbox outlives the daemon and its latency can drop
	// before the restart.
	sb := e.StartSandbox("--rows", "7", "--latency", "2s")
	e.WriteConfig(Config{SandboxURL: sb.URL, ShutdownGrace: "500ms"})
	e.WriteJob("accounts", Job{Schedule: "@every 1s", Companies: "[1001]", PageSize: 2})

	d := e.Serve()
	owner1 := d.Owner()
	running := d.WaitRunning("accounts")
	require.Equal(t, 1, running.Attempt)
	eventually(t, "the attempt's first page to be served", func() (bool, string) {
		st := sb.Stats()
		return st.RowsServed >= 2, ""
	})
	require.Equal(t, 0, d.Stop(), "serve exits 0 on SIGTERM during an attempt")

	var slot Run
	for _, r := range e.StoreRuns("accounts") {
		if r.Slot == running.Slot {
			slot = r
			continue
		}
		// Every later slot found the job running (overlap: skip).
		require.Contains(t, []string{"skipped", "missed"}, r.Status, "record %+v", r)
	}
	require.Equal(t, "interrupted", slot.Status, "the slot running at SIGTERM: %+v", slot)
	require.Equal(t, 1, slot.Attempts)
	require.Empty(t, e.OutFiles(), "an interrupted attempt commits nothing")

	sb.Settings(`{"latency": "0s"}`)
	d2 := e.Serve()
	owner2 := d2.Owner()
	require.NotEqual(t, owner1, owner2)
	r := d2.WaitRuns("accounts", "the interrupted slot to succeed", func(r RunsResponse) bool {
		for _, run := range r.Runs {
			if run.Slot == running.Slot && run.Status == "succeeded" {
				return true
			}
		}
		return false
	})
	require.Equal(t, 0, d2.Stop())
	for _, run := range r.Runs {
		if run.Slot == running.Slot {
			slot = run
		}
	}
	require.Equal(t, 2, slot.Attempts, "taken over as attempt 2: %+v", slot)
	require.Equal(t, owner2, slot.Owner)
	require.Equal(t, int64(sandboxRows), slot.Rows)
	slotTime := slot.SlotTime(t)
	requireAccounts(t, e.OutFile("accounts", 1001, slotTime, 2), sandboxRows)
	require.NoFileExists(t, e.OutFile("accounts", 1001, slotTime, 1))
}

// TestRestartAfterDowntimeRecordsMissedSlots stops the daemon for a few
// seconds: on the next start the newest slot of the gap runs (trigger
// catchup) and the others become one missed record.
func TestRestartAfterDowntimeRecordsMissedSlots(t *testing.T) {
	e := NewEnv(t)
	e.WriteConfig(Config{Sandbox: "rows: 7"})
	e.WriteJob("accounts", Job{Schedule: "@every 1s", Extra: "catchup: 2s"})

	d := e.Serve()
	d.WaitRuns("accounts", "three succeeded slots", func(r RunsResponse) bool { return r.Count("succeeded") >= 3 })
	require.Equal(t, 0, d.Stop())
	before := requireContiguous(t, e.StoreRuns("accounts"), time.Second)
	lastBefore := before[len(before)-1].last

	// The downtime is what this test is about: real time must pass while
	// no daemon runs.
	time.Sleep(6 * time.Second)

	d2 := e.Serve()
	d2.WaitRuns("accounts", "two succeeded slots after the restart", func(r RunsResponse) bool {
		n := 0
		for _, run := range r.Runs {
			if run.Status == "succeeded" && run.SlotTime(t).After(lastBefore) {
				n++
			}
		}
		return n >= 2
	})
	require.Equal(t, 0, d2.Stop())

	spans := requireContiguous(t, e.StoreRuns("accounts"), time.Second)
	i := slices.IndexFunc(spans, func(s span) bool { return s.first.After(lastBefore) })
	require.GreaterOrEqual(t, i, 0)
	require.GreaterOrEqual(t, len(spans)-i, 2)
	missed, caught := spans[i], spans[i+1]
	require.Equal(t, "missed", missed.run.Status, "the gap: %+v", missed.run)
	require.Equal(t, lastBefore.Add(time.Second), missed.first, "the gap starts after the last slot before the stop")
	require.Equal(t, caught.first.Add(-time.Second), missed.last, "the gap ends before the caught-up slot")
	require.Equal(t, int(caught.first.Sub(lastBefore)/time.Second)-1, missed.count, "every slot of the gap but the caught-up one")
	require.GreaterOrEqual(t, missed.count, 5, "six seconds of downtime leave at least five slots behind")
	require.Equal(t, "catchup", caught.run.Trigger, "the newest slot of the gap: %+v", caught.run)
	require.Equal(t, "succeeded", caught.run.Status)
	for _, c := range sandboxCompanies {
		requireAccounts(t, e.OutFile("accounts", c, caught.first, 1), sandboxRows)
	}
	for _, f := range e.OutFiles() {
		require.False(t, strings.HasPrefix(filepath.Base(f), ".nxtcron-tmp-"), "leftover temporary file %s", f)
	}
}
