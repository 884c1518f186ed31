// Package storetest is the conformance suite of store.Store: the precise
// definition of the behaviour every store (store/sqlite, store/postgres)
// must have. A store's tests call Run with a function that opens a fresh,
// migrated, empty store; every subtest opens its own.
//
// Rules the suite pins down beyond the doc comments of store.Store:
//   - Every time a store returns is in UTC; times have at least millisecond
//     precision (the suite uses whole seconds where it passes times in).
//   - Settle refuses (with an error, changing nothing) a plan whose missed
//     gaps or claim fall outside (scheduled_through, Through], a claim
//     without an owner or a positive lease, and a claim whose trigger is not
//     schedule or catchup. The plan function is called once per Settle, in
//     the transaction, with the stored state.
//   - A skipped slot record carries the plan's trigger and options and the
//     reason as its Error; missed records have trigger schedule. Neither has
//     attempts or a fence.
//   - "Live" means an attempt with status running and lease_until after the
//     database's now. An attempt whose lease expired but that nobody took
//     over yet still holds its claim: its fence stays current (Heartbeat,
//     Finish, Retry and CommitWatermark work) but it does not make the job
//     busy.
//   - ClaimManual works on a paused job (pausing stops the schedule, not an
//     operator's explicit run).
//   - TakeOver claims the oldest abandoned slots first; with overlap skip it
//     leaves a slot alone while another attempt of the job is live
//     (including one it just claimed); Limit < 1 claims nothing, but slots
//     older than catchup are still marked interrupted for good. A taken over
//     running attempt becomes lost; a released interrupted attempt stays
//     interrupted. The new attempt's number is the slot's previous one plus
//     one.
//   - Retry keeps the claim's owner; the failed attempt's error becomes the
//     slot's error until the slot finishes.
//   - Slot.LeaseUntil is set only while the slot is running.
//   - Attempts of an unknown slot is ErrNotFound.
//   - CommitWatermark records the committing attempt's fence and run id
//     (whatever wm says), refuses a fence of another job's slot, and accepts
//     a value equal to the stored one (its keys replace the stored keys).
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
)

// Run runs the whole conformance suite. open returns a fresh, migrated,
// empty store for one test and closes it when the test ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Basics", basicsTests},
		{"Jobs", jobsTests},
		{"Settle", settleTests},
		{"Overlap", overlapTests},
		{"Manual", manualTests},
		{"Claims", claimsTests},
		{"TakeOver", takeOverTests},
		{"Concurrency", concurrencyTests},
		{"Records", recordsTests},
		{"Watermarks", watermarkTests},
		{"Tokens", tokenTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, open(t))
				})
			}
		})
	}
}

// test is one subtest: it gets a fresh store.
type test struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// Defaults of the jobs the suite registers.
const (
	scheduleHash = "schedule-1"
	defHash      = "definition-1"
	lease        = time.Hour
	// shortLease expires soon enough for a test to wait for it.
	shortLease = 100 * time.Millisecond
	// waitLimit bounds every wait for the database's clock to move.
	waitLimit = 20 * time.Second
)

// syncJob registers a job with the suite's hashes, a catchup of 6h and the
// given overlap.
func syncJob(t *testing.T, s store.Store, name, overlap string) store.JobState {
	t.Helper()
	st, err := s.SyncJob(t.Context(), store.JobDef{
		Name: name, ScheduleHash: scheduleHash, DefinitionHash: defHash, Overlap: overlap, Catchup: 6 * time.Hour,
	})
	require.NoError(t, err)
	return st
}

// futureSlot is the n-th whole minute after the job's scheduled_through:
// always a slot Settle may still settle.
func futureSlot(st store.JobState, n int) time.Time {
	return st.ScheduledThrough.Truncate(time.Minute).Add(time.Duration(n) * time.Minute)
}

// claimPlan settles through slot and claims it.
func claimPlan(slot time.Time, owner string, lease time.Duration) func(store.JobState) (store.SettlePlan, error) {
	return func(st store.JobState) (store.SettlePlan, error) {
		return store.SettlePlan{
			Through:        slot,
			DefinitionHash: st.DefinitionHash,
			Claim:          &store.NewClaim{Slot: slot, Trigger: store.TriggerSchedule, Owner: owner, Lease: lease},
		}, nil
	}
}

// settleClaim settles job through slot, claiming it, and requires the claim.
func settleClaim(t *testing.T, s store.Store, job string, slot time.Time, owner string, lease time.Duration) store.Claim {
	t.Helper()
	res, err := s.Settle(t.Context(), job, claimPlan(slot, owner, lease))
	require.NoError(t, err)
	require.NotNil(t, res.Claim, "settle did not claim: skipped=%v reason=%q", res.Skipped, res.Reason)
	return *res.Claim
}

// claimJob registers job (if needed) and claims its next slot.
func claimJob(t *testing.T, s store.Store, job, overlap, owner string, lease time.Duration) store.Claim {
	t.Helper()
	st, err := s.Job(t.Context(), job)
	if errors.Is(err, store.ErrNotFound) {
		st = syncJob(t, s, job, overlap)
	} else {
		require.NoError(t, err)
	}
	return settleClaim(t, s, job, futureSlot(st, 1), owner, lease)
}

func manual(t *testing.T, s store.Store, job, owner string, lease time.Duration) store.Claim {
	t.Helper()
	c, err := s.ClaimManual(t.Context(), store.ManualClaim{Job: job, DefinitionHash: defHash, Owner: owner, Lease: lease})
	require.NoError(t, err)
	return c
}

// slotByID finds one slot record.
func slotByID(t *testing.T, s store.Store, id int64) store.Slot {
	t.Helper()
	slots, err := s.Slots(t.Context(), store.SlotFilter{Limit: 10000})
	require.NoError(t, err)
	for _, sl := range slots {
		if sl.ID == id {
			return sl
		}
	}
	require.Failf(t, "slot not found", "slot %d", id)
	return store.Slot{}
}

func attempts(t *testing.T, s store.Store, slotID int64) []store.Attempt {
	t.Helper()
	as, err := s.Attempts(t.Context(), slotID)
	require.NoError(t, err)
	return as
}

func dbNow(t *testing.T, s store.Store) time.Time {
	t.Helper()
	now, err := s.Now(t.Context())
	require.NoError(t, err)
	return now
}

// waitPast waits until the database's clock is after tm.
func waitPast(t *testing.T, s store.Store, tm time.Time) {
	t.Helper()
	waitFor(t, func() bool { return dbNow(t, s).After(tm) }, "the database clock to pass %s", tm)
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			require.Failf(t, "timed out", "waiting for "+what, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// takeOverWhenExpired polls TakeOver (owner, jobs) until it claims
// something, and returns the claims.
func takeOverWhenExpired(t *testing.T, s store.Store, req store.TakeOverRequest) []store.Claim {
	t.Helper()
	var claims []store.Claim
	waitFor(t, func() bool {
		var err error
		claims, err = s.TakeOver(t.Context(), req)
		require.NoError(t, err)
		return len(claims) > 0
	}, "a lease to expire and TakeOver to claim the slot")
	return claims
}

func takeOverReq(owner string, limit int, jobs ...string) store.TakeOverRequest {
	m := make(map[string]string, len(jobs))
	for _, j := range jobs {
		m[j] = defHash
	}
	return store.TakeOverRequest{Owner: owner, Lease: lease, Jobs: m, Limit: limit}
}

// requireTime requires two instants to be equal.
func requireTime(t *testing.T, want, got time.Time, msgAndArgs ...any) {
	t.Helper()
	require.Truef(t, want.Equal(got), "want %s, got %s %v", want, got, msgAndArgs)
}

// requireUTC requires every given time to be in UTC.
func requireUTC(t *testing.T, times ...*time.Time) {
	t.Helper()
	for _, tm := range times {
		if tm != nil {
			require.Equal(t, time.UTC, tm.Location(), "time %s is not in UTC", tm)
		}
	}
}

// requireBetween requires lo <= got <= hi.
func requireBetween(t *testing.T, lo, hi, got time.Time, what string) {
	t.Helper()
	require.Falsef(t, got.Before(lo) || got.After(hi), "%s %s is not within [%s, %s]", what, got, lo, hi)
}

// race runs fn in n goroutines released at once and returns their results.
func race[T any](n int, fn func(i int) (T, error)) ([]T, []error) {
	out := make([]T, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i], errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return out, errs
}

// ctx is a short name for the test's context.
func ctx(t *testing.T) context.Context { return t.Context() }
