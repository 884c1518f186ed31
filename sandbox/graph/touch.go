package graph

import (
	"slices"
	"sort"
	"time"
)

// touchRaw is what Touch recorded for one row: the instant and how often.
type touchRaw struct {
	at  time.Time
	ver uint64
}

type touchRec struct {
	wall int64 // changedTimestamp, server wall ticks (whole milliseconds)
	ver  uint64
}

type touchVal struct {
	wall int64
	idx  int
}

func (a touchVal) less(w int64, idx int) bool {
	return a.wall < w || (a.wall == w && a.idx < idx)
}

// touchSet is the immutable override set of one table of one company: the
// touched rows by index, and in (changedTimestamp, index) order.
type touchSet struct {
	recs  map[int]touchRec
	idxs  []int      // sorted
	byVal []touchVal // sorted by (wall, idx)
}

// buildTouchSet derives the touch set of a table of n rows in zone loc; rows
// beyond n (after a SetOptions that shrank the tables) are left out.
func buildTouchSet(raw map[int]touchRaw, n int, loc *time.Location) *touchSet {
	s := &touchSet{recs: make(map[int]touchRec, len(raw))}
	for idx, tr := range raw {
		if idx >= n {
			continue
		}
		w := floorDiv(wallTicks(tr.at, loc), ticksPerMilli) * ticksPerMilli
		s.recs[idx] = touchRec{wall: w, ver: tr.ver}
		s.idxs = append(s.idxs, idx)
		s.byVal = append(s.byVal, touchVal{wall: w, idx: idx})
	}
	if len(s.idxs) == 0 {
		return nil
	}
	slices.Sort(s.idxs)
	slices.SortFunc(s.byVal, func(a, b touchVal) int {
		if c := cmpInt(a.wall, b.wall); c != 0 {
			return c
		}
		return a.idx - b.idx
	})
	return s
}

func (s *touchSet) has(idx int) bool {
	if s == nil {
		return false
	}
	_, ok := s.recs[idx]
	return ok
}

// countBelow returns how many touched indexes are < x.
func (s *touchSet) countBelow(x int) int {
	if s == nil {
		return 0
	}
	return sort.SearchInts(s.idxs, x)
}

// countIn returns how many touched indexes are in [lo, hi).
func (s *touchSet) countIn(lo, hi int) int {
	if s == nil || hi <= lo {
		return 0
	}
	return s.countBelow(hi) - s.countBelow(lo)
}

// countValBelow returns how many touched rows sort before (w, idx).
func (s *touchSet) countValBelow(w int64, idx int) int {
	if s == nil {
		return 0
	}
	return sort.Search(len(s.byVal), func(i int) bool { return !s.byVal[i].less(w, idx) })
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// touchPicks returns count distinct row indexes of a table of n rows for the
// seq-th touch: an affine walk (a + j*s) mod n with s coprime to n, so the
// choice is deterministic, spread out and never repeats within one touch.
func touchPicks(seed uint64, seq int, n, count int) []int {
	if count > n {
		count = n
	}
	h := mix(seed ^ uint64(seq+1)*0xe7037ed1a0b428db)
	a := int(h % uint64(n))
	s := 1 + int(mix(h)%uint64(n))
	for gcd(s, n) != 1 {
		s++
	}
	out := make([]int, count)
	for j := range out {
		out[j] = int((int64(a) + int64(j)*int64(s)) % int64(n))
	}
	return out
}
