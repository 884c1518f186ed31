package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
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
	if errs := validator.Validate(schema, doc); len(errs) > 0 {
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
		out:   &jsonOut{w: w, buf: make([]byte, 0, 4096)},
		specs: map[*ast.Field]*connSpec{},
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
	x.rv = resolver{ctx: qctx, loc: wd.opts.Location}
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
	specs  map[*ast.Field]*connSpec
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

func (x *exec) included(dirs ast.DirectiveList) bool {
	for _, d := range dirs {
		if d.Name != "skip" && d.Name != "include" {
			continue
		}
		a := d.Arguments.ForName("if")
		if a == nil {
			continue
		}
		v, _ := x.norm(a.Value, ast.NonNullNamedType("Boolean", nil))
		b, _ := v.(bool)
		if d.Name == "skip" && b || d.Name == "include" && !b {
			return false
		}
	}
	return true
}

// args returns the field's arguments, normalized; absent ones are missing.
func (x *exec) args(f *ast.Field) map[string]any {
	m := map[string]any{}
	if f.Definition == nil {
		return m
	}
	for _, a := range f.Arguments {
		def := f.Definition.Arguments.ForName(a.Name)
		if def == nil {
			continue
		}
		if v, ok := x.norm(a.Value, def.Type); ok {
			m[a.Name] = v
		}
	}
	for _, def := range f.Definition.Arguments {
		if _, ok := m[def.Name]; !ok && def.DefaultValue != nil {
			if v, ok := x.norm(def.DefaultValue, def.Type); ok {
				m[def.Name] = v
			}
		}
	}
	return m
}

// norm converts a literal (with variables) of type t to a plain value: nil,
// int64, json.Number (floats), string (strings and enums), bool, []any or
// objVal. ok is false for a variable that was not given.
func (x *exec) norm(v *ast.Value, t *ast.Type) (any, bool) {
	switch v.Kind {
	case ast.Variable:
		val, ok := x.vars[v.Raw]
		if !ok {
			return nil, false
		}
		return x.normAny(val, t), true
	case ast.IntValue:
		if n, err := strconv.ParseInt(v.Raw, 10, 64); err == nil {
			return n, true
		}
		return json.Number(v.Raw), true
	case ast.FloatValue:
		return json.Number(v.Raw), true
	case ast.StringValue, ast.BlockValue, ast.EnumValue:
		return v.Raw, true
	case ast.BooleanValue:
		return v.Raw == "true", true
	case ast.NullValue:
		return nil, true
	case ast.ListValue:
		et := t
		if t.Elem != nil {
			et = t.Elem
		}
		out := make([]any, 0, len(v.Children))
		for _, c := range v.Children {
			cv, _ := x.norm(c.Value, et)
			out = append(out, cv)
		}
		return out, true
	case ast.ObjectValue:
		def := x.schema.Types[t.Name()]
		out := make(objVal, 0, len(v.Children))
		for _, c := range v.Children {
			var ft *ast.Type
			if def != nil {
				if fd := def.Fields.ForName(c.Name); fd != nil {
					ft = fd.Type
				}
			}
			if ft == nil {
				ft = ast.NamedType("String", nil)
			}
			if cv, ok := x.norm(c.Value, ft); ok {
				out = append(out, inField{name: c.Name, val: cv})
			}
		}
		return out, true
	}
	return nil, false
}

// normAny converts a variable value (decoded JSON, coerced by gqlparser) of
// type t like norm. Objects get the field order of the input type.
func (x *exec) normAny(val any, t *ast.Type) any {
	if val == nil {
		return nil
	}
	if t.Elem != nil {
		if list, ok := val.([]any); ok {
			out := make([]any, len(list))
			for i, el := range list {
				out[i] = x.normAny(el, t.Elem)
			}
			return out
		}
		return []any{x.normAny(val, t.Elem)}
	}
	def := x.schema.Types[t.NamedType]
	if def != nil && def.Kind == ast.InputObject {
		m, ok := val.(map[string]any)
		if !ok {
			return val
		}
		out := make(objVal, 0, len(m))
		for _, fd := range def.Fields {
			if fv, ok := m[fd.Name]; ok {
				out = append(out, inField{name: fd.Name, val: x.normAny(fv, fd.Type)})
			}
		}
		return out
	}
	switch n := val.(type) {
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n)
		}
		return n
	case int:
		return int64(n)
	case int32:
		return int64(n)
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i
		}
		return n
	}
	return val
}

// intArg reads an Int argument; nil when absent or null.
func intArg(m map[string]any, name string) (*int, error) {
	switch v := m[name].(type) {
	case nil:
		return nil, nil
	case int64:
		if v > math.MaxInt32 || v < math.MinInt32 {
			return nil, fmt.Errorf("%s: %d is out of range", name, v)
		}
		i := int(v)
		return &i, nil
	default:
		return nil, fmt.Errorf("%s: expected an Int, got %s", name, describe(v))
	}
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

// connSpec is a compiled table connection field: arguments and selections.
// A nested (joindown) spec is compiled once and run for every parent row.
type connSpec struct {
	field    *ast.Field
	t        *table
	args     connArgs
	err      error
	reported bool
	fields   []connField
}

type connField struct {
	keyJSON string // "key":
	name    string
	page    []connField // pageInfo selections
	items   *objPlan
}

type planKind uint8

const (
	planColumn planKind = iota
	planTypename
	planJoinUp
	planJoinDown
	planNull
)

// objPlan is a compiled selection on a table row.
type objPlan struct {
	t      *table
	fields []planField
}

type planField struct {
	keyJSON string
	kind    planKind
	col     *column
	rel     *relation
	up      *objPlan
	down    *connSpec
}

func keyJSON(k string) string { return string(appendJSONString(nil, k)) + ":" }

// spec compiles (once per field) a connection on t.
func (x *exec) spec(g *fieldGroup, t *table) *connSpec {
	if s, ok := x.specs[g.first]; ok {
		return s
	}
	s := &connSpec{field: g.first, t: t}
	x.specs[g.first] = s
	s.args, s.err = x.connArgs(g.first, t)
	for _, f := range x.collect(g.sub()) {
		cf := connField{keyJSON: keyJSON(f.key), name: f.name()}
		switch cf.name {
		case "pageInfo":
			for _, p := range x.collect(f.sub()) {
				cf.page = append(cf.page, connField{keyJSON: keyJSON(p.key), name: p.name()})
			}
		case "items":
			cf.items = x.plan(t, f.sub())
		}
		s.fields = append(s.fields, cf)
	}
	return s
}

func (x *exec) connArgs(f *ast.Field, t *table) (connArgs, error) {
	var a connArgs
	m := x.args(f)
	var err error
	if a.first, err = intArg(m, "first"); err != nil {
		return a, err
	}
	if a.last, err = intArg(m, "last"); err != nil {
		return a, err
	}
	if a.skip, err = intArg(m, "skip"); err != nil {
		return a, err
	}
	for _, c := range []struct {
		name string
		dst  **int
	}{{"after", &a.after}, {"before", &a.before}} {
		v, ok := m[c.name].(string)
		if !ok {
			continue
		}
		n, err := decodeCursor(v)
		if err != nil {
			return a, fmt.Errorf("%s: %w", c.name, err)
		}
		*c.dst = &n
	}
	if a.filter, err = compileFilter(t, m["filter"], x.w.opts.Location); err != nil {
		return a, err
	}
	if a.order, err = compileOrder(t, m["orderBy"]); err != nil {
		return a, err
	}
	return a, nil
}

// plan compiles a selection on rows of t.
func (x *exec) plan(t *table, set ast.SelectionSet) *objPlan {
	p := &objPlan{t: t}
	for _, f := range x.collect(set) {
		pf := planField{keyJSON: keyJSON(f.key), kind: planNull}
		if f.name() == "__typename" {
			pf.kind = planTypename
		} else if c := t.col(f.name()); c != nil {
			pf.kind, pf.col = planColumn, c
		} else {
			for _, r := range t.relations {
				if r.field != f.name() {
					continue
				}
				pf.rel = r
				if r.kind == joinUp {
					pf.kind, pf.up = planJoinUp, x.plan(r.targetTable, f.sub())
				} else {
					pf.kind, pf.down = planJoinDown, x.spec(f, r.targetTable)
				}
			}
		}
		p.fields = append(p.fields, pf)
	}
	return p
}

// writeConn writes a connection of ts over the index domain dom.
func (x *exec) writeConn(s *connSpec, cs *companyState, ts *tableState, dom idxRange) {
	o := x.out
	if x.abort != nil {
		o.raw("null")
		return
	}
	if s.err != nil {
		o.raw("null")
		if !s.reported {
			s.reported = true
			x.fieldError(s.field, s.err, CodeBadInput)
		}
		return
	}
	set, err := x.rv.resolve(cs, ts, dom, &s.args)
	if err == nil && set != nil {
		var win window
		win, err = pageWindow(set.size(), &s.args)
		if err == nil {
			x.writeConnBody(s, cs, ts, set, win)
			return
		}
	}
	o.raw("null")
	x.connError(s, err)
}

func (x *exec) connError(s *connSpec, err error) {
	switch {
	case errors.Is(err, errQueryTimeout):
		x.stop(s.field, err, CodeTimeout)
	case errors.Is(err, errCancelled):
		x.stop(s.field, err, CodeCancelled)
	case !s.reported:
		s.reported = true
		x.fieldError(s.field, err, CodeBadInput)
	}
}

// stop ends the execution after a timeout or cancellation.
func (x *exec) stop(f *ast.Field, err error, code string) {
	if x.abort == nil {
		x.abort = err
		x.fieldError(f, err, code)
	}
}

func (x *exec) writeConnBody(s *connSpec, cs *companyState, ts *tableState, set resultSet, win window) {
	o := x.out
	o.raw("{")
	for i, f := range s.fields {
		if i > 0 {
			o.raw(",")
		}
		o.raw(f.keyJSON)
		switch f.name {
		case "__typename":
			o.str(s.t.connType)
		case "totalCount":
			o.int(set.size())
		case "pageInfo":
			o.raw("{")
			for j, p := range f.page {
				if j > 0 {
					o.raw(",")
				}
				o.raw(p.keyJSON)
				switch p.name {
				case "__typename":
					o.str("PageInfo")
				case "hasNextPage":
					o.bool(win.hasNext)
				case "hasPreviousPage":
					o.bool(win.hasPrev)
				case "startCursor":
					if win.end > win.start {
						o.str(encodeCursor(win.start))
					} else {
						o.raw("null")
					}
				case "endCursor":
					if win.end > win.start {
						o.str(encodeCursor(win.end - 1))
					} else {
						o.raw("null")
					}
				default:
					o.raw("null")
				}
			}
			o.raw("}")
		case "items":
			x.push(f.name)
			o.raw("[")
			n := 0
			r := new(row) // reused: one allocation per page, not per row
			set.each(win.start, win.end, func(idx int) bool {
				if n&255 == 0 && n > 0 {
					if err := x.rv.ctx.Err(); err != nil {
						x.connError(s, ctxError(err))
						return false
					}
				}
				if n > 0 {
					o.raw(",")
				}
				x.pushIdx(n)
				*r = cs.row(ts, idx)
				x.writeRow(f.items, cs, r)
				x.pop()
				n++
				x.rows++
				if len(o.buf) >= flushAt {
					o.flush()
				}
				return o.err == nil
			})
			o.raw("]")
			x.pop()
		default:
			o.raw("null")
		}
	}
	o.raw("}")
}

func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errQueryTimeout
	}
	return errCancelled
}

// writeRow writes one table row as selected by p.
func (x *exec) writeRow(p *objPlan, cs *companyState, r *row) {
	o := x.out
	o.raw("{")
	for i := range p.fields {
		f := &p.fields[i]
		if i > 0 {
			o.raw(",")
		}
		o.raw(f.keyJSON)
		switch f.kind {
		case planColumn:
			o.buf = appendJSONValue(o.buf, f.col.typ, f.col.scale, f.col.gen(r))
		case planTypename:
			o.str(p.t.name)
		case planJoinUp:
			tts := cs.tabs[f.rel.targetTable.id]
			idx, ok := joinUpIndex(cs, r, f.rel, tts)
			if !ok {
				o.raw("null")
				continue
			}
			tr := cs.row(tts, idx)
			x.writeRow(f.up, cs, &tr)
		case planJoinDown:
			tts := cs.tabs[f.rel.targetTable.id]
			x.push(f.down.field.Alias)
			x.writeConn(f.down, cs, tts, joinDownRange(cs, r, f.rel, tts))
			x.pop()
		default:
			o.raw("null")
		}
	}
	o.raw("}")
}

// relValues returns the values of the relation's columns on r; ok is false
// when one is null.
func relValues(r *row, rel *relation) ([]int64, bool) {
	vals := make([]int64, len(rel.fromCols))
	for i, c := range rel.fromCols {
		v := c.gen(r)
		if v.null {
			return nil, false
		}
		vals[i] = v.i
	}
	return vals, true
}

// cmpPrefix compares the first len(vals) key columns of row idx with vals.
func cmpPrefix(cs *companyState, ts *tableState, idx int, vals []int64) int {
	r := cs.row(ts, idx)
	for i, v := range vals {
		if c := cmpInt(ts.t.keyCols[i].gen(&r).i, v); c != 0 {
			return c
		}
	}
	return 0
}

func joinUpIndex(cs *companyState, r *row, rel *relation, tts *tableState) (int, bool) {
	vals, ok := relValues(r, rel)
	if !ok {
		return 0, false
	}
	if c := rel.toCols[0]; c.lookup != nil && len(rel.toCols) == 1 {
		tr := row{cs: cs, ts: tts}
		return c.lookup(&tr, vals[0])
	}
	i := sort.Search(tts.n, func(i int) bool { return cmpPrefix(cs, tts, i, vals) >= 0 })
	if i < tts.n && cmpPrefix(cs, tts, i, vals) == 0 {
		return i, true
	}
	return 0, false
}

func joinDownRange(cs *companyState, r *row, rel *relation, tts *tableState) idxRange {
	vals, ok := relValues(r, rel)
	if !ok {
		return idxRange{}
	}
	lo := sort.Search(tts.n, func(i int) bool { return cmpPrefix(cs, tts, i, vals) >= 0 })
	hi := lo + sort.Search(tts.n-lo, func(j int) bool { return cmpPrefix(cs, tts, lo+j, vals) > 0 })
	return idxRange{lo, hi}
}
