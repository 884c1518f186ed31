package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultDSN is the Postgres the tests use too.
const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// options are the benchmark's knobs (the flags of `go run ./bench`).
type options struct {
	Bin          string
	DSN          string
	StoreDSN     string
	Rows         []int
	Latency      time.Duration
	PageSize     int
	RateRows     int
	RatePageSize int
	RateLimit    int
	RatePerMin   int
	Work         string
	Schema       string
	Progress     io.Writer
}

func main() { os.Exit(run()) }

func run() int {
	o := options{Progress: os.Stderr}
	var rows string
	flag.StringVar(&o.Bin, "nxtcron", "bin/nxtcron", "the nxtcron binary to measure")
	flag.StringVar(&o.DSN, "dsn", envOr("BENCH_DATABASE_URL", envOr("TEST_DATABASE_URL", defaultDSN)), "the Postgres of the sink and of limit (b)")
	flag.StringVar(&o.StoreDSN, "store", "", "nxtcron's store.dsn (default: SQLite in the run's directory)")
	flag.StringVar(&rows, "rows", "100000,1000000", "import sizes, rows of one company, comma-separated")
	flag.DurationVar(&o.Latency, "latency", 20*time.Millisecond, "sandbox latency per GraphQL request")
	flag.IntVar(&o.PageSize, "page-size", 500, "the job's page_size")
	flag.IntVar(&o.RateRows, "rate-rows", 100000, "rows of the import at the real rate limit (0: skip it)")
	flag.IntVar(&o.RatePageSize, "rate-page-size", 100, "page_size of the import at the real rate limit")
	flag.IntVar(&o.RateLimit, "rate-limit", 600, "the sandbox's requests per minute per token in the rate benchmark")
	flag.IntVar(&o.RatePerMin, "requests-per-minute", 588, "nxtcron's requests_per_minute in the rate benchmark")
	flag.StringVar(&o.Schema, "schema", "nxtcron_bench", "the sink's schema (dropped and recreated)")
	flag.Parse()
	for _, f := range strings.Split(rows, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: -rows: %q is not a positive number\n", f)
			return 2
		}
		o.Rows = append(o.Rows, n)
	}
	// The runs start in directories of their own.
	if abs, err := filepath.Abs(o.Bin); err == nil {
		o.Bin = abs
	}
	if _, err := os.Stat(o.Bin); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v (%v)\n", errNoBinary, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "nxtcron-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(work) }()
	o.Work = work

	rep, err := measure(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	rep.print(os.Stdout)
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// importResult is one size's figures.
type importResult struct {
	Rows    int
	Pages   int
	Nxtcron runResult
	Bare    bareResult
	Copy    copyResult
}

// rateResult is the import at the real rate limit.
type rateResult struct {
	Rows        int
	Limit       int
	PerMinute   int
	Elapsed     time.Duration
	Requests    int64 // GraphQL requests the sandbox answered
	RateLimited int64 // of which 429
	Outstanding int64
	MaxRSS      int64
}

// Share is the share of the API's budget (Limit a minute) the import used
// over its whole run.
func (r rateResult) Share() float64 {
	return float64(r.Requests) / (r.Elapsed.Minutes() * float64(r.Limit))
}

type report struct {
	// Load is /proc/loadavg before and after: the machine is shared.
	Load    [2]string
	Opts    options
	NumCPU  int
	Imports []importResult
	Rate    *rateResult
	PG      string
}

// measure runs every benchmark of o.
func measure(ctx context.Context, o options) (*report, error) {
	rep := &report{Opts: o, NumCPU: runtime.NumCPU()}
	rep.Load[0] = loadAvg()
	defer func() { rep.Load[1] = loadAvg() }()
	if err := resetSchema(ctx, o.DSN, o.Schema, true); err != nil {
		return nil, fmt.Errorf("preparing schema %s: %w", o.Schema, err)
	}
	defer func() { _ = resetSchema(context.WithoutCancel(ctx), o.DSN, o.Schema, false) }()
	rep.PG = postgresVersion(ctx, o.DSN)
	for _, n := range o.Rows {
		r, err := measureImport(ctx, o, n)
		if err != nil {
			return nil, fmt.Errorf("import of %d rows: %w", n, err)
		}
		rep.Imports = append(rep.Imports, r)
	}
	if o.RateRows > 0 {
		r, err := measureRate(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("import at the rate limit: %w", err)
		}
		rep.Rate = &r
	}
	return rep, nil
}

func (o options) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: "+format+"\n", args...)
	}
}

// measureImport measures one size: (a), nxtcron, then (b), against a
// sandbox of its own.
func measureImport(ctx context.Context, o options, n int) (importResult, error) {
	res := importResult{Rows: n, Pages: (n + o.PageSize - 1) / o.PageSize}
	sb, err := startSandbox(ctx, o.Bin, sandboxOptions{Rows: n, Latency: o.Latency})
	if err != nil {
		return res, err
	}
	defer func() { _ = sb.Stop() }()

	o.logf("%d rows: (a) the bare HTTP loop", n)
	if res.Bare, err = bareFetch(ctx, sb.URL, o.PageSize); err != nil {
		return res, fmt.Errorf("(a) the bare HTTP loop: %w", err)
	}
	if res.Bare.Pages != res.Pages {
		return res, fmt.Errorf("(a) the bare HTTP loop fetched %d pages, want %d", res.Bare.Pages, res.Pages)
	}

	table := fmt.Sprintf("associate_%d", n)
	o.logf("%d rows: nxtcron run", n)
	res.Nxtcron, err = runNxtcron(ctx, runSpec{
		Job: table, Bin: o.Bin, Dir: filepath.Join(o.Work, table), SandboxURL: sb.URL,
		StoreDSN: o.StoreDSN, StoreSchema: o.Schema + "_store_" + strconv.Itoa(n),
		SinkDSN: o.DSN, Table: o.Schema + "." + table,
		PageSize: o.PageSize, RequestsPerMinute: unlimitedPerMinute,
	})
	if err != nil {
		return res, err
	}
	got, err := countRows(ctx, o.DSN, o.Schema, table)
	if err != nil {
		return res, fmt.Errorf("counting the imported rows: %w", err)
	}
	if got != int64(n) {
		return res, fmt.Errorf("nxtcron imported %d rows, want %d", got, n)
	}

	o.logf("%d rows: (b) pgx COPY into a fresh table", n)
	if res.Copy, err = copyBaseline(ctx, o.DSN, o.Schema, table, filepath.Join(o.Work, table+".copy")); err != nil {
		return res, fmt.Errorf("(b) COPY: %w", err)
	}
	if res.Copy.Rows != int64(n) {
		return res, fmt.Errorf("(b) COPY copied %d rows, want %d", res.Copy.Rows, n)
	}
	if err := dropTable(ctx, o.DSN, o.Schema, table); err != nil {
		return res, err
	}
	return res, nil
}

// unlimitedPerMinute is requests_per_minute where the sandbox has no rate
// limit: far above what one company's sequential pages can send, so the
// budget never waits (it is still taken from the store, as always).
const unlimitedPerMinute = 1_000_000

// measureRate runs one import against the real rate limit.
func measureRate(ctx context.Context, o options) (rateResult, error) {
	res := rateResult{Rows: o.RateRows, Limit: o.RateLimit, PerMinute: o.RatePerMin}
	sb, err := startSandbox(ctx, o.Bin, sandboxOptions{Rows: o.RateRows, Latency: o.Latency, RateLimit: o.RateLimit})
	if err != nil {
		return res, err
	}
	defer func() { _ = sb.Stop() }()
	table := fmt.Sprintf("associate_rate_%d", o.RateRows)
	o.logf("%d rows at %d requests a minute: nxtcron run", o.RateRows, o.RateLimit)
	run, err := runNxtcron(ctx, runSpec{
		Job: table, Bin: o.Bin, Dir: filepath.Join(o.Work, table), SandboxURL: sb.URL,
		StoreDSN: o.StoreDSN, StoreSchema: o.Schema + "_store_rate",
		SinkDSN: o.DSN, Table: o.Schema + "." + table,
		PageSize: o.RatePageSize, RequestsPerMinute: o.RatePerMin,
	})
	if err != nil {
		return res, err
	}
	st, err := sb.Stats(ctx)
	if err != nil {
		return res, err
	}
	res.Elapsed, res.MaxRSS = run.Elapsed, run.MaxRSS
	svc := st.GraphQLRequests.Service
	res.Requests = svc.OK + svc.Error + svc.RateLimited + svc.OutstandingLimited + svc.Unauthorized
	res.RateLimited, res.Outstanding = svc.RateLimited, svc.OutstandingLimited
	got, err := countRows(ctx, o.DSN, o.Schema, table)
	if err != nil {
		return res, err
	}
	if got != int64(o.RateRows) {
		return res, fmt.Errorf("nxtcron imported %d rows, want %d", got, o.RateRows)
	}
	return res, dropTable(ctx, o.DSN, o.Schema, table)
}

func dropTable(ctx context.Context, dsn, schema, table string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	_, err = conn.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{schema, table}.Sanitize())
	return err
}

func postgresVersion(ctx context.Context, dsn string) string {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "?"
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "?"
	}
	return v
}

func rate(rows int, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(rows)/d.Seconds(), 'f', 0, 64)
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

// print writes the report as the tables docs/performance.md shows.
func (r *report) print(w io.Writer) {
	o := r.Opts
	fmt.Fprintf(w, "nproc %d, %s/%s, %s, Postgres %s; load average before %s, after %s\n",
		r.NumCPU, runtime.GOOS, runtime.GOARCH, runtime.Version(), r.PG, r.Load[0], r.Load[1])
	fmt.Fprintf(w, "sandbox: 1 company, latency %s, no rate limit; job: associate (11 columns), page_size %d, incremental first run, postgres sink upsert typed\n\n",
		o.Latency, o.PageSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rows\tpages\tnxtcron s\trows/s\t(a) http s\trows/s\t(b) copy s\trows/s\tvs max(a,b)\tvs a+b\tpeak RSS MiB\t")
	for _, i := range r.Imports {
		a, b, x := i.Bare.Elapsed, i.Copy.Elapsed, i.Nxtcron.Elapsed
		fmt.Fprintf(tw, "%d\t%d\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\t%.3f\t%.3f\t%s\t\n",
			i.Rows, i.Pages, x.Seconds(), rate(i.Rows, x), a.Seconds(), rate(i.Rows, a), b.Seconds(), rate(i.Rows, b),
			x.Seconds()/max(a, b).Seconds(), x.Seconds()/(a+b).Seconds(), mib(i.Nxtcron.MaxRSS))
	}
	_ = tw.Flush()
	if len(r.Imports) >= 2 {
		first, last := r.Imports[0], r.Imports[len(r.Imports)-1]
		fmt.Fprintf(w, "peak RSS at %d rows / at %d rows: %.3f\n", last.Rows, first.Rows,
			float64(last.Nxtcron.MaxRSS)/float64(first.Nxtcron.MaxRSS))
	}
	if q := r.Rate; q != nil {
		fmt.Fprintf(w, "\nat the real rate limit: sandbox --rate-limit %d, requests_per_minute %d, %d rows, page_size %d\n",
			q.Limit, q.PerMinute, q.Rows, o.RatePageSize)
		fmt.Fprintf(w, "requests %d in %.2fs = %.1f a minute; share of the budget (%d a minute) used: %.1f%%; 429s: %d; OUTSTANDING_LIMIT_EXCEEDED: %d; peak RSS %s MiB\n",
			q.Requests, q.Elapsed.Seconds(), float64(q.Requests)/q.Elapsed.Minutes(), q.Limit, 100*q.Share(), q.RateLimited, q.Outstanding, mib(q.MaxRSS))
	}
}

// errNoBinary explains a missing binary.
var errNoBinary = errors.New("no nxtcron binary: run `make build` or pass -nxtcron")

// loadAvg is the 1-minute load average, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
