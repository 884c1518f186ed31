package storetest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

// racers is how many goroutines race for one thing.
const racers = 16

var concurrencyTests = []test{
	{"SettleClaimsOnce", func(t *testing.T, s store.Store) {
		st := syncJob(t, s, "orders", "allow")
		slot := futureSlot(st, 1)
		results, errs := race(racers, func(i int) (store.SettleResult, error) {
			return s.Settle(ctx(t), "orders", func(st store.JobState) (store.SettlePlan, error) {
				// A scheduler's plan: only what is not settled yet.
				p := store.SettlePlan{Through: slot, DefinitionHash: st.DefinitionHash}
				if slot.After(st.ScheduledThrough) {
					p.Claim = &store.NewClaim{Slot: slot, Trigger: store.TriggerSchedule, Owner: fmt.Sprintf("replica-%d", i), Lease: lease}
				}
				return p, nil
			})
		})
		claims := 0
		for i, res := range results {
			require.NoError(t, errs[i])
			if res.Claim != nil {
				claims++
			}
			require.False(t, res.Skipped)
		}
		require.Equal(t, 1, claims)
		slots, err := s.Slots(ctx(t), store.SlotFilter{})
		require.NoError(t, err)
		require.Len(t, slots, 1)
	}},
	{"SettleSameThroughOnce", func(t *testing.T, s store.Store) {
		// Plans that ignore the state still settle a slot once.
		st := syncJob(t, s, "orders", "allow")
		slot := futureSlot(st, 1)
		results, errs := race(racers, func(i int) (store.SettleResult, error) {
			return s.Settle(ctx(t), "orders", claimPlan(slot, fmt.Sprintf("replica-%d", i), lease))
		})
		claims := 0
		for i, res := range results {
			require.NoError(t, errs[i])
			if res.Claim != nil {
				claims++
			}
		}
		require.Equal(t, 1, claims)
	}},
	{"ManualSkipClaimsOnce", func(t *testing.T, s store.Store) {
		syncJob(t, s, "orders", "skip")
		_, errs := race(racers, func(i int) (store.Claim, error) {
			return s.ClaimManual(ctx(t), store.ManualClaim{Job: "orders", DefinitionHash: defHash, Owner: fmt.Sprintf("cli-%d", i), Lease: lease})
		})
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			} else {
				require.ErrorIs(t, err, store.ErrBusy)
			}
		}
		require.Equal(t, 1, won)
		running, err := s.Running(ctx(t))
		require.NoError(t, err)
		require.Len(t, running, 1)
	}},
	{"FencesUnique", func(t *testing.T, s store.Store) {
		syncJob(t, s, "orders", "allow")
		claims, errs := race(racers, func(i int) (store.Claim, error) {
			return s.ClaimManual(ctx(t), store.ManualClaim{Job: "orders", DefinitionHash: defHash, Owner: fmt.Sprintf("cli-%d", i), Lease: lease})
		})
		seen := map[int64]bool{}
		for i, c := range claims {
			require.NoError(t, errs[i])
			require.False(t, seen[c.Fence], "fence %d drawn twice", c.Fence)
			seen[c.Fence] = true
		}
	}},
	{"TakeOverExpiredOnce", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "allow", "replica-a", shortLease)
		waitPast(t, s, *slotByID(t, s, c.SlotID).LeaseUntil)
		results, errs := race(racers, func(i int) ([]store.Claim, error) {
			return s.TakeOver(ctx(t), takeOverReq(fmt.Sprintf("replica-%d", i), 10, "orders"))
		})
		claims := 0
		for i, r := range results {
			require.NoError(t, errs[i])
			claims += len(r)
		}
		require.Equal(t, 1, claims)
		as := attempts(t, s, c.SlotID)
		require.Len(t, as, 2)
		require.Equal(t, store.StatusLost, as[0].Status)
	}},
	{"TakeOverInterruptedOnce", func(t *testing.T, s store.Store) {
		c := claimJob(t, s, "orders", "allow", "replica-a", lease)
		require.NoError(t, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusInterrupted}))
		results, errs := race(racers, func(i int) ([]store.Claim, error) {
			return s.TakeOver(ctx(t), takeOverReq(fmt.Sprintf("replica-%d", i), 10, "orders"))
		})
		claims := 0
		for i, r := range results {
			require.NoError(t, errs[i])
			claims += len(r)
		}
		require.Equal(t, 1, claims)
		require.Len(t, attempts(t, s, c.SlotID), 2)
	}},
	{"FinishAgainstTakeOver", func(t *testing.T, s store.Store) {
		// The owner finishing and another replica taking over race: exactly
		// one of them wins.
		c := claimJob(t, s, "orders", "allow", "replica-a", shortLease)
		waitPast(t, s, *slotByID(t, s, c.SlotID).LeaseUntil)
		_, errs := race(2, func(i int) (int, error) {
			if i == 0 {
				return 0, s.Finish(ctx(t), c.Fence, store.Outcome{Status: store.StatusSucceeded})
			}
			taken, err := s.TakeOver(ctx(t), takeOverReq("replica-b", 10, "orders"))
			if err == nil && len(taken) == 0 {
				err = store.ErrNotFound // nothing to take: the finish won
			}
			return len(taken), err
		})
		finished, took := errs[0] == nil, errs[1] == nil
		require.True(t, finished != took, "finish: %v, takeover: %v", errs[0], errs[1])
		if !finished {
			require.ErrorIs(t, errs[0], store.ErrFenced)
		}
	}},
}
