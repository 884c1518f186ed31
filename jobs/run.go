package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/bnxt"
	"github.com/nxtcron/nxtcron/metrics"
	"github.com/nxtcron/nxtcron/sinks"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/tokens"
)

// Clients gives the Business NXT client of a connection.
type Clients interface {
	Client(connection string) (*bnxt.Client, error)
}

// Runner runs one attempt of a job: token, pages, sink, watermark. It
// implements the scheduler's Runner.
type Runner struct {
	Store   store.Store
	Clients Clients
	Logger  *zap.Logger
	Metrics *metrics.Metrics
}

// Run imports every company of the attempt. Each company's rows reach the
// sink, and are committed there, before its watermark moves; a company that
// fails leaves its sink and watermark untouched and the others go on. The
// error joins every company's failure.
func (r *Runner) Run(ctx context.Context, job *Job, a Attempt) (Result, error) {
	log := r.logger().With(
		zap.String("job", job.Name),
		zap.String("slot", a.Claim.Slot.In(job.Location).Format(time.RFC3339)),
		zap.Int("attempt", a.Claim.Attempt),
		zap.String("run_id", a.Claim.RunID),
	)
	client, err := r.Clients.Client(job.Connection)
	if err != nil {
		return Result{}, fmt.Errorf("connection %q: %w", job.Connection, permanent(err))
	}
	companies, err := r.companies(ctx, job, a, client)
	if err != nil {
		return Result{}, classify(err)
	}
	sink, err := job.Sink.Config.Open(ctx, sinks.Env{Dir: filepath.Dir(job.File), Log: log})
	if err != nil {
		return Result{}, fmt.Errorf("opening %s sink: %w", job.Sink.Type, classify(err))
	}
	defer sink.Close()

	run := sinks.Run{
		Job:         job.Name,
		RunID:       a.Claim.RunID,
		Slot:        a.Claim.Slot.In(job.Location),
		Attempt:     a.Claim.Attempt,
		Fence:       a.Claim.Fence,
		Trigger:     a.Claim.Trigger,
		Location:    job.Location,
		Incremental: job.Incremental != nil,
	}
	for _, f := range job.Paged.Fields {
		run.Fields = append(run.Fields, sinks.Field{Name: f})
	}
	if nt, ok := sink.(sinks.NeedsTypes); ok && nt.NeedsTypes() {
		if run.Fields, err = fieldTypes(ctx, client, job); err != nil {
			return Result{}, fmt.Errorf("preparing %s sink: %w", job.Sink.Type, classify(err))
		}
	}
	if err := sink.Prepare(ctx, run); err != nil {
		return Result{}, fmt.Errorf("preparing %s sink: %w", job.Sink.Type, classify(err))
	}

	var (
		mu     sync.Mutex
		result Result
		errs   []error
	)
	work := make(chan int64)
	var wg sync.WaitGroup
	workers := max(1, min(job.Parallelism, len(companies)))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for company := range work {
				ci := companyImport{r: r, job: job, a: a, run: run, sink: sink, client: client, company: company,
					log: log.With(zap.Int64("company", company))}
				rows, err := ci.do(ctx)
				mu.Lock()
				result.Rows += rows
				if err == nil {
					result.Companies++
				} else {
					errs = append(errs, fmt.Errorf("company %d: %w", company, err))
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, c := range companies {
		select {
		case work <- c:
		case <-ctx.Done():
			break feed
		case <-a.Stop:
			break feed
		}
	}
	close(work)
	wg.Wait()

	if len(errs) == 0 && result.Companies < len(companies) {
		// The feed stopped early: shutdown or cancellation.
		if ctx.Err() != nil {
			return result, ctx.Err()
		}
		return result, ErrInterrupted
	}
	return result, joinErrors(errs)
}

func (r *Runner) logger() *zap.Logger {
	if r.Logger == nil {
		return zap.NewNop()
	}
	return r.Logger
}

// companies resolves the companies of an attempt: a manual run's --company,
// the job's list, or availableCompanies.
func (r *Runner) companies(ctx context.Context, job *Job, a Attempt, client *bnxt.Client) ([]int64, error) {
	if c := a.Claim.Options.Company; c != nil {
		// --company narrows the job's companies; it never adds one the job
		// does not import (its sink may not be meant to hold that data).
		if job.Companies != nil && !slices.Contains(job.Companies, *c) {
			ids := make([]string, len(job.Companies))
			for i, id := range job.Companies {
				ids[i] = strconv.FormatInt(id, 10)
			}
			return nil, permanent(fmt.Errorf("company %d is not one of the companies of job %s (%s)",
				*c, job.Name, strings.Join(ids, ", ")))
		}
		return []int64{*c}, nil
	}
	if job.Companies != nil {
		return job.Companies, nil
	}
	all, err := client.Companies(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing available companies: %w", err)
	}
	ids := make([]int64, 0, len(all))
	for _, c := range all {
		ids = append(ids, c.VismaNetCompanyID)
	}
	return ids, nil
}

// companyImport is the import of one company within one attempt.
type companyImport struct {
	r       *Runner
	job     *Job
	a       Attempt
	run     sinks.Run
	sink    sinks.Sink
	client  *bnxt.Client
	company int64
	log     *zap.Logger
}

func (ci *companyImport) do(ctx context.Context) (rows int64, err error) {
	// The company feed may hand out a company just as the shutdown begins:
	// a company not yet begun sends nothing, it is the next attempt's.
	select {
	case <-ci.a.Stop:
		return 0, ErrInterrupted
	default:
	}
	job := ci.job
	inc := job.Incremental
	full := ci.a.Claim.Options.Full

	var cur *cursor
	if inc != nil {
		prev, err := ci.watermark(ctx)
		if err != nil {
			return 0, err
		}
		cur, err = newCursor(inc, prev, full)
		if err != nil {
			return 0, fmt.Errorf("reading watermark: %w", permanent(err))
		}
	}

	vars := make(map[string]any, len(job.Variables)+2)
	for k, v := range job.Variables {
		vars[k] = v
	}
	if inc != nil {
		vars["filter"] = combineFilter(job.Variables["filter"], cur.filter())
	}
	q := bnxt.PageQuery{
		Query:     job.Query,
		Variables: vars,
		Path:      job.Paged.Path,
		PageSize:  job.PageSize,
		Company:   ci.company,
	}
	var pages pageSource = ci.client.Pages(q)
	if cur != nil {
		// An incremental import pages by keyset: an offset cursor skips a
		// row whenever an earlier one changes during the run.
		pages = newKeysetPages(ci.client, q, inc)
	}

	w, err := ci.sink.Open(ctx, ci.run, ci.company)
	if err != nil {
		return 0, fmt.Errorf("opening sink: %w", classify(err))
	}
	committed := false
	defer func() {
		if !committed {
			if aerr := w.Abort(context.WithoutCancel(ctx)); aerr != nil {
				ci.log.Warn("aborting sink writer", zap.Error(aerr))
			}
		}
	}()

	// Page n+1 is fetched while page n is written; a shutdown lets the
	// request in flight finish and starts no new page.
	feed := prefetch(ctx, pages, ci.a.Stop)
	defer feed.close()
	for n := 0; ; n++ {
		page, err := feed.next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrInterrupted) {
			return 0, ErrInterrupted
		}
		if err != nil {
			return 0, fmt.Errorf("fetching page %d: %w", n+1, classify(err))
		}
		batch, err := ci.filterPage(page, cur)
		if err != nil {
			return 0, permanent(err)
		}
		if len(batch) == 0 {
			continue
		}
		if err := w.Write(ctx, batch); err != nil {
			return 0, fmt.Errorf("writing page %d: %w", n+1, classify(err))
		}
		rows += int64(len(batch))
	}

	var wm *sinks.Watermark
	if cur != nil {
		wm, err = cur.next()
		if err != nil {
			return 0, fmt.Errorf("computing watermark: %w", err)
		}
	}
	if err := w.Commit(ctx, wm); err != nil {
		return 0, fmt.Errorf("committing sink: %w", classify(err))
	}
	committed = true
	if wm != nil {
		err := ci.r.Store.CommitWatermark(ctx, ci.a.Claim.Fence, store.Watermark{
			Job: job.Name, Company: ci.company, Value: wm.Value, Keys: wm.Keys,
			Fence: ci.a.Claim.Fence, RunID: ci.a.Claim.RunID,
		})
		if err != nil {
			return rows, fmt.Errorf("committing watermark %s: %w", wm.Value, err)
		}
		if ci.r.Metrics != nil {
			if t, err := parseServerTime(wm.Value, inc.ServerTimezone); err == nil {
				ci.r.Metrics.WatermarkTimestamp.WithLabelValues(job.Name, fmt.Sprint(ci.company)).Set(float64(t.Unix()))
			}
		}
	}
	ci.r.Metrics.RowsWritten(job.Name, job.Sink.Type, rows)
	ci.log.Info("company imported", zap.Int64("rows", rows), zap.Stringp("watermark", wmValue(wm)))
	return rows, nil
}

func wmValue(wm *sinks.Watermark) *string {
	if wm == nil {
		return nil
	}
	return &wm.Value
}

// watermark reads the company's last committed watermark: from the sink
// when it keeps its own (atomically with its rows), else from the store.
func (ci *companyImport) watermark(ctx context.Context) (*sinks.Watermark, error) {
	if keeper, ok := ci.sink.(sinks.WatermarkKeeper); ok {
		wm, err := keeper.Watermark(ctx, ci.job.Name, ci.company)
		if err != nil {
			return nil, fmt.Errorf("reading watermark from sink: %w", err)
		}
		return wm, nil
	}
	wm, err := ci.r.Store.Watermark(ctx, ci.job.Name, ci.company)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading watermark: %w", err)
	}
	return &sinks.Watermark{Value: wm.Value, Keys: wm.Keys}, nil
}

// filterPage checks nested connections, drops rows already delivered inside
// the lookback, and advances the cursor.
func (ci *companyImport) filterPage(page *bnxt.Page, cur *cursor) ([]sinks.Row, error) {
	nested := ci.job.Paged.Nested
	if cur == nil && len(nested) == 0 {
		return page.Items, nil
	}
	out := page.Items[:0:0]
	for _, item := range page.Items {
		fields, err := decodeObject(item)
		if err != nil {
			return nil, fmt.Errorf("decoding item of %s: %w", ci.job.Paged.Table, err)
		}
		for _, path := range nested {
			if err := checkNested(fields, path); err != nil {
				return nil, err
			}
		}
		if cur != nil {
			keep, err := cur.observe(fields)
			if err != nil {
				return nil, err
			}
			if !keep {
				continue
			}
		}
		out = append(out, item)
	}
	return out, nil
}

// checkNested fails when a nested connection says it has more items than
// the query asked for: the import would silently lose rows. path is relative
// to one item; a segment may cross a list (the items of an outer nested
// connection), in which case every element is checked.
func checkNested(fields map[string]json.RawMessage, path []string) error {
	return checkNestedAt(fields, path, path)
}

func checkNestedAt(obj map[string]json.RawMessage, rest, full []string) error {
	name := rest[0]
	raw, ok := obj[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if len(rest) == 1 {
		var conn struct {
			PageInfo struct {
				HasNextPage bool `json:"hasNextPage"`
			} `json:"pageInfo"`
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(raw, &conn); err != nil {
			return fmt.Errorf("decoding nested %s: %w", joinPath(full), err)
		}
		if conn.PageInfo.HasNextPage {
			return fmt.Errorf("nested %s truncated at %d; raise first or import %s as its own job",
				joinPath(full), len(conn.Items), nestedTable(name))
		}
		return nil
	}
	if len(raw) > 0 && raw[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("decoding %s: %w", name, err)
		}
		for _, el := range list {
			m, err := decodeObject(el)
			if err != nil {
				return fmt.Errorf("decoding %s: %w", name, err)
			}
			if err := checkNestedAt(m, rest[1:], full); err != nil {
				return err
			}
		}
		return nil
	}
	next, err := decodeObject(raw)
	if err != nil {
		return fmt.Errorf("decoding %s: %w", name, err)
	}
	return checkNestedAt(next, rest[1:], full)
}

// nestedTable names the table of a relation field: joindown_OrderLine_via_Order
// is orderLine.
func nestedTable(field string) string {
	t := field
	for _, p := range []string{"joindown_", "joinup_"} {
		t = strings.TrimPrefix(t, p)
	}
	if i := strings.Index(t, "_via_"); i >= 0 {
		t = t[:i]
	}
	if t == "" {
		return field
	}
	return strings.ToLower(t[:1]) + t[1:]
}

func joinPath(p []string) string { return strings.Join(p, ".") }

// classify marks the errors a retry cannot fix as permanent.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var be *bnxt.Error
	switch {
	case errors.Is(err, ErrPermanent):
		return err
	case errors.Is(err, sinks.ErrPermanent), errors.Is(err, tokens.ErrPermanent):
		return permanent(err)
	case errors.As(err, &be) && !be.Retryable():
		return permanent(err)
	}
	return err
}

// permanent marks err as one a retry cannot fix.
func permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// joinErrors joins company errors into one line. The result is permanent only
// when every one of them is, so that a retry still runs when any could help.
// It matches (errors.Is, errors.As) what the caller acts on: every company
// error when all are permanent, else the ones that are not (an interrupted
// or fenced company, a cancelled context, a retryable request).
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	var retryable []error
	for i, e := range errs {
		msgs[i] = e.Error()
		if !errors.Is(e, ErrPermanent) {
			retryable = append(retryable, e)
		}
	}
	if len(retryable) == 0 {
		return permanent(companyErrors{msg: strings.Join(msgs, "; "), errs: errs})
	}
	return companyErrors{msg: strings.Join(msgs, "; "), errs: retryable}
}

// companyErrors is the failure of several companies of one attempt.
type companyErrors struct {
	msg  string
	errs []error
}

func (e companyErrors) Error() string   { return e.msg }
func (e companyErrors) Unwrap() []error { return e.errs }
