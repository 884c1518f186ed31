package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nxtcron/nxtcron/sandbox/connect"
	"github.com/nxtcron/nxtcron/sandbox/graph"
)

// Limits of a GraphQL request.
const (
	MaxBatch       = 32
	MaxRequestBody = 4 << 20
)

// outstandingLimitBody is the answer Business NXT gives a request beyond the
// concurrency limit of a company.
const outstandingLimitBody = `{"data":null,"errors":[{"message":"The number of outstanding requests for the company or customer exceeds the limit; retry later.","extensions":{"code":"OUTSTANDING_LIMIT_EXCEEDED"}}]}`

const graphQLErrorBody = `{"data":null,"errors":[{"message":"An unexpected error occurred while executing the request (sandbox fault).","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`

var unauthorizedPage = template.Must(template.New("401").Parse(`<!DOCTYPE html>
<html>
<head><title>401 - Unauthorized: Access is denied due to invalid credentials.</title></head>
<body>
<h1>Server Error</h1>
<h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2>
<p>You do not have permission to view this directory or page using the credentials that you supplied.</p>
<p>Sandbox: {{.}}</p>
</body>
</html>
`))

// authenticate checks the bearer token for endpoint: signature, expiry,
// issuer, audience (the endpoint's URL) and scope.
func (s *Server) authenticate(r *http.Request, endpoint string) (*connect.AccessClaims, error) {
	raw := connect.BearerToken(r)
	if raw == "" {
		return nil, errors.New("no bearer token")
	}
	path := connect.PathGraphQL
	if endpoint == EndpointGraphQLService {
		path = connect.PathGraphQLService
	}
	c, err := s.provider.VerifyAccessToken(raw, s.provider.Issuer(r), connect.BaseURL(r)+path)
	if err != nil {
		return nil, err
	}
	ok := false
	if endpoint == EndpointGraphQLService {
		ok = c.HasScope(connect.ScopeGraphQLService) || c.HasScope(connect.ScopeGraphQLServiceReadonly)
	} else {
		ok = c.HasScope(connect.ScopeGraphQL)
	}
	if !ok {
		return nil, fmt.Errorf("the token lacks the scope of %s", path)
	}
	return c, nil
}

func writeUnauthorized(w http.ResponseWriter, reason string) {
	desc := strings.NewReplacer(`"`, "'", "\\", "/", "\n", " ").Replace(reason)
	h := w.Header()
	h.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
	h.Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusUnauthorized)
	_ = unauthorizedPage.Execute(w, reason)
}

func writeTooManyRequests(w http.ResponseWriter, retryAfter time.Duration) {
	secs := int(math.Ceil(retryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	http.Error(w, "Too Many Requests: more than the allowed requests per minute for this token.", http.StatusTooManyRequests)
}

func writeStatus(w http.ResponseWriter, status int) {
	http.Error(w, strconv.Itoa(status)+" "+http.StatusText(status), status)
}

// graphQLResult is an executed request body and what went into it.
type graphQLResult struct {
	status int
	body   []byte
	res    graph.Result
}

func (s *Server) serveGraphQL(w http.ResponseWriter, r *http.Request, endpoint string) {
	counters := s.stats.endpoint(endpoint)
	if r.Method != http.MethodPost {
		counters.err.Add(1)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "405 Method Not Allowed: use POST", http.StatusMethodNotAllowed)
		return
	}
	claims, err := s.authenticate(r, endpoint)
	if err != nil {
		counters.unauthorized.Add(1)
		writeUnauthorized(w, err.Error())
		return
	}
	opts := s.Options()
	if ok, retry := s.limiter.allow(claims.ID, s.now(), opts.RateLimit); !ok {
		counters.rateLimited.Add(1)
		writeTooManyRequests(w, retry)
		return
	}
	fault := s.faults.take(endpoint)
	if fault != nil {
		switch fault.Kind {
		case FaultUnauthorized:
			counters.unauthorized.Add(1)
			writeUnauthorized(w, "sandbox fault")
			return
		case FaultTooManyRequests:
			counters.rateLimited.Add(1)
			writeTooManyRequests(w, time.Duration(fault.RetryAfter)*time.Second)
			return
		case FaultInternalError, FaultBadGateway:
			counters.err.Add(1)
			status, _ := strconv.Atoi(fault.Kind)
			writeStatus(w, status)
			return
		case FaultGraphQLError:
			counters.err.Add(1)
			s.writeJSON(w, r, opts, http.StatusOK, []byte(graphQLErrorBody))
			return
		case FaultOutstandingLimit:
			counters.outstandingLimited.Add(1)
			s.writeJSON(w, r, opts, http.StatusOK, []byte(outstandingLimitBody))
			return
		}
	}
	out := s.execute(r)
	s.stats.rows.Add(int64(out.res.Rows))
	switch {
	case out.res.OutstandingLimited:
		counters.outstandingLimited.Add(1)
	case out.status != http.StatusOK || out.res.Errors > 0:
		counters.err.Add(1)
	case fault != nil && fault.Kind == FaultTruncated:
		counters.err.Add(1)
	default:
		counters.ok.Add(1)
	}
	if out.status == 0 {
		return // the client went away
	}
	body := out.body
	if fault != nil {
		switch fault.Kind {
		case FaultSlow:
			if !sleep(r.Context(), fault.Delay) {
				return
			}
		case FaultTruncated:
			body = body[:len(body)/2]
		}
	}
	s.writeJSON(w, r, opts, out.status, body)
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// execute reads the request body (one operation or a batch of at most
// MaxBatch) and runs it on the engine. A status of 0 means the client went
// away and nothing is to be written.
func (s *Server) execute(r *http.Request) graphQLResult {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxRequestBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return badRequest(fmt.Sprintf("the request body exceeds %d bytes", MaxRequestBody))
		}
		return badRequest("reading the request body: " + err.Error())
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var batch []graph.Request
		if err := json.Unmarshal(raw, &batch); err != nil {
			return badRequest("the request body is not a valid GraphQL request batch: " + err.Error())
		}
		if len(batch) == 0 || len(batch) > MaxBatch {
			return badRequest(fmt.Sprintf("a batch must hold 1 to %d operations, not %d", MaxBatch, len(batch)))
		}
		var buf bytes.Buffer
		var total graph.Result
		buf.WriteByte('[')
		for i, req := range batch {
			if i > 0 {
				buf.WriteByte(',')
			}
			res, err := s.engine.Execute(r.Context(), req, &buf)
			total.Rows += res.Rows
			total.Errors += res.Errors
			total.OutstandingLimited = total.OutstandingLimited || res.OutstandingLimited
			if err != nil {
				return executeFailed(r.Context(), err, total)
			}
		}
		buf.WriteByte(']')
		return graphQLResult{status: http.StatusOK, body: buf.Bytes(), res: total}
	}
	var req graph.Request
	if err := json.Unmarshal(raw, &req); err != nil {
		return badRequest("the request body is not a valid GraphQL request: " + err.Error())
	}
	var buf bytes.Buffer
	res, err := s.engine.Execute(r.Context(), req, &buf)
	if err != nil {
		return executeFailed(r.Context(), err, res)
	}
	return graphQLResult{status: http.StatusOK, body: buf.Bytes(), res: res}
}

func badRequest(msg string) graphQLResult {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]any{{
		"message":    msg,
		"extensions": map[string]string{"code": "BAD_REQUEST"},
	}}})
	return graphQLResult{status: http.StatusBadRequest, body: body, res: graph.Result{Errors: 1}}
}

func executeFailed(ctx context.Context, err error, res graph.Result) graphQLResult {
	if ctx.Err() != nil {
		return graphQLResult{res: res}
	}
	body, _ := json.Marshal(map[string]any{"data": nil, "errors": []map[string]any{{
		"message":    "executing the request: " + err.Error(),
		"extensions": map[string]string{"code": "INTERNAL_SERVER_ERROR"},
	}}})
	res.Errors++
	return graphQLResult{status: http.StatusInternalServerError, body: body, res: res}
}

// writeJSON writes a JSON body, compressed as opts.Compression and the
// request's Accept-Encoding say.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, opts Options, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Add("Vary", "Accept-Encoding")
	if enc := chooseEncoding(opts.Compression, r.Header.Get("Accept-Encoding")); enc != "" {
		compressed, err := compress(enc, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h.Set("Content-Encoding", enc)
		body = compressed
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
