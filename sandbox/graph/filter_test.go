package graph

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFilterOperators(t *testing.T) {
	e := New(Options{Rows: 200})
	assoc := refRows(e, 1001, "associate")
	orders := refRows(e, 1001, "order")
	lines := refRows(e, 1001, "orderLine")
	gls := refRows(e, 1001, "generalLedgerAccount")

	mid := assoc[100].vals["changedTimestamp"].i
	late := assoc[150].vals["changedTimestamp"].i
	midS, lateS := formatDateTime(mid), formatDateTime(late)
	name := assoc[42].s("name")
	var aGLN int64
	for _, r := range assoc {
		if !r.null("gln") {
			aGLN = r.i("gln")
			break
		}
	}

	type tc struct {
		name   string
		table  string
		filter string
		keep   func(refRow) bool
	}
	cases := []tc{
		// Int
		{"int _eq", "associate", `{associateNo: {_eq: 7}}`, func(r refRow) bool { return r.i("associateNo") == 7 }},
		{"int _not_eq", "associate", `{countryNo: {_not_eq: 47}}`, func(r refRow) bool { return r.i("countryNo") != 47 }},
		{"int _gt", "associate", `{customerNo: {_gt: 10150}}`, func(r refRow) bool { return r.i("customerNo") > 10150 }},
		{"int _gte", "associate", `{associateNo: {_gte: 190}}`, func(r refRow) bool { return r.i("associateNo") >= 190 }},
		{"int _lt", "associate", `{associateNo: {_lt: 5}}`, func(r refRow) bool { return r.i("associateNo") < 5 }},
		{"int _lte", "associate", `{supplierNo: {_lte: 50020}}`, func(r refRow) bool { return r.i("supplierNo") <= 50020 }},
		{"int _in", "associate", `{countryNo: {_in: [45, 46]}}`, func(r refRow) bool { c := r.i("countryNo"); return c == 45 || c == 46 }},
		{"int _not_in", "associate", `{countryNo: {_not_in: [47, 46]}}`, func(r refRow) bool { c := r.i("countryNo"); return c != 47 && c != 46 }},
		{"int _between", "associate", `{associateNo: {_between: [20, 30]}}`, func(r refRow) bool { n := r.i("associateNo"); return n >= 20 && n <= 30 }},
		{"int _not_between", "associate", `{associateNo: {_not_between: [3, 198]}}`, func(r refRow) bool { n := r.i("associateNo"); return n < 3 || n > 198 }},
		{"int two ops", "associate", `{associateNo: {_gte: 10, _lt: 20}}`, func(r refRow) bool { n := r.i("associateNo"); return n >= 10 && n < 20 }},
		{"int empty range", "associate", `{associateNo: {_gt: 20, _lt: 10}}`, func(r refRow) bool { return false }},
		{"composite key prefix", "orderLine", `{orderNo: {_between: [5, 9]}}`, func(r refRow) bool { n := r.i("orderNo"); return n >= 5 && n <= 9 }},
		{"composite key second column", "orderLine", `{lineNo: {_gte: 4}}`, func(r refRow) bool { return r.i("lineNo") >= 4 }},
		// String (case-insensitive, like the server's collation)
		{"string _eq", "associate", fmt.Sprintf(`{name: {_eq: %q}}`, strings.ToLower(name)), func(r refRow) bool { return strings.EqualFold(r.s("name"), name) }},
		{"string _not_eq", "associate", fmt.Sprintf(`{name: {_not_eq: %q}}`, name), func(r refRow) bool { return !strings.EqualFold(r.s("name"), name) }},
		{"string _gt", "associate", `{name: {_gt: "n"}}`, func(r refRow) bool { return collate(r.s("name"), "n") > 0 }},
		{"string _gte", "associate", `{shortName: {_gte: "TROLL"}}`, func(r refRow) bool { return collate(r.s("shortName"), "TROLL") >= 0 }},
		{"string _lt", "associate", `{name: {_lt: "B"}}`, func(r refRow) bool { return collate(r.s("name"), "B") < 0 }},
		{"string _lte", "associate", `{name: {_lte: "Bergen Z"}}`, func(r refRow) bool { return collate(r.s("name"), "Bergen Z") <= 0 }},
		{"string _in", "orderLine", `{unit: {_in: ["KG", "l"]}}`, func(r refRow) bool { u := r.s("unit"); return u == "kg" || u == "l" }},
		{"string _not_in", "orderLine", `{unit: {_not_in: ["stk"]}}`, func(r refRow) bool { return r.s("unit") != "stk" }},
		{"string _between", "associate", `{name: {_between: ["F", "G"]}}`, func(r refRow) bool {
			return collate(r.s("name"), "F") >= 0 && collate(r.s("name"), "G") <= 0
		}},
		{"string _not_between", "associate", `{name: {_not_between: ["B", "T"]}}`, func(r refRow) bool {
			return collate(r.s("name"), "B") < 0 || collate(r.s("name"), "T") > 0
		}},
		{"string collation æøå after z", "associate", `{name: {_gt: "Z"}}`, func(r refRow) bool {
			return strings.HasPrefix(r.s("name"), "Ø") || strings.HasPrefix(r.s("name"), "Å")
		}},
		{"_like prefix", "associate", `{name: {_like: "fjord%"}}`, func(r refRow) bool { return strings.HasPrefix(r.s("name"), "Fjord") }},
		{"_like suffix", "associate", `{name: {_like: "% as"}}`, func(r refRow) bool { return strings.HasSuffix(r.s("name"), " AS") }},
		{"_like contains", "associate", `{name: {_like: "%DATA%"}}`, func(r refRow) bool { return strings.Contains(r.s("name"), "Data") }},
		{"_like underscore", "associate", `{shortName: {_like: "_o%1"}}`, func(r refRow) bool {
			s := r.s("shortName")
			return len(s) >= 3 && s[1] == 'O' && s[len(s)-1] == '1'
		}},
		{"_like non-ascii", "associate", `{name: {_like: "tromsø%"}}`, func(r refRow) bool { return strings.HasPrefix(r.s("name"), "Tromsø") }},
		{"_not_like", "associate", `{emailAddress: {_not_like: "post@%"}}`, func(r refRow) bool { return !strings.HasPrefix(r.s("emailAddress"), "post@") }},
		// DateTime
		{"datetime _eq", "associate", fmt.Sprintf(`{changedTimestamp: {_eq: %q}}`, midS), func(r refRow) bool { return !r.null("changedTimestamp") && r.i("changedTimestamp") == mid }},
		{"datetime _not_eq", "associate", fmt.Sprintf(`{changedTimestamp: {_not_eq: %q}}`, midS), func(r refRow) bool { return !r.null("changedTimestamp") && r.i("changedTimestamp") != mid }},
		{"datetime _gt", "associate", fmt.Sprintf(`{changedTimestamp: {_gt: %q}}`, midS), func(r refRow) bool { return !r.null("changedTimestamp") && r.i("changedTimestamp") > mid }},
		{"datetime _gte", "associate", fmt.Sprintf(`{changedTimestamp: {_gte: %q}}`, midS), func(r refRow) bool { return !r.null("changedTimestamp") && r.i("changedTimestamp") >= mid }},
		{"datetime _lt", "associate", fmt.Sprintf(`{changedTimestamp: {_lt: %q}}`, midS), func(r refRow) bool { return !r.null("changedTimestamp") && r.i("changedTimestamp") < mid }},
		{"datetime _lte", "associate", fmt.Sprintf(`{createdTimestamp: {_lte: %q}}`, midS), func(r refRow) bool { return !r.null("createdTimestamp") && r.i("createdTimestamp") <= mid }},
		{"datetime _in", "associate", fmt.Sprintf(`{changedTimestamp: {_in: [%q, %q]}}`, midS, lateS), func(r refRow) bool {
			return !r.null("changedTimestamp") && (r.i("changedTimestamp") == mid || r.i("changedTimestamp") == late)
		}},
		{"datetime _not_in", "associate", fmt.Sprintf(`{changedTimestamp: {_not_in: [%q]}}`, midS), func(r refRow) bool { return !r.null("changedTimestamp") && r.i("changedTimestamp") != mid }},
		{"datetime _between", "associate", fmt.Sprintf(`{changedTimestamp: {_between: [%q, %q]}}`, midS, lateS), func(r refRow) bool {
			return !r.null("changedTimestamp") && r.i("changedTimestamp") >= mid && r.i("changedTimestamp") <= late
		}},
		{"datetime _not_between", "associate", fmt.Sprintf(`{changedTimestamp: {_not_between: [%q, %q]}}`, midS, lateS), func(r refRow) bool {
			return !r.null("changedTimestamp") && (r.i("changedTimestamp") < mid || r.i("changedTimestamp") > late)
		}},
		{"datetime finer than the row", "associate", fmt.Sprintf(`{changedTimestamp: {_gt: "%s0001"}}`, midS), func(r refRow) bool {
			return !r.null("changedTimestamp") && r.i("changedTimestamp") > mid
		}},
		{"datetime without fraction", "associate", fmt.Sprintf(`{changedTimestamp: {_gte: %q}}`, midS[:19]), func(r refRow) bool {
			return !r.null("changedTimestamp") && r.i("changedTimestamp") >= mid/ticksPerSecond*ticksPerSecond
		}},
		// Null handling
		{"_eq null", "associate", `{changedTimestamp: {_eq: null}}`, func(r refRow) bool { return r.null("changedTimestamp") }},
		{"_not_eq null", "associate", `{changedTimestamp: {_not_eq: null}}`, func(r refRow) bool { return !r.null("changedTimestamp") }},
		{"long _not_eq skips nulls", "associate", fmt.Sprintf(`{gln: {_not_eq: %d}}`, aGLN), func(r refRow) bool { return !r.null("gln") && r.i("gln") != aGLN }},
		{"long _in with null", "associate", fmt.Sprintf(`{gln: {_in: [null, %d]}}`, aGLN), func(r refRow) bool { return r.null("gln") || r.i("gln") == aGLN }},
		{"long _not_in with null", "associate", fmt.Sprintf(`{gln: {_not_in: [null, %d]}}`, aGLN), func(r refRow) bool { return !r.null("gln") && r.i("gln") != aGLN }},
		{"long as string", "associate", fmt.Sprintf(`{gln: {_eq: "%d"}}`, aGLN), func(r refRow) bool { return !r.null("gln") && r.i("gln") == aGLN }},
		// Decimal, Boolean
		{"decimal _gt", "order", `{totalAmount: {_gt: 100000.5}}`, func(r refRow) bool { return r.i("totalAmount") > 10000050 }},
		{"decimal _between", "order", `{totalAmount: {_between: [1000, 50000.255]}}`, func(r refRow) bool {
			return r.i("totalAmount") >= 100000 && r.i("totalAmount") <= 5000025
		}},
		{"decimal _eq inexact", "order", `{totalAmount: {_eq: 1000.001}}`, func(r refRow) bool { return false }},
		{"boolean _eq", "generalLedgerAccount", `{blocked: {_eq: true}}`, func(r refRow) bool { return r.i("blocked") == 1 }},
		{"boolean _not_eq", "order", `{invoiced: {_not_eq: true}}`, func(r refRow) bool { return r.i("invoiced") == 0 }},
		// Combinations
		{"fields of one object are ANDed", "associate", `{countryNo: {_eq: 47}, supplierNo: {_gt: 0}}`, func(r refRow) bool {
			return r.i("countryNo") == 47 && r.i("supplierNo") > 0
		}},
		{"_and", "associate", `{_and: [{associateNo: {_gt: 50}}, {associateNo: {_lte: 60}}, {countryNo: {_eq: 47}}]}`, func(r refRow) bool {
			return r.i("associateNo") > 50 && r.i("associateNo") <= 60 && r.i("countryNo") == 47
		}},
		{"_or", "associate", `{_or: [{associateNo: {_lt: 3}}, {associateNo: {_gt: 197}}, {countryNo: {_eq: 45}}]}`, func(r refRow) bool {
			return r.i("associateNo") < 3 || r.i("associateNo") > 197 || r.i("countryNo") == 45
		}},
		{"_or of _and", "associate", `{_or: [{countryNo: {_eq: 46}}, {_and: [{countryNo: {_eq: 47}}, {customerNo: {_gt: 10100}}]}]}`, func(r refRow) bool {
			return r.i("countryNo") == 46 || (r.i("countryNo") == 47 && r.i("customerNo") > 10100)
		}},
		{"_and with _or and a field", "associate", `{associateNo: {_lte: 100}, _or: [{name: {_like: "%AS"}}, {name: {_like: "%DA"}}]}`, func(r refRow) bool {
			return r.i("associateNo") <= 100 && (strings.HasSuffix(r.s("name"), "AS") || strings.HasSuffix(r.s("name"), "DA"))
		}},
		{"empty filter", "associate", `{}`, func(r refRow) bool { return true }},
		{"empty _or adds nothing", "associate", `{_or: [], associateNo: {_lt: 4}}`, func(r refRow) bool { return r.i("associateNo") < 4 }},
		{"filter with changed order hint on key", "generalLedgerAccount", `{accountNo: {_gte: 1500}, taxCode: {_eq: 3}}`, func(r refRow) bool {
			return r.i("accountNo") >= 1500 && r.i("taxCode") == 3
		}},
	}
	byTable := map[string][]refRow{"associate": assoc, "order": orders, "orderLine": lines, "generalLedgerAccount": gls}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := e.c.model.table(c.table)
			want := keysOfRefs(tb, refSelect(byTable[c.table], c.keep, nil))
			keyFields := strings.Join(tb.key, " ")
			got := pageAll(t, e, 1001, c.table, "filter: "+c.filter, keyFields, 7, nil)
			require.Equal(t, want, got)
			if c.name != "int empty range" && c.name != "decimal _eq inexact" {
				require.NotEmpty(t, want, "the case selects no rows")
			}
		})
	}
}

func TestFilterMatchesSomething(t *testing.T) {
	// Guards the operator test against vacuous cases: the chosen values do
	// select part of the table.
	e := New(Options{Rows: 200})
	for _, f := range []string{
		`{countryNo: {_in: [45, 46]}}`, `{name: {_like: "fjord%"}}`, `{name: {_gt: "Z"}}`,
		`{changedTimestamp: {_eq: null}}`, `{gln: {_in: [null]}}`, `{unit: {_in: ["KG", "l"]}}`,
	} {
		table := "associate"
		if strings.Contains(f, "unit") {
			table = "orderLine"
		}
		c := fetch(t, e, 1001, table, "filter: "+f, "__typename", nil)
		require.Greater(t, c.TotalCount, 0, f)
		require.Less(t, c.TotalCount, 200, f)
	}
}

func TestFilterInVariables(t *testing.T) {
	e := New(Options{Rows: 120})
	q := `query($f: FilterExpression_Associate, $o: [OrderBy_Associate]) { useCompany(no: 1001) {
		associate(first: 500, filter: $f, orderBy: $o) { totalCount items { associateNo } } } }`
	lit := `{ useCompany(no: 1001) { associate(first: 500, filter: {_or: [{countryNo: {_eq: 46}}, {associateNo: {_between: [10, 20]}}],
		changedTimestamp: {_gte: "2024-11-01T00:00:00"}}, orderBy: [{countryNo: DESC}, {associateNo: ASC}]) { totalCount items { associateNo } } } }`
	vars := map[string]any{
		"f": map[string]any{
			"_or":              []any{map[string]any{"countryNo": map[string]any{"_eq": 46.0}}, map[string]any{"associateNo": map[string]any{"_between": []any{10.0, 20.0}}}},
			"changedTimestamp": map[string]any{"_gte": "2024-11-01T00:00:00"},
		},
		"o": []any{map[string]any{"countryNo": "DESC"}, map[string]any{"associateNo": "ASC"}},
	}
	a := dig(t, ok(t, e, q, vars), "useCompany", "associate")
	b := dig(t, ok(t, e, lit, nil), "useCompany", "associate")
	require.Equal(t, b, a)
	require.NotZero(t, toConn(t, a).TotalCount)
}

func TestFilterDateTimeZones(t *testing.T) {
	e := New(Options{Rows: 300})
	// 12:00Z is 13:00 in Oslo in March (CET) and 14:00 in July (CEST).
	for _, pair := range [][2]string{
		{"2025-03-01T12:00:00Z", "2025-03-01T13:00:00"},
		{"2025-07-01T12:00:00+00:00", "2025-07-01T14:00:00.000"},
		{"2025-07-01T14:00:00+0200", "2025-07-01 14:00:00"},
	} {
		a := fetch(t, e, 1001, "associate", fmt.Sprintf(`filter: {changedTimestamp: {_gte: %q}}`, pair[0]), "associateNo", nil)
		b := fetch(t, e, 1001, "associate", fmt.Sprintf(`filter: {changedTimestamp: {_gte: %q}}`, pair[1]), "associateNo", nil)
		require.Equal(t, b.TotalCount, a.TotalCount, pair[0])
		require.Equal(t, b.Items, a.Items, pair[0])
		require.NotZero(t, a.TotalCount)
	}
}

func TestFilterErrors(t *testing.T) {
	e := New(Options{Rows: 10})
	for _, c := range []struct{ filter, msg string }{
		{`{associateNo: {_between: [1]}}`, "two values"},
		{`{associateNo: {_gt: null}}`, "null is only allowed"},
		{`{changedTimestamp: {_gte: "yesterday"}}`, "invalid DateTime"},
		{`{changedTimestamp: {_gte: 5}}`, "DateTime"},
		{`{gln: {_eq: "12a"}}`, "expected a Long"},
	} {
		r := query(t, e, tableQuery(1001, "associate", "filter: "+c.filter, "associateNo"), nil)
		require.Len(t, r.Errors, 1, c.filter)
		require.Contains(t, r.Errors[0].Message, c.msg)
		require.Equal(t, CodeBadInput, r.Errors[0].Extensions["code"])
		require.Equal(t, []any{"useCompany", "associate"}, r.Errors[0].Path)
		require.Nil(t, dig(t, r.Data, "useCompany", "associate"))
	}
}

func TestLikeMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"abc", "ABC", true}, {"a%", "abc", true}, {"%c", "abc", true}, {"%b%", "abc", true},
		{"a_c", "abc", true}, {"a_c", "abbc", false}, {"a%c", "abbbc", true}, {"%", "", true},
		{"_", "", false}, {"a%b%c", "axxbyyc", true}, {"a%b%c", "axxbyy", false},
		{"%ø", "Tromsø", true}, {"_ø", "Øø", true}, {"%a%a", "banana", true}, {"", "", true}, {"", "x", false},
	} {
		p := []rune(c.p)
		for i, r := range p {
			p[i] = toLowerRune(r)
		}
		require.Equal(t, c.want, likeMatch(p, c.s), "%q LIKE %q", c.s, c.p)
	}
}
