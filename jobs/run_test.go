package jobs_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/bnxt"
	"github.com/nxtcron/nxtcron/jobs"
	"github.com/nxtcron/nxtcron/sandbox"
	"github.com/nxtcron/nxtcron/store"
)

// The sandbox's default data: companies 1001 and 1002, 250 rows per table,
// the first tenth of them (by key) with a null changedTimestamp.
const (
	sandboxRows  = 250
	nullRows     = sandboxRows / 10
	companyOne   = int64(1001)
	companyTwo   = int64(1002)
	fileSinkYAML = `sink: {type: file, path: "out/{job}/{company}/{slot}.ndjson"}`
)

const fullAssociatesYAML = `schedule: "@every 1h"
connection: service
companies: all
query: |
  query($cid: Int, $first: Int, $after: String) {
    useCompany(no: $cid) {
      associate(first: $first, after: $after, orderBy: [{associateNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items { associateNo name changedTimestamp }
      }
    }
  }
page_size: 40
` + fileSinkYAML + "\n"

// incrementalAssociatesYAML is an incremental associate import of both
// companies with page size %d.
func incrementalAssociatesYAML(pageSize int) string {
	return `schedule: "@every 1h"
connection: service
companies: [1001, 1002]
query: |
  query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Associate) {
    useCompany(no: $cid) {
      associate(first: $first, after: $after, filter: $filter,
                orderBy: [{changedTimestamp: ASC}, {associateNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items { associateNo name changedTimestamp }
      }
    }
  }
page_size: ` + strconv.Itoa(pageSize) + `
incremental: {key: [associateNo]}
` + fileSinkYAML + "\n"
}

func TestRunFullImportWritesEveryRowOncePerCompany(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", fullAssociatesYAML)

	c, res, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, jobs.Result{Rows: 2 * sandboxRows, Companies: 2}, res)

	for _, company := range []int64{companyOne, companyTwo} {
		got := keys(t, p.rows(job, c, company), "associateNo")
		require.Len(t, got, sandboxRows, "company %d", company)
		require.True(t, slices.IsSorted(got), "company %d: rows in key order", company)
		require.Len(t, slices.Compact(slices.Clone(got)), sandboxRows, "company %d: every row exactly once", company)
	}
	// 250 rows in pages of 40 are 7 pages per company, and the company list.
	stats := p.sb.Stats()
	require.Equal(t, int64(2*7+1), stats.GraphQLRequests.GraphQLService.OK)
	require.Equal(t, int64(2*sandboxRows), stats.RowsServed)
	require.ElementsMatch(t, []string{"1001/" + fileName(job, c), "1002/" + fileName(job, c)}, p.files(job),
		"the two final files and no temporary file")
	require.Equal(t, float64(2*sandboxRows), testutil.ToFloat64(p.metrics.RowsWrittenTotal.WithLabelValues(job.Name, "file")))
	require.Empty(t, p.watermark(job.Name, companyOne), "a full job keeps no watermark")
}

func fileName(job *jobs.Job, c store.Claim) string {
	return c.Slot.In(job.Location).Format("20060102T150405-0700") + ".ndjson"
}

func TestRunIncrementalReadsOnlyChangedRows(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", incrementalAssociatesYAML(40))

	// First run: unfiltered, every row including those never changed.
	c1, res, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(2*sandboxRows), res.Rows)
	wm := map[int64]string{}
	for _, company := range []int64{companyOne, companyTwo} {
		rows := p.rows(job, c1, company)
		require.Len(t, rows, sandboxRows)
		var nulls int
		var max string
		for _, r := range rows {
			ts, ok := r["changedTimestamp"].(string)
			if !ok {
				require.Nil(t, r["changedTimestamp"])
				nulls++
				continue
			}
			max = ts
		}
		require.Equal(t, nullRows, nulls, "company %d: rows without a timestamp come in the first run", company)
		wm[company] = p.watermark(job.Name, company)
		require.Equal(t, max, wm[company], "company %d: the watermark is the last row's timestamp", company)
	}

	// Second run: nothing changed, nothing written; the empty files are
	// still committed.
	c2, res, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, jobs.Result{Rows: 0, Companies: 2}, res)
	for _, company := range []int64{companyOne, companyTwo} {
		require.Empty(t, p.rows(job, c2, company))
		require.Equal(t, wm[company], p.watermark(job.Name, company))
	}

	// Ten rows of 1001 change: the third run writes exactly those.
	at := time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	n, err := p.sb.Engine().Touch(int(companyOne), "associate", 10, at)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	touched := touchedKeys(t, p, companyOne, at)
	require.Len(t, touched, 10)

	c3, res, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, jobs.Result{Rows: 10, Companies: 2}, res)
	rows := p.rows(job, c3, companyOne)
	require.ElementsMatch(t, touched, keys(t, rows, "associateNo"))
	for _, r := range rows {
		require.Equal(t, p.serverWall(at), r["changedTimestamp"])
	}
	require.Empty(t, p.rows(job, c3, companyTwo))
	require.Equal(t, p.serverWall(at), p.watermark(job.Name, companyOne), "1001's watermark moves to the change")
	require.Equal(t, wm[companyTwo], p.watermark(job.Name, companyTwo), "1002's stays")

	// And a fourth run has nothing again.
	_, res, err = p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(0), res.Rows)
}

// touchedKeys asks the sandbox, with an independent query, for the keys of
// the rows of company whose changedTimestamp is at.
func touchedKeys(t *testing.T, p *pipeline, company int64, at time.Time) []int64 {
	t.Helper()
	bc, err := p.clients.Client("service")
	require.NoError(t, err)
	resp, err := bc.Do(t.Context(), bnxt.Request{
		Query: `query($cid: Int, $at: DateTime) { useCompany(no: $cid) {
			associate(first: 1000, filter: {changedTimestamp: {_eq: $at}}) { items { associateNo } } } }`,
		Variables: map[string]any{"cid": company, "at": p.serverWall(at)},
		Company:   company,
	})
	require.NoError(t, err)
	var data struct {
		UseCompany struct {
			Associate struct {
				Items []struct {
					AssociateNo int64 `json:"associateNo"`
				} `json:"items"`
			} `json:"associate"`
		} `json:"useCompany"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &data))
	var out []int64
	for _, it := range data.UseCompany.Associate.Items {
		out = append(out, it.AssociateNo)
	}
	return out
}

func TestRunDropsRepeatsInsideLookback(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", incrementalAssociatesYAML(7))

	c1, _, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	wm := p.watermark(job.Name, companyOne)
	require.NotEmpty(t, wm)
	w := p.serverTime(wm)

	// Changes committed late (inside the lookback, below the watermark) and
	// changes at the watermark's very millisecond: the next run re-reads the
	// lookback window and must deliver these and only these.
	late := w.Add(-2 * time.Minute)
	atLate, atWM := touchedKeys(t, p, companyOne, late), touchedKeys(t, p, companyOne, w)
	require.Len(t, atWM, 1, "the row that set the watermark")
	_, err = p.sb.Engine().Touch(int(companyOne), "associate", 4, late)
	require.NoError(t, err)
	_, err = p.sb.Engine().Touch(int(companyOne), "associate", 3, w)
	require.NoError(t, err)
	changed := append(without(touchedKeys(t, p, companyOne, late), atLate), without(touchedKeys(t, p, companyOne, w), atWM)...)
	require.Len(t, changed, 7, "touches pick distinct rows")

	c2, res, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(7), res.Rows)
	require.ElementsMatch(t, changed, keys(t, p.rows(job, c2, companyOne), "associateNo"))
	require.Empty(t, p.rows(job, c2, companyTwo), "1002's lookback window holds only repeats")
	require.Equal(t, wm, p.watermark(job.Name, companyOne), "nothing above the watermark")

	// The window is read again and everything in it is a repeat now.
	c3, res, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(0), res.Rows)

	// Across every file, each (key, timestamp) was delivered once.
	seen := map[string]string{}
	for _, c := range []store.Claim{c1, c2, c3} {
		for _, company := range []int64{companyOne, companyTwo} {
			for _, r := range p.rows(job, c, company) {
				ts, _ := r["changedTimestamp"].(string)
				k := strconv.Itoa(int(company)) + "/" + strconv.Itoa(int(r["associateNo"].(float64))) + "@" + ts
				require.NotContains(t, seen, k, "delivered twice")
				seen[k] = c.Slot.String()
			}
		}
	}
	require.Len(t, seen, 2*sandboxRows+7)
}

const ordersYAML = `schedule: "@every 1h"
connection: service
companies: [1001, 1002]
query: |
  query($cid: Int, $first: Int, $after: String, $filter: FilterExpression_Order, $lines: Int) {
    useCompany(no: $cid) {
      order(first: $first, after: $after, filter: $filter,
            orderBy: [{changedTimestamp: ASC}, {orderNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items {
          orderNo changedTimestamp
          joindown_OrderLine_via_Order(first: $lines) {
            pageInfo { hasNextPage }
            items { lineNo }
          }
        }
      }
    }
  }
page_size: 50
incremental: {key: [orderNo]}
` + fileSinkYAML + "\n"

func TestRunNestedConnectionTruncatedFails(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("orders", ordersYAML+"variables: {lines: 1}\n")

	c, res, err := p.run(job, store.RunOptions{})
	require.Error(t, err)
	require.ErrorIs(t, err, jobs.ErrPermanent, "raising first is the only fix: no retry")
	require.Contains(t, err.Error(), "nested joindown_OrderLine_via_Order truncated at 1; raise first or import orderLine as its own job")
	require.Equal(t, 0, res.Companies)
	for _, company := range []int64{companyOne, companyTwo} {
		require.Contains(t, err.Error(), "company "+strconv.Itoa(int(company))+":")
		p.noFile(job, c, company)
		require.Empty(t, p.watermark(job.Name, company))
	}
	require.Empty(t, p.files(job), "no final and no temporary file")

	// With room for every line (at most 5 per order) the same query passes.
	job = p.job("orders", ordersYAML+"variables: {lines: 5}\n")
	c, res, err = p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(2*sandboxRows), res.Rows)
	withLines := 0
	for _, r := range p.rows(job, c, companyOne) {
		if len(r["joindown_OrderLine_via_Order"].(map[string]any)["items"].([]any)) > 1 {
			withLines++
		}
	}
	require.Positive(t, withLines, "some orders have several lines")
}

// A connection nested inside another's items is checked in every item.
func TestRunNestedConnectionInsideItemsIsChecked(t *testing.T) {
	p := newPipeline(t, nil)
	yaml := func(inner int) string {
		return `schedule: "@every 1h"
connection: service
companies: [1001]
query: |
  query($cid: Int, $first: Int, $after: String) {
    useCompany(no: $cid) {
      order(first: $first, after: $after, orderBy: [{orderNo: ASC}]) {
        pageInfo { hasNextPage endCursor }
        items {
          orderNo
          joindown_OrderLine_via_Order(first: 5) {
            pageInfo { hasNextPage }
            items {
              lineNo
              joinup_Order {
                joindown_OrderLine_via_Order(first: ` + strconv.Itoa(inner) + `) {
                  pageInfo { hasNextPage }
                  items { lineNo }
                }
              }
            }
          }
        }
      }
    }
  }
page_size: 50
` + fileSinkYAML + "\n"
	}
	job := p.job("lines", yaml(5))
	c, res, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(sandboxRows), res.Rows)
	require.Len(t, p.rows(job, c, companyOne), sandboxRows)

	job = p.job("lines", yaml(1))
	c, _, err = p.run(job, store.RunOptions{})
	require.ErrorIs(t, err, jobs.ErrPermanent)
	require.Contains(t, err.Error(),
		"nested joindown_OrderLine_via_Order.items.joinup_Order.joindown_OrderLine_via_Order truncated at 1; raise first or import orderLine as its own job")
	p.noFile(job, c, companyOne)
}

func TestRunErrorClasses(t *testing.T) {
	oneCompany := strings.Replace(incrementalAssociatesYAML(100), "companies: [1001, 1002]", "companies: [1001]", 1)
	tests := []struct {
		name        string
		faults      []sandbox.Fault
		options     store.RunOptions
		variables   string
		all         bool   // companies: all
		errContains string // "" = success
		permanent   bool
	}{
		{
			name:        "graphql errors array",
			faults:      []sandbox.Fault{{Endpoint: sandbox.EndpointGraphQLService, Kind: sandbox.FaultGraphQLError, Next: 1}},
			errContains: "graphql errors: An unexpected error occurred while executing the request (sandbox fault).",
			permanent:   true,
		},
		{
			name:        "filter on an unknown field",
			variables:   "variables: {filter: {noSuchColumn: {_eq: 1}}}\n",
			errContains: "graphql errors: unknown field",
			permanent:   true,
		},
		{
			name: "429 then 500 are retried",
			faults: []sandbox.Fault{
				{Endpoint: sandbox.EndpointGraphQLService, Kind: sandbox.FaultTooManyRequests, Next: 1},
				{Endpoint: sandbox.EndpointGraphQLService, Kind: sandbox.FaultInternalError, Next: 1},
			},
		},
		{
			name:        "partial data with errors",
			all:         true,
			options:     store.RunOptions{Company: ptr(int64(9999))},
			errContains: "partial data with errors: company 9999 is not available",
			permanent:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipeline(t, nil)
			yaml := oneCompany + tt.variables
			if tt.all {
				yaml = strings.Replace(yaml, "companies: [1001]", "companies: all", 1)
			}
			job := p.job("associates", yaml)
			for _, f := range tt.faults {
				require.NoError(t, p.sb.AddFault(f))
			}
			company := companyOne
			if tt.options.Company != nil {
				company = *tt.options.Company
			}
			c, res, err := p.run(job, tt.options)
			if tt.errContains == "" {
				require.NoError(t, err)
				require.Equal(t, int64(sandboxRows), res.Rows)
				require.Len(t, p.rows(job, c, company), sandboxRows)
				require.Empty(t, p.sb.Faults(), "every fault was met")
				return
			}
			require.ErrorContains(t, err, tt.errContains)
			require.Equal(t, tt.permanent, errors.Is(err, jobs.ErrPermanent), "permanent: %v", err)
			var be *bnxt.Error
			require.ErrorAs(t, err, &be)
			require.NotEmpty(t, be.TraceID, "the error carries the trace id")
			p.noFile(job, c, company)
			require.Empty(t, p.watermark(job.Name, company))
			require.Empty(t, p.files(job))
		})
	}
}

// without returns the elements of a that are not in b.
func without(a, b []int64) []int64 {
	var out []int64
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func TestRunStopMidRunIsInterrupted(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", incrementalAssociatesYAML(10))
	_, _, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	wm := map[int64]string{companyOne: p.watermark(job.Name, companyOne), companyTwo: p.watermark(job.Name, companyTwo)}

	// 200 changed rows per company are 20 pages each; every request takes
	// 50ms.
	at := time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	for _, company := range []int64{companyOne, companyTwo} {
		_, err := p.sb.Engine().Touch(int(company), "associate", 200, at)
		require.NoError(t, err)
	}
	o := p.sb.Options()
	o.Latency = 50 * time.Millisecond
	require.NoError(t, p.sb.Apply(o))
	before := p.sb.Stats().GraphQLRequests.GraphQLService.OK

	c := p.claim(job, store.RunOptions{}, time.Minute)
	stop := make(chan struct{})
	type outcome struct {
		res jobs.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := p.runner.Run(t.Context(), job, jobs.Attempt{Claim: c, Stop: stop})
		done <- outcome{res, err}
	}()
	waitUntil(t, "two pages were served", func() bool {
		return p.sb.Stats().GraphQLRequests.GraphQLService.OK >= before+2
	})
	close(stop)
	var out outcome
	select {
	case out = <-done:
	case <-time.After(waitFor):
		t.Fatal("the run did not stop")
	}
	p.finish(c, out.res, out.err)

	require.ErrorIs(t, out.err, jobs.ErrInterrupted)
	require.NotErrorIs(t, out.err, jobs.ErrPermanent, "a later attempt can finish the job")
	require.Equal(t, 0, out.res.Companies)
	served := p.sb.Stats().GraphQLRequests.GraphQLService.OK - before
	require.Less(t, served, int64(2*20), "no company read all its pages")
	for _, company := range []int64{companyOne, companyTwo} {
		p.noFile(job, c, company)
		require.Equal(t, wm[company], p.watermark(job.Name, company))
	}
	for _, f := range p.files(job) {
		require.NotContains(t, f, ".nxtcron-tmp-", "the writers were aborted")
	}
}

func TestRunFencedAttemptCannotCommitWatermark(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", incrementalAssociatesYAML(100))

	// The attempt's lease runs out and another replica takes the slot over
	// before the attempt commits.
	c := p.claim(job, store.RunOptions{}, 20*time.Millisecond)
	var taken []store.Claim
	waitUntil(t, "the slot is taken over", func() bool {
		var err error
		taken, err = p.st.TakeOver(t.Context(), store.TakeOverRequest{
			Owner: "other", Lease: time.Minute, Jobs: map[string]string{job.Name: job.DefinitionHash}, Limit: 1,
		})
		require.NoError(t, err)
		return len(taken) == 1
	})
	require.Greater(t, taken[0].Fence, c.Fence)

	_, err := p.runner.Run(t.Context(), job, jobs.Attempt{Claim: c, Stop: make(chan struct{})})
	require.ErrorIs(t, err, store.ErrFenced)
	for _, company := range []int64{companyOne, companyTwo} {
		require.Contains(t, err.Error(), "company "+strconv.Itoa(int(company))+": committing watermark")
		require.Empty(t, p.watermark(job.Name, company), "a fenced attempt moves no watermark")
	}

	// The new owner's attempt commits.
	taken[0].Slot = slotBase.Add(time.Hour)
	res, err := p.runner.Run(t.Context(), job, jobs.Attempt{Claim: taken[0], Stop: make(chan struct{})})
	require.NoError(t, err)
	require.Equal(t, int64(2*sandboxRows), res.Rows)
	require.NotEmpty(t, p.watermark(job.Name, companyOne))
}

func TestRunCompanyOptionAndFull(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", strings.Replace(incrementalAssociatesYAML(40), "companies: [1001, 1002]", "companies: all", 1))

	// --company 1002: only that company, without asking for the list.
	c, res, err := p.run(job, store.RunOptions{Company: ptr(companyTwo)})
	require.NoError(t, err)
	require.Equal(t, jobs.Result{Rows: sandboxRows, Companies: 1}, res)
	require.Len(t, p.rows(job, c, companyTwo), sandboxRows)
	p.noFile(job, c, companyOne)
	require.Empty(t, p.watermark(job.Name, companyOne))
	wm := p.watermark(job.Name, companyTwo)
	require.NotEmpty(t, wm)
	require.Equal(t, int64(7), p.sb.Stats().GraphQLRequests.GraphQLService.OK, "7 pages, no availableCompanies")

	// An incremental run of 1002 finds nothing new...
	_, res, err = p.run(job, store.RunOptions{Company: ptr(companyTwo)})
	require.NoError(t, err)
	require.Equal(t, int64(0), res.Rows)

	// ...and --full reads everything again, ignoring the watermark, which
	// does not move backwards.
	c, res, err = p.run(job, store.RunOptions{Company: ptr(companyTwo), Full: true})
	require.NoError(t, err)
	require.Equal(t, int64(sandboxRows), res.Rows)
	require.Len(t, p.rows(job, c, companyTwo), sandboxRows)
	require.Equal(t, wm, p.watermark(job.Name, companyTwo))

	// Without options: every available company; 1001 for the first time.
	c, res, err = p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, jobs.Result{Rows: sandboxRows, Companies: 2}, res)
	require.Len(t, p.rows(job, c, companyOne), sandboxRows)
	require.Empty(t, p.rows(job, c, companyTwo))
}

// A job's own filter variable is ANDed with the incremental one.
func TestRunIncrementalKeepsTheJobsFilter(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", incrementalAssociatesYAML(40)+
		"variables: {filter: {associateNo: {_lt: 126}}}\n")
	c, res, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	first := keys(t, p.rows(job, c, companyOne), "associateNo")
	require.NotEmpty(t, first)
	for _, k := range first {
		require.Less(t, k, int64(126))
	}
	require.Equal(t, int64(2*len(first)), res.Rows)

	at := time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	_, err = p.sb.Engine().Touch(int(companyOne), "associate", 40, at)
	require.NoError(t, err)
	var want []int64
	for _, k := range touchedKeys(t, p, companyOne, at) {
		if k < 126 {
			want = append(want, k)
		}
	}
	c, _, err = p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.ElementsMatch(t, want, keys(t, p.rows(job, c, companyOne), "associateNo"))
}

// A row that changes while an incremental import runs moves to the end of
// the (changedTimestamp, key) order; every row after its old place moves up
// one. Offset cursors then skip a row below the watermark, lost for good;
// the import pages by keyset and loses none.
func TestRunRowsChangedMidRunSkipNothing(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", incrementalAssociatesYAML(10))
	o := p.sb.Options()
	o.Latency = 20 * time.Millisecond
	require.NoError(t, p.sb.Apply(o))

	c := p.claim(job, store.RunOptions{Company: ptr(companyOne)}, time.Minute)
	done := make(chan error, 1)
	go func() {
		res, err := p.runner.Run(t.Context(), job, jobs.Attempt{Claim: c, Stop: make(chan struct{})})
		p.finish(c, res, err)
		done <- err
	}()
	// 25 pages of 10; change 10 rows once 15 pages are read, most of them
	// behind the import's position.
	waitUntil(t, "15 pages were served", func() bool { return p.sb.Stats().GraphQLRequests.GraphQLService.OK >= 15 })
	at := time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	_, err := p.sb.Engine().Touch(int(companyOne), "associate", 10, at)
	require.NoError(t, err)
	touched := touchedKeys(t, p, companyOne, at)
	require.Len(t, touched, 10)
	select {
	case err = <-done:
	case <-time.After(waitFor):
		t.Fatal("the run did not end")
	}
	require.NoError(t, err)

	got := map[int64][]string{}
	for _, r := range p.rows(job, c, companyOne) {
		k := int64(r["associateNo"].(float64))
		ts, _ := r["changedTimestamp"].(string)
		require.NotContains(t, got[k], ts, "associate %d delivered twice with %q", k, ts)
		got[k] = append(got[k], ts)
	}
	var missing []int64
	for k := int64(1); k <= sandboxRows; k++ { // associateNo is 1..250
		if _, ok := got[k]; !ok {
			missing = append(missing, k)
		}
	}
	require.Empty(t, missing, "every associate is delivered")
	require.Len(t, got, sandboxRows)
	for _, k := range touched {
		require.Contains(t, got[k], p.serverWall(at), "associate %d's change is delivered", k)
	}
	require.Equal(t, p.serverWall(at), p.watermark(job.Name, companyOne))

	// Nothing is left for the next run.
	_, res, err := p.run(job, store.RunOptions{Company: ptr(companyOne)})
	require.NoError(t, err)
	require.Equal(t, int64(0), res.Rows)
}

// Once Attempt.Stop is closed no company starts: a company not yet begun
// sends no request and begins no file.
func TestRunStopStartsNoFurtherCompany(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", incrementalAssociatesYAML(40)+"parallelism: 1\n")
	stopped := make(chan struct{})
	close(stopped)
	// The company feed and the stop channel race: try often.
	for range 30 {
		c := p.claim(job, store.RunOptions{}, time.Minute)
		res, err := p.runner.Run(t.Context(), job, jobs.Attempt{Claim: c, Stop: stopped})
		p.finish(c, res, err)
		require.ErrorIs(t, err, jobs.ErrInterrupted)
		require.Equal(t, jobs.Result{}, res)
	}
	require.Equal(t, sandbox.GraphQLStats{}, p.sb.Stats().GraphQLRequests, "no request was sent")
	require.Empty(t, p.files(job))

	// Stopped during 1001's first page: 1001 ends after it, 1002 never
	// starts (the company feed and the stop channel are both ready then).
	o := p.sb.Options()
	o.Latency = 30 * time.Millisecond
	require.NoError(t, p.sb.Apply(o))
	for range 10 {
		before := p.sb.Stats().GraphQLRequests.GraphQLService.OK
		stop := make(chan struct{})
		c := p.claim(job, store.RunOptions{}, time.Minute)
		done := make(chan error, 1)
		go func() {
			res, err := p.runner.Run(t.Context(), job, jobs.Attempt{Claim: c, Stop: stop})
			p.finish(c, res, err)
			done <- err
		}()
		waitUntil(t, "1001's first page is asked for", func() bool { return p.sb.Engine().InFlight(int(companyOne)) > 0 })
		close(stop)
		require.ErrorIs(t, <-done, jobs.ErrInterrupted)
		require.Equal(t, int64(1), p.sb.Stats().GraphQLRequests.GraphQLService.OK-before, "only the page in flight")
		p.noFile(job, c, companyOne)
		p.noFile(job, c, companyTwo)
	}
	for _, f := range p.files(job) {
		require.False(t, strings.HasPrefix(f, "1002"), "1002 was never begun: %s", f)
	}
	require.Empty(t, p.watermark(job.Name, companyOne))
}

// --company picks one of the job's companies; a company the job does not
// list is refused before anything is read.
func TestRunCompanyOptionOutsideTheJobsList(t *testing.T) {
	p := newPipeline(t, func(o *sandbox.Options) { o.Companies = 3 })
	job := p.job("associates", incrementalAssociatesYAML(100))
	c, res, err := p.run(job, store.RunOptions{Company: ptr(int64(1003))})
	require.ErrorIs(t, err, jobs.ErrPermanent)
	require.EqualError(t, err, "company 1003 is not one of the companies of job associates (1001, 1002)")
	require.Equal(t, jobs.Result{}, res)
	require.Equal(t, sandbox.GraphQLStats{}, p.sb.Stats().GraphQLRequests)
	p.noFile(job, c, 1003)
	require.Empty(t, p.watermark(job.Name, 1003))
}

// More rows share one timestamp than a page holds: each is delivered once.
func TestRunManyRowsAtOneTimestamp(t *testing.T) {
	p := newPipeline(t, nil)
	job := p.job("associates", strings.Replace(incrementalAssociatesYAML(7), "companies: [1001, 1002]", "companies: [1001]", 1))
	c, res, err := p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(sandboxRows), res.Rows)
	require.Len(t, slices.Compact(slices.Sorted(slices.Values(keys(t, p.rows(job, c, companyOne), "associateNo")))), sandboxRows)

	at := time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	_, err = p.sb.Engine().Touch(int(companyOne), "associate", 30, at)
	require.NoError(t, err)
	touched := touchedKeys(t, p, companyOne, at)
	require.Len(t, touched, 30)
	c, res, err = p.run(job, store.RunOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(30), res.Rows)
	got := keys(t, p.rows(job, c, companyOne), "associateNo")
	require.ElementsMatch(t, touched, got, "each once")
	require.True(t, slices.IsSorted(got), "in key order within the timestamp")
}
