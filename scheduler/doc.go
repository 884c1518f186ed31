// Package scheduler turns job schedules into claimed, fenced, heartbeated
// attempts.
//
// One loop settles every due job: it measures the clock offset to the store,
// computes the slots in (scheduled_through, now] with scheduler/spec, and
// calls store.Settle with a plan that claims the newest slot no older than
// the job's catchup and records every other slot as one missed gap. Each
// claim runs in its own goroutine under a lease that it heartbeats; an
// attempt that loses its lease (another replica fenced it, or the store was
// unreachable for longer than the lease) is cancelled. Failed attempts are
// retried per the job's retry policy. The same loop takes over abandoned
// slots (expired leases, attempts released at shutdown) and prunes old slot
// records.
//
// Every duration (due slots, heartbeats, back-off, time-outs, the shutdown
// grace) is read from a Clock, so tests drive a FakeClock. Leases and
// expiries themselves are computed by the store from the database's clock.
package scheduler
