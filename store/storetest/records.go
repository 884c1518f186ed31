package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

var recordsTests = []test{
	{"SlotsFilter", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "allow")
		syncJob(t, s, "associates", "allow")
		m := func(n int) time.Time { return futureSlot(st, n) }
		res, err := s.Settle(ctx(t), "orders", func(store.JobState) (store.SettlePlan, error) {
			return store.SettlePlan{Through: m(3), DefinitionHash: defHash,
				Missed: []store.Gap{{First: m(1), Last: m(2), Count: 2}},
				Claim:  &store.NewClaim{Slot: m(3), Trigger: store.TriggerSchedule, Owner: "a", Lease: lease}}, nil
		})
		require.NoError(t, err)
		require.NoError(t, s.Finish(ctx(t), res.Claim.Fence, store.Outcome{Status: store.StatusSucceeded}))
		running := settleClaim(t, s, "orders", m(4), "a", lease)
		other := claimJob(t, s, "associates", "allow", "a", lease)

		all, err := s.Slots(ctx(t), store.SlotFilter{})
		require.NoError(t, err)
		require.Len(t, all, 4)
		for i := 1; i < len(all); i++ {
			require.False(t, all[i].Slot.After(all[i-1].Slot), "newest first")
		}

		orders, err := s.Slots(ctx(t), store.SlotFilter{Job: "orders"})
		require.NoError(t, err)
		require.Len(t, orders, 3)
		require.Equal(t, running.SlotID, orders[0].ID)
		requireTime(t, m(4), orders[0].Slot)
		requireTime(t, m(3), orders[1].Slot)
		requireTime(t, m(1), orders[2].Slot)

		some, err := s.Slots(ctx(t), store.SlotFilter{Statuses: []string{store.StatusRunning, store.StatusMissed}})
		require.NoError(t, err)
		var ids []int64
		for _, sl := range some {
			ids = append(ids, sl.ID)
		}
		require.ElementsMatch(t, []int64{running.SlotID, other.SlotID, orders[2].ID}, ids)

		one, err := s.Slots(ctx(t), store.SlotFilter{Job: "orders", Statuses: []string{store.StatusSucceeded}})
		require.NoError(t, err)
		require.Len(t, one, 1)
		require.Equal(t, res.Claim.SlotID, one[0].ID)

		limited, err := s.Slots(ctx(t), store.SlotFilter{Job: "orders", Limit: 2})
		require.NoError(t, err)
		require.Equal(t, orders[:2], limited)

		none, err := s.Slots(ctx(t), store.SlotFilter{Job: "missing"})
		require.NoError(t, err)
		require.Empty(t, none)
	}},
	{"SlotsDefaultLimit", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "allow")
		var gaps []store.Gap
		for i := 1; i <= 120; i++ {
			gaps = append(gaps, store.Gap{First: futureSlot(st, 2*i), Last: futureSlot(st, 2*i), Count: 1})
		}
		_, err := s.Settle(ctx(t), "orders", func(store.JobState) (store.SettlePlan, error) {
			return store.SettlePlan{Through: futureSlot(st, 300), DefinitionHash: defHash, Missed: gaps}, nil
		})
		require.NoError(t, err)
		slots, err := s.Slots(ctx(t), store.SlotFilter{})
		require.NoError(t, err)
		require.Len(t, slots, 100)
		requireTime(t, futureSlot(st, 240), slots[0].Slot)
		slots, err = s.Slots(ctx(t), store.SlotFilter{Limit: 1000})
		require.NoError(t, err)
		require.Len(t, slots, 120)
	}},
	{"Attempts", func(t *testing.T, s store.Store) {
		_, err := s.Attempts(ctx(t), 424242)
		require.ErrorIs(t, err, store.ErrNotFound)

		st := syncJob(t, s, "orders", "skip")
		c := settleClaim(t, s, "orders", futureSlot(st, 1), "a", lease)
		r1, err := s.Retry(ctx(t), c.Fence, "one", lease)
		require.NoError(t, err)
		r2, err := s.Retry(ctx(t), r1.Fence, "two", lease)
		require.NoError(t, err)
		as := attempts(t, s, c.SlotID)
		require.Len(t, as, 3)
		for i, a := range as {
			require.Equal(t, i+1, a.Attempt, "oldest first")
			require.Equal(t, c.SlotID, a.SlotID)
			require.Equal(t, "orders", a.Job)
		}
		require.Equal(t, []int64{c.Fence, r1.Fence, r2.Fence}, []int64{as[0].Fence, as[1].Fence, as[2].Fence})

		// Records without attempts.
		res, err := s.Settle(ctx(t), "orders", claimPlan(futureSlot(st, 2), "b", lease))
		require.NoError(t, err)
		require.True(t, res.Skipped)
		skipped, err := s.Slots(ctx(t), store.SlotFilter{Statuses: []string{store.StatusSkipped}})
		require.NoError(t, err)
		require.Len(t, skipped, 1)
		require.Empty(t, attempts(t, s, skipped[0].ID))
	}},
	{"Prune", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "allow")
		done := manual(t, s, "orders", "cli", lease)
		require.NoError(t, s.Finish(ctx(t), done.Fence, store.Outcome{Status: store.StatusSucceeded}))
		interrupted := manual(t, s, "orders", "cli", lease)
		require.NoError(t, s.Finish(ctx(t), interrupted.Fence, store.Outcome{Status: store.StatusInterrupted}))
		running := manual(t, s, "orders", "cli", lease)
		future := settleClaim(t, s, "orders", futureSlot(st, 5), "a", lease)
		require.NoError(t, s.Finish(ctx(t), future.Fence, store.Outcome{Status: store.StatusFailed}))

		n, err := s.Prune(ctx(t), 24*time.Hour)
		require.NoError(t, err)
		require.Zero(t, n, "nothing is a day old")

		const age = 50 * time.Millisecond
		waitPast(t, s, running.Slot.Add(age))
		n, err = s.Prune(ctx(t), age)
		require.NoError(t, err)
		require.Equal(t, 2, n, "the finished and the interrupted slot")

		_, err = s.Attempts(ctx(t), done.SlotID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.Attempts(ctx(t), interrupted.SlotID)
		require.ErrorIs(t, err, store.ErrNotFound)
		left, err := s.Slots(ctx(t), store.SlotFilter{})
		require.NoError(t, err)
		var ids []int64
		for _, sl := range left {
			ids = append(ids, sl.ID)
		}
		require.ElementsMatch(t, []int64{running.SlotID, future.SlotID}, ids)
		require.Len(t, attempts(t, s, running.SlotID), 1)
		require.NoError(t, s.Heartbeat(ctx(t), running.Fence, lease))

		_, err = s.Prune(ctx(t), -time.Hour)
		require.Error(t, err)
	}},
}
