package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAvailableCompanies(t *testing.T) {
	e := New(Options{Companies: 3})
	d := ok(t, e, `{ availableCompanies { totalCount items { name vismaNetCompanyId vismaNetCustomerId __typename } } }`, nil)
	c := dig(t, d, "availableCompanies")
	require.Equal(t, 3.0, dig(t, c, "totalCount"))
	items := objs(t, dig(t, c, "items"))
	require.Len(t, items, 3)
	for i, it := range items {
		require.Equal(t, float64(1001+i), it["vismaNetCompanyId"])
		require.Equal(t, fmt.Sprintf("Sandbox Company %d", 1001+i), it["name"])
		require.Equal(t, 5001.0, it["vismaNetCustomerId"])
		require.Equal(t, "AvailableCompany", it["__typename"])
	}
	d = ok(t, e, `{ availableCompanies(customerNo: 42) { totalCount items { name } } }`, nil)
	require.Equal(t, 0.0, dig(t, d, "availableCompanies", "totalCount"))

	require.Equal(t, []int{1001, 1002, 1003}, e.Companies())
	require.Equal(t, 2, len(New(Options{}).Companies()), "default companies")
}

func TestDefaultsAndEmptyTables(t *testing.T) {
	e := New(Options{Rows: -1})
	require.Equal(t, DefaultRows, fetch(t, e, 1001, "associate", "", "associateNo", nil).TotalCount)
	require.Equal(t, "Europe/Oslo", e.Options().Location.String())

	empty := New(Options{})
	c := fetch(t, empty, 1001, "order", "", "orderNo joindown_OrderLine_via_Order { totalCount }", nil)
	require.Equal(t, 0, c.TotalCount)
	require.Empty(t, c.Items)
	require.False(t, c.PageInfo.HasNextPage)
	require.Nil(t, c.PageInfo.EndCursor)
	for _, args := range []string{`orderBy: [{changedTimestamp: ASC}]`, `filter: {changedTimestamp: {_gte: "2025-01-01T00:00:00"}}, orderBy: [{changedTimestamp: ASC}]`, `orderBy: [{name: DESC}]`} {
		require.Equal(t, 0, fetch(t, empty, 1001, "associate", args, "associateNo", nil).TotalCount)
	}
	require.Equal(t, len(countries), fetch(t, empty, 1001, "country", "", "countryNo", nil).TotalCount, "country is reference data")
}

func TestUnknownCompany(t *testing.T) {
	e := New(Options{Rows: 5})
	r := query(t, e, `query($c: Int) { useCompany(no: $c) { associate { totalCount } } other: useCompany(no: 1001) { associate { totalCount } } }`,
		map[string]any{"c": 9999.0})
	require.Len(t, r.Errors, 1)
	require.Equal(t, CodeCompanyNotFound, r.Errors[0].Extensions["code"])
	require.Contains(t, r.Errors[0].Message, "9999")
	require.Equal(t, []any{"useCompany"}, r.Errors[0].Path)
	require.Nil(t, r.Data["useCompany"])
	require.Equal(t, 5.0, dig(t, r.Data, "other", "associate", "totalCount"), "partial data beside the error")

	r = query(t, e, `{ useCompany { associate { totalCount } } }`, nil)
	require.Len(t, r.Errors, 1)
	require.Contains(t, r.Errors[0].Message, "required")
}

func TestValidationErrors(t *testing.T) {
	e := New(Options{Rows: 5})
	for _, c := range []struct {
		name, q string
		vars    map[string]any
		msg     string
	}{
		{"unknown field", `{ useCompany(no: 1001) { associate { items { associateNo nope } } } }`, nil, `Cannot query field "nope" on type "Associate"`},
		{"unknown table", `{ useCompany(no: 1001) { customer { totalCount } } }`, nil, `Cannot query field "customer"`},
		{"bad argument type", `{ useCompany(no: "1001") { associate { totalCount } } }`, nil, "Int"},
		{"bad first type", `{ useCompany(no: 1001) { associate(first: "ten") { totalCount } } }`, nil, "Int"},
		{"unknown argument", `{ useCompany(no: 1001) { associate(top: 10) { totalCount } } }`, nil, `Unknown argument "top"`},
		{"bad enum", `{ useCompany(no: 1001) { associate(orderBy: [{name: UP}]) { totalCount } } }`, nil, "SortOrder"},
		{"unknown filter field", `{ useCompany(no: 1001) { associate(filter: {nope: {_eq: 1}}) { totalCount } } }`, nil, "nope"},
		{"_like on Int", `{ useCompany(no: 1001) { associate(filter: {associateNo: {_like: "1%"}}) { totalCount } } }`, nil, "_like"},
		{"syntax", `{ useCompany(no: 1001) { associate { totalCount }`, nil, "Expected"},
		{"variable of wrong type", `query($c: Int) { useCompany(no: $c) { associate { totalCount } } }`, map[string]any{"c": "x"}, "cannot use string as Int"},
		{"missing required variable", `query($c: Int!) { useCompany(no: $c) { associate { totalCount } } }`, nil, "must be defined"},
		{"mutation", `mutation { useCompany(no: 1) }`, nil, "mutation"},
		{"two operations without a name", `query a { __typename } query b { __typename }`, nil, "operationName"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := query(t, e, c.q, c.vars)
			require.NotEmpty(t, r.Errors, r.raw)
			require.Contains(t, r.Errors[0].Message, c.msg)
			require.NotContains(t, r.raw, `"data"`, "no data when the request does not validate")
			require.NotEmpty(t, r.Errors[0].Extensions["code"])
		})
	}
}

func TestOperationNameAndFragments(t *testing.T) {
	e := New(Options{Rows: 10})
	q := `
query a { __typename }
query b($n: Int = 1001, $skipName: Boolean = true) {
  c: useCompany(no: $n) {
    __typename
    associate(first: 2) {
      __typename
      pageInfo { __typename hasNextPage }
      items { ...A ... on Associate { name @skip(if: $skipName) } x: associateNo }
    }
  }
}
fragment A on Associate { associateNo countryNo @include(if: false) __typename }`
	var b bytes.Buffer
	_, err := e.Execute(context.Background(), Request{Query: q, OperationName: "b"}, &b)
	require.NoError(t, err)
	require.JSONEq(t, `{"data":{"c":{"__typename":"Query_UseCompany","associate":{"__typename":"Query_UseCompany_Associate_Connection",
		"pageInfo":{"__typename":"PageInfo","hasNextPage":true},
		"items":[{"associateNo":1,"__typename":"Associate","x":1},{"associateNo":2,"__typename":"Associate","x":2}]}}}}`, b.String())
	require.True(t, strings.HasPrefix(b.String(), `{"data":{"c":{"__typename"`), "fields in query order")

	r := query(t, e, q, nil)
	require.Contains(t, r.Errors[0].Message, "operationName")
	b.Reset()
	_, err = e.Execute(context.Background(), Request{Query: q, OperationName: "zz"}, &b)
	require.NoError(t, err)
	require.Contains(t, b.String(), `unknown operation`)
}

func TestDeterminism(t *testing.T) {
	q := tableQuery(1002, "orderLine", "first: 50, skip: 10", "orderNo lineNo productNo description unit quantity priceInCurrency discountPercent amountInCurrency createdTimestamp changedTimestamp")
	a := query(t, New(Options{Rows: 300}), q, nil)
	b := query(t, New(Options{Rows: 300}), q, nil)
	require.Equal(t, a.raw, b.raw, "same inputs, same rows")
	e := New(Options{Rows: 300})
	require.Equal(t, a.raw, query(t, e, q, nil).raw)
	require.Equal(t, a.raw, query(t, e, q, nil).raw, "same row twice")

	other := query(t, e, tableQuery(1001, "orderLine", "first: 50, skip: 10", "productNo quantity changedTimestamp"), nil)
	require.NotEqual(t, a.raw, other.raw, "companies differ")

	// Values are a function of the index: a bigger table keeps the same
	// non-time values for the same rows.
	big := query(t, New(Options{Rows: 600}), tableQuery(1002, "associate", "first: 20", "associateNo name customerNo countryNo phone"), nil)
	small := query(t, New(Options{Rows: 300}), tableQuery(1002, "associate", "first: 20", "associateNo name customerNo countryNo phone"), nil)
	require.Equal(t, small.raw[strings.Index(small.raw, "items"):], big.raw[strings.Index(big.raw, "items"):])
}

func TestOutputFormats(t *testing.T) {
	e := New(Options{Rows: 300})
	c := fetch(t, e, 1001, "order", "first: 300", "orderNo exchangeRate totalAmount invoiced changedTimestamp", nil)
	var sawFraction bool
	for _, it := range c.Items {
		if s, isStr := it["changedTimestamp"].(string); isStr {
			_, err := time.Parse(DateTimeLayout, s)
			require.NoError(t, err)
			require.Len(t, s, len(DateTimeLayout))
		}
		_, isNum := it["totalAmount"].(float64)
		require.True(t, isNum, "Decimal is a JSON number")
		_, isBool := it["invoiced"].(bool)
		require.True(t, isBool)
		if r := it["exchangeRate"].(float64); r != float64(int64(r)) {
			sawFraction = true
		}
	}
	require.True(t, sawFraction)

	for _, c := range []struct {
		v     int64
		scale int
		want  string
	}{{123450, 2, "1234.5"}, {100, 2, "1"}, {5, 3, "0.005"}, {-1234, 2, "-12.34"}, {10000, 4, "1"}, {7, 0, "7"}, {-5, 2, "-0.05"}} {
		require.Equal(t, c.want, string(appendDecimal(nil, c.v, c.scale)))
	}
	require.Equal(t, `"a\"b\\c\n\u0001ø"`, string(appendJSONString(nil, "a\"b\\c\n\x01ø")))
	require.Equal(t, "1969-12-31T23:59:59.999", formatDateTime(-ticksPerMilli))
	require.Equal(t, "2024-02-29T13:14:15.016", formatDateTime(mustTicks(t, "2024-02-29T13:14:15.0169")))
}

func TestParseDateTime(t *testing.T) {
	loc := osloLocation()
	for _, c := range []struct {
		in, want string
		exact    bool
	}{
		{"2025-01-02T03:04:05", "2025-01-02T03:04:05.000", true},
		{"2025-01-02 03:04:05.5", "2025-01-02T03:04:05.500", true},
		{"2025-01-02T03:04:05.1234567", "2025-01-02T03:04:05.123", true},
		{"2025-01-02T03:04:05.12345678", "2025-01-02T03:04:05.123", false},
		{"2025-01-02", "2025-01-02T00:00:00.000", true},
		{"2025-01-02T03:04", "2025-01-02T03:04:00.000", true},
		{"2025-01-02T03:04:05Z", "2025-01-02T04:04:05.000", true},
		{"2025-07-02T03:04:05Z", "2025-07-02T05:04:05.000", true},
		{"2025-07-02T03:04:05-03:00", "2025-07-02T08:04:05.000", true},
	} {
		tk, exact, err := parseDateTime(c.in, loc)
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, formatDateTime(tk), c.in)
		require.Equal(t, c.exact, exact, c.in)
	}
	_, _, err := parseDateTime("02.01.2025", loc)
	require.Error(t, err)
}

func TestSetOptions(t *testing.T) {
	e := New(Options{Rows: 10})
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	_, err := e.Touch(1001, "associate", 10, at)
	require.NoError(t, err)
	e.SetOptions(Options{Rows: 5, Companies: 4, Location: time.UTC})
	require.Equal(t, []int{1001, 1002, 1003, 1004}, e.Companies())
	c := fetch(t, e, 1001, "associate", `filter: {changedTimestamp: {_gte: "2026-01-01T00:00:00"}}`, "associateNo changedTimestamp", nil)
	require.Equal(t, 5, c.TotalCount, "touches beyond the smaller table are ignored")
	require.Equal(t, "2026-01-01T12:00:00.000", c.Items[0]["changedTimestamp"], "touches follow the new zone")
	e.SetOptions(Options{Rows: 10})
	c = fetch(t, e, 1001, "associate", `filter: {changedTimestamp: {_gte: "2026-01-01T00:00:00"}}`, "changedTimestamp", nil)
	require.Equal(t, 10, c.TotalCount, "and come back")
	require.Equal(t, "2026-01-01T13:00:00.000", c.Items[0]["changedTimestamp"])
}

func TestConcurrencyLimit(t *testing.T) {
	e := New(Options{Rows: 5, ConcurrencyLimit: 2, Latency: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	q := `{ useCompany(no: 1001) { associate { totalCount } } }`
	type out struct {
		res  Result
		body string
		err  error
	}
	results := make(chan out, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b bytes.Buffer
			res, err := e.Execute(ctx, Request{Query: q}, &b)
			results <- out{res, b.String(), err}
		}()
	}
	require.Eventually(t, func() bool { return e.InFlight(1001) == 2 }, 10*time.Second, time.Millisecond)

	r := query(t, e, q, nil)
	require.True(t, r.res.OutstandingLimited)
	require.Len(t, r.Errors, 1)
	require.Equal(t, CodeOutstandingLimit, r.Errors[0].Extensions["code"])
	require.Contains(t, r.raw, `"data":null`)

	// Another company is not limited by 1001's requests.
	e.SetOptions(Options{Rows: 5, ConcurrencyLimit: 2})
	require.Equal(t, 5.0, dig(t, ok(t, e, `{ useCompany(no: 1002) { associate { totalCount } } }`, nil), "useCompany", "associate", "totalCount"))
	// A request naming both companies is refused: 1001 is full.
	r = query(t, e, `{ a: useCompany(no: 1002) { associate { totalCount } } b: useCompany(no: 1001) { associate { totalCount } } }`, nil)
	require.True(t, r.res.OutstandingLimited)
	require.Equal(t, 0, e.InFlight(1002), "a refused request holds no slot")
	// Introspection and availableCompanies need no slot.
	ok(t, e, `{ availableCompanies { totalCount } __typename }`, nil)

	cancel()
	wg.Wait()
	close(results)
	for o := range results {
		require.NoError(t, o.err)
		require.Contains(t, o.body, CodeCancelled)
		require.False(t, o.res.OutstandingLimited)
	}
	require.Equal(t, 0, e.InFlight(1001))
	require.Equal(t, 5.0, dig(t, ok(t, e, q, nil), "useCompany", "associate", "totalCount"), "slots are released")
}

func TestLatencyIsServed(t *testing.T) {
	e := New(Options{Rows: 5, Latency: 20 * time.Millisecond})
	start := time.Now()
	ok(t, e, `{ useCompany(no: 1001) { associate { totalCount } } }`, nil)
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
}

func TestCancelledDuringScan(t *testing.T) {
	e := New(Options{Rows: 200000})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var b bytes.Buffer
	res, err := e.Execute(ctx, Request{Query: tableQuery(1001, "associate", `orderBy: [{name: ASC}]`, "associateNo")}, &b)
	require.NoError(t, err)
	require.Equal(t, 1, res.Errors)
	require.Contains(t, b.String(), CodeCancelled)
	require.True(t, json.Valid(b.Bytes()))
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n--; f.n < 0 {
		return 0, errors.New("broken pipe")
	}
	return len(p), nil
}

func TestWriteErrorsAreReturned(t *testing.T) {
	e := New(Options{Rows: 20000})
	_, err := e.Execute(context.Background(), Request{Query: tableQuery(1001, "associate", "first: 10000", "associateNo name phone")}, &failWriter{n: 1})
	require.ErrorContains(t, err, "broken pipe")
	_, err = e.Execute(context.Background(), Request{Query: `{ nope }`}, &failWriter{})
	require.ErrorContains(t, err, "broken pipe")
}

func TestRowsCount(t *testing.T) {
	e := New(Options{Rows: 30})
	r := query(t, e, `{ useCompany(no: 1001) {
		order(first: 4) { items { orderNo joindown_OrderLine_via_Order { items { lineNo } } } }
		associate(first: 3) { totalCount } } }`, nil)
	lines := 0
	for _, o := range objs(t, dig(t, r.Data, "useCompany", "order", "items")) {
		lines += len(objs(t, dig(t, o, "joindown_OrderLine_via_Order", "items")))
	}
	require.Greater(t, lines, 3)
	require.Equal(t, 4+lines, r.res.Rows, "items served, nested included; totalCount alone serves none")
}
