package graph

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func seq(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

func TestPagingForward(t *testing.T) {
	e := New(Options{Rows: 23})
	tb := e.c.model.table("associate")
	var got []string
	after := ""
	for page := 0; ; page++ {
		args := "first: 5"
		if after != "" {
			args += fmt.Sprintf(", after: %q", after)
		}
		c := fetch(t, e, 1001, "associate", args, "associateNo", nil)
		require.Equal(t, 23, c.TotalCount)
		require.Equal(t, page > 0, c.PageInfo.HasPreviousPage)
		require.Equal(t, page < 4, c.PageInfo.HasNextPage, "page %d", page)
		if page < 4 {
			require.Len(t, c.Items, 5)
		} else {
			require.Len(t, c.Items, 3)
		}
		require.Equal(t, encodeCursor(page*5), *c.PageInfo.StartCursor)
		got = append(got, keysOfItems(tb, c.Items)...)
		if !c.PageInfo.HasNextPage {
			break
		}
		after = *c.PageInfo.EndCursor
	}
	require.Equal(t, seq(1, 23), got)
}

func TestPagingBackward(t *testing.T) {
	e := New(Options{Rows: 23})
	tb := e.c.model.table("associate")
	var pages [][]string
	before := ""
	for page := 0; ; page++ {
		args := "last: 5"
		if before != "" {
			args += fmt.Sprintf(", before: %q", before)
		}
		c := fetch(t, e, 1001, "associate", args, "associateNo", nil)
		require.Equal(t, 23, c.TotalCount)
		require.Equal(t, page > 0, c.PageInfo.HasNextPage, "page %d", page)
		pages = append(pages, keysOfItems(tb, c.Items))
		if !c.PageInfo.HasPreviousPage {
			break
		}
		before = *c.PageInfo.StartCursor
	}
	require.Len(t, pages, 5)
	require.Len(t, pages[4], 3)
	var got []string
	for i := len(pages) - 1; i >= 0; i-- {
		got = append(got, pages[i]...)
	}
	require.Equal(t, seq(1, 23), got)
}

func TestPagingWindows(t *testing.T) {
	e := New(Options{Rows: 23})
	tb := e.c.model.table("associate")
	keys := func(c conn) []string { return keysOfItems(tb, c.Items) }

	c := fetch(t, e, 1001, "associate", "skip: 7, first: 5", "associateNo", nil)
	require.Equal(t, seq(8, 12), keys(c))
	require.True(t, c.PageInfo.HasPreviousPage)
	require.True(t, c.PageInfo.HasNextPage)

	c = fetch(t, e, 1001, "associate", fmt.Sprintf("after: %q, skip: 2, first: 3", encodeCursor(4)), "associateNo", nil)
	require.Equal(t, seq(8, 10), keys(c), "skip counts from after")

	c = fetch(t, e, 1001, "associate", "skip: 30", "associateNo", nil)
	require.Empty(t, c.Items)
	require.False(t, c.PageInfo.HasNextPage)
	require.True(t, c.PageInfo.HasPreviousPage)
	require.Nil(t, c.PageInfo.StartCursor)
	require.Nil(t, c.PageInfo.EndCursor)
	require.Equal(t, 23, c.TotalCount)

	c = fetch(t, e, 1001, "associate", "first: 0", "associateNo", nil)
	require.Empty(t, c.Items)
	require.True(t, c.PageInfo.HasNextPage)

	c = fetch(t, e, 1001, "associate", fmt.Sprintf("after: %q, before: %q", encodeCursor(2), encodeCursor(9)), "associateNo", nil)
	require.Equal(t, seq(4, 9), keys(c), "between two cursors")

	c = fetch(t, e, 1001, "associate", fmt.Sprintf("first: 2, before: %q", encodeCursor(9)), "associateNo", nil)
	require.Equal(t, seq(1, 2), keys(c))

	c = fetch(t, e, 1001, "associate", "last: 4", "associateNo", nil)
	require.Equal(t, seq(20, 23), keys(c))
	require.False(t, c.PageInfo.HasNextPage)
	require.True(t, c.PageInfo.HasPreviousPage)

	c = fetch(t, e, 1001, "associate", "first: 10, last: 3", "associateNo", nil)
	require.Equal(t, seq(8, 10), keys(c), "last of the first")

	c = fetch(t, e, 1001, "associate", "skip: 21", "associateNo", nil)
	require.Equal(t, seq(22, 23), keys(c), "skip without first: default page")
}

func TestPagingDefaultsAndLimits(t *testing.T) {
	e := New(Options{Rows: MaxPageSize + 500})
	c := fetch(t, e, 1001, "associate", "", "associateNo", nil)
	require.Len(t, c.Items, DefaultPageSize)
	require.True(t, c.PageInfo.HasNextPage)
	c = fetch(t, e, 1001, "associate", fmt.Sprintf("first: %d", MaxPageSize+400), "associateNo", nil)
	require.Len(t, c.Items, MaxPageSize)
	require.True(t, c.PageInfo.HasNextPage)

	for _, args := range []string{"first: -1", "last: -2", "skip: -3", `after: "%%%"`, `before: "bm90IGEgbnVtYmVy"`, `after: "MA=="`} {
		r := query(t, e, tableQuery(1001, "associate", args, "associateNo"), nil)
		require.Len(t, r.Errors, 1, args)
		require.Equal(t, CodeBadInput, r.Errors[0].Extensions["code"], args)
	}
}

// TestPagingEveryPath pages 5 at a time through every kind of plan (key,
// incremental, sieve, scan; ascending and descending; forward and backward)
// and compares with a brute-force reference.
func TestPagingEveryPath(t *testing.T) {
	e := New(Options{Rows: 23})
	_, err := e.Touch(1001, "associate", 4, osloTime(t, "2026-01-10T10:00:00"))
	require.NoError(t, err)
	rows := refRows(e, 1001, "associate")
	tb := e.c.model.table("associate")
	ch := func(r refRow) value { return r.vals["changedTimestamp"] }
	cases := []struct {
		name, args string
		keep       func(refRow) bool
		cmp        func(a, b refRow) int
	}{
		{"key asc", "", nil, nil},
		{"key desc", "orderBy: {associateNo: DESC}", nil, func(a, b refRow) int { return b.idx - a.idx }},
		{"key with residual", `filter: {countryNo: {_eq: 47}}`, func(r refRow) bool { return r.i("countryNo") == 47 }, nil},
		{"key desc with range", `filter: {associateNo: {_gt: 5}}, orderBy: [{associateNo: DESC}]`, func(r refRow) bool { return r.idx >= 5 }, func(a, b refRow) int { return b.idx - a.idx }},
		{"incremental", `orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]`, nil, func(a, b refRow) int { return nullsFirst(ch(a), ch(b)) }},
		{"incremental desc", `orderBy: [{changedTimestamp: DESC}, {associateNo: DESC}]`, nil, func(a, b refRow) int {
			if c := nullsFirst(ch(b), ch(a)); c != 0 {
				return c
			}
			return b.idx - a.idx
		}},
		{"incremental with residual", `filter: {supplierNo: {_eq: 0}}, orderBy: [{changedTimestamp: ASC}]`, func(r refRow) bool { return r.i("supplierNo") == 0 },
			func(a, b refRow) int { return nullsFirst(ch(a), ch(b)) }},
		{"scan by name", `orderBy: [{name: ASC}]`, nil, func(a, b refRow) int { return collate(a.s("name"), b.s("name")) }},
		{"scan by two columns", `orderBy: [{countryNo: DESC}, {name: ASC}]`, nil, func(a, b refRow) int {
			if c := cmpInt(b.i("countryNo"), a.i("countryNo")); c != 0 {
				return c
			}
			return collate(a.s("name"), b.s("name"))
		}},
		{"scan one object, two fields", `orderBy: {countryNo: ASC, associateNo: DESC}`, nil, func(a, b refRow) int {
			if c := cmpInt(a.i("countryNo"), b.i("countryNo")); c != 0 {
				return c
			}
			return b.idx - a.idx
		}},
		{"changed desc, key asc: scan", `orderBy: [{changedTimestamp: DESC}]`, nil, func(a, b refRow) int { return nullsFirst(ch(b), ch(a)) }},
		{"nulls first", `orderBy: [{gln: ASC}]`, nil, func(a, b refRow) int { return nullsFirst(a.vals["gln"], b.vals["gln"]) }},
		{"nulls last in desc", `orderBy: [{gln: DESC}]`, nil, func(a, b refRow) int { return nullsFirst(b.vals["gln"], a.vals["gln"]) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := keysOfRefs(tb, refSelect(rows, c.keep, c.cmp))
			got := pageAll(t, e, 1001, "associate", c.args, "associateNo", 5, nil)
			require.Equal(t, want, got, "forward")

			// Backward from the end with last/before.
			var pages [][]string
			before := ""
			for {
				args := "last: 5"
				if before != "" {
					args += fmt.Sprintf(", before: %q", before)
				}
				if c.args != "" {
					args += ", " + c.args
				}
				cn := fetch(t, e, 1001, "associate", args, "associateNo", nil)
				require.Equal(t, len(want), cn.TotalCount)
				pages = append(pages, keysOfItems(tb, cn.Items))
				if !cn.PageInfo.HasPreviousPage {
					break
				}
				before = *cn.PageInfo.StartCursor
			}
			back := []string{}
			for i := len(pages) - 1; i >= 0; i-- {
				back = append(back, pages[i]...)
			}
			require.Equal(t, want, back, "backward")
		})
	}
}

func TestOrderByCompositeKey(t *testing.T) {
	e := New(Options{Rows: 40})
	tb := e.c.model.table("orderLine")
	rows := refRows(e, 1001, "orderLine")
	want := keysOfRefs(tb, refSelect(rows, nil, func(a, b refRow) int {
		if c := cmpInt(b.i("orderNo"), a.i("orderNo")); c != 0 {
			return c
		}
		return cmpInt(a.i("lineNo"), b.i("lineNo"))
	}))
	got := pageAll(t, e, 1001, "orderLine", "orderBy: [{orderNo: DESC}]", "orderNo lineNo", 6, nil)
	require.Equal(t, want, got)
	desc := pageAll(t, e, 1001, "orderLine", "orderBy: [{orderNo: DESC}, {lineNo: DESC}]", "orderNo lineNo", 6, nil)
	asc := pageAll(t, e, 1001, "orderLine", "", "orderNo lineNo", 6, nil)
	slices.Reverse(desc)
	require.Equal(t, asc, desc)
	require.True(t, slices.IsSortedFunc(rows, func(a, b refRow) int {
		return strings.Compare(fmt.Sprintf("%09d/%02d", a.i("orderNo"), a.i("lineNo")), fmt.Sprintf("%09d/%02d", b.i("orderNo"), b.i("lineNo")))
	}), "orderLine indexes follow the key")
}
