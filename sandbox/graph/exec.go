package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
)

// QueryTimeout is how long a query may run once it has its slots, as on the
// real service (59 s).
const QueryTimeout = 59 * time.Second

// Error codes in errors[].extensions.code.
const (
	CodeOutstandingLimit = "OUTSTANDING_LIMIT_EXCEEDED"
	CodeValidation       = "GRAPHQL_VALIDATION_FAILED"
	CodeBadInput         = "BAD_USER_INPUT"
	CodeCompanyNotFound  = "COMPANY_NOT_FOUND"
	CodeTimeout          = "QUERY_TIMEOUT"
	CodeCancelled        = "REQUEST_CANCELLED"
)

// Request is a GraphQL request body.
type Request struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
}

// Result summarizes an executed request.
type Result struct {
	Rows               int  // table items served (connection items, nested ones included)
	Errors             int  // entries in the response's errors array
	OutstandingLimited bool // refused with OUTSTANDING_LIMIT_EXCEEDED
}

// jsonOut buffers the response and hands it to w in chunks.
type jsonOut struct {
	w   io.Writer
	buf []byte
	err error
}

const flushAt = 32 << 10

func (o *jsonOut) flush() {
	if o.err == nil && len(o.buf) > 0 {
		_, o.err = o.w.Write(o.buf)
	}
	o.buf = o.buf[:0]
}

func (o *jsonOut) str(s string) { o.buf = appendJSONString(o.buf, s) }
func (o *jsonOut) raw(s string) { o.buf = append(o.buf, s...) }
func (o *jsonOut) int(v int)    { o.buf = strconv.AppendInt(o.buf, int64(v), 10) }

func (o *jsonOut) bool(b bool) {
	if b {
		o.raw("true")
	} else {
		o.raw("false")
	}
}

func (o *jsonOut) strOrNull(s string) {
	if s == "" {
		o.raw("null")
	} else {
		o.str(s)
	}
}

// writeErrorsOnly writes {"errors": errs} (or with "data":null) and flushes.
func writeErrorsOnly(w io.Writer, withNullData bool, errs gqlerror.List) error {
	b, err := json.Marshal(errs)
	if err != nil {
		return fmt.Errorf("encoding errors: %w", err)
	}
	o := &jsonOut{w: w}
	if withNullData {
		o.raw(`{"data":null,"errors":`)
	} else {
		o.raw(`{"errors":`)
	}
	o.buf = append(o.buf, b...)
	o.raw("}")
	o.flush()
	if o.err != nil {
		return fmt.Errorf("writing response: %w", o.err)
	}
	return nil
}

func coded(msg, code string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
}

// Execute validates and runs req and writes the complete JSON response body
// {"data":...,"errors":[...]} to w. Validation and execution errors are
// written as a GraphQL errors array (HTTP 200 semantics); the returned error
// is only for I/O failures writing to w. Result.Rows counts table items
// served.
func (e *Engine) Execute(ctx context.Context, req Request, w io.Writer) (Result, error) {
	var res Result
	schema := e.c.schema
	doc, perr := parser.ParseQuery(&ast.Source{Input: req.Query})
	if perr != nil {
		var ge *gqlerror.Error
		if !errors.As(perr, &ge) {
			ge = gqlerror.Wrap(perr)
		}
		errs := gqlerror.List{withCode(ge, "GRAPHQL_PARSE_FAILED")}
		res.Errors = len(errs)
		return res, writeErrorsOnly(w, false, errs)
	}
	if errs := validator.ValidateWithRules(schema, doc, e.c.rules); len(errs) > 0 {
		for _, ge := range errs {
			withCode(ge, CodeValidation)
		}
		res.Errors = len(errs)
		return res, writeErrorsOnly(w, false, errs)
	}
	op, err := pickOperation(doc, req.OperationName)
	if err != nil {
		res.Errors = 1
		return res, writeErrorsOnly(w, false, gqlerror.List{coded(err.Error(), CodeValidation)})
	}
	vars, err := validator.VariableValues(schema, op, req.Variables)
	if err != nil {
		var ge *gqlerror.Error
		if !errors.As(err, &ge) {
			ge = gqlerror.Wrap(err)
		}
		res.Errors = 1
		return res, writeErrorsOnly(w, false, gqlerror.List{withCode(ge, CodeBadInput)})
	}

	wd := e.state.Load()
	x := &exec{
		e: e, w: wd, schema: schema, doc: doc, vars: vars,
		out: &jsonOut{w: w, buf: make([]byte, 0, 4096)},
	}
	companies := x.referencedCompanies(op)
	if !e.acquire(companies, wd.opts.ConcurrencyLimit) {
		res.Errors, res.OutstandingLimited = 1, true
		msg := fmt.Sprintf("outstanding request limit exceeded: at most %d concurrent requests per company", wd.opts.ConcurrencyLimit)
		return res, writeErrorsOnly(w, true, gqlerror.List{coded(msg, CodeOutstandingLimit)})
	}
	defer e.release(companies)

	if d := wd.opts.Latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			res.Errors = 1
			return res, writeErrorsOnly(w, true, gqlerror.List{coded("the request was cancelled", CodeCancelled)})
		}
	}
	qctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	x.rv = resolver{ctx: qctx}
	x.run(op)
	res.Rows, res.Errors = x.rows, len(x.errs)
	if x.out.err != nil {
		return res, fmt.Errorf("writing response: %w", x.out.err)
	}
	return res, nil
}

func withCode(ge *gqlerror.Error, code string) *gqlerror.Error {
	if ge.Extensions == nil {
		ge.Extensions = map[string]any{}
	}
	if _, ok := ge.Extensions["code"]; !ok {
		ge.Extensions["code"] = code
	}
	return ge
}

func pickOperation(doc *ast.QueryDocument, name string) (*ast.OperationDefinition, error) {
	if name == "" {
		if len(doc.Operations) != 1 {
			return nil, fmt.Errorf("the document has %d operations: operationName is required", len(doc.Operations))
		}
		return doc.Operations[0], nil
	}
	op := doc.Operations.ForName(name)
	if op == nil {
		return nil, fmt.Errorf("unknown operation %q", name)
	}
	return op, nil
}

// pathSeg is one step of a response path: a field name, or a list index.
type pathSeg struct {
	name string
	idx  int
}

// exec runs one operation.
type exec struct {
	e      *Engine
	w      *world
	schema *ast.Schema
	doc    *ast.QueryDocument
	vars   map[string]any
	out    *jsonOut
	rv     resolver
	errs   gqlerror.List
	path   []pathSeg
	rows   int
	abort  error // set when the context ended: the rest is null
}

func (x *exec) push(name string) { x.path = append(x.path, pathSeg{name: name, idx: -1}) }
func (x *exec) pushIdx(i int)    { x.path = append(x.path, pathSeg{idx: i}) }
func (x *exec) pop()             { x.path = x.path[:len(x.path)-1] }

func (x *exec) astPath() ast.Path {
	p := make(ast.Path, 0, len(x.path))
	for _, s := range x.path {
		if s.idx >= 0 {
			p = append(p, ast.PathIndex(s.idx))
		} else {
			p = append(p, ast.PathName(s.name))
		}
	}
	return p
}

// fieldError records an error at the current path.
func (x *exec) fieldError(f *ast.Field, err error, code string) {
	ge := &gqlerror.Error{Message: err.Error(), Path: x.astPath(), Extensions: map[string]any{"code": code}}
	if f != nil && f.Position != nil {
		ge.Locations = []gqlerror.Location{{Line: f.Position.Line, Column: f.Position.Column}}
	}
	x.errs = append(x.errs, ge)
}

// fieldGroup is the fields of one response key (merged per the spec).
type fieldGroup struct {
	key    string
	first  *ast.Field
	fields []*ast.Field
}

func (g *fieldGroup) name() string { return g.first.Name }

// sub returns the merged selection set of the group.
func (g *fieldGroup) sub() ast.SelectionSet {
	if len(g.fields) == 1 {
		return g.first.SelectionSet
	}
	var s ast.SelectionSet
	for _, f := range g.fields {
		s = append(s, f.SelectionSet...)
	}
	return s
}

// collect groups the fields of a selection set by response key, resolving
// fragments and @skip/@include. The schema has no abstract types, so every
// fragment that validates applies.
func (x *exec) collect(set ast.SelectionSet) []*fieldGroup {
	var groups []*fieldGroup
	visited := map[string]bool{}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if !x.included(s.Directives) {
					continue
				}
				key := s.Alias
				if key == "" {
					key = s.Name
				}
				found := false
				for _, g := range groups {
					if g.key == key {
						g.fields = append(g.fields, s)
						found = true
						break
					}
				}
				if !found {
					groups = append(groups, &fieldGroup{key: key, first: s, fields: []*ast.Field{s}})
				}
			case *ast.FragmentSpread:
				if !x.included(s.Directives) || visited[s.Name] {
					continue
				}
				visited[s.Name] = true
				def := s.Definition
				if def == nil {
					def = x.doc.Fragments.ForName(s.Name)
				}
				if def != nil {
					walk(def.SelectionSet)
				}
			case *ast.InlineFragment:
				if x.included(s.Directives) {
					walk(s.SelectionSet)
				}
			}
		}
	}
	walk(set)
	return groups
}

// referencedCompanies returns the existing companies named by useCompany
// fields of the operation, sorted and distinct.
func (x *exec) referencedCompanies(op *ast.OperationDefinition) []int {
	var out []int
	for _, g := range x.collect(op.SelectionSet) {
		if g.name() != "useCompany" {
			continue
		}
		no, err := intArg(x.args(g.first), "no")
		if err == nil && no != nil && x.w.company(*no) != nil {
			out = append(out, *no)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// run writes the response of op.
func (x *exec) run(op *ast.OperationDefinition) {
	o := x.out
	o.raw(`{"data":{`)
	for i, g := range x.collect(op.SelectionSet) {
		if i > 0 {
			o.raw(",")
		}
		o.str(g.key)
		o.raw(":")
		x.push(g.key)
		switch g.name() {
		case "__typename":
			o.str(x.schema.Query.Name)
		case "__schema":
			x.writeIntro(g.sub(), "__Schema", introNode{})
		case "__type":
			x.writeTypeByName(g)
		case "availableCompanies":
			x.writeAvailableCompanies(g)
		case "useCompany":
			x.writeUseCompany(g)
		default:
			o.raw("null")
		}
		x.pop()
	}
	o.raw("}")
	if len(x.errs) > 0 {
		b, err := json.Marshal(x.errs)
		if err == nil {
			o.raw(`,"errors":`)
			o.buf = append(o.buf, b...)
		}
	}
	o.raw("}")
	o.flush()
}

func (x *exec) writeAvailableCompanies(g *fieldGroup) {
	o := x.out
	cust, err := intArg(x.args(g.first), "customerNo")
	if err != nil {
		o.raw("null")
		x.fieldError(g.first, err, CodeBadInput)
		return
	}
	comps := x.w.comps
	if cust != nil && *cust != sandboxCustomerID {
		comps = nil
	}
	o.raw("{")
	for i, f := range x.collect(g.sub()) {
		if i > 0 {
			o.raw(",")
		}
		o.str(f.key)
		o.raw(":")
		switch f.name() {
		case "__typename":
			o.str("Query_AvailableCompanies_Connection")
		case "totalCount":
			o.int(len(comps))
		case "items":
			sub := x.collect(f.sub())
			o.raw("[")
			for j, cs := range comps {
				if j > 0 {
					o.raw(",")
				}
				o.raw("{")
				for k, cf := range sub {
					if k > 0 {
						o.raw(",")
					}
					o.str(cf.key)
					o.raw(":")
					switch cf.name() {
					case "__typename":
						o.str("AvailableCompany")
					case "name":
						o.str(cs.name)
					case "vismaNetCompanyId":
						o.int(cs.id)
					case "vismaNetCustomerId":
						o.int(sandboxCustomerID)
					default:
						o.raw("null")
					}
				}
				o.raw("}")
			}
			o.raw("]")
		default:
			o.raw("null")
		}
	}
	o.raw("}")
}

func (x *exec) writeUseCompany(g *fieldGroup) {
	o := x.out
	no, err := intArg(x.args(g.first), "no")
	if err == nil && no == nil {
		err = errors.New("useCompany: the company number (no) is required")
	}
	if err != nil {
		o.raw("null")
		x.fieldError(g.first, err, CodeBadInput)
		return
	}
	cs := x.w.company(*no)
	if cs == nil {
		o.raw("null")
		x.fieldError(g.first, fmt.Errorf("company %d is not available to this client (no access, or no such company)", *no), CodeCompanyNotFound)
		return
	}
	o.raw("{")
	for i, f := range x.collect(g.sub()) {
		if i > 0 {
			o.raw(",")
		}
		o.str(f.key)
		o.raw(":")
		x.push(f.key)
		if f.name() == "__typename" {
			o.str("Query_UseCompany")
		} else if t := x.e.c.model.table(f.name()); t != nil {
			ts := cs.tabs[t.id]
			x.writeConn(x.spec(f, t), cs, ts, idxRange{0, ts.n})
		} else {
			o.raw("null")
		}
		x.pop()
	}
	o.raw("}")
}
