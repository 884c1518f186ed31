package graph

import (
	"fmt"
	"strings"
	"time"
)

// Wall-clock times are int64 ticks of 100 ns (the resolution of SQL Server's
// datetime2) since 1970-01-01T00:00:00 of the server's local clock, without
// zone: the value a Business NXT server stores and returns.
const (
	ticksPerMilli  = 10_000
	ticksPerSecond = 10_000_000
	ticksPerDay    = 86_400 * ticksPerSecond
)

// DateTimeLayout is how DateTime values are written in responses.
const DateTimeLayout = "2006-01-02T15:04:05.000"

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func civilFromDays(z int64) (year int64, month, day int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, int(m), int(d)
}

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

// appendDateTime writes ticks in DateTimeLayout.
func appendDateTime(dst []byte, ticks int64) []byte {
	days := floorDiv(ticks, ticksPerDay)
	rem := ticks - days*ticksPerDay
	y, m, d := civilFromDays(days)
	if y < 0 || y > 9999 {
		sec := floorDiv(ticks, ticksPerSecond)
		return time.Unix(sec, (ticks-sec*ticksPerSecond)*100).UTC().AppendFormat(dst, DateTimeLayout)
	}
	yy := int(y)
	dst = append(dst, byte('0'+yy/1000), byte('0'+yy/100%10), byte('0'+yy/10%10), byte('0'+yy%10), '-')
	dst = append2(dst, m)
	dst = append(dst, '-')
	dst = append2(dst, d)
	dst = append(dst, 'T')
	secs := int(rem / ticksPerSecond)
	ms := int(rem % ticksPerSecond / ticksPerMilli)
	dst = append2(dst, secs/3600)
	dst = append(dst, ':')
	dst = append2(dst, secs/60%60)
	dst = append(dst, ':')
	dst = append2(dst, secs%60)
	return append(dst, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
}

// formatDateTime returns ticks in DateTimeLayout.
func formatDateTime(ticks int64) string { return string(appendDateTime(nil, ticks)) }

// dateInt returns the yyyymmdd integer of the day of ticks, the format of
// Business NXT's date columns.
func dateInt(ticks int64) int64 {
	y, m, d := civilFromDays(floorDiv(ticks, ticksPerDay))
	return y*10000 + int64(m)*100 + int64(d)
}

// wallTicks converts an instant to the wall-clock ticks of loc.
func wallTicks(t time.Time, loc *time.Location) int64 {
	t = t.In(loc)
	_, off := t.Zone()
	return (t.Unix()+int64(off))*ticksPerSecond + int64(t.Nanosecond()/100)
}

// naiveTicks reads the wall clock of t (its own zone is ignored).
func naiveTicks(t time.Time) (ticks int64, exact bool) {
	_, off := t.Zone()
	ns := t.Nanosecond()
	return (t.Unix()+int64(off))*ticksPerSecond + int64(ns/100), ns%100 == 0
}

var (
	zonedLayouts = []string{"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04Z07:00"}
	naiveLayouts = []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"}
)

// parseDateTime reads a DateTime input value. Without a zone it is server
// local wall time; with Z or an offset it is converted to the wall clock of
// loc. exact is false when the value has digits beyond the 100 ns tick (the
// tick is then the value truncated).
func parseDateTime(s string, loc *time.Location) (ticks int64, exact bool, err error) {
	in := strings.TrimSpace(s)
	if len(in) > 10 && in[10] == ' ' {
		in = in[:10] + "T" + in[11:]
	}
	for _, l := range zonedLayouts {
		if t, perr := time.Parse(l, in); perr == nil {
			tk := wallTicks(t, loc)
			return tk, t.Nanosecond()%100 == 0, nil
		}
	}
	for _, l := range naiveLayouts {
		if t, perr := time.Parse(l, in); perr == nil {
			tk, ex := naiveTicks(t)
			return tk, ex, nil
		}
	}
	return 0, false, fmt.Errorf("invalid DateTime %q: expected yyyy-MM-ddTHH:mm:ss[.fffffff] in server local time, or with Z or an offset", s)
}
