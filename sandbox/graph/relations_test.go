package graph

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJoinDownAndUp(t *testing.T) {
	e := New(Options{Rows: 300})
	lines := refRows(e, 1001, "orderLine")
	byOrder := map[int64][]refRow{}
	for _, l := range lines {
		byOrder[l.i("orderNo")] = append(byOrder[l.i("orderNo")], l)
	}
	c := fetch(t, e, 1001, "order", "first: 300", `orderNo customerNo
		joindown_OrderLine_via_Order { totalCount pageInfo { hasNextPage } items { orderNo lineNo amountInCurrency joinup_Order { orderNo } } }
		joinup_Associate_via_Customer { associateNo customerNo }`, nil)
	withLines := 0
	for _, o := range c.Items {
		no := int64(o["orderNo"].(float64))
		down := toConn(t, o["joindown_OrderLine_via_Order"])
		want := byOrder[no]
		require.Equal(t, len(want), down.TotalCount, "order %d", no)
		require.False(t, down.PageInfo.HasNextPage)
		for i, l := range down.Items {
			require.Equal(t, float64(no), l["orderNo"])
			require.Equal(t, float64(i+1), l["lineNo"], "lines numbered from 1")
			require.Equal(t, float64(no), dig(t, l, "joinup_Order", "orderNo"))
		}
		if len(want) > 0 {
			withLines++
			require.LessOrEqual(t, len(want), 5)
		}
		cust := o["joinup_Associate_via_Customer"].(map[string]any)
		require.Equal(t, o["customerNo"], cust["customerNo"])
		require.Equal(t, o["customerNo"].(float64)-customerBase, cust["associateNo"])
	}
	require.Equal(t, len(byOrder), withLines, "the lines cover the first orders")
	require.InDelta(t, 100, withLines, 3, "3 lines per order on average")

	// Associate -> Country.
	a := fetch(t, e, 1001, "associate", "first: 50", "countryNo joinup_Country { countryNo name isoCode }", nil)
	for _, it := range a.Items {
		require.Equal(t, it["countryNo"], dig(t, it, "joinup_Country", "countryNo"))
		require.NotEmpty(t, dig(t, it, "joinup_Country", "name"))
	}
}

func TestJoinDownArguments(t *testing.T) {
	e := New(Options{Rows: 300})
	// Find an order with 5 lines.
	lines := refRows(e, 1001, "orderLine")
	count := map[int64]int{}
	for _, l := range lines {
		count[l.i("orderNo")]++
	}
	var no int64
	for o, n := range count {
		if n == 5 && (no == 0 || o < no) {
			no = o
		}
	}
	require.NotZero(t, no)
	q := fmt.Sprintf(`{ useCompany(no: 1001) { order(filter: {orderNo: {_eq: %d}}) { items {
		page1: joindown_OrderLine_via_Order(first: 2) { totalCount pageInfo { hasNextPage endCursor } items { lineNo } }
		page2: joindown_OrderLine_via_Order(first: 2, after: "Mg==") { pageInfo { hasNextPage hasPreviousPage } items { lineNo } }
		desc: joindown_OrderLine_via_Order(orderBy: [{lineNo: DESC}], last: 2) { items { lineNo } }
		big: joindown_OrderLine_via_Order(filter: {lineNo: {_gte: 4}}) { totalCount items { lineNo } }
		byChanged: joindown_OrderLine_via_Order(orderBy: [{changedTimestamp: DESC}, {lineNo: DESC}]) { items { lineNo } }
	} } } }`, no)
	d := ok(t, e, q, nil)
	o := objs(t, dig(t, d, "useCompany", "order", "items"))[0]
	p1 := toConn(t, o["page1"])
	require.Equal(t, 5, p1.TotalCount)
	require.True(t, p1.PageInfo.HasNextPage)
	require.Equal(t, "Mg==", *p1.PageInfo.EndCursor)
	p2 := toConn(t, o["page2"])
	require.Equal(t, []any{3.0, 4.0}, []any{p2.Items[0]["lineNo"], p2.Items[1]["lineNo"]})
	require.True(t, p2.PageInfo.HasNextPage)
	require.True(t, p2.PageInfo.HasPreviousPage)
	desc := toConn(t, o["desc"])
	require.Equal(t, []any{2.0, 1.0}, []any{desc.Items[0]["lineNo"], desc.Items[1]["lineNo"]})
	big := toConn(t, o["big"])
	require.Equal(t, 2, big.TotalCount)
	by := toConn(t, o["byChanged"])
	require.Len(t, by.Items, 5)
	require.Equal(t, 5.0, by.Items[0]["lineNo"], "later lines changed later")
}

func TestNestedErrorReportedOnce(t *testing.T) {
	e := New(Options{Rows: 30})
	r := query(t, e, `{ useCompany(no: 1001) { order(first: 5) { items { orderNo joindown_OrderLine_via_Order(first: -1) { totalCount } } } } }`, nil)
	require.Len(t, r.Errors, 1)
	require.Equal(t, []any{"useCompany", "order", "items", 0.0, "joindown_OrderLine_via_Order"}, r.Errors[0].Path)
	for _, it := range objs(t, dig(t, r.Data, "useCompany", "order", "items")) {
		require.Nil(t, it["joindown_OrderLine_via_Order"])
		require.NotNil(t, it["orderNo"])
	}
}
