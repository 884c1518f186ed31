package web

import (
	"context"

	"time"

	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/store"
)

// JobView is a job as /api/jobs and `nxtcron jobs -o json` show it.
type JobView struct {
	Name             string     `json:"name"`
	Description      string     `json:"description,omitempty"`
	Schedule         string     `json:"schedule"`
	Timezone         string     `json:"timezone"`
	Connection       string     `json:"connection"`
	Sink             string     `json:"sink"`
	Incremental      bool       `json:"incremental"`
	Paused           bool       `json:"paused"`
	ScheduledThrough *time.Time `json:"scheduled_through,omitempty"`
	Next             []string   `json:"next"`
	LastRun          *RunView   `json:"last_run,omitempty"`
}

// RunView is a slot record.
type RunView struct {
	ID          int64            `json:"id"`
	Job         string           `json:"job"`
	Slot        string           `json:"slot"`
	Trigger     string           `json:"trigger"`
	Status      string           `json:"status"`
	Attempts    int              `json:"attempts"`
	Fence       int64            `json:"fence,omitempty"`
	Owner       string           `json:"owner,omitempty"`
	Rows        int64            `json:"rows"`
	Error       string           `json:"error,omitempty"`
	Options     store.RunOptions `json:"options"`
	StartedAt   *time.Time       `json:"started_at,omitempty"`
	FinishedAt  *time.Time       `json:"finished_at,omitempty"`
	LeaseUntil  *time.Time       `json:"lease_until,omitempty"`
	MissedLast  string           `json:"missed_last,omitempty"`
	MissedCount int              `json:"missed_count,omitempty"`
}

// AttemptView is an attempt that holds a claim now.
type AttemptView struct {
	SlotID     int64     `json:"slot_id"`
	Job        string    `json:"job"`
	Slot       string    `json:"slot"`
	Trigger    string    `json:"trigger"`
	Attempt    int       `json:"attempt"`
	Fence      int64     `json:"fence"`
	RunID      string    `json:"run_id"`
	Owner      string    `json:"owner"`
	Status     string    `json:"status"`
	StartedAt  time.Time `json:"started_at"`
	LeaseUntil time.Time `json:"lease_until"`
}

// Jobs builds the views of js: schedule, the next n slots after now, the
// latest slot record.
func Jobs(ctx context.Context, st store.Store, js []*jobs.Job, now time.Time, n int) ([]JobView, error) {
	states, err := st.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]store.JobState, len(states))
	for _, s := range states {
		byName[s.Name] = s
	}
	out := make([]JobView, 0, len(js))
	for _, j := range js {
		v := JobView{
			Name: j.Name, Description: j.Description, Schedule: j.Schedule,
			Timezone: j.Location.String(), Connection: j.Connection, Sink: j.Sink.Type,
			Incremental: j.Incremental != nil, Next: []string{},
		}
		if s, ok := byName[j.Name]; ok {
			v.Paused = s.Paused
			t := s.ScheduledThrough
			v.ScheduledThrough = &t
		}
		t := now
		for range n {
			t = j.Cron.Next(t)
			if t.IsZero() {
				break
			}
			v.Next = append(v.Next, t.In(j.Location).Format(time.RFC3339))
		}
		last, err := st.Slots(ctx, store.SlotFilter{Job: j.Name, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(last) > 0 {
			r := Run(last[0], j.Location)
			v.LastRun = &r
		}
		out = append(out, v)
	}
	return out, nil
}

// Run converts a slot record; slot times show in loc (the job's zone) when
// known.
func Run(s store.Slot, loc *time.Location) RunView {
	if loc == nil {
		loc = time.UTC
	}
	v := RunView{
		ID: s.ID, Job: s.Job, Slot: s.Slot.In(loc).Format(time.RFC3339), Trigger: s.Trigger,
		Status: s.Status, Attempts: s.Attempts, Fence: s.Fence, Owner: s.Owner, Rows: s.Rows,
		Error: s.Error, Options: s.Options, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt,
		LeaseUntil: s.LeaseUntil, MissedCount: s.MissedCount,
	}
	if s.MissedLast != nil {
		v.MissedLast = s.MissedLast.In(loc).Format(time.RFC3339)
	}
	return v
}

// Attempt converts a running attempt.
func Attempt(a store.Attempt, loc *time.Location) AttemptView {
	if loc == nil {
		loc = time.UTC
	}
	return AttemptView{
		SlotID: a.SlotID, Job: a.Job, Slot: a.Slot.In(loc).Format(time.RFC3339), Trigger: a.Trigger,
		Attempt: a.Attempt, Fence: a.Fence, RunID: a.RunID, Owner: a.Owner, Status: a.Status,
		StartedAt: a.StartedAt, LeaseUntil: a.LeaseUntil,
	}
}

// Runs lists slot records (newest first) with each job's zone.
func Runs(ctx context.Context, st store.Store, js []*jobs.Job, f store.SlotFilter) ([]RunView, error) {
	slots, err := st.Slots(ctx, f)
	if err != nil {
		return nil, err
	}
	zones := zonesOf(js)
	out := make([]RunView, 0, len(slots))
	for _, s := range slots {
		out = append(out, Run(s, zones[s.Job]))
	}
	return out, nil
}

func zonesOf(js []*jobs.Job) map[string]*time.Location {
	m := make(map[string]*time.Location, len(js))
	for _, j := range js {
		m[j.Name] = j.Location
	}
	return m
}
