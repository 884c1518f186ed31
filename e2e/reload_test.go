package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// jobsList is the body of GET /api/jobs.
type jobsList struct {
	Jobs []struct {
		Name     string `json:"name"`
		Schedule string `json:"schedule"`
	} `json:"jobs"`
}

// jobSchedules returns the daemon's job set: name -> schedule.
func (d *Daemon) jobSchedules() map[string]string {
	d.t.Helper()
	var l jobsList
	d.GetJSON("/api/jobs", &l)
	out := map[string]string{}
	for _, j := range l.Jobs {
		out[j.Name] = j.Schedule
	}
	return out
}

// waitJobs waits until the daemon's job set is exactly want.
func (d *Daemon) waitJobs(what string, want map[string]string) {
	d.t.Helper()
	eventually(d.t, what, func() (bool, string) {
		if d.Exited() {
			d.t.Fatalf("%s exited (%s) while waiting for %s", d.Name, d.state(), what)
		}
		got := d.jobSchedules()
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})
}

// TestSIGHUPReloadsJobs adds a job file and sends SIGHUP: the daemon
// serves the new set. Then it breaks one file and adds another: SIGHUP
// keeps the old set whole and logs the problem at file:line. Fixing the
// file and another SIGHUP bring the new set in.
func TestSIGHUPReloadsJobs(t *testing.T) {
	e := NewEnv(t)
	e.WriteConfig(Config{})
	e.WriteJob("first", Job{})
	d := e.Serve()
	require.Equal(t, map[string]string{"first": onceAYear}, d.jobSchedules())

	e.WriteJob("second", Job{Schedule: "0 3 * * *"})
	d.Signal(syscall.SIGHUP)
	d.waitJobs("the added job", map[string]string{"first": onceAYear, "second": "0 3 * * *"})
	d.WaitLog("jobs reloaded", func(l LogLine) bool { return l["jobs"] == 2.0 })

	second := e.WriteJob("second", Job{Schedule: "0 3 * *"}) // line 1
	e.WriteJob("third", Job{})
	d.Signal(syscall.SIGHUP)
	refused := d.WaitLog("reload refused, keeping the current jobs", nil)
	rel, err := filepath.Rel(e.Dir, second)
	require.NoError(t, err)
	require.Contains(t, refused.Str("error"), rel+":1: schedule: expected 5 or 6 fields, found 4",
		"the log names the problem at file:line")
	require.Equal(t, "error", refused.Str("level"))
	require.Equal(t, map[string]string{"first": onceAYear, "second": "0 3 * * *"}, d.jobSchedules(),
		"the old set stays whole: no third job, the old schedule of the second")

	e.WriteJob("second", Job{Schedule: "0 4 * * *"})
	d.Signal(syscall.SIGHUP)
	d.waitJobs("the repaired set", map[string]string{"first": onceAYear, "second": "0 4 * * *", "third": onceAYear})

	require.NoError(t, os.Remove(e.Path("jobs.d", "first.yaml")))
	d.Signal(syscall.SIGHUP)
	d.waitJobs("the set without the removed job", map[string]string{"second": "0 4 * * *", "third": onceAYear})

	require.Equal(t, 0, d.Stop())
	reloaded := 0
	for _, l := range d.Logs() {
		if l.Str("msg") == "jobs reloaded" {
			reloaded++
		}
	}
	require.Equal(t, 3, reloaded, "three reloads succeeded, one was refused")
	require.Equal(t, 1, strings.Count(d.Stderr(), "reload refused"))
	require.True(t, slices.ContainsFunc(d.Logs(), func(l LogLine) bool { return l.Str("msg") == "scheduler stopped" }))
}
