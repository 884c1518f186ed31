package graph

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// changedOrder is the reference (changedTimestamp ASC nulls first, key ASC).
func changedOrder(a, b refRow) int {
	return nullsFirst(a.vals["changedTimestamp"], b.vals["changedTimestamp"])
}

// incrementalEngine has enough rows for several rows in each repeated
// fall-back hour, and touched rows before, inside and after the natural range.
func incrementalEngine(t *testing.T) *Engine {
	t.Helper()
	e := New(Options{Rows: 60000, Companies: 1})
	for _, tc := range []struct {
		at    time.Time
		count int
	}{
		{time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC), 7},      // 02:30 CEST, before the fall-back
		{time.Date(2025, 10, 26, 1, 10, 0, 0, time.UTC), 5},      // 02:10 CET, after it
		{time.Date(2025, 5, 1, 10, 0, 0, 123e6, time.UTC), 300},  // inside the natural range: ties
		{time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), 40},      // after everything
		{time.Date(2024, 10, 1, 4, 59, 59, 999e6, time.UTC), 20}, // before everything
	} {
		n, err := e.Touch(firstCompanyID, "associate", tc.count, tc.at)
		require.NoError(t, err)
		require.Equal(t, tc.count, n)
	}
	return e
}

func TestIncrementalFastPathEqualsBruteForce(t *testing.T) {
	e := incrementalEngine(t)
	rows := refRows(e, 1001, "associate")
	tb := e.c.model.table("associate")
	touched := 0
	for _, r := range rows {
		if e.state.Load().comps[0].tabs[tidAssociate].touch.has(r.idx) {
			touched++
		}
	}
	require.Greater(t, touched, 300, "touches overlap a little at most")

	ts := e.state.Load().comps[0].tabs[tidAssociate]
	require.Len(t, ts.runs, 3, "two fall-backs in the generated range")

	for _, since := range []string{
		"", // first run: no filter
		"2024-09-01T00:00:00",
		"2025-05-01T12:00:00.123",
		"2025-10-26T02:00:00",
		"2025-10-26T02:20:00",
		"2025-12-31T16:00:00",
		"2026-11-20T09:00:00",
		"2026-12-01T00:00:00",
	} {
		t.Run(since, func(t *testing.T) {
			args := `orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]`
			keep := func(refRow) bool { return true }
			if since != "" {
				tk, _, err := parseDateTime(since, e.Options().Location)
				require.NoError(t, err)
				args = fmt.Sprintf(`filter: {changedTimestamp: {_gte: %q}}, `, since) + args
				keep = func(r refRow) bool { return !r.null("changedTimestamp") && r.i("changedTimestamp") >= tk }
			}
			want := keysOfRefs(tb, refSelect(rows, keep, changedOrder))
			got := pageAll(t, e, 1001, "associate", args, "associateNo", 1000, nil)
			require.Equal(t, want, got)
		})
	}
}

func TestChangedStreamPositions(t *testing.T) {
	e := incrementalEngine(t)
	rows := refRows(e, 1001, "associate")
	ref := refSelect(rows, nil, changedOrder)
	ts := e.state.Load().comps[0].tabs[tidAssociate]
	c := newChStream(ts)

	// One walk over the whole stream.
	it := c.iterFrom(c.at(0))
	for p := range ref {
		idx, ok := it.next()
		require.True(t, ok)
		require.Equal(t, ref[p].idx, idx, "position %d", p)
	}
	_, more := it.next()
	require.False(t, more)

	// Random access and rank at sampled positions, and around the touched
	// rows and the fall-back hours.
	check := func(p int) {
		el := c.at(p)
		require.Equal(t, ref[p].idx, el.idx, "at(%d)", p)
		require.Equal(t, p, c.rank(el), "rank(at(%d))", p)
		it := c.iterFrom(el)
		for k := p; k < min(p+3, len(ref)); k++ {
			idx, _ := it.next()
			require.Equal(t, ref[k].idx, idx, "iterFrom(at(%d)) step %d", p, k-p)
		}
	}
	for p := 0; p < len(ref); p += 97 {
		check(p)
	}
	for p := range ref {
		if ts.touch.has(ref[p].idx) || (p > 0 && ref[p].vals["changedTimestamp"].i == ref[p-1].vals["changedTimestamp"].i) {
			check(p)
		}
	}
	for _, r := range ts.runs {
		for _, i := range []int{r.lo, r.hi - 1} {
			for p := range ref {
				if ref[p].idx == i {
					check(p)
				}
			}
		}
	}
	check(len(ref) - 1)
}

func TestIncrementalPagingSkipAndLast(t *testing.T) {
	e := incrementalEngine(t)
	rows := refRows(e, 1001, "associate")
	tb := e.c.model.table("associate")
	tk, _, err := parseDateTime("2025-06-01T00:00:00", e.Options().Location)
	require.NoError(t, err)
	ref := keysOfRefs(tb, refSelect(rows, func(r refRow) bool { return !r.null("changedTimestamp") && r.i("changedTimestamp") >= tk }, changedOrder))
	base := `filter: {changedTimestamp: {_gte: "2025-06-01T00:00:00"}}, orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]`
	for _, c := range []struct {
		args     string
		from, to int
	}{
		{"skip: 1234, first: 50", 1234, 1284},
		{"last: 70", len(ref) - 70, len(ref)},
		{fmt.Sprintf("before: %q, last: 10", encodeCursor(500)), 490, 500},
		{fmt.Sprintf("after: %q, first: 10", encodeCursor(len(ref)-5)), len(ref) - 4, len(ref)},
	} {
		cn := fetch(t, e, 1001, "associate", c.args+", "+base, "associateNo", nil)
		require.Equal(t, len(ref), cn.TotalCount)
		require.Equal(t, ref[c.from:c.to], keysOfItems(tb, cn.Items), c.args)
	}
}

func TestIncrementalDescAndNullFilters(t *testing.T) {
	e := New(Options{Rows: 500})
	_, err := e.Touch(1001, "order", 30, time.Date(2025, 3, 3, 3, 3, 3, 0, time.UTC))
	require.NoError(t, err)
	rows := refRows(e, 1001, "order")
	tb := e.c.model.table("order")
	desc := func(a, b refRow) int {
		if c := changedOrder(b, a); c != 0 {
			return c
		}
		return b.idx - a.idx
	}
	for _, c := range []struct {
		name, args string
		keep       func(refRow) bool
		cmp        func(a, b refRow) int
	}{
		{"desc", `orderBy: [{changedTimestamp: DESC}, {orderNo: DESC}]`, nil, desc},
		{"null rows", `filter: {changedTimestamp: {_eq: null}}, orderBy: [{changedTimestamp: ASC}, {orderNo: ASC}]`,
			func(r refRow) bool { return r.null("changedTimestamp") }, changedOrder},
		{"non-null rows desc", `filter: {changedTimestamp: {_not_eq: null}}, orderBy: [{changedTimestamp: DESC}, {orderNo: DESC}]`,
			func(r refRow) bool { return !r.null("changedTimestamp") }, desc},
		{"lt", `filter: {changedTimestamp: {_lt: "2025-03-03T04:03:03"}}, orderBy: [{changedTimestamp: ASC}]`,
			func(r refRow) bool {
				return !r.null("changedTimestamp") && r.i("changedTimestamp") < mustTicks(t, "2025-03-03T04:03:03")
			}, changedOrder},
		{"between with key range", `filter: {changedTimestamp: {_between: ["2025-01-01T00:00:00", "2025-06-30T00:00:00"]}, orderNo: {_gt: 100}}, orderBy: [{changedTimestamp: ASC}]`,
			func(r refRow) bool {
				w := r.vals["changedTimestamp"]
				return !w.null && w.i >= mustTicks(t, "2025-01-01T00:00:00") && w.i <= mustTicks(t, "2025-06-30T00:00:00") && r.i("orderNo") > 100
			}, changedOrder},
		{"null and bounded", `filter: {changedTimestamp: {_eq: null, _gt: "2025-01-01T00:00:00"}}, orderBy: [{changedTimestamp: ASC}]`,
			func(r refRow) bool { return false }, changedOrder},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := keysOfRefs(tb, refSelect(rows, c.keep, c.cmp))
			require.Equal(t, want, pageAll(t, e, 1001, "order", c.args, "orderNo", 9, nil))
		})
	}
}

func mustTicks(t *testing.T, s string) int64 {
	t.Helper()
	tk, _, err := parseDateTime(s, osloLocation())
	require.NoError(t, err)
	return tk
}

func TestTouchMovesRows(t *testing.T) {
	e := New(Options{Rows: 100})
	incr := `orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]`
	before := fetch(t, e, 1001, "associate", "first: 100, "+incr, "associateNo changedTimestamp phone", nil)
	at := time.Date(2026, 11, 21, 23, 15, 30, 987654321, time.UTC)
	n, err := e.Touch(1001, "associate", 3, at)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	after := fetch(t, e, 1001, "associate", "first: 100, "+incr, "associateNo changedTimestamp phone", nil)
	require.Equal(t, 100, after.TotalCount)

	last := after.Items[97:]
	var moved []float64
	for _, it := range last {
		require.Equal(t, "2026-11-22T00:15:30.987", it["changedTimestamp"], "converted to Oslo time, truncated to ms")
		moved = append(moved, it["associateNo"].(float64))
	}
	require.IsIncreasing(t, moved, "ties broken by key")
	for _, it := range before.Items {
		if it["associateNo"] == moved[0] {
			require.NotEqual(t, "2026-11-22T00:15:30.987", it["changedTimestamp"])
		}
	}

	// The incremental query now returns exactly the touched rows.
	c := fetch(t, e, 1001, "associate", `filter: {changedTimestamp: {_gte: "2026-11-22T00:00:00"}}, `+incr, "associateNo", nil)
	require.Equal(t, 3, c.TotalCount)

	// Deterministic: another engine touched the same way picks the same rows.
	e2 := New(Options{Rows: 100})
	_, err = e2.Touch(1001, "Associate", 3, at)
	require.NoError(t, err)
	require.Equal(t, after, fetch(t, e2, 1001, "associate", "first: 100, "+incr, "associateNo changedTimestamp phone", nil))

	// Other company and other tables are untouched.
	require.Equal(t, 0, fetch(t, e, 1002, "associate", `filter: {changedTimestamp: {_gte: "2026-01-01T00:00:00"}}`, "associateNo", nil).TotalCount)
	require.Equal(t, 0, fetch(t, e, 1001, "order", `filter: {changedTimestamp: {_gte: "2026-01-01T00:00:00"}}`, "orderNo", nil).TotalCount)

	// Touching more rows than exist touches every row once.
	n, err = e.Touch(1001, "country", 1000, at)
	require.NoError(t, err)
	require.Equal(t, len(countries), n)
	require.Equal(t, len(countries), fetch(t, e, 1001, "country", `filter: {changedTimestamp: {_gte: "2026-01-01T00:00:00"}}`, "countryNo", nil).TotalCount)

	_, err = e.Touch(1001, "nope", 1, at)
	require.ErrorIs(t, err, ErrUnknownTable)
	_, err = e.Touch(999, "order", 1, at)
	require.ErrorIs(t, err, ErrUnknownCompany)
	_, err = e.Touch(1001, "order", -1, at)
	require.Error(t, err)
}

func TestTouchChangesEditableColumns(t *testing.T) {
	e := New(Options{Rows: 50})
	all := func() map[float64]map[string]any {
		c := fetch(t, e, 1001, "associate", "first: 50", "associateNo name customerNo phone emailAddress changedTimestamp", nil)
		out := map[float64]map[string]any{}
		for _, it := range c.Items {
			out[it["associateNo"].(float64)] = it
		}
		return out
	}
	before := all()
	_, err := e.Touch(1001, "associate", 10, time.Now())
	require.NoError(t, err)
	after := all()
	changedPhones := 0
	for k, b := range before {
		a := after[k]
		require.Equal(t, b["name"], a["name"], "identity columns stay")
		require.Equal(t, b["customerNo"], a["customerNo"])
		if a["changedTimestamp"] != b["changedTimestamp"] {
			if a["phone"] != b["phone"] {
				changedPhones++
			}
		} else {
			require.Equal(t, b, a, "untouched rows do not change")
		}
	}
	require.Greater(t, changedPhones, 5, "touched rows get new editable values")
}

func TestDaylightSavingFallBack(t *testing.T) {
	e := New(Options{Rows: 60000, Companies: 1})
	rows := refRows(e, 1001, "associate")
	// Generated rows: the wall clock repeats 02:00-03:00 on 2025-10-26, so a
	// later row (by index, by instant) can show an earlier time.
	lo, hi := mustTicks(t, "2025-10-26T02:00:00"), mustTicks(t, "2025-10-26T03:00:00")
	var inHour []refRow
	for _, r := range rows {
		if w := r.vals["changedTimestamp"]; !w.null && w.i >= lo && w.i < hi {
			inHour = append(inHour, r)
		}
	}
	require.GreaterOrEqual(t, len(inHour), 4)
	steppedBack := false
	for i := 1; i < len(inHour); i++ {
		if inHour[i].i("changedTimestamp") < inHour[i-1].i("changedTimestamp") {
			steppedBack = true
		}
	}
	require.True(t, steppedBack, "rows after the fall-back show earlier wall times")

	// Touches: 02:30 CEST happens before 02:10 CET, but sorts after it.
	_, err := e.Touch(1001, "order", 1, time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC))
	require.NoError(t, err)
	_, err = e.Touch(1001, "order", 1, time.Date(2025, 10, 26, 1, 10, 0, 0, time.UTC))
	require.NoError(t, err)
	c := fetch(t, e, 1001, "order", `filter: {changedTimestamp: {_between: ["2025-10-26T02:00:00", "2025-10-26T02:59:59.999"]}}, orderBy: [{changedTimestamp: ASC}, {orderNo: ASC}]`, "orderNo changedTimestamp", nil)
	var stamps []string
	for _, it := range c.Items {
		stamps = append(stamps, it["changedTimestamp"].(string))
	}
	require.Contains(t, stamps, "2025-10-26T02:10:00.000")
	require.Contains(t, stamps, "2025-10-26T02:30:00.000")
	require.IsNonDecreasing(t, stamps)

	// A filter with an offset names one instant of the repeated hour.
	c = fetch(t, e, 1001, "order", `filter: {changedTimestamp: {_eq: "2025-10-26T02:10:00+01:00"}}`, "changedTimestamp", nil)
	require.Equal(t, 1, c.TotalCount)
	c = fetch(t, e, 1001, "order", `filter: {changedTimestamp: {_eq: "2025-10-26T02:30:00+02:00"}}`, "changedTimestamp", nil)
	require.Equal(t, 1, c.TotalCount)

	// In UTC there is no fall-back: one run.
	u := New(Options{Rows: 60000, Companies: 1, Location: time.UTC})
	require.Len(t, u.state.Load().comps[0].tabs[tidAssociate].runs, 1)
}

func TestTimestampsShape(t *testing.T) {
	e := New(Options{Rows: 1000})
	rows := refRows(e, 1001, "orderLine")
	nulls := 0
	var prev int64
	for _, r := range rows {
		ch, cr := r.vals["changedTimestamp"], r.vals["createdTimestamp"]
		if ch.null {
			require.True(t, cr.null, "no createdTimestamp without changedTimestamp")
			require.Less(t, r.idx, 100)
			nulls++
			continue
		}
		require.Greater(t, ch.i, prev, "changedTimestamp grows with the index (no fall-back at this density)")
		prev = ch.i
		require.GreaterOrEqual(t, ch.i, mustTicks(t, "2024-10-01T07:00:00"))
		require.Less(t, ch.i, mustTicks(t, "2025-12-31T17:00:00"))
		if !cr.null {
			require.LessOrEqual(t, cr.i, ch.i)
			require.GreaterOrEqual(t, cr.i, mustTicks(t, "2024-10-01T07:00:00"))
		}
	}
	require.Equal(t, 100, nulls, "the first tenth has null timestamps")
}
