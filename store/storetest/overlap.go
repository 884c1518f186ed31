package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

var overlapTests = []test{
	{"SkipRecordsSkippedNamingOwner", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		first := settleClaim(t, s, "orders", futureSlot(st, 1), "replica-a", lease)

		slot := futureSlot(st, 2)
		res, err := s.Settle(ctx(t), "orders", claimPlan(slot, "replica-b", lease))
		require.NoError(t, err)
		require.Nil(t, res.Claim)
		require.True(t, res.Skipped)
		require.Contains(t, res.Reason, "replica-a", "the reason names the owner running the job")
		requireTime(t, slot, res.State.ScheduledThrough, "a skipped slot is settled")

		skipped, err := s.Slots(ctx(t), store.SlotFilter{Job: "orders", Statuses: []string{store.StatusSkipped}})
		require.NoError(t, err)
		require.Len(t, skipped, 1)
		require.Equal(t, res.Reason, skipped[0].Error)
		require.Equal(t, store.TriggerSchedule, skipped[0].Trigger)
		requireTime(t, slot, skipped[0].Slot)

		// Once the running attempt finishes, the next slot is claimed.
		require.NoError(t, s.Finish(ctx(t), first.Fence, store.Outcome{Status: store.StatusSucceeded}))
		settleClaim(t, s, "orders", futureSlot(st, 3), "replica-b", lease)
	}},
	{"SkipIgnoresOtherJobs", func(t *testing.T, s store.Store) {
		claimJob(t, s, "orders", "skip", "replica-a", lease)
		claimJob(t, s, "associates", "skip", "replica-a", lease)
	}},
	{"ExpiredLeaseIsNotLive", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		first := settleClaim(t, s, "orders", futureSlot(st, 1), "replica-a", shortLease)
		waitPast(t, s, *slotByID(t, s, first.SlotID).LeaseUntil)
		second := settleClaim(t, s, "orders", futureSlot(st, 2), "replica-b", lease)
		require.Greater(t, second.Fence, first.Fence)
		// The expired attempt still holds its own claim until it is taken
		// over.
		require.NoError(t, s.Heartbeat(ctx(t), first.Fence, lease))
	}},
	{"AllowClaimsBoth", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "allow")
		a := settleClaim(t, s, "orders", futureSlot(st, 1), "replica-a", lease)
		b := settleClaim(t, s, "orders", futureSlot(st, 2), "replica-b", lease)
		require.NotEqual(t, a.SlotID, b.SlotID)
		m := manual(t, s, "orders", "cli", lease)
		require.NotEqual(t, b.SlotID, m.SlotID)
		running, err := s.Running(ctx(t))
		require.NoError(t, err)
		require.Len(t, running, 3)
	}},
	{"ManualBusyNamesOwner", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		running := settleClaim(t, s, "orders", futureSlot(st, 1), "replica-a", lease)
		_, err := s.ClaimManual(ctx(t), store.ManualClaim{Job: "orders", DefinitionHash: defHash, Owner: "cli", Lease: lease})
		require.ErrorIs(t, err, store.ErrBusy)
		require.Contains(t, err.Error(), "replica-a")
		slots, err := s.Slots(ctx(t), store.SlotFilter{Job: "orders"})
		require.NoError(t, err)
		require.Len(t, slots, 1, "a busy manual claim records nothing")

		require.NoError(t, s.Finish(ctx(t), running.Fence, store.Outcome{Status: store.StatusFailed, Error: "x"}))
		m := manual(t, s, "orders", "cli", lease)

		// And now the manual run makes the schedule skip.
		res, err := s.Settle(ctx(t), "orders", claimPlan(futureSlot(st, 2), "replica-a", lease))
		require.NoError(t, err)
		require.True(t, res.Skipped)
		require.Contains(t, res.Reason, "cli")
		require.NoError(t, s.Finish(ctx(t), m.Fence, store.Outcome{Status: store.StatusSucceeded}))
	}},
}

var manualTests = []test{
	{"DistinctSeconds", func(t *testing.T, s store.Store) {
		// Names built from the slot time ({slot}, to the second) must not
		// collide: each manual slot takes a second no other slot of the job
		// has.
		syncJob(t, s, "orders", "allow")
		seen := map[time.Time]bool{}
		for range 4 {
			c := manual(t, s, "orders", "cli@host", lease)
			require.Equal(t, c.Slot.Truncate(time.Second), c.Slot)
			require.False(t, seen[c.Slot], "manual slot %s used twice", c.Slot)
			seen[c.Slot] = true
		}
	}},
	{"Claim", func(t *testing.T, s store.Store) {
		syncJob(t, s, "orders", "skip")
		company := int64(1002)
		opts := store.RunOptions{Company: &company, Full: true, Force: true}
		before := dbNow(t, s)
		c, err := s.ClaimManual(ctx(t), store.ManualClaim{
			Job: "orders", DefinitionHash: defHash, Owner: "cli@host", Lease: lease, Options: opts,
		})
		require.NoError(t, err)
		after := dbNow(t, s)
		require.Equal(t, "orders", c.Job)
		require.Equal(t, store.TriggerManual, c.Trigger)
		requireBetween(t, before.Truncate(time.Second), after, c.Slot, "a manual slot is at the database's now, to the second")
		require.Equal(t, c.Slot.Truncate(time.Second), c.Slot, "a manual slot is a whole second")
		requireUTC(t, &c.Slot)
		require.Equal(t, 1, c.Attempt)
		require.Positive(t, c.Fence)
		require.Len(t, c.RunID, 36)
		require.Equal(t, "cli@host", c.Owner)
		require.Equal(t, opts, c.Options)

		sl := slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusRunning, sl.Status)
		require.Equal(t, store.TriggerManual, sl.Trigger)
		require.Equal(t, opts, sl.Options)
		require.Equal(t, c.Fence, sl.Fence)

		st, err := s.Job(ctx(t), "orders")
		require.NoError(t, err)
		require.False(t, st.ScheduledThrough.After(before), "a manual claim does not settle the schedule")
	}},
	{"DoesNotCollideWithScheduledSlot", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "allow")
		// Manual slots are whole seconds: wait for the next one.
		waitPast(t, s, st.ScheduledThrough.Truncate(time.Second).Add(time.Second))
		m := manual(t, s, "orders", "cli", lease)
		require.True(t, m.Slot.After(st.ScheduledThrough))
		// The schedule claims a slot at exactly the manual slot's time.
		c := settleClaim(t, s, "orders", m.Slot, "replica-a", lease)
		requireTime(t, m.Slot, c.Slot)
		require.NotEqual(t, m.SlotID, c.SlotID)
		// Two manual runs at once are two slots too.
		m2 := manual(t, s, "orders", "cli", lease)
		m3 := manual(t, s, "orders", "cli", lease)
		require.NotEqual(t, m2.SlotID, m3.SlotID)
	}},
	{"Conflict", func(t *testing.T, s store.Store) {
		syncJob(t, s, "orders", "allow")
		_, err := s.ClaimManual(ctx(t), store.ManualClaim{Job: "orders", DefinitionHash: "other", Owner: "cli", Lease: lease})
		require.ErrorIs(t, err, store.ErrConflict)
		slots, err := s.Slots(ctx(t), store.SlotFilter{})
		require.NoError(t, err)
		require.Empty(t, slots)
	}},
	{"UnknownJob", func(t *testing.T, s store.Store) {
		_, err := s.ClaimManual(ctx(t), store.ManualClaim{Job: "missing", DefinitionHash: defHash, Owner: "cli", Lease: lease})
		require.ErrorIs(t, err, store.ErrNotFound)
	}},
	{"PausedJob", func(t *testing.T, s store.Store) {
		syncJob(t, s, "orders", "skip")
		require.NoError(t, s.SetPaused(ctx(t), "orders", true))
		c := manual(t, s, "orders", "cli", lease)
		require.Equal(t, store.StatusRunning, slotByID(t, s, c.SlotID).Status)
	}},
	{"InvalidRequest", func(t *testing.T, s store.Store) {
		syncJob(t, s, "orders", "allow")
		for _, req := range []store.ManualClaim{
			{Job: "orders", DefinitionHash: defHash, Lease: lease},
			{Job: "orders", DefinitionHash: defHash, Owner: "cli"},
			{Job: "orders", DefinitionHash: defHash, Owner: "cli", Lease: -time.Second},
		} {
			_, err := s.ClaimManual(ctx(t), req)
			require.Error(t, err, "%+v", req)
		}
	}},
}
