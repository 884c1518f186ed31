package bnxt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const associatesQuery = `query associates($cid: Int, $first: Int, $after: String) {
  useCompany(no: $cid) {
    associate(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      items { associateNo name }
    }
  }
}`

// pagedHandler serves rows 1..total of a table at useCompany.associate, with
// cursors that are the last row number as a string.
func pagedHandler(t *testing.T, total int) func(w http.ResponseWriter, r *http.Request, n int64) {
	return func(w http.ResponseWriter, r *http.Request, n int64) {
		var req struct {
			Variables struct {
				First *int    `json:"first"`
				After *string `json:"after"`
			} `json:"variables"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil || req.Variables.First == nil {
			t.Errorf("request without $first: %s", body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		start := 0
		if req.Variables.After != nil {
			start, _ = strconv.Atoi(*req.Variables.After)
		}
		end := min(start+*req.Variables.First, total)
		items := make([]string, 0, end-start)
		for i := start + 1; i <= end; i++ {
			items = append(items, fmt.Sprintf(`{"associateNo":%d,"name":"Associate %d","nested":{"deep":[1,2,3]}}`, i, i))
		}
		reply(w, fmt.Sprintf("trace-page-%d", n), fmt.Sprintf(
			`{"data":{"useCompany":{"associate":{"totalCount":%d,"pageInfo":{"hasNextPage":%t,"endCursor":"%d"},"items":[%s]}}}}`,
			total, end < total, end, strings.Join(items, ",")))
	}
}

func TestPagesWalksEveryPage(t *testing.T) {
	srv := newServer(t, pagedHandler(t, 95))
	h := newHarness(t, srv, nil)
	pages := h.client.Pages(PageQuery{
		Query:     associatesQuery,
		Variables: map[string]any{"filter": map[string]any{}},
		Path:      []string{"useCompany", "associate"},
		PageSize:  40,
		Company:   1001,
	})
	var rows []int
	var numbers []int
	for {
		p, err := pages.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		numbers = append(numbers, p.Number)
		require.Equal(t, fmt.Sprintf("trace-page-%d", p.Number), p.TraceID)
		require.NotNil(t, p.TotalCount)
		require.Equal(t, int64(95), *p.TotalCount)
		for _, it := range p.Items {
			var row struct{ AssociateNo int }
			require.NoError(t, json.Unmarshal(it, &row))
			rows = append(rows, row.AssociateNo)
			require.Contains(t, string(it), `"nested":{"deep":[1,2,3]}`, "items stay as the server sent them")
		}
	}
	require.Equal(t, []int{1, 2, 3}, numbers)
	require.Len(t, rows, 95)
	for i, r := range rows {
		require.Equal(t, i+1, r)
	}
	_, err := pages.Next(context.Background())
	require.ErrorIs(t, err, io.EOF, "EOF again after the end")

	got := srv.requests()
	require.Len(t, got, 3)
	require.Contains(t, got[0].Variables, "after")
	require.Nil(t, got[0].Variables["after"], "$after is null on the first page")
	require.Equal(t, "40", got[1].Variables["after"])
	require.Equal(t, "80", got[2].Variables["after"])
	for _, g := range got {
		require.Equal(t, float64(40), g.Variables["first"])
		require.Equal(t, float64(1001), g.Variables["cid"])
		require.Equal(t, map[string]any{}, g.Variables["filter"], "the query's own variables are kept")
	}
}

func TestPagesWithoutCompanySetsNoCid(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		reply(w, "t", `{"data":{"useCompany":{"associate":{"pageInfo":{"hasNextPage":false,"endCursor":null},"items":[]}}}}`)
	})
	h := newHarness(t, srv, nil)
	p, err := h.client.Pages(PageQuery{Query: associatesQuery, Path: []string{"useCompany", "associate"}, PageSize: 10}).Next(context.Background())
	require.NoError(t, err)
	require.Empty(t, p.Items)
	require.False(t, p.HasNextPage)
	require.Nil(t, p.TotalCount)
	require.NotContains(t, srv.requests()[0].Variables, "cid")
}

func TestPagesErrors(t *testing.T) {
	tests := []struct {
		name        string
		bodies      []string
		path        []string
		pageSize    int
		errContains string
	}{
		{
			name:        "no pageInfo",
			bodies:      []string{`{"data":{"useCompany":{"associate":{"items":[{"a":1}]}}}}`},
			errContains: `paging useCompany.associate of company 1001, page 1 (connection "service", trace_id trace-1): useCompany.associate: the query must select pageInfo { hasNextPage endCursor }`,
		},
		{
			name:        "company null",
			bodies:      []string{`{"data":{"useCompany":null}}`},
			errContains: "useCompany is null",
		},
		{
			name:        "path missing",
			bodies:      []string{`{"data":{"useCompany":{"generalLedgerAccount":{}}}}`},
			errContains: "useCompany.associate not in the response",
		},
		{
			name:        "next page without cursor",
			bodies:      []string{`{"data":{"useCompany":{"associate":{"pageInfo":{"hasNextPage":true},"items":[]}}}}`},
			errContains: "hasNextPage without an endCursor",
		},
		{
			name: "cursor does not move",
			bodies: []string{
				`{"data":{"useCompany":{"associate":{"pageInfo":{"hasNextPage":true,"endCursor":"c1"},"items":[]}}}}`,
				`{"data":{"useCompany":{"associate":{"pageInfo":{"hasNextPage":true,"endCursor":"c1"},"items":[]}}}}`,
			},
			errContains: `page 2 (connection "service", trace_id trace-2): endCursor "c1" did not move`,
		},
		{name: "no page size", pageSize: -1, errContains: "page size -1: must be positive"},
		{name: "no path", path: []string{}, errContains: "no path to the paged connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
				reply(w, fmt.Sprintf("trace-%d", n), tt.bodies[n-1])
			})
			h := newHarness(t, srv, nil)
			q := PageQuery{Query: associatesQuery, Path: []string{"useCompany", "associate"}, PageSize: 10, Company: 1001}
			if tt.path != nil {
				q.Path = tt.path
			}
			if tt.pageSize != 0 {
				q.PageSize = tt.pageSize
			}
			pages := h.client.Pages(q)
			var err error
			for range len(tt.bodies) + 1 {
				if _, err = pages.Next(context.Background()); err != nil {
					break
				}
			}
			require.ErrorContains(t, err, tt.errContains)
			require.Equal(t, int64(len(tt.bodies)), srv.gqlRequests.Load())
		})
	}
}

func TestPagesFailedNextAsksForTheSamePageAgain(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 2 {
			reply(w, "trace-bad", `{"errors":[{"message":"boom"}]}`)
			return
		}
		pagedHandler(t, 15)(w, r, n)
	})
	h := newHarness(t, srv, nil)
	pages := h.client.Pages(PageQuery{Query: associatesQuery, Path: []string{"useCompany", "associate"}, PageSize: 10, Company: 1001})
	_, err := pages.Next(context.Background())
	require.NoError(t, err)
	_, err = pages.Next(context.Background())
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, ClassGraphQL, e.Class)
	p, err := pages.Next(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, p.Number)
	require.Len(t, p.Items, 5)
	got := srv.requests()
	require.Equal(t, "10", got[1].Variables["after"])
	require.Equal(t, "10", got[2].Variables["after"])
}

func TestCompanies(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		reply(w, "trace-c", `{"data":{"availableCompanies":{"totalCount":2,"items":[
			{"name":"Demo AS","vismaNetCompanyId":1001,"vismaNetCustomerId":5001},
			{"name":"Demo 2 AS","vismaNetCompanyId":1002,"vismaNetCustomerId":5001}]}}}`)
	})
	h := newHarness(t, srv, nil)
	companies, err := h.client.Companies(context.Background())
	require.NoError(t, err)
	require.Equal(t, []Company{
		{Name: "Demo AS", VismaNetCompanyID: 1001, VismaNetCustomerID: 5001},
		{Name: "Demo 2 AS", VismaNetCompanyID: 1002, VismaNetCustomerID: 5001},
	}, companies)
	got := srv.requests()
	require.Len(t, got, 1)
	require.Contains(t, got[0].Query, "availableCompanies")
	require.Equal(t, "nxtcronAvailableCompanies", got[0].OperationName)
}

func TestCompaniesNull(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		reply(w, "trace-n", `{"data":{"availableCompanies":null}}`)
	})
	h := newHarness(t, srv, nil)
	_, err := h.client.Companies(context.Background())
	require.ErrorContains(t, err, `availableCompanies is null (connection "service", trace_id trace-n)`)
}
