package spec

import (
	"math/bits"
	"time"

	"github.com/robfig/cron/v3"
)

// Walls and instants. A wall time is what a clock in the schedule's zone
// shows; it is represented as a time.Time in UTC with the same fields
// ("naive"), so that robfig's field matching, which is exact in UTC, finds
// matching wall times. The zone's offset segments (time.Time.ZoneBounds) map
// walls back to instants.

// lookaround bounds how far apart an instant and its wall time can be (every
// UTC offset, historical ones included, is within it), and how far back an
// autumn fall-back can still matter.
const lookaround = 26 * time.Hour

const (
	starBit   = 1 << 63
	fieldBits = 1<<60 - 1
)

// zoneEnd returns the end of the zone period holding t, or zero when the
// zone never changes again. Periods may split a constant offset (at year ends,
// beyond a zone's transition table); callers treat every end as a possible
// change. It works around golang/go#81583: beyond the transition table,
// ZoneBounds ends the last period of a leap year a day early, before t
// itself, where the period really runs to the next UTC year.
func zoneEnd(t time.Time) time.Time {
	_, end := t.ZoneBounds()
	if end.IsZero() || end.After(t) {
		return end
	}
	return time.Date(t.UTC().Year()+1, 1, 1, 0, 0, 0, 0, time.UTC).In(t.Location())
}

// cronSchedule is a 5- or 6-field spec (or a descriptor) read in loc.
type cronSchedule struct {
	spec  string
	wall  *cron.SpecSchedule // the fields, matched against wall times (UTC)
	fixed bool
	loc   *time.Location
}

func (c *cronSchedule) FixedHour() bool          { return c.fixed }
func (c *cronSchedule) Every() time.Duration     { return 0 }
func (c *cronSchedule) Location() *time.Location { return c.loc }
func (c *cronSchedule) String() string           { return c.spec }

// Next returns the first slot after t.
func (c *cronSchedule) Next(t time.Time) time.Time {
	if c.fixed {
		return c.nextFixed(t)
	}
	return c.nextAbsolute(t)
}

// naive returns the wall time instant t shows at UTC offset off (seconds).
func naive(t time.Time, off int) time.Time {
	return t.UTC().Add(time.Duration(off) * time.Second)
}

// nextWall returns the first matching wall time after w (at or after w when
// inclusive), or zero when there is none within 5 years.
func (c *cronSchedule) nextWall(w time.Time, inclusive bool) time.Time {
	if inclusive {
		w = w.Add(-time.Nanosecond)
	}
	return c.wall.Next(w)
}

// nextAbsolute: the first instant after t whose wall time matches.
func (c *cronSchedule) nextAbsolute(t time.Time) time.Time {
	cur := t.In(c.loc)
	inclusive := false
	limit := t.Add(horizon + 2*365*24*time.Hour)
	for cur.Before(limit) {
		_, off := cur.Zone()
		end := zoneEnd(cur)
		w := c.nextWall(naive(cur, off), inclusive)
		if w.IsZero() {
			return time.Time{}
		}
		inst := w.Add(-time.Duration(off) * time.Second)
		if end.IsZero() || inst.Before(end) {
			return inst.In(c.loc)
		}
		// The match lies beyond this offset segment: search the next one
		// from its first instant.
		cur, inclusive = end.In(c.loc), true
	}
	return time.Time{}
}

// nextFixed: the instant of the first matching wall time not yet reached at t.
func (c *cronSchedule) nextFixed(t time.Time) time.Time {
	t = t.In(c.loc)
	w := c.nextWall(c.highWater(t))
	for i := 0; i < 1000 && !w.IsZero(); i++ {
		if inst := c.instant(w); inst.After(t) {
			return inst
		}
		w = c.nextWall(w, false)
	}
	return time.Time{}
}

// highWater returns the greatest wall time shown at or before t: a wall time
// w has been reached at t when w <= hw, or w < hw when !reached (the previous
// offset segment's walls approach hw without showing it). It differs from
// t's own wall time only shortly after a fall-back.
func (c *cronSchedule) highWater(t time.Time) (hw time.Time, open bool) {
	_, off := t.Zone()
	hw = naive(t, off)
	start, _ := t.ZoneBounds()
	for !start.IsZero() && !start.After(t) && t.Sub(start) < lookaround {
		before := start.Add(-time.Nanosecond).In(c.loc)
		_, prev := before.Zone()
		if top := naive(start, prev); top.After(hw) {
			hw, open = top, true
		}
		start, _ = before.ZoneBounds()
	}
	return hw, open
}

// instant returns the first instant whose wall time is w or later: w itself
// when the clock shows it (its first occurrence when it shows it twice), the
// end of the jump when a spring-forward skips it.
func (c *cronSchedule) instant(w time.Time) time.Time {
	cur := w.Add(-lookaround).In(c.loc)
	for {
		_, off := cur.Zone()
		end := zoneEnd(cur)
		inst := w.Add(-time.Duration(off) * time.Second)
		if end.IsZero() || end.After(inst) || end.Sub(w) > lookaround {
			if inst.Before(cur) {
				inst = cur
			}
			return inst.In(c.loc)
		}
		cur = end.In(c.loc)
	}
}

// count returns how many slots lie in (after, through].
func (c *cronSchedule) count(after, through time.Time) int {
	if !through.After(after) {
		return 0
	}
	if c.fixed {
		return c.countFixed(after, through)
	}
	return c.countAbsolute(after, through)
}

// countAbsolute counts the matching walls of each offset segment.
func (c *cronSchedule) countAbsolute(after, through time.Time) int {
	n := 0
	lo, cur := after, after.In(c.loc)
	for lo.Before(through) {
		_, off := cur.Zone()
		end := zoneEnd(cur)
		hi := through
		if !end.IsZero() && end.Before(through) {
			hi = end.Add(-time.Nanosecond)
		}
		n += c.countWalls(naive(lo, off), naive(hi, off))
		lo, cur = hi, end.In(c.loc)
	}
	return n
}

// countFixed counts the walls reached after `after` and by `through`, less
// the walls that share an instant (those inside one spring-forward jump).
func (c *cronSchedule) countFixed(after, through time.Time) int {
	cut := func(t time.Time) time.Time {
		hw, open := c.highWater(t.In(c.loc))
		if open {
			return hw.Add(-time.Nanosecond)
		}
		return hw
	}
	n := c.countWalls(cut(after), cut(through))
	cur := after.In(c.loc)
	for {
		_, from := cur.Zone()
		end := zoneEnd(cur)
		if end.IsZero() || end.After(through) {
			return n
		}
		cur = end.In(c.loc)
		if _, to := cur.Zone(); to > from {
			// The walls in [end+from, end+to] all run at end.
			if k := c.countWalls(naive(end, from).Add(-time.Nanosecond), naive(end, to)); k > 1 {
				n -= k - 1
			}
		}
	}
}

// countWalls counts the matching wall times w with lo < w <= hi.
func (c *cronSchedule) countWalls(lo, hi time.Time) int {
	if !hi.After(lo) {
		return 0
	}
	lo, hi = lo.Truncate(time.Second), hi.Truncate(time.Second)
	day := midnight(lo)
	return c.wallsUpTo(day, hi) - c.wallsUpTo(day, lo)
}

// wallsUpTo counts the matching wall times in [day, x]; day is a midnight
// not after x.
func (c *cronSchedule) wallsUpTo(day, x time.Time) int {
	s := c.wall
	perDay := ones(s.Hour) * ones(s.Minute) * ones(s.Second)
	n := 0
	last := midnight(x)
	for ; day.Before(last); day = day.AddDate(0, 0, 1) {
		if c.dayMatches(day) {
			n += perDay
		}
	}
	if !c.dayMatches(last) {
		return n
	}
	h, m, sec := x.Clock()
	n += ones(s.Hour&below(h)) * ones(s.Minute) * ones(s.Second)
	if s.Hour&(1<<h) == 0 {
		return n
	}
	n += ones(s.Minute&below(m)) * ones(s.Second)
	if s.Minute&(1<<m) == 0 {
		return n
	}
	return n + ones(s.Second&below(sec+1))
}

// dayMatches is robfig's day rule: day-of-month and day-of-week both match
// when either is "*", else either matches.
func (c *cronSchedule) dayMatches(day time.Time) bool {
	s := c.wall
	if s.Month&(1<<uint(day.Month())) == 0 {
		return false
	}
	dom := s.Dom&(1<<uint(day.Day())) != 0
	dow := s.Dow&(1<<uint(day.Weekday())) != 0
	if s.Dom&starBit != 0 || s.Dow&starBit != 0 {
		return dom && dow
	}
	return dom || dow
}

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func ones(b uint64) int { return bits.OnesCount64(b & fieldBits) }

func below(n int) uint64 { return 1<<uint(n) - 1 }

// everySchedule is @every D: the multiples of D since the Unix epoch.
type everySchedule struct {
	spec  string
	every time.Duration
	loc   *time.Location
}

func (e *everySchedule) FixedHour() bool          { return false }
func (e *everySchedule) Every() time.Duration     { return e.every }
func (e *everySchedule) Location() *time.Location { return e.loc }
func (e *everySchedule) String() string           { return e.spec }

// Next returns the first multiple of D after t.
func (e *everySchedule) Next(t time.Time) time.Time {
	return e.slot(e.index(t) + 1)
}

// index returns the number of the last slot at or before t.
func (e *everySchedule) index(t time.Time) int64 {
	d := int64(e.every / time.Second)
	sec := t.Unix()
	k := sec / d
	if sec%d < 0 {
		k--
	}
	return k
}

func (e *everySchedule) slot(k int64) time.Time {
	return time.Unix(k*int64(e.every/time.Second), 0).In(e.loc)
}

// Between returns how many slots of s lie in (after, through] and the newest
// of them, at most max, oldest first. It counts arithmetically for schedules
// from Parse, so a long downtime costs no more than a short one; any other
// schedule is enumerated with Next.
func Between(s interface{ Next(time.Time) time.Time }, after, through time.Time, max int) (slots []time.Time, count int) {
	if !through.After(after) {
		return nil, 0
	}
	switch s := s.(type) {
	case *everySchedule:
		last := s.index(through)
		count = int(last - s.index(after))
		for k := last - int64(min(max, count)) + 1; k <= last; k++ {
			slots = append(slots, s.slot(k))
		}
		return slots, count
	case *cronSchedule:
		count = s.count(after, through)
		if max <= 0 {
			return nil, count
		}
		from := after
		if count > max {
			from = s.tailStart(after, through, max)
		}
		return enumerate(s, from, through, max), count
	default:
		// Unknown schedules: walk every slot, keeping the newest.
		var ring []time.Time
		for t := s.Next(after); !t.IsZero() && !t.After(through); {
			count++
			if max > 0 {
				if len(ring) == max {
					ring = ring[1:]
				}
				ring = append(ring, t)
			}
			next := s.Next(t)
			if !next.After(t) {
				break
			}
			t = next
		}
		return ring, count
	}
}

// tailStart returns an instant x with exactly n slots in (x, through], given
// more than n in (after, through]: slots are distinct whole seconds, so
// moving x by one second changes the count by at most one.
func (c *cronSchedule) tailStart(after, through time.Time, n int) time.Time {
	lo, hi := after.Unix(), through.Unix()+1 // count(lo) > n, count(hi) = 0
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if c.count(time.Unix(mid, 0), through) >= n {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Unix(lo, 0)
}

func enumerate(s interface{ Next(time.Time) time.Time }, after, through time.Time, max int) []time.Time {
	var slots []time.Time
	for t := s.Next(after); len(slots) < max && !t.IsZero() && !t.After(through); t = s.Next(t) {
		slots = append(slots, t)
	}
	return slots
}
