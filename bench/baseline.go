package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/jackc/pgx/v5"
)

// bareResult is what the bare HTTP loop did.
type bareResult struct {
	Elapsed time.Duration
	Pages   int
}

// bareFetch is limit (a): the job's pages, fetched one at a time (as
// nxtcron fetches one company's) by a plain net/http loop with the same
// query, variables, page size and Accept-Encoding. It reads each body only
// as far as pageInfo (which the query selects first) and discards the rest.
// The token request is not timed.
func bareFetch(ctx context.Context, base string, pageSize int) (bareResult, error) {
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 70 * time.Second}
	defer hc.CloseIdleConnections()
	token, err := serviceToken(ctx, hc, base)
	if err != nil {
		return bareResult{}, err
	}
	endpoint := base + "/api/graphql-service"
	var res bareResult
	var after *string
	start := time.Now()
	for {
		body, err := json.Marshal(map[string]any{
			"query": benchQuery,
			"variables": map[string]any{
				"cid": company, "first": pageSize, "after": after, "filter": map[string]any{},
			},
		})
		if err != nil {
			return res, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			return res, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Accept-Encoding", "br, gzip")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return res, fmt.Errorf("page %d: %w", res.Pages+1, err)
		}
		next, cursor, err := readPageInfo(resp)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return res, fmt.Errorf("page %d: %w", res.Pages+1, err)
		}
		res.Pages++
		if !next {
			break
		}
		after = &cursor
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// pageInfoPrefix is how the response starts, up to the cursor: pageInfo is
// the connection's first selection.
const (
	hasNextKey   = `"hasNextPage":`
	endCursorKey = `"endCursor":"`
)

// readPageInfo decodes the start of a page's body, as far as its
// hasNextPage and endCursor.
func readPageInfo(resp *http.Response) (next bool, cursor string, err error) {
	if resp.StatusCode != http.StatusOK {
		return false, "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var r io.Reader = resp.Body
	switch resp.Header.Get("Content-Encoding") {
	case "br":
		r = brotli.NewReader(resp.Body)
	case "gzip":
		gz, err := gzip.NewReader(resp.Body)
		if err != nil {
			return false, "", err
		}
		r = gz
	case "":
	default:
		return false, "", fmt.Errorf("content encoding %q", resp.Header.Get("Content-Encoding"))
	}
	br := bufio.NewReaderSize(r, 512)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return false, "", err
	}
	i := bytes.Index(head, []byte(hasNextKey))
	if i < 0 {
		return false, "", fmt.Errorf("no hasNextPage in %q", head)
	}
	next = bytes.HasPrefix(head[i+len(hasNextKey):], []byte("true"))
	if !next {
		return false, "", nil
	}
	j := bytes.Index(head, []byte(endCursorKey))
	if j < 0 {
		return false, "", fmt.Errorf("no endCursor in %q", head)
	}
	rest := head[j+len(endCursorKey):]
	k := bytes.IndexByte(rest, '"')
	if k < 0 {
		return false, "", fmt.Errorf("unterminated endCursor in %q", head)
	}
	return true, string(rest[:k]), nil
}

// serviceToken gets an access token of the sandbox's service client.
func serviceToken(ctx context.Context, hc *http.Client, base string) (string, error) {
	form := url.Values{
		"grant_type": {"client_credentials"},
		"scope":      {"business-graphql-service-api:access-group-based"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/connect/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("isv_sandbox_service", "sandbox-service-secret")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("getting a token: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("getting a token: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("getting a token: no access_token (%v)", err)
	}
	return tok.AccessToken, nil
}

// copyResult is what limit (b) did.
type copyResult struct {
	Elapsed time.Duration
	Rows    int64
}

// copyBaseline is limit (b): the rows nxtcron imported into table, dumped
// (untimed) to a binary COPY file, then COPYed by pgx from that file, a
// streaming source, into a fresh table with the same columns and unique
// key. Only the second COPY is timed.
func copyBaseline(ctx context.Context, dsn, schema, table, dumpPath string) (copyResult, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return copyResult{}, fmt.Errorf("connecting to the sink's database: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	src := pgx.Identifier{schema, table}.Sanitize()
	dst := pgx.Identifier{schema, table + "_copy"}.Sanitize()

	f, err := os.Create(dumpPath)
	if err != nil {
		return copyResult{}, err
	}
	defer func() { _ = f.Close(); _ = os.Remove(dumpPath) }()
	if _, err := conn.PgConn().CopyTo(ctx, f, "COPY "+src+" TO STDOUT (FORMAT binary)"); err != nil {
		return copyResult{}, fmt.Errorf("dumping %s: %w", src, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return copyResult{}, err
	}
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+dst); err != nil {
		return copyResult{}, err
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE "+dst+" (LIKE "+src+" INCLUDING ALL)"); err != nil {
		return copyResult{}, fmt.Errorf("creating %s: %w", dst, err)
	}
	start := time.Now()
	tag, err := conn.PgConn().CopyFrom(ctx, bufio.NewReaderSize(f, 1<<20), "COPY "+dst+" FROM STDIN (FORMAT binary)")
	elapsed := time.Since(start)
	if err != nil {
		return copyResult{}, fmt.Errorf("copying into %s: %w", dst, err)
	}
	if _, err := conn.Exec(ctx, "DROP TABLE "+dst); err != nil {
		return copyResult{}, err
	}
	return copyResult{Elapsed: elapsed, Rows: tag.RowsAffected()}, nil
}

// countRows counts the rows of schema.table.
func countRows(ctx context.Context, dsn, schema, table string) (int64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, table}.Sanitize()).Scan(&n)
	return n, err
}

// resetSchema drops and recreates schema (drop is false: only drops it).
func resetSchema(ctx context.Context, dsn, schema string, create bool) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", redact(dsn), err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return err
	}
	if create {
		_, err = conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	}
	return err
}

// redact hides a DSN's password.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<dsn>"
	}
	return u.Redacted()
}
