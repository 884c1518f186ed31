package jobs

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAnalyseQueryFindsThePagedConnection(t *testing.T) {
	tests := []struct {
		name  string
		query string
		opts  queryOptions
		want  PagedConnection
	}{
		{
			name: "the design's example",
			query: `query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Associate) {
  useCompany(no: $cid) {
    associate(first: $first, after: $after, filter: $filter,
              orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]) {
      pageInfo { hasNextPage endCursor }
      items { associateNo name customerNo supplierNo changedTimestamp }
    }
  }
}`,
			opts: queryOptions{Incremental: &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}, Lookback: time.Minute, ServerTimezone: time.UTC}},
			want: PagedConnection{
				Path: []string{"useCompany", "associate"}, Table: "associate",
				Fields:      []string{"associateNo", "name", "customerNo", "supplierNo", "changedTimestamp"},
				UsesCompany: true, HasFilterVar: true,
			},
		},
		{
			name: "aliases name the path and the fields; the table is the field name",
			query: `query($cid: Int!, $first: Int!, $after: String) {
  company: useCompany(no: $cid) {
    lines: orderLine(first: $first, after: $after) {
      pageInfo { endCursor hasNextPage }
      items { no: lineNo productNo product: joinup_Product { name } }
    }
  }
}`,
			want: PagedConnection{
				Path: []string{"company", "lines"}, Table: "orderLine",
				Fields: []string{"no", "productNo", "product"}, UsesCompany: true,
			},
		},
		{
			name: "fragments and inline fragments are expanded in query order; duplicates merge",
			query: `query($cid: Int, $first: Int, $after: String) {
  useCompany(no: $cid) {
    generalLedgerAccount(first: $first, after: $after) {
      ...Paging
      items { accountNo ...Names ... on GeneralLedgerAccount { accountNo taxCode } }
    }
  }
}
fragment Paging on Query_UseCompany_GeneralLedgerAccount_Connection { pageInfo { hasNextPage endCursor } }
fragment Names on GeneralLedgerAccount { name shortName }`,
			want: PagedConnection{
				Path: []string{"useCompany", "generalLedgerAccount"}, Table: "generalLedgerAccount",
				Fields: []string{"accountNo", "name", "shortName", "taxCode"}, UsesCompany: true,
			},
		},
		{
			name: "nested connections, at any depth, relative to one item",
			query: `query($cid: Int, $first: Int, $after: String) {
  useCompany(no: $cid) {
    order(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      items {
        orderNo
        joindown_OrderLine_via_Order(first: 100) {
          pageInfo { hasNextPage }
          items { lineNo joindown_Note(first: 5) { pageInfo { hasNextPage } items { text } } }
        }
        customer: joinup_Associate { joindown_Contact(first: 3) { pageInfo { hasNextPage } items { name } } }
      }
    }
  }
}`,
			want: PagedConnection{
				Path: []string{"useCompany", "order"}, Table: "order",
				Fields: []string{"orderNo", "joindown_OrderLine_via_Order", "customer"},
				Nested: [][]string{
					{"joindown_OrderLine_via_Order"},
					{"joindown_OrderLine_via_Order", "items", "joindown_Note"},
					{"customer", "joindown_Contact"},
				},
				UsesCompany: true,
			},
		},
		{
			name: "pagination.path picks one of several",
			query: `query($cid: Int, $first: Int, $after: String) {
  useCompany(no: $cid) {
    a: associate(first: $first, after: $after) { pageInfo { hasNextPage endCursor } items { associateNo } }
    b: associate(first: 1, after: $after2) { pageInfo { hasNextPage endCursor } items { associateNo } }
  }
}`,
			opts: queryOptions{PaginationPath: []string{"useCompany", "a"}},
			want: PagedConnection{Path: []string{"useCompany", "a"}, Table: "associate", Fields: []string{"associateNo"}, UsesCompany: true},
		},
		{
			name:  "a query without useCompany",
			query: `query($first: Int, $after: String) { things(first: $first, after: $after) { pageInfo { hasNextPage endCursor } items { id } } }`,
			want:  PagedConnection{Path: []string{"things"}, Table: "things", Fields: []string{"id"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := analyseQuery(tt.query, tt.opts)
			if tt.name == "pagination.path picks one of several" {
				// $after2 is undeclared and b's first is a literal: only
				// the undeclared variable is a problem, b is not paged.
				require.Len(t, a.Problems, 1)
				require.Equal(t, "$after2 is used but not declared", a.Problems[0].Message)
			} else {
				require.Empty(t, a.Problems)
			}
			require.Equal(t, tt.want, a.Paged)
		})
	}
}

func TestAnalyseQueryProblems(t *testing.T) {
	paged := func(args, items string) string {
		return `query($cid: Int, $first: Int, $after: String) { useCompany(no: $cid) { associate(` + args + `) { pageInfo { hasNextPage endCursor } items { ` + items + ` } } } }`
	}
	tests := []struct {
		name, query string
		opts        queryOptions
		want        string
	}{
		{"empty", "  \n", queryOptions{}, "empty query"},
		{"only a fragment", "fragment F on X { a }", queryOptions{}, "fragment F is never used"},
		{"subscription", "subscription { a }", queryOptions{}, "must be a query, not a subscription"},
		{"items aliased", `query($first: Int, $after: String) { t(first: $first, after: $after) { pageInfo { hasNextPage endCursor } rows: items { id } } }`, queryOptions{}, "items of t must not have an alias"},
		{"after used twice", paged("first: $first, after: $after", "associateNo joindown_X(first: 2, after: $after) { pageInfo { hasNextPage } items { a } }"), queryOptions{PaginationPath: []string{"useCompany", "associate"}}, "$after may only be used as after: on the paged connection"},
		{"first named otherwise", `query($cid: Int, $n: Int, $after: String) { useCompany(no: $cid) { associate(first: $n, after: $after) { pageInfo { hasNextPage endCursor } items { a } } } }`, queryOptions{}, "useCompany.associate must take first: $first, not first: $n"},
		{"cid declared, unused", `query($cid: Int, $first: Int, $after: String) { t(first: $first, after: $after) { pageInfo { hasNextPage endCursor } items { id } } }`, queryOptions{}, "$cid is declared but no useCompany(no: $cid) uses it"},
		{"orderBy is a variable", `query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Associate, $o: [OrderBy_Associate]) { useCompany(no: $cid) { associate(first: $first, after: $after, filter: $filter, orderBy: $o) { pageInfo { hasNextPage endCursor } items { associateNo changedTimestamp } } } }`,
			queryOptions{Incremental: &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}}},
			"orderBy of useCompany.associate must be a literal list of single-field entries, as in orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]"},
		{"orderBy entries with two fields", `query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Associate) { useCompany(no: $cid) { associate(first: $first, after: $after, filter: $filter, orderBy: {changedTimestamp: ASC, associateNo: ASC}) { pageInfo { hasNextPage endCursor } items { associateNo changedTimestamp } } } }`,
			queryOptions{Incremental: &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}}},
			"orderBy of useCompany.associate must be a literal list of single-field entries, as in orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]"},
		{"fragment cycle through another", `query($first: Int, $after: String) { t(first: $first, after: $after) { pageInfo { hasNextPage endCursor } items { ...A } } } fragment A on T { a { ...B } } fragment B on T { b { ...A } }`, queryOptions{}, "fragment cycle: B spreads A"},
		{"pagination.path to a field without after", paged("first: $first, after: $after", "a"), queryOptions{PaginationPath: []string{"useCompany", "associate", "items"}}, "useCompany.associate.items is not a paged connection (a field selecting pageInfo and items, with after: $after)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := analyseQuery(tt.query, tt.opts)
			var msgs []string
			for _, p := range a.Problems {
				msgs = append(msgs, p.Message)
			}
			require.Contains(t, msgs, tt.want, strings.Join(msgs, "\n"))
		})
	}
}

func TestAnalyseQueryFragmentFanOutIsBounded(t *testing.T) {
	// Each fragment spreads the next one eight times: 8^12 fields if
	// expanded naively.
	var b strings.Builder
	b.WriteString(`query($first: Int, $after: String) { t(first: $first, after: $after) { pageInfo { hasNextPage endCursor } items { ...F0 } } }`)
	for i := range 12 {
		b.WriteString(" fragment F" + strconv.Itoa(i) + " on T { x")
		for range 8 {
			b.WriteString(" ...F" + strconv.Itoa(i+1))
		}
		b.WriteString(" }")
	}
	b.WriteString(" fragment F12 on T { y }")
	start := time.Now()
	a := analyseQuery(b.String(), queryOptions{})
	require.Less(t, time.Since(start), 5*time.Second)
	require.NotEmpty(t, a.Problems)
	require.Contains(t, a.Problems[0].Message, "query too large")
}
