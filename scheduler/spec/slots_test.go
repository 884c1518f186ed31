package spec

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Transitions used below (2025):
//   Europe/Oslo          spring 2025-03-30 02:00 CET -> 03:00 CEST (01:00Z)
//                        autumn 2025-10-26 03:00 CEST -> 02:00 CET (01:00Z)
//   America/Los_Angeles  spring 2025-03-09 02:00 PST -> 03:00 PDT (10:00Z)
//                        autumn 2025-11-02 02:00 PDT -> 01:00 PST (09:00Z)

func TestNextDST(t *testing.T) {
	for _, tc := range []struct {
		name, zone, spec, from string
		want                   []string
	}{
		// Fixed hour: skipped wall times run at the first instant after the
		// jump, repeated ones at their first occurrence only.
		{"oslo spring 30 2", "Europe/Oslo", "30 2 * * *", "2025-03-29T00:00:00+01:00", []string{
			"2025-03-29T02:30:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"}},
		{"oslo spring 0 2", "Europe/Oslo", "0 2 * * *", "2025-03-29T00:00:00+01:00", []string{
			"2025-03-29T02:00:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00"}},
		{"oslo spring from just before the jump", "Europe/Oslo", "30 2 * * *", "2025-03-30T01:59:59+01:00", []string{
			"2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"}},
		{"oslo spring from the jump", "Europe/Oslo", "30 2 * * *", "2025-03-30T03:00:00+02:00", []string{
			"2025-03-31T02:30:00+02:00"}},
		{"oslo spring several walls in the jump run once", "Europe/Oslo", "0,30 2,3 * * *", "2025-03-30T00:00:00+01:00", []string{
			"2025-03-30T03:00:00+02:00", "2025-03-30T03:30:00+02:00", "2025-03-31T02:00:00+02:00"}},
		{"oslo autumn 30 2", "Europe/Oslo", "30 2 * * *", "2025-10-25T00:00:00+02:00", []string{
			"2025-10-25T02:30:00+02:00", "2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"}},
		{"oslo autumn 0 2", "Europe/Oslo", "0 2 * * *", "2025-10-25T12:00:00+02:00", []string{
			"2025-10-26T02:00:00+02:00", "2025-10-27T02:00:00+01:00"}},
		{"oslo autumn from inside the repeated hour", "Europe/Oslo", "30 2 * * *", "2025-10-26T02:10:00+01:00", []string{
			"2025-10-27T02:30:00+01:00"}},
		{"oslo autumn from the fall-back", "Europe/Oslo", "45 2 * * *", "2025-10-26T02:00:00+01:00", []string{
			"2025-10-27T02:45:00+01:00"}},
		{"oslo autumn minutes of the repeated hour once", "Europe/Oslo", "*/20 2 * * *", "2025-10-26T01:50:00+02:00", []string{
			"2025-10-26T02:00:00+02:00", "2025-10-26T02:20:00+02:00", "2025-10-26T02:40:00+02:00", "2025-10-27T02:00:00+01:00"}},
		{"la spring 30 2", "America/Los_Angeles", "30 2 * * *", "2025-03-08T00:00:00-08:00", []string{
			"2025-03-08T02:30:00-08:00", "2025-03-09T03:00:00-07:00", "2025-03-10T02:30:00-07:00"}},
		{"la spring 0 2", "America/Los_Angeles", "0 2 * * *", "2025-03-08T12:00:00-08:00", []string{
			"2025-03-09T03:00:00-07:00", "2025-03-10T02:00:00-07:00"}},
		{"la autumn 0 1", "America/Los_Angeles", "0 1 * * *", "2025-11-01T00:00:00-07:00", []string{
			"2025-11-01T01:00:00-07:00", "2025-11-02T01:00:00-07:00", "2025-11-03T01:00:00-08:00"}},
		{"la autumn 30 1 from the repeat", "America/Los_Angeles", "30 1 * * *", "2025-11-02T01:10:00-08:00", []string{
			"2025-11-03T01:30:00-08:00"}},
		{"la autumn 0 2", "America/Los_Angeles", "0 2 * * *", "2025-11-01T12:00:00-07:00", []string{
			"2025-11-02T02:00:00-08:00", "2025-11-03T02:00:00-08:00"}},
		{"la autumn 30 2", "America/Los_Angeles", "30 2 * * *", "2025-11-01T12:00:00-07:00", []string{
			"2025-11-02T02:30:00-08:00"}},
		// Descriptors are fixed at hour 0; Sao Paulo skipped midnight in 2018
		// and repeated 23:00 on the evening before its 2019 fall-back.
		{"sao paulo spring @daily", "America/Sao_Paulo", "@daily", "2018-11-03T12:00:00-03:00", []string{
			"2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"}},
		{"sao paulo autumn @daily", "America/Sao_Paulo", "@daily", "2019-02-16T12:00:00-02:00", []string{
			"2019-02-17T00:00:00-03:00", "2019-02-18T00:00:00-03:00"}},
		{"sao paulo autumn 30 23", "America/Sao_Paulo", "30 23 * * *", "2019-02-16T12:00:00-02:00", []string{
			"2019-02-16T23:30:00-02:00", "2019-02-17T23:30:00-03:00"}},
		// Samoa skipped 30 December 2011: every wall time of that day runs once,
		// at the first instant of the 31st.
		{"apia skipped day", "Pacific/Apia", "0 9,17 * * *", "2011-12-29T12:00:00-10:00", []string{
			"2011-12-29T17:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T09:00:00+14:00"}},
		// Beyond the zone's transition table, in a leap year (golang/go#81583).
		{"oslo last day of 2048", "Europe/Oslo", "59 23 31 12 *", "2047-12-31T23:59:00+01:00", []string{
			"2048-12-31T23:59:00+01:00", "2049-12-31T23:59:00+01:00"}},
		{"oslo hourly through 2048-12-31", "Europe/Oslo", "0 * * * *", "2048-12-31T00:30:00+01:00", []string{
			"2048-12-31T01:00:00+01:00", "2048-12-31T02:00:00+01:00"}},
		{"oslo @weekly", "Europe/Oslo", "@weekly", "2025-10-25T00:00:00+02:00", []string{
			"2025-10-26T00:00:00+02:00", "2025-11-02T00:00:00+01:00"}},
		{"oslo 6 fields in the jump", "Europe/Oslo", "30 15 2 * * *", "2025-03-30T00:00:00+01:00", []string{
			"2025-03-30T03:00:00+02:00", "2025-03-31T02:15:30+02:00"}},

		// Star or step in the hour: absolute time. Wall times a spring jump
		// removes do not run; repeated ones run at both occurrences.
		{"oslo spring */30", "Europe/Oslo", "*/30 * * * *", "2025-03-30T01:00:00+01:00", []string{
			"2025-03-30T01:30:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-30T03:30:00+02:00"}},
		{"oslo autumn */30", "Europe/Oslo", "*/30 * * * *", "2025-10-26T01:30:00+02:00", []string{
			"2025-10-26T02:00:00+02:00", "2025-10-26T02:30:00+02:00", "2025-10-26T02:00:00+01:00",
			"2025-10-26T02:30:00+01:00", "2025-10-26T03:00:00+01:00"}},
		{"oslo spring */15", "Europe/Oslo", "*/15 * * * *", "2025-03-30T01:40:00+01:00", []string{
			"2025-03-30T01:45:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-30T03:15:00+02:00"}},
		{"oslo autumn */15", "Europe/Oslo", "*/15 * * * *", "2025-10-26T02:40:00+02:00", []string{
			"2025-10-26T02:45:00+02:00", "2025-10-26T02:00:00+01:00", "2025-10-26T02:15:00+01:00"}},
		{"oslo spring 30 *", "Europe/Oslo", "30 * * * *", "2025-03-30T01:00:00+01:00", []string{
			"2025-03-30T01:30:00+01:00", "2025-03-30T03:30:00+02:00", "2025-03-30T04:30:00+02:00"}},
		{"oslo autumn 30 *", "Europe/Oslo", "30 * * * *", "2025-10-26T01:00:00+02:00", []string{
			"2025-10-26T01:30:00+02:00", "2025-10-26T02:30:00+02:00", "2025-10-26T02:30:00+01:00", "2025-10-26T03:30:00+01:00"}},
		{"oslo spring 0 */2", "Europe/Oslo", "0 */2 * * *", "2025-03-29T23:00:00+01:00", []string{
			"2025-03-30T00:00:00+01:00", "2025-03-30T04:00:00+02:00", "2025-03-30T06:00:00+02:00"}},
		{"oslo autumn 0 */2", "Europe/Oslo", "0 */2 * * *", "2025-10-25T23:00:00+02:00", []string{
			"2025-10-26T00:00:00+02:00", "2025-10-26T02:00:00+02:00", "2025-10-26T02:00:00+01:00", "2025-10-26T04:00:00+01:00"}},
		{"oslo autumn @hourly", "Europe/Oslo", "@hourly", "2025-10-26T01:30:00+02:00", []string{
			"2025-10-26T02:00:00+02:00", "2025-10-26T02:00:00+01:00", "2025-10-26T03:00:00+01:00"}},
		{"la spring */30", "America/Los_Angeles", "*/30 * * * *", "2025-03-09T01:00:00-08:00", []string{
			"2025-03-09T01:30:00-08:00", "2025-03-09T03:00:00-07:00", "2025-03-09T03:30:00-07:00"}},
		{"la autumn */30", "America/Los_Angeles", "*/30 * * * *", "2025-11-02T00:45:00-07:00", []string{
			"2025-11-02T01:00:00-07:00", "2025-11-02T01:30:00-07:00", "2025-11-02T01:00:00-08:00",
			"2025-11-02T01:30:00-08:00", "2025-11-02T02:00:00-08:00"}},
		{"la spring 0 */2", "America/Los_Angeles", "0 */2 * * *", "2025-03-08T23:00:00-08:00", []string{
			"2025-03-09T00:00:00-08:00", "2025-03-09T04:00:00-07:00"}},
		{"la autumn 0 */2", "America/Los_Angeles", "0 */2 * * *", "2025-11-01T23:00:00-07:00", []string{
			"2025-11-02T00:00:00-07:00", "2025-11-02T02:00:00-08:00", "2025-11-02T04:00:00-08:00"}},
		{"6 fields every 20s", "UTC", "*/20 * * * * *", "2025-06-01T12:00:05Z", []string{
			"2025-06-01T12:00:20Z", "2025-06-01T12:00:40Z", "2025-06-01T12:01:00Z"}},

		// @every: multiples of D since the epoch, whatever the zone.
		{"every 10m across the oslo jump", "Europe/Oslo", "@every 10m", "2025-03-30T01:55:00+01:00", []string{
			"2025-03-30T03:00:00+02:00", "2025-03-30T03:10:00+02:00"}},
		{"every 10m across the oslo fall-back", "Europe/Oslo", "@every 10m", "2025-10-26T02:50:00+02:00", []string{
			"2025-10-26T02:00:00+01:00", "2025-10-26T02:10:00+01:00"}},
		{"every 7m from the epoch", "UTC", "@every 7m", "1970-01-01T00:00:00Z", []string{
			"1970-01-01T00:07:00Z", "1970-01-01T00:14:00Z"}},
		{"every 7m aligned to the epoch", "UTC", "@every 7m", "2025-01-01T00:00:00Z", []string{
			// 1735689600 s is 4132594 * 420 + 120.
			"2025-01-01T00:05:00Z", "2025-01-01T00:12:00Z"}},
		{"every 7m before the epoch", "UTC", "@every 7m", "1969-12-31T23:50:00Z", []string{
			"1969-12-31T23:53:00Z", "1970-01-01T00:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc := mustZone(t, tc.zone)
			s, err := Parse(tc.spec, loc)
			require.NoError(t, err)
			at := mustTime(t, tc.from)
			var got []string
			for range tc.want {
				at = s.Next(at)
				require.Equal(t, loc, at.Location())
				got = append(got, at.Format(time.RFC3339))
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestNextSubSecond(t *testing.T) {
	s, err := Parse("*/20 * * * * *", time.UTC)
	require.NoError(t, err)
	at := time.Date(2025, 6, 1, 12, 0, 19, 999_999_999, time.UTC)
	require.Equal(t, time.Date(2025, 6, 1, 12, 0, 20, 0, time.UTC), s.Next(at))
	require.Equal(t, time.Date(2025, 6, 1, 12, 0, 40, 0, time.UTC), s.Next(at.Add(time.Nanosecond)))
	e, err := Parse("@every 10s", time.UTC)
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 6, 1, 12, 0, 20, 0, time.UTC), e.Next(at))
	require.Equal(t, time.Date(2025, 6, 1, 12, 0, 30, 0, time.UTC), e.Next(at.Add(time.Nanosecond)))
}

func TestEveryIsTheSameInEveryZone(t *testing.T) {
	oslo, err := Parse("@every 25m", mustZone(t, "Europe/Oslo"))
	require.NoError(t, err)
	la, err := Parse("@every 25m", mustZone(t, "America/Los_Angeles"))
	require.NoError(t, err)
	at := time.Date(2025, 3, 9, 0, 0, 0, 0, time.UTC)
	for range 200 {
		a, b := oslo.Next(at), la.Next(at)
		require.True(t, a.Equal(b))
		require.Zero(t, a.Unix()%(25*60))
		at = a
	}
}

func TestBetween(t *testing.T) {
	oslo := mustZone(t, "Europe/Oslo")
	year := [2]time.Time{time.Date(2025, 1, 1, 0, 0, 0, 0, oslo), time.Date(2026, 1, 1, 0, 0, 0, 0, oslo)}
	for _, tc := range []struct {
		spec      string
		loc       *time.Location
		after     time.Time
		through   time.Time
		max       int
		wantCount int
		wantTail  []string
	}{
		// Fixed hour in Oslo over 2025: the spring day's wall times collapse.
		{"0 2 * * *", oslo, year[0], year[1], 2, 365, []string{"2025-12-30T02:00:00+01:00", "2025-12-31T02:00:00+01:00"}},
		{"0,30 2 * * *", oslo, year[0], year[1], 1, 730 - 1, []string{"2025-12-31T02:30:00+01:00"}},
		{"* 2 * * *", oslo, year[0], year[1], 0, 365*60 - 59, nil},
		// Absolute: every real hour, minute, second of the year once.
		{"0 * * * *", oslo, year[0], year[1], 1, 8760, []string{"2026-01-01T00:00:00+01:00"}},
		{"*/15 * * * *", oslo, year[0], year[1], 0, 8760 * 4, nil},
		{"* * * * * *", oslo, year[0], year[1], 0, 8760 * 3600, nil},
		// 0 */2: the spring day lacks 02:00, the autumn day has it twice.
		{"0 */2 * * *", oslo, year[0], year[1], 0, 365 * 12, nil},
		{"0 * * * *", oslo, time.Date(2048, 1, 1, 0, 0, 0, 0, oslo), time.Date(2049, 1, 1, 0, 0, 0, 0, oslo), 0, 8784, nil},
		{"0 2 * * *", oslo, time.Date(2048, 1, 1, 0, 0, 0, 0, oslo), time.Date(2049, 1, 1, 0, 0, 0, 0, oslo), 0, 366, nil},
		{"@every 10m", oslo, year[0], year[1], 2, 8760 * 6, []string{"2025-12-31T23:50:00+01:00", "2026-01-01T00:00:00+01:00"}},
		{"@every 10m", oslo, year[0], year[0], 2, 0, nil},
		{"@every 10m", oslo, year[1], year[0], 2, 0, nil},
		{"@every 10m", oslo, year[0], year[0].Add(25 * time.Minute), 5, 2, []string{"2025-01-01T00:10:00+01:00", "2025-01-01T00:20:00+01:00"}},
		{"30 2 * * *", oslo, mustTime(t, "2025-03-29T12:00:00Z"), mustTime(t, "2025-03-30T01:00:00Z"), 5, 1, []string{"2025-03-30T03:00:00+02:00"}},
		{"30 2 * * *", oslo, mustTime(t, "2025-03-30T01:00:00Z"), mustTime(t, "2025-03-31T01:00:00Z"), 5, 1, []string{"2025-03-31T02:30:00+02:00"}},
	} {
		t.Run(fmt.Sprintf("%s %s..%s", tc.spec, tc.after.Format(time.RFC3339), tc.through.Format(time.RFC3339)), func(t *testing.T) {
			s, err := Parse(tc.spec, tc.loc)
			require.NoError(t, err)
			start := time.Now()
			slots, count := Between(s, tc.after, tc.through, tc.max)
			require.Less(t, time.Since(start), 2*time.Second, "counting must not enumerate")
			require.Equal(t, tc.wantCount, count)
			require.Equal(t, tc.wantTail, formatAll(slots))
		})
	}
}

// TestBetweenSixFieldTail checks the tail of a dense schedule over a long
// range (it is found by bisection, not enumeration).
func TestBetweenSixFieldTail(t *testing.T) {
	s, err := Parse("* * * * * *", time.UTC)
	require.NoError(t, err)
	after := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	through := time.Date(2026, 1, 1, 0, 0, 0, 500, time.UTC)
	slots, count := Between(s, after, through, 3)
	require.Equal(t, 365*86400, count)
	require.Equal(t, []string{"2025-12-31T23:59:58Z", "2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z"}, formatAll(slots))
}

type nextFunc func(time.Time) time.Time

func (f nextFunc) Next(t time.Time) time.Time { return f(t) }

func TestBetweenOtherSchedules(t *testing.T) {
	hourly := nextFunc(func(t time.Time) time.Time { return t.Truncate(time.Hour).Add(time.Hour) })
	after := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	slots, count := Between(hourly, after, after.Add(5*time.Hour+time.Minute), 2)
	require.Equal(t, 5, count)
	require.Equal(t, []string{"2025-01-01T04:00:00Z", "2025-01-01T05:00:00Z"}, formatAll(slots))
}

// The property tests compare Next and Between with a brute-force oracle that
// walks real time minute by minute (second by second for 6-field specs) and
// applies the rules literally.
func TestNextMatchesOracle(t *testing.T) {
	zones := []struct {
		name string
		year int
	}{
		{"Europe/Oslo", 2025}, {"America/Los_Angeles", 2025}, {"Australia/Lord_Howe", 2025},
		{"America/Sao_Paulo", 2018}, {"Pacific/Apia", 2011}, {"UTC", 2025},
	}
	specs := []string{
		"30 2 * * *", "0 2 * * *", "0 1 * * *", "0 3 * * *", "0,30 2 * * *", "*/20 1-3 * * *",
		"0 0 * * *", "30 23 * * *", "15 1,2 * * *", "0 9,17 * * *", "@daily", "@weekly",
		"*/30 * * * *", "*/15 * * * *", "30 * * * *", "0 */2 * * *", "45 1/3 * * *", "@hourly", "* * * * *",
		"0 2 * * 0", "0 2 1 * *",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, z := range zones {
		loc := mustZone(t, z.name)
		for _, at := range transitions(loc, z.year) {
			for _, sp := range specs {
				t.Run(fmt.Sprintf("%s %s %s", z.name, at.Format(time.RFC3339), sp), func(t *testing.T) {
					s, err := Parse(sp, loc)
					require.NoError(t, err)
					from := at.Add(-30 * time.Hour)
					to := at.Add(30 * time.Hour)
					checkAgainstOracle(t, s.(*cronSchedule), from, to, time.Minute, rng)
				})
			}
			for _, sp := range []string{"*/20 * 2 * * *", "10,40 * * * * *", "*/7 30 * * * *"} {
				t.Run(fmt.Sprintf("%s %s %s", z.name, at.Format(time.RFC3339), sp), func(t *testing.T) {
					s, err := Parse(sp, loc)
					require.NoError(t, err)
					checkAgainstOracle(t, s.(*cronSchedule), at.Add(-3*time.Hour), at.Add(3*time.Hour), time.Second, rng)
				})
			}
		}
	}
}

func checkAgainstOracle(t *testing.T, s *cronSchedule, from, to time.Time, step time.Duration, rng *rand.Rand) {
	t.Helper()
	want := oracle(s, from, to, step)
	var got []time.Time
	for at := s.Next(from); !at.After(to); at = s.Next(at) {
		got = append(got, at)
	}
	require.Equal(t, formatAll(want), formatAll(got))
	for range 20 {
		a := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
		b := a.Add(time.Duration(rng.Int64N(int64(to.Sub(a)) + 1)))
		var in []time.Time
		for _, w := range want {
			if w.After(a) && !w.After(b) {
				in = append(in, w)
			}
		}
		tail, count := Between(s, a, b, 2)
		require.Equal(t, len(in), count, "count in (%s, %s]", a, b)
		require.Equal(t, formatAll(in[max(0, len(in)-2):]), formatAll(tail), "tail in (%s, %s]", a, b)
	}
}

// oracle lists the slots in (from, to] by walking real time. Absolute specs:
// an instant is a slot when its wall time matches. Fixed-hour specs: an
// instant is a slot when the clock reaches a matching wall time there for the
// first time (walls passed by a jump count as reached at its end).
func oracle(s *cronSchedule, from, to time.Time, step time.Duration) []time.Time {
	f := s.wall
	has := func(bits uint64, v int) bool { return bits&(1<<uint(v)) != 0 }
	matches := func(w time.Time) bool {
		if !has(f.Second, w.Second()) || !has(f.Minute, w.Minute()) || !has(f.Hour, w.Hour()) || !has(f.Month, int(w.Month())) {
			return false
		}
		dom, dow := has(f.Dom, w.Day()), has(f.Dow, int(w.Weekday()))
		if has(f.Dom, 63) || has(f.Dow, 63) { // either field is "*"
			return dom && dow
		}
		return dom || dow
	}
	wall := func(i time.Time) time.Time { _, off := i.Zone(); return naive(i, off) }
	var slots []time.Time
	start := from.Truncate(step)
	if !s.fixed {
		for i := start.Add(step); !i.After(to); i = i.Add(step) {
			if i.After(from) && matches(wall(i.In(s.loc))) {
				slots = append(slots, i.In(s.loc))
			}
		}
		return slots
	}
	// Fixed: establish the high-water mark well before from.
	i := start.Add(-2 * lookaround)
	hw := wall(i.In(s.loc))
	for i = i.Add(step); !i.After(to); i = i.Add(step) {
		w := wall(i.In(s.loc))
		if !w.After(hw) {
			continue
		}
		hit := false
		for x := hw.Add(step); !x.After(w); x = x.Add(step) {
			if matches(x) {
				hit = true
				break
			}
		}
		hw = w
		if hit && i.After(from) {
			slots = append(slots, i.In(s.loc))
		}
	}
	return slots
}

// transitions returns the zone's offset changes in year (a fixed instant for
// UTC, which has none).
func transitions(loc *time.Location, year int) []time.Time {
	var out []time.Time
	at := time.Date(year, 1, 1, 0, 0, 0, 0, loc)
	for {
		_, end := at.ZoneBounds()
		if end.IsZero() || end.Year() > year {
			break
		}
		out = append(out, end)
		at = end.In(loc)
	}
	if len(out) == 0 {
		out = append(out, time.Date(year, 6, 1, 0, 0, 0, 0, loc))
	}
	return out
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return at
}

func formatAll(ts []time.Time) []string {
	var out []string
	for _, at := range ts {
		out = append(out, at.Format(time.RFC3339))
	}
	return out
}

func BenchmarkNext(b *testing.B) {
	oslo := mustZone(b, "Europe/Oslo")
	for _, sp := range []string{"30 2 * * *", "*/15 * * * *", "@every 10m", "0 0 29 2 *"} {
		s, err := Parse(sp, oslo)
		require.NoError(b, err)
		b.Run(sp, func(b *testing.B) {
			at := time.Date(2025, 1, 1, 0, 0, 0, 0, oslo)
			for b.Loop() {
				at = s.Next(at)
				if at.Year() > 2035 {
					at = time.Date(2025, 1, 1, 0, 0, 0, 0, oslo)
				}
			}
		})
	}
}
