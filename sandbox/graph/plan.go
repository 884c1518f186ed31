package graph

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
)

// Page sizes: without first and last a connection returns DefaultPageSize
// rows; first and last above MaxPageSize are cut to it (hasNextPage tells).
const (
	DefaultPageSize = 1000
	MaxPageSize     = 10000
)

// sortKey is one column of an order.
type sortKey struct {
	col  *column
	desc bool
}

// connArgs are the compiled arguments of a table connection.
type connArgs struct {
	first, last, skip *int
	after, before     *int // 1-based positions decoded from cursors
	filter            *cond
	order             []sortKey // with the key appended: a total order
}

// encodeCursor returns the opaque cursor of the row at 0-based position pos.
func encodeCursor(pos int) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(pos + 1)))
}

func decodeCursor(s string) (int, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return 0, fmt.Errorf("invalid cursor %q", s)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("invalid cursor %q", s)
	}
	return n, nil
}

// compileOrder reads an orderBy value (a list of OrderBy_<Table> objects, or
// one object) and appends the key columns not yet in it, ascending.
func compileOrder(t *table, v any) ([]sortKey, error) {
	var list []any
	switch x := v.(type) {
	case nil:
	case []any:
		list = x
	default:
		list = []any{x}
	}
	var out []sortKey
	seen := map[*column]bool{}
	add := func(c *column, desc bool) {
		if !seen[c] {
			seen[c] = true
			out = append(out, sortKey{col: c, desc: desc})
		}
	}
	for _, el := range list {
		if el == nil {
			continue
		}
		obj, ok := el.(objVal)
		if !ok {
			return nil, fmt.Errorf("orderBy: expected an object")
		}
		for _, f := range obj {
			if f.val == nil {
				continue
			}
			c := t.col(f.name)
			if c == nil {
				return nil, fmt.Errorf("orderBy: %s has no field %q", t.name, f.name)
			}
			dir, _ := f.val.(string)
			switch dir {
			case "ASC":
				add(c, false)
			case "DESC":
				add(c, true)
			default:
				return nil, fmt.Errorf("orderBy %s: expected ASC or DESC", f.name)
			}
		}
	}
	for _, k := range t.keyCols {
		add(k, false)
	}
	return out, nil
}

// orderClass tells which fast path an order can use.
type orderClass uint8

const (
	orderScan    orderClass = iota // sort the matching rows
	orderKey                       // the key, all ASC or all DESC: index order
	orderChanged                   // changedTimestamp then the key, all ASC or all DESC
)

func classify(t *table, order []sortKey) (orderClass, bool) {
	keyFrom := func(i int, desc bool) bool {
		if len(order) < i+len(t.keyCols) {
			return false
		}
		for j, k := range t.keyCols {
			if order[i+j].col != k || order[i+j].desc != desc {
				return false
			}
		}
		return true
	}
	if len(order) > 0 {
		desc := order[0].desc
		if keyFrom(0, desc) {
			return orderKey, desc
		}
		if order[0].col == t.changed && keyFrom(1, desc) {
			return orderChanged, desc
		}
	}
	return orderScan, false
}

// resultSet is the filtered, ordered rows of a connection, by position.
type resultSet interface {
	size() int
	// each calls fn with the row index of every position in [start, end),
	// in order, until fn returns false.
	each(start, end int, fn func(idx int) bool)
}

// keySet is an index range in key order.
type keySet struct {
	r    idxRange
	desc bool
}

func (s keySet) size() int { return s.r.len() }

func (s keySet) each(start, end int, fn func(int) bool) {
	for p := start; p < end; p++ {
		idx := s.r.lo + p
		if s.desc {
			idx = s.r.hi - 1 - p
		}
		if !fn(idx) {
			return
		}
	}
}

// chSet is a position range of a chStream.
type chSet struct {
	c      *chStream
	lo, hi int
	desc   bool
}

func (s chSet) size() int { return s.hi - s.lo }

func (s chSet) each(start, end int, fn func(int) bool) {
	if start >= end {
		return
	}
	if s.desc {
		start, end = s.size()-end, s.size()-start
	}
	it := s.c.iterFrom(s.c.at(s.lo + start))
	if !s.desc {
		for p := start; p < end; p++ {
			idx, ok := it.next()
			if !ok || !fn(idx) {
				return
			}
		}
		return
	}
	buf := make([]int, 0, end-start)
	for p := start; p < end; p++ {
		idx, ok := it.next()
		if !ok {
			break
		}
		buf = append(buf, idx)
	}
	for i := len(buf) - 1; i >= 0; i-- {
		if !fn(buf[i]) {
			return
		}
	}
}

// listSet is a materialized list of row indexes.
type listSet []int32

func (s listSet) size() int { return len(s) }

func (s listSet) each(start, end int, fn func(int) bool) {
	for p := start; p < end; p++ {
		if !fn(int(s[p])) {
			return
		}
	}
}

// errCancelled is returned when the request's context ends during a scan.
var errCancelled = errors.New("the query was cancelled")

// resolver evaluates connections for one request.
type resolver struct {
	ctx context.Context
}

func (rv *resolver) checkCtx(i int) error {
	if i&4095 == 0 {
		if err := rv.ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return errQueryTimeout
			}
			return errCancelled
		}
	}
	return nil
}

var errQueryTimeout = errors.New("the query was stopped after the server's time limit")

// keyLowerBound returns the first index of ts whose first key column is >= v.
func keyLowerBound(cs *companyState, ts *tableState, v int64) int {
	k := ts.t.keyCols[0]
	return sort.Search(ts.n, func(i int) bool {
		r := cs.row(ts, i)
		return k.gen(&r).i >= v
	})
}

// keyRangeOf narrows dom with the range leaves on the first key column.
func keyRangeOf(cs *companyState, ts *tableState, conj []*cond, dom idxRange) (idxRange, []*cond) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	var rest []*cond
	for _, c := range conj {
		if c.kind == condLeaf && c.col == ts.t.keyCols[0] {
			if l, h, ok := rangeOf(c); ok {
				lo, hi = max(lo, l), min(hi, h)
				continue
			}
		}
		rest = append(rest, c)
	}
	if lo > hi {
		return idxRange{dom.lo, dom.lo}, rest
	}
	if lo != math.MinInt64 {
		dom.lo = max(dom.lo, keyLowerBound(cs, ts, lo))
	}
	if hi != math.MaxInt64 {
		dom.hi = min(dom.hi, keyLowerBound(cs, ts, hi+1))
	}
	if dom.hi < dom.lo {
		dom.hi = dom.lo
	}
	return dom, rest
}

// changedRangeOf turns the leaves on changedTimestamp into a position range
// of the stream; rest are the other conditions.
func changedRangeOf(c *chStream, t *table, conj []*cond) (lo, hi int, rest []*cond) {
	wlo, whi := int64(math.MinInt64), int64(math.MaxInt64)
	bounded, isNull, notNull := false, false, false
	for _, k := range conj {
		if k.kind == condLeaf && k.col == t.changed {
			switch k.op {
			case opIsNull:
				isNull = true
				continue
			case opIsNotNull:
				notNull = true
				continue
			}
			if l, h, ok := rangeOf(k); ok {
				wlo, whi = max(wlo, l), min(whi, h)
				bounded = true
				continue
			}
		}
		rest = append(rest, k)
	}
	n := c.ts.n
	switch {
	case isNull && (bounded || notNull):
		return 0, 0, rest
	case isNull:
		return 0, c.nullCount, rest
	case !bounded && !notNull:
		return 0, n, rest
	case wlo > whi:
		return 0, 0, rest
	}
	lo = c.nullCount
	if wlo != math.MinInt64 {
		lo = max(lo, c.rankFrom(wlo))
	}
	hi = c.rankAfter(whi)
	if hi < lo {
		hi = lo
	}
	return lo, hi, rest
}

// resolve returns the rows of a connection on table ts of company cs over the
// index domain dom (the whole table, or the rows of a joindown).
func (rv *resolver) resolve(cs *companyState, ts *tableState, dom idxRange, a *connArgs) (resultSet, error) {
	conj := conjuncts(a.filter)
	class, desc := classify(ts.t, a.order)
	whole := dom.lo == 0 && dom.hi == ts.n
	if class == orderChanged && whole {
		c := newChStream(ts)
		lo, hi, rest := changedRangeOf(c, ts.t, conj)
		set := chSet{c: c, lo: lo, hi: hi, desc: desc}
		if len(rest) == 0 {
			return set, nil
		}
		return rv.sieve(cs, ts, set, rest)
	}
	rng, rest := keyRangeOf(cs, ts, conj, dom)
	if class == orderKey {
		set := keySet{r: rng, desc: desc}
		if len(rest) == 0 {
			return set, nil
		}
		return rv.sieve(cs, ts, set, rest)
	}
	return rv.scan(cs, ts, rng, rest, a.order)
}

// sieve keeps the rows of an ordered set that match every condition.
func (rv *resolver) sieve(cs *companyState, ts *tableState, set resultSet, conds []*cond) (resultSet, error) {
	var out listSet
	var err error
	i := 0
	set.each(0, set.size(), func(idx int) bool {
		if err = rv.checkCtx(i); err != nil {
			return false
		}
		i++
		r := cs.row(ts, idx)
		for _, c := range conds {
			if !c.match(&r) {
				return true
			}
		}
		out = append(out, int32(idx))
		return true
	})
	return out, err
}

// scan filters the index range and sorts the matching rows by order.
func (rv *resolver) scan(cs *companyState, ts *tableState, rng idxRange, conds []*cond, order []sortKey) (resultSet, error) {
	var out listSet
	for i := rng.lo; i < rng.hi; i++ {
		if err := rv.checkCtx(i - rng.lo); err != nil {
			return nil, err
		}
		r := cs.row(ts, i)
		ok := true
		for _, c := range conds {
			if !c.match(&r) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, int32(i))
		}
	}
	nk := len(order)
	keys := make([]value, len(out)*nk)
	for j, idx := range out {
		if err := rv.checkCtx(j); err != nil {
			return nil, err
		}
		r := cs.row(ts, int(idx))
		for k, sk := range order {
			keys[j*nk+k] = sk.col.gen(&r)
		}
	}
	perm := make([]int32, len(out))
	for j := range perm {
		perm[j] = int32(j)
	}
	slices.SortFunc(perm, func(a, b int32) int {
		ka, kb := keys[int(a)*nk:int(a)*nk+nk], keys[int(b)*nk:int(b)*nk+nk]
		for k, sk := range order {
			c := compareValues(sk.col.typ, ka[k], kb[k])
			if c != 0 {
				if sk.desc {
					return -c
				}
				return c
			}
		}
		return int(out[a]) - int(out[b])
	})
	sorted := make(listSet, len(out))
	for j, p := range perm {
		sorted[j] = out[p]
	}
	return sorted, nil
}

// window is the page of a result set chosen by the paging arguments.
type window struct {
	start, end       int
	hasNext, hasPrev bool
}

// pageWindow applies after, before, skip, first and last (in that order) to
// a result of total rows.
func pageWindow(total int, a *connArgs) (window, error) {
	for _, arg := range []struct {
		name string
		p    *int
	}{{"first", a.first}, {"last", a.last}, {"skip", a.skip}} {
		if arg.p != nil && *arg.p < 0 {
			return window{}, fmt.Errorf("%s must not be negative, got %d", arg.name, *arg.p)
		}
	}
	start, end := 0, total
	if a.after != nil {
		start = min(*a.after, total)
	}
	if a.before != nil {
		end = max(min(end, *a.before-1), 0)
	}
	if end < start {
		end = start
	}
	if a.skip != nil {
		start = min(start+*a.skip, end)
	}
	switch {
	case a.first != nil:
		end = min(end, start+min(*a.first, MaxPageSize))
	case a.last == nil:
		end = min(end, start+DefaultPageSize)
	}
	if a.last != nil {
		start = max(start, end-min(*a.last, MaxPageSize))
	}
	return window{start: start, end: end, hasNext: end < total, hasPrev: start > 0}, nil
}
