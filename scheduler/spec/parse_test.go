package spec

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST tables must not depend on the host's zoneinfo

	"github.com/stretchr/testify/require"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		spec        string
		errContains string
	}{
		{"", "empty schedule"},
		{"   ", "empty schedule"},
		{"TZ=Europe/Oslo 30 2 * * *", "TZ= is not allowed in a schedule; set timezone instead"},
		{"tz=Europe/Oslo 30 2 * * *", "TZ= is not allowed in a schedule; set timezone instead"},
		{"TZ=Europe/Oslo", "TZ= is not allowed in a schedule; set timezone instead"}, // robfig panics on this one
		{"CRON_TZ=UTC 30 2 * * *", "CRON_TZ= is not allowed in a schedule; set timezone instead"},
		{"30 2 * *", "expected 5 or 6 fields, found 4"},
		{"0 0 30 2 * * *", "expected 5 or 6 fields, found 7"},
		{"daily", "expected 5 or 6 fields, found 1"},
		{"@every", "@every needs a duration, as in @every 10m"},
		{"@every ten", `@every: invalid duration "ten"`},
		{"@every 10m 5s", "@every takes one duration, found 2 words"},
		{"@every -1m", "@every: duration -1m is not positive"},
		{"@every 0s", "@every: duration 0s is not positive"},
		{"@every 500ms", "@every: duration 500ms is shorter than 1s"},
		{"@every 1500ms", "@every: duration 1.5s is not a whole number of seconds"},
		{"@every 400000h", "no occurrence within 5 years"}, // slots in 2015 and 2061
		{"@daily 02:00", `unexpected "02:00" after @daily`},
		{"@nightly", `unknown descriptor "@nightly"; use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>`},
		{"@Daily", `unknown descriptor "@Daily"`},
		{"60 * * * *", "minute field: 60 is out of range 0-59"},
		{"60 * * * * *", "second field: 60 is out of range 0-59"},
		{"0 24 * * *", "hour field: 24 is out of range 0-23"},
		{"0 0 0 * *", "day-of-month field: 0 is out of range 1-31"},
		{"0 0 32 * *", "day-of-month field: 32 is out of range 1-31"},
		{"0 0 * 13 *", "month field: 13 is out of range 1-12"},
		{"0 0 * * 7", "day-of-week field: 7 is out of range 0-6 (sunday is 0)"},
		{"99999999999 * * * *", "minute field: 99999999999 is out of range 0-59"},
		{"0 0 * foo *", `month field: "foo" is not a number or month name`},
		{"0 0 * * funday", `day-of-week field: "funday" is not a number or day name`},
		{"x * * * *", `minute field: "x" is not a number`},
		{"0 0 L * *", `day-of-month field: "L" is not a number`},
		{"0 0 1W * *", `day-of-month field: "1W" is not a number`},
		{"1,,2 * * * *", "minute field: empty list item"},
		{"0 , * * *", "hour field: empty list item"},
		{"0 1, * * *", "hour field: empty list item"},
		{"*/0 * * * *", `minute field: step must be a positive number, found "0"`},
		{"*/x * * * *", `minute field: step must be a positive number, found "x"`},
		{"*/ * * * *", `minute field: step must be a positive number, found ""`},
		{"*/+5 * * * *", `minute field: step must be a positive number, found "+5"`},
		{"1/2/3 * * * *", `minute field: "1/2/3" has more than one "/"`},
		{"1-2-3 * * * *", `minute field: "1-2-3" has more than one "-"`},
		{"30-10 * * * *", "minute field: range 30-10 runs backwards"},
		{"0 0 * dec-jan *", "month field: range dec-jan runs backwards"},
		{"*-3 * * * *", `minute field: "*-3" is not a valid range`},
		{"-1 * * * *", `minute field: "-1" is not a valid range`},
		{"1- * * * *", `minute field: "1-" is not a valid range`},
		{"0 0 30 2 *", "no occurrence within 5 years"},
		{"0 0 31 4,6,9,11 *", "no occurrence within 5 years"},
		{"0 0 30,31 feb *", "no occurrence within 5 years"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := Parse(tc.spec, time.UTC)
			require.ErrorContains(t, err, tc.errContains)
			require.Nil(t, s)
		})
	}
}

func TestParseAccepts(t *testing.T) {
	oslo := mustZone(t, "Europe/Oslo")
	for _, tc := range []struct {
		spec  string
		fixed bool
		every time.Duration
	}{
		{"30 2 * * *", true, 0},
		{"  30 2 * * *  ", true, 0},
		{"0 1-3 * * *", true, 0},
		{"0 2,14 * * mon-fri", true, 0},
		{"*/15 2 * * *", true, 0},
		{"0 0 29 2 *", true, 0},
		{"0 0 31 1-12 *", true, 0},
		{"15 30 2 * * *", true, 0},
		{"0 0 ? JAN-dec SUN", true, 0},
		{"*/30 * * * *", false, 0},
		{"30 * * * *", false, 0},
		{"0 */2 * * *", false, 0},
		{"0 1/2 * * *", false, 0},
		{"0 0-23/6 * * *", false, 0},
		{"0 1,*/6 * * *", false, 0},
		{"0 ? * * *", false, 0},
		{"*/20 * * * * *", false, 0},
		{"@yearly", true, 0},
		{"@annually", true, 0},
		{"@monthly", true, 0},
		{"@weekly", true, 0},
		{"@daily", true, 0},
		{"@midnight", true, 0},
		{"@hourly", false, 0},
		{"@every 10m", false, 10 * time.Minute},
		{"@every  1h30m", false, 90 * time.Minute},
		{"@every 1s", false, time.Second},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := Parse(tc.spec, oslo)
			require.NoError(t, err)
			require.Equal(t, tc.fixed, s.FixedHour())
			require.Equal(t, tc.every, s.Every())
			require.Equal(t, oslo, s.Location())
			require.Equal(t, strings.TrimSpace(tc.spec), s.String())
		})
	}
}

func TestParseNilLocationIsUTC(t *testing.T) {
	s, err := Parse("30 2 * * *", nil)
	require.NoError(t, err)
	require.Equal(t, time.UTC, s.Location())
	next := s.Next(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
	require.Equal(t, time.Date(2025, 6, 1, 2, 30, 0, 0, time.UTC), next)
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}
