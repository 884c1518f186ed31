package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"
)

// FuzzExecute feeds arbitrary documents and variables to the engine: it must
// never panic and always answer valid JSON.
func FuzzExecute(f *testing.F) {
	e := New(Options{Rows: 40})
	_, _ = e.Touch(1001, "order", 5, time.Date(2025, 10, 26, 1, 30, 0, 0, time.UTC))
	for _, s := range []struct{ q, vars string }{
		{`{ useCompany(no: 1001) { associate(first: 3) { totalCount items { associateNo name joinup_Country { name } } } } }`, `{}`},
		{`query($f: FilterExpression_Order, $a: String) { useCompany(no: 1001) { order(first: 5, after: $a, filter: $f, orderBy: [{changedTimestamp: ASC}, {orderNo: ASC}]) { pageInfo { hasNextPage endCursor } items { orderNo changedTimestamp joindown_OrderLine_via_Order(last: 2) { items { lineNo } } } } } }`,
			`{"f": {"changedTimestamp": {"_gte": "2025-01-01T00:00:00"}, "_or": [{"orderNo": {"_in": [1, 2, 3]}}, {"totalAmount": {"_between": [10, 100000.5]}}]}, "a": "Mw=="}`},
		{`{ useCompany(no: 1001) { orderLine(skip: 3, last: 4, orderBy: {description: DESC}, filter: {description: {_like: "%k_"}}) { totalCount items { orderNo lineNo } } } }`, `{}`},
		{`{ __schema { types { name fields { name type { name ofType { name } } } } } }`, `{}`},
		{`{ availableCompanies { totalCount items { name } } useCompany(no: 9) { country { totalCount } } }`, `{}`},
		{`query($n: Int!) { useCompany(no: $n) { generalLedgerAccount(before: "MTA=", filter: {blocked: {_eq: true}}) { items { accountNo } } } }`, `{"n": 1002}`},
	} {
		f.Add(s.q, s.vars)
	}
	f.Fuzz(func(t *testing.T, q, vars string) {
		var v map[string]any
		_ = json.Unmarshal([]byte(vars), &v)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var b bytes.Buffer
		if _, err := e.Execute(ctx, Request{Query: q, Variables: v}, &b); err != nil {
			t.Fatalf("execute: %v", err)
		}
		if !json.Valid(b.Bytes()) {
			t.Fatalf("invalid JSON for %q: %s", q, b.String())
		}
	})
}

// FuzzParseDateTime checks that DateTime filter operands never panic and
// that accepted values survive a round trip through the output format.
func FuzzParseDateTime(f *testing.F) {
	for _, s := range []string{"2025-10-26T02:30:00", "2025-01-02 03:04:05.1234567", "2025-07-02T03:04:05-03:00", "2025-01-02", "x"} {
		f.Add(s)
	}
	loc := osloLocation()
	f.Fuzz(func(t *testing.T, s string) {
		tk, _, err := parseDateTime(s, loc)
		if err != nil {
			return
		}
		out := formatDateTime(tk)
		back, _, err := parseDateTime(out, loc)
		if err != nil || back != tk/ticksPerMilli*ticksPerMilli && tk >= 0 {
			t.Fatalf("%q -> %q -> %d (%v), want %d", s, out, back, err, tk/ticksPerMilli*ticksPerMilli)
		}
	})
}
