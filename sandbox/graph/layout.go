package graph

import (
	"math"
	"sort"
	"time"
)

// firstCompanyID is the vismaNetCompanyId of the first sandbox company.
const firstCompanyID = 1001

// sandboxCustomerID is the vismaNetCustomerId of every sandbox company.
const sandboxCustomerID = 5001

// Generated changedTimestamp values (for rows after the first tenth) spread
// over this wall-clock range of the server zone; the range lies in the past.
var (
	genStartWall = time.Date(2024, 10, 1, 7, 0, 0, 0, time.UTC)
	genEndWall   = time.Date(2025, 12, 31, 17, 0, 0, 0, time.UTC)
)

// nullShare is the divisor of the share of rows (the first n/nullShare by
// index) whose createdTimestamp and changedTimestamp are null.
const nullShare = 10

// zoneLayout is the server zone over the generation range: its UTC offsets
// and the instants where the wall clock steps back (autumn fall-back).
type zoneLayout struct {
	loc       *time.Location
	startInst int64 // instant ticks (UTC, since the epoch) of genStartWall
	endInst   int64
	segs      []zoneSeg
	fallBacks []int64 // instants (ticks) at which the offset decreases
}

type zoneSeg struct {
	from int64 // instant ticks
	off  int64 // offset in ticks
}

func instantTicks(t time.Time) int64 {
	return t.Unix()*ticksPerSecond + int64(t.Nanosecond()/100)
}

func newZoneLayout(loc *time.Location) *zoneLayout {
	start := time.Date(genStartWall.Year(), genStartWall.Month(), genStartWall.Day(), genStartWall.Hour(), 0, 0, 0, loc)
	end := time.Date(genEndWall.Year(), genEndWall.Month(), genEndWall.Day(), genEndWall.Hour(), 0, 0, 0, loc)
	zl := &zoneLayout{loc: loc, startInst: instantTicks(start), endInst: instantTicks(end)}
	t := start
	_, off := t.Zone()
	zl.segs = append(zl.segs, zoneSeg{from: math.MinInt64, off: int64(off) * ticksPerSecond})
	for {
		_, next := t.ZoneBounds()
		if next.IsZero() || next.After(end) || !next.After(t) {
			break
		}
		_, noff := next.Zone()
		if noff < off {
			zl.fallBacks = append(zl.fallBacks, instantTicks(next))
		}
		zl.segs = append(zl.segs, zoneSeg{from: instantTicks(next), off: int64(noff) * ticksPerSecond})
		t, off = next, noff
	}
	return zl
}

// wall converts an instant inside the generation range to wall ticks.
func (zl *zoneLayout) wall(inst int64) int64 {
	for i := len(zl.segs) - 1; i > 0; i-- {
		if inst >= zl.segs[i].from {
			return inst + zl.segs[i].off
		}
	}
	return inst + zl.segs[0].off
}

// idxRange is the half-open index range [lo, hi).
type idxRange struct{ lo, hi int }

func (r idxRange) len() int { return r.hi - r.lo }

// tableState is one table of one company under the current options.
type tableState struct {
	t       *table
	company int
	n, n0   int
	seed    uint64
	zl      *zoneLayout
	stepMs  int64
	runs    []idxRange // [n0, n) split where the wall clock steps back
	touch   *touchSet  // nil when no row was touched; replaced, never mutated
}

func newTableState(t *table, company, rows int, zl *zoneLayout) *tableState {
	n := rows
	if t.fixedRows > 0 {
		n = t.fixedRows
	}
	ts := &tableState{t: t, company: company, n: n, n0: n / nullShare, zl: zl,
		seed: mix(uint64(company)*0x100000001b3 ^ t.salt)}
	span := (zl.endInst - zl.startInst) / ticksPerMilli
	cnt := int64(ts.n - ts.n0)
	ts.stepMs = 1
	if cnt > 0 && span/cnt > 1 {
		ts.stepMs = span / cnt
	}
	if ts.n > ts.n0 {
		lo := ts.n0
		for _, fb := range zl.fallBacks {
			b := lo + sort.Search(ts.n-lo, func(j int) bool { return ts.instant(lo+j) >= fb })
			if b > lo && b < ts.n {
				ts.runs = append(ts.runs, idxRange{lo, b})
				lo = b
			}
		}
		ts.runs = append(ts.runs, idxRange{lo, ts.n})
	}
	return ts
}

// rowSeed is the hash of (company, table, index) that seeds a row's values.
func (ts *tableState) rowSeed(idx int) uint64 {
	return mix(ts.seed + uint64(idx)*0x9e3779b97f4a7c15)
}

const saltJitter = 0x6a09e667f3bcc908

// instant is the natural changedTimestamp of row idx >= n0 as an instant:
// strictly increasing with idx.
func (ts *tableState) instant(idx int) int64 {
	j := int64(mix(ts.rowSeed(idx)^saltJitter) % uint64(ts.stepMs))
	return ts.zl.startInst + (int64(idx-ts.n0)*ts.stepMs+j)*ticksPerMilli
}

// wall is the natural changedTimestamp of row idx >= n0: server wall ticks.
// It increases with idx inside each run.
func (ts *tableState) wall(idx int) int64 { return ts.zl.wall(ts.instant(idx)) }

// row addresses one row for value generation.
type row struct {
	cs      *companyState
	ts      *tableState
	idx     int
	seed    uint64
	ver     uint64 // how often the row was touched
	touched bool
	twall   int64 // changedTimestamp of a touched row
}

func (cs *companyState) row(ts *tableState, idx int) row {
	r := row{cs: cs, ts: ts, idx: idx, seed: ts.rowSeed(idx)}
	if ts.touch != nil {
		if rec, ok := ts.touch.recs[idx]; ok {
			r.ver, r.touched, r.twall = rec.ver, true, rec.wall
		}
	}
	return r
}

// h is a hash of the row for the value of one column (salt); it does not
// change when the row is touched.
func (r *row) h(salt uint64) uint64 { return mix(r.seed ^ salt*0xd1b54a32d192ed03) }

// hv is like h but changes each time the row is touched: for columns a user
// edits.
func (r *row) hv(salt uint64) uint64 {
	return mix(r.seed ^ salt*0xd1b54a32d192ed03 ^ r.ver*0x8cb92ba72f3d8dd7)
}

func genChangedTimestamp(r *row) value {
	if r.touched {
		return intValue(r.twall)
	}
	if r.idx < r.ts.n0 {
		return nullValue
	}
	return intValue(r.ts.wall(r.idx))
}

const saltCreated = 0x3c6ef372fe94f82b

// createdNull reports whether the row was created before October 2024: the
// first tenth, and a quarter of the rest of the first half.
func (r *row) createdNull() bool {
	if r.idx < r.ts.n0 {
		return true
	}
	return r.idx < r.ts.n/2 && r.h(saltCreated)%4 == 0
}

func (r *row) createdWall() (int64, bool) {
	if r.createdNull() {
		return 0, false
	}
	ch := r.ts.instant(r.idx)
	maxDelta := (ch-r.ts.zl.startInst)/ticksPerMilli + 1
	if d := int64(60 * 86_400_000); maxDelta > d {
		maxDelta = d
	}
	delta := int64(r.h(saltCreated+1) % uint64(maxDelta))
	return r.ts.zl.wall(ch - delta*ticksPerMilli), true
}

func genCreatedTimestamp(r *row) value {
	w, ok := r.createdWall()
	if !ok {
		return nullValue
	}
	return intValue(w)
}

// createdDate is the yyyymmdd day the row was created: from createdTimestamp,
// or a day between 2012 and September 2024 for older rows.
func (r *row) createdDate() int64 {
	if w, ok := r.createdWall(); ok {
		return dateInt(w)
	}
	return oldDate(r.h(saltCreated + 2))
}

var (
	oldFirstDay = time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400
	oldLastDay  = time.Date(2024, 9, 30, 0, 0, 0, 0, time.UTC).Unix() / 86400
)

func oldDate(h uint64) int64 {
	day := oldFirstDay + int64(h%uint64(oldLastDay-oldFirstDay+1))
	return dateInt(day * ticksPerDay)
}

// addDays adds days to a yyyymmdd date.
func addDays(date int64, days int) int64 {
	t := time.Date(int(date/10000), time.Month(date/100%100), int(date%100), 0, 0, 0, 0, time.UTC).AddDate(0, 0, days)
	return int64(t.Year())*10000 + int64(t.Month())*100 + int64(t.Day())
}

// companyState is one company under the current options.
type companyState struct {
	id   int
	name string
	tabs []*tableState // by table id
}

// world is an immutable snapshot of the options, the companies and the
// touched rows. Touch and SetOptions publish a new world.
type world struct {
	opts  Options
	zl    *zoneLayout
	comps []*companyState
}

func (w *world) company(id int) *companyState {
	i := id - firstCompanyID
	if i < 0 || i >= len(w.comps) {
		return nil
	}
	return w.comps[i]
}
