package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

var basicsTests = []test{
	{"NowAndPing", func(t *testing.T, s store.Store) {
		require.NoError(t, s.Ping(ctx(t)))
		a := dbNow(t, s)
		requireUTC(t, &a)
		// The database's clock is a real clock (the suite runs the database
		// on a test host, so allow for modest skew).
		require.WithinDuration(t, time.Now(), a, 5*time.Minute)
		waitPast(t, s, a)
		require.True(t, dbNow(t, s).After(a))
	}},
	{"MigrationsAllApplied", func(t *testing.T, s store.Store) {
		check := func() {
			ms, err := s.Migrations(ctx(t))
			require.NoError(t, err)
			require.NotEmpty(t, ms)
			var last int64
			for _, m := range ms {
				require.Greater(t, m.Version, last, "versions increase")
				last = m.Version
				require.NotEmpty(t, m.Name)
				require.True(t, m.Applied, "migration %d %s is not applied", m.Version, m.Name)
				require.NotNil(t, m.AppliedAt)
				requireUTC(t, m.AppliedAt)
			}
		}
		check()
		// Migrating a migrated store changes nothing.
		require.NoError(t, s.Migrate(ctx(t)))
		check()
	}},
}

var jobsTests = []test{
	{"FirstSeenStartsNow", func(t *testing.T, s store.Store) {
		before := dbNow(t, s)
		st, err := s.SyncJob(ctx(t), store.JobDef{
			Name: "associates", ScheduleHash: "s1", DefinitionHash: "d1", Overlap: "skip", Catchup: 90 * time.Minute,
		})
		require.NoError(t, err)
		after := dbNow(t, s)
		require.Equal(t, "associates", st.Name)
		require.Equal(t, "s1", st.ScheduleHash)
		require.Equal(t, "d1", st.DefinitionHash)
		require.Equal(t, "skip", st.Overlap)
		require.Equal(t, 90*time.Minute, st.Catchup)
		require.False(t, st.Paused)
		requireBetween(t, before, after, st.ScheduledThrough, "scheduled_through")
		requireBetween(t, before, after, st.UpdatedAt, "updated_at")
		requireUTC(t, &st.ScheduledThrough, &st.UpdatedAt)

		got, err := s.Job(ctx(t), "associates")
		require.NoError(t, err)
		require.Equal(t, st, got)
	}},
	{"SameScheduleKeepsScheduledThrough", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		slot := futureSlot(st, 3)
		settleClaim(t, s, "orders", slot, "a", lease)
		require.NoError(t, s.SetPaused(ctx(t), "orders", true))

		// Same schedule, new definition, overlap and catchup.
		st, err := s.SyncJob(ctx(t), store.JobDef{
			Name: "orders", ScheduleHash: scheduleHash, DefinitionHash: "definition-2", Overlap: "allow", Catchup: time.Hour,
		})
		require.NoError(t, err)
		requireTime(t, slot, st.ScheduledThrough, "scheduled_through is kept")
		require.Equal(t, "definition-2", st.DefinitionHash)
		require.Equal(t, "allow", st.Overlap)
		require.Equal(t, time.Hour, st.Catchup)
		require.True(t, st.Paused, "SyncJob keeps paused")
	}},
	{"ChangedScheduleRestartsFromNow", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		slot := futureSlot(st, 3)
		settleClaim(t, s, "orders", slot, "a", lease)

		before := dbNow(t, s)
		st, err := s.SyncJob(ctx(t), store.JobDef{
			Name: "orders", ScheduleHash: "schedule-2", DefinitionHash: defHash, Overlap: "skip", Catchup: time.Hour,
		})
		require.NoError(t, err)
		after := dbNow(t, s)
		require.Equal(t, "schedule-2", st.ScheduleHash)
		requireBetween(t, before, after, st.ScheduledThrough, "scheduled_through after a schedule change")
	}},
	{"InvalidDefinition", func(t *testing.T, s store.Store) {
		for _, def := range []store.JobDef{
			{Name: "", ScheduleHash: "s", DefinitionHash: "d", Overlap: "skip"},
			{Name: "x", ScheduleHash: "s", DefinitionHash: "d", Overlap: "sometimes"},
			{Name: "x", ScheduleHash: "s", DefinitionHash: "d", Overlap: "skip", Catchup: -time.Second},
		} {
			_, err := s.SyncJob(ctx(t), def)
			require.Error(t, err, "%+v", def)
		}
		jobs, err := s.Jobs(ctx(t))
		require.NoError(t, err)
		require.Empty(t, jobs)
	}},
	{"JobsByName", func(t *testing.T, s store.Store) {
		_, err := s.Job(ctx(t), "missing")
		require.ErrorIs(t, err, store.ErrNotFound)
		jobs, err := s.Jobs(ctx(t))
		require.NoError(t, err)
		require.Empty(t, jobs)

		for _, name := range []string{"orders", "associates", "ledger"} {
			syncJob(t, s, name, "skip")
		}
		jobs, err = s.Jobs(ctx(t))
		require.NoError(t, err)
		var names []string
		for _, j := range jobs {
			names = append(names, j.Name)
		}
		require.Equal(t, []string{"associates", "ledger", "orders"}, names)
	}},
	{"Paused", func(t *testing.T, s store.Store) {
		require.ErrorIs(t, s.SetPaused(ctx(t), "missing", true), store.ErrNotFound)
		st := syncJob(t, s, "orders", "allow")
		require.NoError(t, s.SetPaused(ctx(t), "orders", true))
		st2, err := s.Job(ctx(t), "orders")
		require.NoError(t, err)
		require.True(t, st2.Paused)

		slot := futureSlot(st, 1)
		res, err := s.Settle(ctx(t), "orders", func(st store.JobState) (store.SettlePlan, error) {
			require.True(t, st.Paused)
			return store.SettlePlan{Through: slot, DefinitionHash: defHash, Claim: &store.NewClaim{
				Slot: slot, Trigger: store.TriggerCatchup, Owner: "a", Lease: lease,
				Options: store.RunOptions{Full: true},
			}}, nil
		})
		require.NoError(t, err)
		require.Nil(t, res.Claim)
		require.True(t, res.Skipped)
		require.Equal(t, "paused", res.Reason)
		requireTime(t, slot, res.State.ScheduledThrough)

		slots, err := s.Slots(ctx(t), store.SlotFilter{Job: "orders"})
		require.NoError(t, err)
		require.Len(t, slots, 1)
		sl := slots[0]
		require.Equal(t, store.StatusSkipped, sl.Status)
		require.Equal(t, store.TriggerCatchup, sl.Trigger, "a skipped record keeps the trigger")
		require.Equal(t, "paused", sl.Error)
		require.Equal(t, store.RunOptions{Full: true}, sl.Options)
		requireTime(t, slot, sl.Slot)
		require.Zero(t, sl.Attempts)
		require.Zero(t, sl.Fence)
		require.Nil(t, sl.LeaseUntil)
		require.Empty(t, attempts(t, s, sl.ID))

		// Resumed, the next slot is claimed.
		require.NoError(t, s.SetPaused(ctx(t), "orders", false))
		settleClaim(t, s, "orders", futureSlot(st, 2), "a", lease)
	}},
}

var settleTests = []test{
	{"Claim", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		slot := futureSlot(st, 2)
		company := int64(1001)
		opts := store.RunOptions{Company: &company}
		calls := 0
		before := dbNow(t, s)
		res, err := s.Settle(ctx(t), "orders", func(got store.JobState) (store.SettlePlan, error) {
			calls++
			require.Equal(t, st, got, "plan sees the stored state")
			return store.SettlePlan{Through: slot, DefinitionHash: defHash, Claim: &store.NewClaim{
				Slot: slot, Trigger: store.TriggerSchedule, Owner: "replica-a", Lease: lease, Options: opts,
			}}, nil
		})
		require.NoError(t, err)
		after := dbNow(t, s)
		require.Equal(t, 1, calls)
		require.False(t, res.Skipped)
		require.Empty(t, res.Reason)
		require.Zero(t, res.Missed)
		requireTime(t, slot, res.State.ScheduledThrough)
		stored, err := s.Job(ctx(t), "orders")
		require.NoError(t, err)
		require.Equal(t, stored, res.State)

		c := res.Claim
		require.NotNil(t, c)
		require.NotZero(t, c.SlotID)
		require.Equal(t, "orders", c.Job)
		requireTime(t, slot, c.Slot)
		requireUTC(t, &c.Slot)
		require.Equal(t, store.TriggerSchedule, c.Trigger)
		require.Equal(t, 1, c.Attempt)
		require.Positive(t, c.Fence)
		require.Len(t, c.RunID, 36, "run id is a uuid")
		require.Equal(t, "replica-a", c.Owner)
		require.Equal(t, opts, c.Options)

		sl := slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusRunning, sl.Status)
		require.Equal(t, "orders", sl.Job)
		requireTime(t, slot, sl.Slot)
		require.Equal(t, 1, sl.Attempts)
		require.Equal(t, c.Fence, sl.Fence)
		require.Equal(t, "replica-a", sl.Owner)
		require.Equal(t, opts, sl.Options)
		require.NotNil(t, sl.StartedAt)
		require.Nil(t, sl.FinishedAt)
		require.NotNil(t, sl.LeaseUntil)
		requireBetween(t, before.Add(lease), after.Add(lease), *sl.LeaseUntil, "lease_until")
		requireBetween(t, before, after, sl.CreatedAt, "created_at")
		requireUTC(t, &sl.Slot, &sl.CreatedAt, sl.StartedAt, sl.LeaseUntil)

		as := attempts(t, s, c.SlotID)
		require.Len(t, as, 1)
		a := as[0]
		require.Equal(t, store.Attempt{
			SlotID: c.SlotID, Job: "orders", Slot: a.Slot, Trigger: store.TriggerSchedule, Attempt: 1, Fence: c.Fence,
			RunID: c.RunID, Owner: "replica-a", Status: store.StatusRunning, StartedAt: a.StartedAt, LeaseUntil: a.LeaseUntil,
		}, a)
		requireTime(t, slot, a.Slot)
		requireBetween(t, before, after, a.StartedAt, "started_at")
		requireTime(t, *sl.LeaseUntil, a.LeaseUntil)
		requireUTC(t, &a.Slot, &a.StartedAt, &a.LeaseUntil)
	}},
	{"ThroughNotAfterChangesNothing", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "allow")
		slot := futureSlot(st, 1)
		settleClaim(t, s, "orders", slot, "a", lease)
		for _, through := range []time.Time{slot, slot.Add(-time.Minute)} {
			res, err := s.Settle(ctx(t), "orders", claimPlan(through, "a", lease))
			require.NoError(t, err)
			require.Nil(t, res.Claim)
			require.False(t, res.Skipped)
			require.Zero(t, res.Missed)
			requireTime(t, slot, res.State.ScheduledThrough)
		}
		slots, err := s.Slots(ctx(t), store.SlotFilter{})
		require.NoError(t, err)
		require.Len(t, slots, 1)
	}},
	{"AdvanceWithoutClaim", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		through := futureSlot(st, 5)
		res, err := s.Settle(ctx(t), "orders", func(store.JobState) (store.SettlePlan, error) {
			return store.SettlePlan{Through: through, DefinitionHash: defHash}, nil
		})
		require.NoError(t, err)
		require.Nil(t, res.Claim)
		requireTime(t, through, res.State.ScheduledThrough)
		slots, err := s.Slots(ctx(t), store.SlotFilter{})
		require.NoError(t, err)
		require.Empty(t, slots)
	}},
	{"MissedGaps", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		m := func(n int) time.Time { return futureSlot(st, n) }
		res, err := s.Settle(ctx(t), "orders", func(store.JobState) (store.SettlePlan, error) {
			return store.SettlePlan{
				Through: m(10), DefinitionHash: defHash,
				Missed: []store.Gap{{First: m(1), Last: m(5), Count: 5}, {First: m(7), Last: m(7), Count: 1}, {First: m(8), Last: m(9), Count: 2}},
				Claim:  &store.NewClaim{Slot: m(10), Trigger: store.TriggerCatchup, Owner: "a", Lease: lease},
			}, nil
		})
		require.NoError(t, err)
		require.Equal(t, 8, res.Missed)
		require.NotNil(t, res.Claim)
		require.Equal(t, store.TriggerCatchup, res.Claim.Trigger)

		missed, err := s.Slots(ctx(t), store.SlotFilter{Job: "orders", Statuses: []string{store.StatusMissed}})
		require.NoError(t, err)
		require.Len(t, missed, 3, "one record per gap")
		want := []store.Gap{{First: m(8), Last: m(9), Count: 2}, {First: m(7), Last: m(7), Count: 1}, {First: m(1), Last: m(5), Count: 5}}
		for i, sl := range missed {
			requireTime(t, want[i].First, sl.Slot)
			require.NotNil(t, sl.MissedLast)
			requireTime(t, want[i].Last, *sl.MissedLast)
			require.Equal(t, want[i].Count, sl.MissedCount)
			require.Equal(t, store.StatusMissed, sl.Status)
			require.Equal(t, store.TriggerSchedule, sl.Trigger)
			require.Zero(t, sl.Attempts)
			require.Zero(t, sl.Fence)
			require.Nil(t, sl.LeaseUntil)
			requireUTC(t, &sl.Slot, sl.MissedLast)
		}
		claimed := slotByID(t, s, res.Claim.SlotID)
		require.Nil(t, claimed.MissedLast)
		require.Zero(t, claimed.MissedCount)
	}},
	{"Conflict", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		slot := futureSlot(st, 1)
		_, err := s.Settle(ctx(t), "orders", func(store.JobState) (store.SettlePlan, error) {
			return store.SettlePlan{Through: slot, DefinitionHash: "definition-2",
				Missed: []store.Gap{{First: slot, Last: slot, Count: 1}}}, nil
		})
		require.ErrorIs(t, err, store.ErrConflict)
		got, err := s.Job(ctx(t), "orders")
		require.NoError(t, err)
		require.Equal(t, st, got, "a conflict changes nothing")
		slots, err := s.Slots(ctx(t), store.SlotFilter{})
		require.NoError(t, err)
		require.Empty(t, slots)
	}},
	{"PlanError", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		boom := errors.New("boom")
		_, err := s.Settle(ctx(t), "orders", func(store.JobState) (store.SettlePlan, error) {
			return store.SettlePlan{}, boom
		})
		require.ErrorIs(t, err, boom)
		got, err := s.Job(ctx(t), "orders")
		require.NoError(t, err)
		require.Equal(t, st, got)
	}},
	{"UnknownJob", func(t *testing.T, s store.Store) {
		_, err := s.Settle(ctx(t), "missing", func(store.JobState) (store.SettlePlan, error) {
			require.Fail(t, "plan called for a missing job")
			return store.SettlePlan{}, nil
		})
		require.ErrorIs(t, err, store.ErrNotFound)
	}},
	{"InvalidPlan", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		m := func(n int) time.Time { return futureSlot(st, n) }
		claim := func(slot time.Time) *store.NewClaim {
			return &store.NewClaim{Slot: slot, Trigger: store.TriggerSchedule, Owner: "a", Lease: lease}
		}
		for name, p := range map[string]store.SettlePlan{
			"claim after through":        {Through: m(2), Claim: claim(m(3))},
			"claim at scheduled_through": {Through: m(2), Claim: claim(st.ScheduledThrough)},
			"gap before":                 {Through: m(2), Missed: []store.Gap{{First: m(-5), Last: m(1), Count: 7}}},
			"gap after through":          {Through: m(2), Missed: []store.Gap{{First: m(1), Last: m(3), Count: 3}}},
			"gap reversed":               {Through: m(3), Missed: []store.Gap{{First: m(2), Last: m(1), Count: 2}}},
			"empty gap":                  {Through: m(3), Missed: []store.Gap{{First: m(1), Last: m(1), Count: 0}}},
			"claim without owner":        {Through: m(2), Claim: &store.NewClaim{Slot: m(2), Trigger: store.TriggerSchedule, Lease: lease}},
			"claim without lease":        {Through: m(2), Claim: &store.NewClaim{Slot: m(2), Trigger: store.TriggerSchedule, Owner: "a"}},
			"manual trigger":             {Through: m(2), Claim: &store.NewClaim{Slot: m(2), Trigger: store.TriggerManual, Owner: "a", Lease: lease}},
		} {
			p.DefinitionHash = defHash
			_, err := s.Settle(ctx(t), "orders", func(store.JobState) (store.SettlePlan, error) { return p, nil })
			require.Error(t, err, name)
			require.NotErrorIs(t, err, store.ErrConflict, name)
		}
		got, err := s.Job(ctx(t), "orders")
		require.NoError(t, err)
		require.Equal(t, st, got, "an invalid plan changes nothing")
		slots, err := s.Slots(ctx(t), store.SlotFilter{})
		require.NoError(t, err)
		require.Empty(t, slots)
	}},
}
