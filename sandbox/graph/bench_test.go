package graph

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// BenchmarkPage1000x6 serves one page of 1,000 rows with 6 columns from the
// middle of a 100,000-row table, in key order.
func BenchmarkPage1000x6(b *testing.B) {
	e := New(Options{Rows: 100_000})
	req := Request{Query: fmt.Sprintf(`{ useCompany(no: 1001) { associate(first: 1000, after: %q) {
		pageInfo { hasNextPage endCursor } items { associateNo name customerNo countryNo phone changedTimestamp } } } }`, encodeCursor(49_999))}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Execute(ctx, req, io.Discard)
		if err != nil || res.Rows != 1000 || res.Errors != 0 {
			b.Fatalf("rows %d, errors %d, err %v", res.Rows, res.Errors, err)
		}
	}
}

// BenchmarkPage1000x6Incremental is the same page in the incremental order
// (changedTimestamp, key) with a changedTimestamp filter.
func BenchmarkPage1000x6Incremental(b *testing.B) {
	e := New(Options{Rows: 100_000})
	req := Request{Query: fmt.Sprintf(`{ useCompany(no: 1001) { associate(first: 1000, after: %q,
		filter: {changedTimestamp: {_gte: "2025-01-01T00:00:00"}}, orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]) {
		pageInfo { hasNextPage endCursor } items { associateNo name customerNo countryNo phone changedTimestamp } } } }`, encodeCursor(29_999))}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Execute(ctx, req, io.Discard)
		if err != nil || res.Rows != 1000 || res.Errors != 0 {
			b.Fatalf("rows %d, errors %d, err %v", res.Rows, res.Errors, err)
		}
	}
}

// endCursorOf extracts pageInfo.endCursor from a response without decoding
// the rows.
func endCursorOf(b *testing.B, body []byte) (string, bool) {
	i := bytes.Index(body, []byte(`"hasNextPage":`))
	if i < 0 {
		b.Fatalf("no pageInfo in %.200s", body)
	}
	more := bytes.HasPrefix(body[i+len(`"hasNextPage":`):], []byte("true"))
	j := bytes.Index(body, []byte(`"endCursor":"`))
	if j < 0 {
		return "", false
	}
	rest := body[j+len(`"endCursor":"`):]
	return string(rest[:bytes.IndexByte(rest, '"')]), more
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// pageThrough follows endCursor through a 1,000,000-row table with
// first: 1000 and reports the cost per page and the heap growth.
func pageThrough(b *testing.B, args string) {
	const rows = 1_000_000
	e := New(Options{Rows: rows, Companies: 1})
	query := `query($after: String) { useCompany(no: 1001) { associate(first: 1000, after: $after` + args + `) {
		pageInfo { hasNextPage endCursor } items { associateNo name customerNo countryNo phone changedTimestamp } } } }`
	ctx := context.Background()
	var buf bytes.Buffer
	var heapStart, heapMid uint64
	pages := 0
	b.ReportAllocs()
	for b.Loop() {
		heapStart = heapInUse()
		vars := map[string]any{}
		served := 0
		for page := 0; ; page++ {
			buf.Reset()
			res, err := e.Execute(ctx, Request{Query: query, Variables: vars}, &buf)
			if err != nil || res.Errors != 0 {
				b.Fatalf("page %d: %v %.300s", page, err, buf.String())
			}
			served += res.Rows
			pages++
			cur, more := endCursorOf(b, buf.Bytes())
			if page == 100 {
				heapMid = heapInUse()
			}
			if !more {
				break
			}
			vars = map[string]any{"after": cur}
		}
		if served != rows {
			b.Fatalf("served %d rows, want %d", served, rows)
		}
	}
	heapEnd := heapInUse()
	growth := int64(heapEnd) - int64(heapMid)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pages), "ns/page")
	b.ReportMetric(float64(heapStart)/(1<<20), "heap-start-MiB")
	b.ReportMetric(float64(heapEnd)/(1<<20), "heap-end-MiB")
	b.ReportMetric(float64(growth)/(1<<10), "heap-growth-KiB")
	if growth > 4<<20 {
		b.Fatalf("heap grew by %d KiB from page 100 to the end: memory is not flat", growth>>10)
	}
}

// BenchmarkPaging1M pages through 1,000,000 rows in key order.
func BenchmarkPaging1M(b *testing.B) { pageThrough(b, "") }

// BenchmarkPaging1MIncremental pages through 1,000,000 rows in the
// incremental order, the first run of an incremental job.
func BenchmarkPaging1MIncremental(b *testing.B) {
	pageThrough(b, `, orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]`)
}
