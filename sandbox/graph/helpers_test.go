package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type response struct {
	Data   map[string]any `json:"data"`
	Errors []gqlError     `json:"errors"`
	raw    string
	res    Result
}

// query runs q and decodes the response; it fails the test on I/O errors or
// invalid JSON.
func query(t testing.TB, e *Engine, q string, vars map[string]any) response {
	t.Helper()
	var b bytes.Buffer
	res, err := e.Execute(context.Background(), Request{Query: q, Variables: vars}, &b)
	require.NoError(t, err)
	var r response
	require.NoError(t, json.Unmarshal(b.Bytes(), &r), "invalid JSON: %s", b.String())
	r.raw, r.res = b.String(), res
	require.Equal(t, len(r.Errors), res.Errors, "Result.Errors")
	return r
}

// ok runs q and requires a response without errors.
func ok(t testing.TB, e *Engine, q string, vars map[string]any) map[string]any {
	t.Helper()
	r := query(t, e, q, vars)
	require.Empty(t, r.Errors, "response: %s", r.raw)
	return r.Data
}

// dig walks nested objects by keys.
func dig(t testing.TB, v any, keys ...string) any {
	t.Helper()
	for _, k := range keys {
		m, isMap := v.(map[string]any)
		require.True(t, isMap, "at %q: not an object: %v", k, v)
		v = m[k]
	}
	return v
}

func objs(t testing.TB, v any) []map[string]any {
	t.Helper()
	if v == nil {
		return nil
	}
	list, isList := v.([]any)
	require.True(t, isList, "not a list: %v", v)
	out := make([]map[string]any, len(list))
	for i, el := range list {
		out[i] = el.(map[string]any)
	}
	return out
}

// conn is a decoded connection.
type conn struct {
	TotalCount int `json:"totalCount"`
	PageInfo   struct {
		HasNextPage     bool    `json:"hasNextPage"`
		HasPreviousPage bool    `json:"hasPreviousPage"`
		StartCursor     *string `json:"startCursor"`
		EndCursor       *string `json:"endCursor"`
	} `json:"pageInfo"`
	Items []map[string]any `json:"items"`
}

func toConn(t testing.TB, v any) conn {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var c conn
	require.NoError(t, json.Unmarshal(b, &c))
	return c
}

// tableQuery builds a useCompany query of one table connection.
func tableQuery(company int, table, args, items string) string {
	if args != "" {
		args = "(" + args + ")"
	}
	return fmt.Sprintf(`{ useCompany(no: %d) { %s%s { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } items { %s } } } }`,
		company, table, args, items)
}

func fetch(t testing.TB, e *Engine, company int, table, args, items string, vars map[string]any) conn {
	t.Helper()
	return toConn(t, dig(t, ok(t, e, tableQuery(company, table, args, items), vars), "useCompany", table))
}

// refRow is a row read straight from the generators, for brute-force
// references that do not use the filter, order or paging code.
type refRow struct {
	idx  int
	vals map[string]value
}

func (r refRow) i(name string) int64 { return r.vals[name].i }
func (r refRow) s(name string) string {
	return r.vals[name].s
}
func (r refRow) null(name string) bool { return r.vals[name].null }

func refRows(e *Engine, company int, table string) []refRow {
	w := e.state.Load()
	cs := w.company(company)
	t := e.c.model.table(table)
	ts := cs.tabs[t.id]
	out := make([]refRow, ts.n)
	for i := range out {
		r := cs.row(ts, i)
		vals := map[string]value{}
		for _, c := range t.columns {
			vals[c.name] = c.gen(&r)
		}
		out[i] = refRow{idx: i, vals: vals}
	}
	return out
}

// keyOfRef renders a row's key like the item's key fields: "12" or "3/2".
func keyOfRef(t *table, r refRow) string {
	var parts []string
	for _, k := range t.keyCols {
		parts = append(parts, fmt.Sprint(r.i(k.name)))
	}
	return strings.Join(parts, "/")
}

func keyOfItem(t *table, it map[string]any) string {
	var parts []string
	for _, k := range t.keyCols {
		parts = append(parts, fmt.Sprint(int64(it[k.name].(float64))))
	}
	return strings.Join(parts, "/")
}

func keysOfItems(t *table, items []map[string]any) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = keyOfItem(t, it)
	}
	return out
}

func keysOfRefs(t *table, rows []refRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = keyOfRef(t, r)
	}
	return out
}

// refSelect filters rows and sorts them by less (then by index).
func refSelect(rows []refRow, keep func(refRow) bool, cmp func(a, b refRow) int) []refRow {
	var out []refRow
	for _, r := range rows {
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b refRow) int {
		if cmp != nil {
			if c := cmp(a, b); c != 0 {
				return c
			}
		}
		return a.idx - b.idx
	})
	return out
}

// nullsFirst compares nullable int-like values, nulls first.
func nullsFirst(a, b value) int {
	switch {
	case a.null && b.null:
		return 0
	case a.null:
		return -1
	case b.null:
		return 1
	}
	return cmpInt(a.i, b.i)
}

// pageAll pages through a connection query with first/after and returns the
// keys of all rows; it checks that every page but the last is full and that
// totalCount agrees.
func pageAll(t testing.TB, e *Engine, company int, table, args, keyFields string, pageSize int, vars map[string]any) []string {
	t.Helper()
	tb := e.c.model.table(table)
	keys := []string{}
	after := ""
	total := -1
	for page := 0; ; page++ {
		a := fmt.Sprintf("first: %d", pageSize)
		if after != "" {
			a += fmt.Sprintf(", after: %q", after)
		}
		if args != "" {
			a += ", " + args
		}
		c := fetch(t, e, company, table, a, keyFields, vars)
		if total < 0 {
			total = c.TotalCount
		}
		require.Equal(t, total, c.TotalCount, "totalCount changed between pages")
		require.Equal(t, page > 0, c.PageInfo.HasPreviousPage, "hasPreviousPage of page %d", page)
		keys = append(keys, keysOfItems(tb, c.Items)...)
		if !c.PageInfo.HasNextPage {
			require.Equal(t, total, len(keys), "rows paged vs totalCount")
			return keys
		}
		require.Len(t, c.Items, pageSize, "a page before the last is full")
		require.NotNil(t, c.PageInfo.EndCursor)
		after = *c.PageInfo.EndCursor
		require.Less(t, page, 100000, "runaway paging")
	}
}

// osloTime reads a wall-clock time in Europe/Oslo.
func osloTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.ParseInLocation("2006-01-02T15:04:05", s, osloLocation())
	require.NoError(t, err)
	return tm
}
