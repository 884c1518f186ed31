package graph

import (
	"math"
	"slices"
	"sort"
)

// elem is a position in changedTimestamp order: (changedTimestamp with nulls
// first, then key; the key order is the index order).
type elem struct {
	null bool
	wall int64
	idx  int
}

// chStream is a table in (changedTimestamp ASC, key ASC) order without
// scanning it: the natural rows with a null timestamp (the first n0 indexes)
// come first, then a merge of the runs (index ranges whose wall clock grows
// with the index) and the touched rows (sorted by their new timestamp).
// Touched rows leave their natural place.
type chStream struct {
	ts        *tableState
	tc        *touchSet
	nullCount int // natural rows with a null timestamp, minus touched ones
}

func newChStream(ts *tableState) *chStream {
	return &chStream{ts: ts, tc: ts.touch, nullCount: ts.n0 - ts.touch.countBelow(ts.n0)}
}

// runLower returns the first index of run r whose (wall, idx) >= (w, idx).
func (c *chStream) runLower(r idxRange, w int64, idx int) int {
	return r.lo + sort.Search(r.len(), func(j int) bool {
		i := r.lo + j
		wi := c.ts.wall(i)
		return wi > w || (wi == w && i >= idx)
	})
}

// rank returns how many rows sort before e.
func (c *chStream) rank(e elem) int {
	if e.null {
		x := min(max(e.idx, 0), c.ts.n0)
		return x - c.tc.countBelow(x)
	}
	k := c.nullCount
	for _, r := range c.ts.runs {
		p := c.runLower(r, e.wall, e.idx)
		k += p - r.lo - c.tc.countIn(r.lo, p)
	}
	return k + c.tc.countValBelow(e.wall, e.idx)
}

// rankFrom returns the position of the first row whose changedTimestamp is
// >= w (nulls excluded).
func (c *chStream) rankFrom(w int64) int { return c.rank(elem{wall: w, idx: math.MinInt}) }

// rankAfter returns the position after the last row whose changedTimestamp
// is <= w.
func (c *chStream) rankAfter(w int64) int {
	if w == math.MaxInt64 {
		return c.ts.n
	}
	return c.rank(elem{wall: w + 1, idx: math.MinInt})
}

// at returns the row at position pos (0 <= pos < n).
func (c *chStream) at(pos int) elem {
	if pos < c.nullCount {
		i := pos
		if c.tc != nil {
			for _, t := range c.tc.idxs {
				if t > i {
					break
				}
				i++
			}
		}
		return elem{null: true, idx: i}
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, r := range c.ts.runs {
		lo = min(lo, c.ts.wall(r.lo))
		hi = max(hi, c.ts.wall(r.hi-1))
	}
	if c.tc != nil {
		lo = min(lo, c.tc.byVal[0].wall)
		hi = max(hi, c.tc.byVal[len(c.tc.byVal)-1].wall)
	}
	// The smallest w with more than pos rows at or below it.
	for lo < hi {
		mid := lo + (hi-lo)/2
		if c.rankAfter(mid) > pos {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	w := lo
	first := c.rankFrom(w)
	var ties []int
	for _, r := range c.ts.runs {
		for p := c.runLower(r, w, math.MinInt); p < r.hi && c.ts.wall(p) == w; p++ {
			if !c.tc.has(p) {
				ties = append(ties, p)
			}
		}
	}
	if c.tc != nil {
		for j := c.tc.countValBelow(w, math.MinInt); j < len(c.tc.byVal) && c.tc.byVal[j].wall == w; j++ {
			ties = append(ties, c.tc.byVal[j].idx)
		}
	}
	slices.Sort(ties)
	return elem{wall: w, idx: ties[pos-first]}
}

type chHead struct {
	i, hi int
	wall  int64
}

// chIter walks the stream in order from a row.
type chIter struct {
	c        *chStream
	nullNext int
	heads    []chHead
	tv       int // next touched row in byVal
}

// iterFrom returns an iterator whose first row is e.
func (c *chStream) iterFrom(e elem) *chIter {
	it := &chIter{c: c, nullNext: c.ts.n0}
	if e.null {
		it.nullNext = e.idx
		e = elem{wall: math.MinInt64, idx: math.MinInt}
	}
	for _, r := range c.ts.runs {
		h := chHead{i: c.runLower(r, e.wall, e.idx), hi: r.hi}
		it.settle(&h)
		it.heads = append(it.heads, h)
	}
	it.tv = c.tc.countValBelow(e.wall, e.idx)
	return it
}

// settle moves h past touched rows and loads its timestamp.
func (it *chIter) settle(h *chHead) {
	for h.i < h.hi && it.c.tc.has(h.i) {
		h.i++
	}
	if h.i < h.hi {
		h.wall = it.c.ts.wall(h.i)
	}
}

// next returns the next row index; ok is false at the end.
func (it *chIter) next() (idx int, ok bool) {
	for it.nullNext < it.c.ts.n0 {
		i := it.nullNext
		it.nullNext++
		if !it.c.tc.has(i) {
			return i, true
		}
	}
	best := -1
	var bw int64
	var bi int
	for h := range it.heads {
		hd := &it.heads[h]
		if hd.i < hd.hi && (best < 0 || hd.wall < bw || (hd.wall == bw && hd.i < bi)) {
			best, bw, bi = h, hd.wall, hd.i
		}
	}
	if tc := it.c.tc; tc != nil && it.tv < len(tc.byVal) {
		t := tc.byVal[it.tv]
		if best < 0 || t.less(bw, bi) {
			it.tv++
			return t.idx, true
		}
	}
	if best < 0 {
		return 0, false
	}
	hd := &it.heads[best]
	hd.i++
	it.settle(hd)
	return bi, true
}
