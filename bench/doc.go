// Command bench is `make bench`: it measures nxtcron's import pipeline
// against the limits set by what it talks to, and the request budget at the
// API's real rate limit. docs/performance.md has the figures and how to read
// them.
//
// Every import runs the real binary (`nxtcron run`) as its own process,
// against the sandbox as its own process (`nxtcron sandbox --latency 20ms
// ...`), into a Postgres sink (mode upsert, typed columns) on the database
// of -dsn. For each size (-rows, default 100,000 and 1,000,000 rows of one
// company) it measures, in one run:
//
//	nxtcron  wall time of `nxtcron run` (start to exit: config, store,
//	         token, introspection, every page, the final merge) and its
//	         peak RSS (the waited child's rusage Maxrss)
//	(a)      the same pages (same query, variables, page size and headers)
//	         fetched at the same concurrency (one company: one request at
//	         a time) by a bare net/http loop that reads each page's cursor
//	         and discards the rest of the body
//	(b)      the same rows COPYed by pgx into a fresh table with the
//	         target's columns and unique key, from a streaming source (a
//	         binary COPY dump of the imported rows, read from a file)
//
// and prints rows/s for each, nxtcron's time as a ratio to max(a, b) (the
// best a pipeline that overlaps fetching and writing can do) and to a + b
// (a pipeline that does not overlap them), and the peak RSS per size.
//
// The rate benchmark (-rate-rows, default 100,000; 0 skips it) runs one
// import against a sandbox with the real limit (--rate-limit 600) and
// nxtcron's default requests_per_minute (588), and prints the share of the
// API's request budget the import used (GraphQL requests / (600 x its
// minutes)) and the count of 429s the sandbox answered (/sandbox/stats).
//
// bench_test.go runs the same code on a few thousand rows as a smoke test
// (skipped with -short); the full run only happens through `make bench`
// or `go run ./bench`.
package main
