package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

var claimsTests = []test{
	{"FencesStrictlyIncrease", func(t *testing.T, s store.Store) {
		var fences []int64
		add := func(c store.Claim) { fences = append(fences, c.Fence) }

		st := syncJob(t, s, "orders", "allow")
		syncJob(t, s, "associates", "allow")
		a := settleClaim(t, s, "orders", futureSlot(st, 1), "replica-a", lease)
		add(a)
		b := manual(t, s, "associates", "cli", lease)
		add(b)
		r, err := s.Retry(ctx(t), a.Fence, "boom", lease)
		require.NoError(t, err)
		add(r)
		require.NoError(t, s.Finish(ctx(t), b.Fence, store.Outcome{Status: store.StatusInterrupted}))
		taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders", "associates"))
		require.NoError(t, err)
		require.Len(t, taken, 1)
		add(taken[0])
		add(settleClaim(t, s, "orders", futureSlot(st, 2), "replica-a", lease))
		add(manual(t, s, "orders", "cli", lease))

		for i := 1; i < len(fences); i++ {
			require.Greater(t, fences[i], fences[i-1], "fences %v", fences)
		}
	}},
	{"Heartbeat", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "skip", "replica-a", shortLease)
		before := dbNow(t, s)
		require.NoError(t, s.Heartbeat(ctx(t), c.Fence, lease))
		after := dbNow(t, s)
		sl := slotByID(t, s, c.SlotID)
		requireBetween(t, before.Add(lease), after.Add(lease), *sl.LeaseUntil, "lease_until after a heartbeat")
		running, err := s.Running(ctx(t))
		require.NoError(t, err)
		require.Len(t, running, 1)
		requireTime(t, *sl.LeaseUntil, running[0].LeaseUntil)

		// The heartbeat outlived the first lease: nobody takes it over.
		waitPast(t, s, before.Add(2*shortLease))
		taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
		require.NoError(t, err)
		require.Empty(t, taken)

		require.ErrorIs(t, s.Heartbeat(ctx(t), c.Fence+1000, lease), store.ErrFenced, "unknown fence")
		require.Error(t, s.Heartbeat(ctx(t), c.Fence, 0), "a lease must be positive")
		require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusSucceeded}))
		require.ErrorIs(t, s.Heartbeat(ctx(t), c.Fence, lease), store.ErrFenced, "finished attempt")
	}},
	{"FinishSucceeded", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "skip", "replica-a", lease)
		before := dbNow(t, s)
		require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusSucceeded, Rows: 1234}))
		after := dbNow(t, s)
		sl := slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusSucceeded, sl.Status)
		require.EqualValues(t, 1234, sl.Rows)
		require.Empty(t, sl.Error)
		require.Equal(t, c.Fence, sl.Fence)
		require.Nil(t, sl.LeaseUntil, "no lease once finished")
		require.NotNil(t, sl.FinishedAt)
		requireBetween(t, before, after, *sl.FinishedAt, "finished_at")
		requireUTC(t, sl.FinishedAt)

		as := attempts(t, s, c.SlotID)
		require.Len(t, as, 1)
		require.Equal(t, store.StatusSucceeded, as[0].Status)
		require.EqualValues(t, 1234, as[0].Rows)
		require.NotNil(t, as[0].FinishedAt)
		requireTime(t, *sl.FinishedAt, *as[0].FinishedAt)

		running, err := s.Running(ctx(t))
		require.NoError(t, err)
		require.Empty(t, running)
		require.ErrorIs(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusFailed}), store.ErrFenced, "finish twice")
		require.Equal(t, store.StatusSucceeded, slotByID(t, s, c.SlotID).Status)
	}},
	{"FinishFailed", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "skip", "replica-a", lease)
		require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusFailed, Error: "graphql: boom", Rows: 7}))
		sl := slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusFailed, sl.Status)
		require.Equal(t, "graphql: boom", sl.Error)
		require.EqualValues(t, 7, sl.Rows)
		as := attempts(t, s, c.SlotID)
		require.Equal(t, store.StatusFailed, as[0].Status)
		require.Equal(t, "graphql: boom", as[0].Error)
		// A failed slot is final: TakeOver leaves it.
		taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
		require.NoError(t, err)
		require.Empty(t, taken)
	}},
	{"FinishInvalidStatus", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "skip", "replica-a", lease)
		for _, status := range []string{"", store.StatusRunning, store.StatusSkipped, store.StatusMissed, store.StatusLost} {
			err := s.Finish(ctx(t), c.Fence, store.Outcome{Status: status})
			require.Error(t, err, status)
			require.NotErrorIs(t, err, store.ErrFenced, status)
		}
		require.Equal(t, store.StatusRunning, slotByID(t, s, c.SlotID).Status)
		require.NoError(t, s.Heartbeat(ctx(t), c.Fence, lease))
	}},
	{"Retry", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "skip", "replica-a", lease)
		r, err := s.Retry(ctx(t), c.Fence, "first failure", lease)
		require.NoError(t, err)
		require.Equal(t, c.SlotID, r.SlotID)
		require.Equal(t, c.Job, r.Job)
		requireTime(t, c.Slot, r.Slot)
		require.Equal(t, c.Trigger, r.Trigger)
		require.Equal(t, 2, r.Attempt)
		require.Greater(t, r.Fence, c.Fence)
		require.NotEqual(t, c.RunID, r.RunID)
		require.Equal(t, "replica-a", r.Owner)

		sl := slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusRunning, sl.Status)
		require.Equal(t, 2, sl.Attempts)
		require.Equal(t, r.Fence, sl.Fence)
		require.Equal(t, "first failure", sl.Error)

		as := attempts(t, s, c.SlotID)
		require.Len(t, as, 2)
		require.Equal(t, 1, as[0].Attempt)
		require.Equal(t, store.StatusFailed, as[0].Status)
		require.Equal(t, "first failure", as[0].Error)
		require.NotNil(t, as[0].FinishedAt)
		require.Equal(t, 2, as[1].Attempt)
		require.Equal(t, store.StatusRunning, as[1].Status)
		require.Equal(t, r.RunID, as[1].RunID)

		// The old token is spent.
		require.ErrorIs(t, s.Heartbeat(ctx(t), c.Fence, lease), store.ErrFenced)
		_, err = s.Retry(ctx(t), c.Fence, "again", lease)
		require.ErrorIs(t, err, store.ErrFenced)
		require.ErrorIs(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusSucceeded}), store.ErrFenced)

		require.NoError(t, s.Finish(ctx(t), r.Fence, store.Outcome{Status: store.StatusSucceeded, Rows: 3}))
		sl = slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusSucceeded, sl.Status)
		require.Empty(t, sl.Error, "the slot's error is its outcome's")
		_, err = s.Retry(ctx(t), r.Fence, "after finish", lease)
		require.ErrorIs(t, err, store.ErrFenced)
	}},
	{"Running", func(t *testing.T, s store.Store) {
		a := claimJob(t, s, "orders", "skip", "replica-a", lease)
		b := claimJob(t, s, "associates", "skip", "replica-b", lease)
		done := claimJob(t, s, "ledger", "skip", "replica-a", lease)
		require.NoError(t, s.Finish(ctx(t), done.Fence, store.Outcome{Status: store.StatusSucceeded}))

		running, err := s.Running(ctx(t))
		require.NoError(t, err)
		require.Len(t, running, 2)
		byFence := map[int64]store.Attempt{}
		for _, r := range running {
			byFence[r.Fence] = r
			require.Equal(t, store.StatusRunning, r.Status)
			requireUTC(t, &r.Slot, &r.StartedAt, &r.LeaseUntil)
		}
		for _, c := range []store.Claim{a, b} {
			r, ok := byFence[c.Fence]
			require.True(t, ok)
			require.Equal(t, c.SlotID, r.SlotID)
			require.Equal(t, c.Job, r.Job)
			requireTime(t, c.Slot, r.Slot)
			require.Equal(t, c.Trigger, r.Trigger)
			require.Equal(t, c.Owner, r.Owner)
			require.Equal(t, c.RunID, r.RunID)
			require.Nil(t, r.FinishedAt)
		}
	}},
}

var takeOverTests = []test{
	{"ExpiredLease", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "skip")
		company := int64(7)
		slot := futureSlot(st, 1)
		res, err := s.Settle(ctx(t), "orders", func(store.JobState) (store.SettlePlan, error) {
			return store.SettlePlan{Through: slot, DefinitionHash: defHash, Claim: &store.NewClaim{
				Slot: slot, Trigger: store.TriggerCatchup, Owner: "replica-a", Lease: lease,
				Options: store.RunOptions{Company: &company},
			}}, nil
		})
		require.NoError(t, err)
		old := *res.Claim

		// A live lease is not taken over.
		taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
		require.NoError(t, err)
		require.Empty(t, taken)

		// The last heartbeat asks for a short lease; then the owner is gone.
		require.NoError(t, s.Heartbeat(ctx(t), old.Fence, shortLease))

		taken = takeOverWhenExpired(t, s, takeOverReq("replica-b", 10, "orders"))
		require.Len(t, taken, 1)
		c := taken[0]
		require.Equal(t, old.SlotID, c.SlotID)
		require.Equal(t, "orders", c.Job)
		requireTime(t, slot, c.Slot)
		require.Equal(t, store.TriggerCatchup, c.Trigger)
		require.Equal(t, 2, c.Attempt)
		require.Greater(t, c.Fence, old.Fence)
		require.NotEqual(t, old.RunID, c.RunID)
		require.Equal(t, "replica-b", c.Owner)
		require.Equal(t, old.Options, c.Options)

		sl := slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusRunning, sl.Status)
		require.Equal(t, 2, sl.Attempts)
		require.Equal(t, c.Fence, sl.Fence)
		require.Equal(t, "replica-b", sl.Owner)

		as := attempts(t, s, c.SlotID)
		require.Len(t, as, 2)
		require.Equal(t, store.StatusLost, as[0].Status)
		require.Equal(t, "replica-a", as[0].Owner)
		require.NotNil(t, as[0].FinishedAt)
		require.Equal(t, store.StatusRunning, as[1].Status)
		require.Equal(t, "replica-b", as[1].Owner)

		running, err := s.Running(ctx(t))
		require.NoError(t, err)
		require.Len(t, running, 1)
		require.Equal(t, c.Fence, running[0].Fence)

		// The old owner can commit nothing.
		require.ErrorIs(t, s.Heartbeat(ctx(t), old.Fence, lease), store.ErrFenced)
		require.ErrorIs(t, s.CommitWatermark(ctx(t), old.Fence, store.Watermark{Job: "orders", Company: 7, Value: "2026-01-01T00:00:00.000"}), store.ErrFenced)
		_, err = s.Retry(ctx(t), old.Fence, "x", lease)
		require.ErrorIs(t, err, store.ErrFenced)
		require.ErrorIs(t, s.Finish(ctx(t), old.Fence, store.Outcome{Status: store.StatusSucceeded}), store.ErrFenced)
		_, err = s.Watermark(ctx(t), "orders", 7)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.Equal(t, store.StatusRunning, slotByID(t, s, c.SlotID).Status)

		// The new one can.
		require.NoError(t, s.Heartbeat(ctx(t), c.Fence, lease))
		require.NoError(t, s.CommitWatermark(ctx(t), c.Fence, store.Watermark{Job: "orders", Company: 7, Value: "2026-01-01T00:00:00.000"}))
		require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusSucceeded}))
	}},
	{"InterruptedIsTakenOverAtOnce", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "skip", "replica-a", lease)
		require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusInterrupted, Error: "shutting down", Rows: 5}))
		sl := slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusInterrupted, sl.Status)
		require.Equal(t, "shutting down", sl.Error)
		require.Nil(t, sl.LeaseUntil)
		running, err := s.Running(ctx(t))
		require.NoError(t, err)
		require.Empty(t, running, "the claim is released")

		// Not for another definition, nor for other jobs.
		taken, err := s.TakeOver(ctx(t), store.TakeOverRequest{Owner: "replica-b", Lease: lease, Jobs: map[string]string{"orders": "definition-2"}, Limit: 10})
		require.NoError(t, err)
		require.Empty(t, taken)
		taken, err = s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "associates"))
		require.NoError(t, err)
		require.Empty(t, taken)
		taken, err = s.TakeOver(ctx(t), store.TakeOverRequest{Owner: "replica-b", Lease: lease, Limit: 10})
		require.NoError(t, err)
		require.Empty(t, taken)

		taken, err = s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
		require.NoError(t, err)
		require.Len(t, taken, 1)
		require.Equal(t, c.SlotID, taken[0].SlotID)
		require.Equal(t, 2, taken[0].Attempt)
		require.Greater(t, taken[0].Fence, c.Fence)

		as := attempts(t, s, c.SlotID)
		require.Len(t, as, 2)
		require.Equal(t, store.StatusInterrupted, as[0].Status, "a released attempt stays interrupted")
		require.EqualValues(t, 5, as[0].Rows)
		require.Equal(t, store.StatusRunning, as[1].Status)
		sl = slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusRunning, sl.Status)
		require.Nil(t, sl.FinishedAt)

		// Taken once.
		taken, err = s.TakeOver(ctx(t), takeOverReq("replica-c", 10, "orders"))
		require.NoError(t, err)
		require.Empty(t, taken)
	}},
	{"Limit", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "allow")
		for i := 1; i <= 3; i++ {
			c := settleClaim(t, s, "orders", futureSlot(st, i), "replica-a", lease)
			require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusInterrupted}))
		}
		taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 0, "orders"))
		require.NoError(t, err)
		require.Empty(t, taken, "limit 0 claims nothing")

		taken, err = s.TakeOver(ctx(t), takeOverReq("replica-b", 2, "orders"))
		require.NoError(t, err)
		require.Len(t, taken, 2)
		requireTime(t, futureSlot(st, 1), taken[0].Slot, "oldest first")
		requireTime(t, futureSlot(st, 2), taken[1].Slot)
		taken, err = s.TakeOver(ctx(t), takeOverReq("replica-b", 2, "orders"))
		require.NoError(t, err)
		require.Len(t, taken, 1)
		requireTime(t, futureSlot(st, 3), taken[0].Slot)
	}},
	{"OverlapSkipTakesOneAtATime", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "allow")
		var slots []int64
		for i := 1; i <= 2; i++ {
			c := settleClaim(t, s, "orders", futureSlot(st, i), "replica-a", lease)
			require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusInterrupted}))
			slots = append(slots, c.SlotID)
		}
		// The job becomes overlap skip.
		_, err := s.SyncJob(ctx(t), store.JobDef{Name: "orders", ScheduleHash: scheduleHash, DefinitionHash: defHash, Overlap: "skip", Catchup: 6 * time.Hour})
		require.NoError(t, err)

		taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
		require.NoError(t, err)
		require.Len(t, taken, 1, "overlap skip: one attempt of the job at a time")
		require.Equal(t, slots[0], taken[0].SlotID)
		again, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
		require.NoError(t, err)
		require.Empty(t, again, "the job is running")
		require.Equal(t, store.StatusInterrupted, slotByID(t, s, slots[1]).Status, "left for later")

		require.NoError(t, s.Finish(ctx(t), taken[0].Fence, store.Outcome{Status: store.StatusSucceeded}))
		again, err = s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
		require.NoError(t, err)
		require.Len(t, again, 1)
		require.Equal(t, slots[1], again[0].SlotID)
	}},
	{"InterruptedOlderThanCatchup", func(t *testing.T, s store.Store) {
		_, err := s.SyncJob(ctx(t), store.JobDef{Name: "orders", ScheduleHash: scheduleHash, DefinitionHash: defHash, Overlap: "skip", Catchup: 0})
		require.NoError(t, err)
		c := manual(t, s, "orders", "cli", lease)
		require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusInterrupted, Error: "stopped"}))
		waitPast(t, s, c.Slot)

		taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
		require.NoError(t, err)
		require.Empty(t, taken, "older than catchup: not taken over")
		sl := slotByID(t, s, c.SlotID)
		require.Equal(t, store.StatusInterrupted, sl.Status)
		require.Contains(t, sl.Error, "catchup")

		// For good: not even once catchup is long again.
		_, err = s.SyncJob(ctx(t), store.JobDef{Name: "orders", ScheduleHash: scheduleHash, DefinitionHash: defHash, Overlap: "skip", Catchup: time.Hour})
		require.NoError(t, err)
		taken, err = s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
		require.NoError(t, err)
		require.Empty(t, taken)
	}},
	{"ExpiredOlderThanCatchup", func(t *testing.T, s store.Store) {
		_, err := s.SyncJob(ctx(t), store.JobDef{Name: "orders", ScheduleHash: scheduleHash, DefinitionHash: defHash, Overlap: "skip", Catchup: 0})
		require.NoError(t, err)
		c := manual(t, s, "orders", "cli", shortLease)
		waitFor(t, func() bool {
			taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
			require.NoError(t, err)
			require.Empty(t, taken, "older than catchup: never taken over")
			return slotByID(t, s, c.SlotID).Status == store.StatusInterrupted
		}, "TakeOver to mark the expired slot interrupted")
		sl := slotByID(t, s, c.SlotID)
		require.Contains(t, sl.Error, "catchup")
		require.NotNil(t, sl.FinishedAt)
		as := attempts(t, s, c.SlotID)
		require.Len(t, as, 1)
		require.Equal(t, store.StatusLost, as[0].Status)
		require.ErrorIs(t, s.Heartbeat(ctx(t), c.Fence, lease), store.ErrFenced)
		running, err := s.Running(ctx(t))
		require.NoError(t, err)
		require.Empty(t, running)
	}},
	{"LimitZeroStillAbandonsOld", func(t *testing.T, s store.Store) {
		_, err := s.SyncJob(ctx(t), store.JobDef{Name: "orders", ScheduleHash: scheduleHash, DefinitionHash: defHash, Overlap: "skip", Catchup: 0})
		require.NoError(t, err)
		c := manual(t, s, "orders", "cli", lease)
		require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusInterrupted}))
		waitPast(t, s, c.Slot)
		taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 0, "orders"))
		require.NoError(t, err)
		require.Empty(t, taken)
		require.Contains(t, slotByID(t, s, c.SlotID).Error, "catchup")
	}},
}
