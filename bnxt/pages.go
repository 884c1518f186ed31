package bnxt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
)

// PageQuery is a query over one paged table connection. The query declares
// $first and $after (and $cid when Company is set); Pages fills them in.
type PageQuery struct {
	Query     string
	Variables map[string]any
	// Path leads from data to the paged connection, e.g.
	// []string{"useCompany", "associate"}.
	Path     []string
	PageSize int
	// Company is the vismaNetCompanyId: it becomes $cid and picks the
	// company semaphore. 0 sets no $cid.
	Company       int64
	OperationName string
}

// Page is one page of a connection. Items are the raw JSON objects, as the
// server sent them.
type Page struct {
	Items       []json.RawMessage
	HasNextPage bool
	EndCursor   string
	// TotalCount is set when the query selects totalCount.
	TotalCount *int64
	TraceID    string
	// Number counts pages from 1.
	Number int
}

// Pages walks a paged connection one page at a time.
type Pages struct {
	c     *Client
	q     PageQuery
	after string
	n     int
	done  bool
}

// Pages returns an iterator over the pages of q. Nothing is sent before the
// first Next.
func (c *Client) Pages(q PageQuery) *Pages {
	return &Pages{c: c, q: q}
}

// Next fetches the next page; io.EOF after the last one. A failed Next can be
// called again: it asks for the same page.
func (p *Pages) Next(ctx context.Context) (*Page, error) {
	if p.done {
		return nil, io.EOF
	}
	if p.q.PageSize <= 0 {
		return nil, fmt.Errorf("paging %s: page size %d: must be positive", p.where(), p.q.PageSize)
	}
	if len(p.q.Path) == 0 {
		return nil, errors.New("paging: no path to the paged connection")
	}
	vars := make(map[string]any, len(p.q.Variables)+3)
	maps.Copy(vars, p.q.Variables)
	vars["first"] = p.q.PageSize
	if p.n == 0 {
		vars["after"] = nil
	} else {
		vars["after"] = p.after
	}
	if p.q.Company != 0 {
		vars["cid"] = p.q.Company
	}
	resp, err := p.c.Do(ctx, Request{
		Query:         p.q.Query,
		Variables:     vars,
		OperationName: p.q.OperationName,
		Company:       p.q.Company,
	})
	if err != nil {
		return nil, err
	}
	page, err := decodePage(resp.Data, p.q.Path)
	if err != nil {
		return nil, fmt.Errorf("paging %s, page %d (connection %q, trace_id %s): %w",
			p.where(), p.n+1, p.c.conn, resp.TraceID, err)
	}
	if page.HasNextPage {
		if page.EndCursor == "" {
			return nil, fmt.Errorf("paging %s, page %d (connection %q, trace_id %s): hasNextPage without an endCursor",
				p.where(), p.n+1, p.c.conn, resp.TraceID)
		}
		if p.n > 0 && page.EndCursor == p.after {
			return nil, fmt.Errorf("paging %s, page %d (connection %q, trace_id %s): endCursor %q did not move",
				p.where(), p.n+1, p.c.conn, resp.TraceID, page.EndCursor)
		}
	}
	p.n++
	page.Number = p.n
	page.TraceID = resp.TraceID
	p.after = page.EndCursor
	p.done = !page.HasNextPage
	return page, nil
}

func (p *Pages) where() string {
	s := strings.Join(p.q.Path, ".")
	if p.q.Company != 0 {
		s += fmt.Sprintf(" of company %d", p.q.Company)
	}
	return s
}

// decodePage finds the connection at path and decodes its pageInfo,
// totalCount and items, leaving every item as raw JSON. It reads data once,
// as a stream: the page's cursor is on the critical path of the next
// request, so the fewer passes over a large page the better.
func decodePage(data json.RawMessage, path []string) (*Page, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	for i, key := range path {
		if err := enterKey(dec, key); err != nil {
			if errors.Is(err, errNull) {
				return nil, fmt.Errorf("%s is null", label(path[:i]))
			}
			if errors.Is(err, errMissing) {
				return nil, fmt.Errorf("%s not in the response", label(path[:i+1]))
			}
			return nil, fmt.Errorf("decoding %s: %w", label(path[:i]), err)
		}
	}
	var conn *struct {
		TotalCount *int64 `json:"totalCount"`
		PageInfo   *struct {
			HasNextPage *bool   `json:"hasNextPage"`
			EndCursor   *string `json:"endCursor"`
		} `json:"pageInfo"`
		Items []json.RawMessage `json:"items"`
	}
	if err := dec.Decode(&conn); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", label(path), err)
	}
	if conn == nil {
		return nil, fmt.Errorf("%s is null", label(path))
	}
	if conn.PageInfo == nil || conn.PageInfo.HasNextPage == nil {
		return nil, fmt.Errorf("%s: the query must select pageInfo { hasNextPage endCursor }", label(path))
	}
	page := &Page{
		Items:       conn.Items,
		HasNextPage: *conn.PageInfo.HasNextPage,
		TotalCount:  conn.TotalCount,
	}
	if conn.PageInfo.EndCursor != nil {
		page.EndCursor = *conn.PageInfo.EndCursor
	}
	return page, nil
}

var (
	errNull    = errors.New("null")
	errMissing = errors.New("missing")
)

// enterKey reads the start of an object from dec and its members up to key,
// skipping the others, and leaves dec at key's value. errNull when the
// object is null, errMissing when it has no key.
func enterKey(dec *json.Decoder, key string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return errNull
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("want an object, found %v", tok)
	}
	for dec.More() {
		name, err := dec.Token()
		if err != nil {
			return err
		}
		if name == key {
			return nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return errMissing
}

// label names a position in the response: data, or the path below it.
func label(path []string) string {
	if len(path) == 0 {
		return "data"
	}
	return strings.Join(path, ".")
}
