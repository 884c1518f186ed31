package jobs

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Variables the pipeline fills in; a job's variables may set only filter
// among them (it is then combined with the incremental filter by _and).
const (
	VarCompany = "cid"
	VarFirst   = "first"
	VarAfter   = "after"
	VarFilter  = "filter"
)

// queryProblem is a problem found by the query analysis. Line is the line
// within the query text (0: none; the problem goes on Key's line); Key is
// the job file key the problem belongs to ("query" unless it is about
// pagination.path or incremental.*).
type queryProblem struct {
	Line int
	// Column, when set, is added to the message as "(column N)" unless the
	// line had to be moved (an error at the end of the input).
	Column  int
	Key     string
	Message string
}

// queryOptions is what the analysis needs to know about the rest of the job.
type queryOptions struct {
	// PaginationPath is pagination.path split on dots, or nil.
	PaginationPath []string
	// Incremental is the job's incremental section, or nil.
	Incremental *Incremental
}

// queryAnalysis is the result of analyseQuery.
type queryAnalysis struct {
	Paged PagedConnection
	// Declared are the operation's variable definitions by name.
	Declared map[string]*ast.VariableDefinition
	Problems []queryProblem
}

// analyseQuery parses a GraphQL document without a schema and checks what
// nxtcron relies on: one query operation; one paged connection (a field
// selecting pageInfo and items, taking after: $after), chosen by
// pagination.path when there are several; pageInfo { hasNextPage
// endCursor }; first: $first and after: $after on it and nowhere else;
// useCompany(no: $cid); $filter passed as its filter: argument (with the
// table's FilterExpression type); for incremental jobs a total orderBy on
// the incremental field and then the key, both selected under items; and
// pageInfo { hasNextPage } on every nested connection under items.
func analyseQuery(text string, opts queryOptions) queryAnalysis {
	a := &analyser{opts: opts}
	a.run(text)
	return queryAnalysis{Paged: a.paged, Declared: a.declared, Problems: a.problems}
}

type analyser struct {
	opts     queryOptions
	doc      *ast.QueryDocument
	declared map[string]*ast.VariableDefinition
	paged    PagedConnection
	problems []queryProblem
	// undeclared are the variables used without a declaration (reported).
	undeclared map[string]bool
	// budget bounds the fields visited, so fragments spread many times
	// over cannot make the analysis exponential.
	budget int
}

// maxQueryFields bounds the fields the analysis visits (fragments expanded).
const maxQueryFields = 100_000

func (a *analyser) add(pos *ast.Position, format string, args ...any) {
	a.addKey(pos, "query", format, args...)
}

func (a *analyser) addKey(pos *ast.Position, key, format string, args ...any) {
	line := 0
	if pos != nil {
		line = pos.Line
	}
	a.problems = append(a.problems, queryProblem{Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

// candidate is a field selecting pageInfo and items.
type candidate struct {
	field *ast.Field
	path  []string
	// after is the variable after: takes ("" when it takes none or a
	// literal).
	after string
}

func (a *analyser) run(text string) {
	if strings.TrimSpace(text) == "" {
		a.add(nil, "empty query")
		return
	}
	doc, err := parser.ParseQuery(&ast.Source{Name: "query", Input: text})
	if err != nil {
		var gerr *gqlerror.Error
		if errors.As(err, &gerr) && len(gerr.Locations) > 0 {
			loc := gerr.Locations[0]
			a.problems = append(a.problems, queryProblem{Line: loc.Line, Column: loc.Column, Key: "query", Message: "GraphQL syntax error: " + gerr.Message})
		} else {
			a.add(nil, "GraphQL syntax error: %v", err)
		}
		return
	}
	a.doc = doc
	a.budget = maxQueryFields
	if !a.checkFragments() {
		return
	}
	switch len(doc.Operations) {
	case 0:
		a.add(nil, "must contain a query operation; found only fragments")
		return
	case 1:
	default:
		a.add(doc.Operations[1].Position, "must contain exactly one operation, found %d", len(doc.Operations))
		return
	}
	op := doc.Operations[0]
	if op.Operation != ast.Query {
		a.add(op.Position, "must be a query, not a %s", op.Operation)
		return
	}
	a.declared = map[string]*ast.VariableDefinition{}
	for _, v := range op.VariableDefinitions {
		if _, dup := a.declared[v.Variable]; dup {
			a.add(v.Position, "$%s is declared twice", v.Variable)
		}
		a.declared[v.Variable] = v
	}
	a.checkVariableUse(op)

	var cands, others []candidate
	a.walk(op.SelectionSet, nil, func(f *ast.Field, path []string, children []*ast.Field) {
		if !selects(children, "items") || !selects(children, "pageInfo") {
			return
		}
		c := candidate{field: f, path: path}
		if arg := f.Arguments.ForName("after"); arg != nil && arg.Value != nil && arg.Value.Kind == ast.Variable {
			c.after = arg.Value.Raw
		}
		if c.after != "" {
			cands = append(cands, c)
		} else {
			others = append(others, c)
		}
	})
	if a.budget < 0 {
		return
	}
	c, ok := a.choose(cands, others)
	if !ok {
		return
	}
	a.checkPaged(c)
	a.checkCompany(op)
}

// choose picks the paged connection.
func (a *analyser) choose(cands, others []candidate) (candidate, bool) {
	names := make([]string, len(cands))
	for i, c := range cands {
		names[i] = strings.Join(c.path, ".")
	}
	if want := a.opts.PaginationPath; want != nil {
		w := strings.Join(want, ".")
		for _, c := range cands {
			if slices.Equal(c.path, want) {
				return c, true
			}
		}
		for _, c := range others {
			if slices.Equal(c.path, want) {
				a.addKey(nil, "pagination.path", "%s does not take after: $after, so it cannot be paged", w)
				return candidate{}, false
			}
		}
		if a.exists(want) {
			a.addKey(nil, "pagination.path", "%s is not a paged connection (a field selecting pageInfo and items, with after: $after)", w)
		} else if len(names) > 0 {
			a.addKey(nil, "pagination.path", "%s is not a field of the query (paged connections: %s)", w, strings.Join(names, ", "))
		} else {
			a.addKey(nil, "pagination.path", "%s is not a field of the query", w)
		}
		return candidate{}, false
	}
	switch len(cands) {
	case 1:
		return cands[0], true
	case 0:
		if len(others) > 0 {
			o := others[0]
			a.add(o.field.Position, "%s selects pageInfo and items but does not take after: $after; nxtcron pages with first: $first, after: $after", strings.Join(o.path, "."))
		} else {
			a.add(nil, "no paged connection: nxtcron needs a field selecting pageInfo { hasNextPage endCursor } and items, with first: $first, after: $after")
		}
		return candidate{}, false
	}
	a.add(cands[1].field.Position, "has several paged connections (%s): set pagination.path to the one to page through", strings.Join(names, ", "))
	return candidate{}, false
}

// exists reports whether a field exists at path (response keys).
func (a *analyser) exists(path []string) bool {
	found := false
	a.walk(a.doc.Operations[0].SelectionSet, nil, func(_ *ast.Field, p []string, _ []*ast.Field) {
		found = found || slices.Equal(p, path)
	})
	return found
}

func (a *analyser) checkPaged(c candidate) {
	f := c.field
	pathText := strings.Join(c.path, ".")
	a.paged.Path = c.path
	a.paged.Table = f.Name
	children := a.fields(f.SelectionSet)

	// pageInfo { hasNextPage endCursor }
	for _, ch := range children {
		if ch.Name == "pageInfo" || ch.Name == "items" {
			if key(ch) != ch.Name {
				a.add(ch.Position, "%s of %s must not have an alias", ch.Name, pathText)
			}
		}
	}
	pi := child(children, "pageInfo")
	piFields := a.fields(pi.SelectionSet)
	for _, need := range []string{"hasNextPage", "endCursor"} {
		if g := child(piFields, need); g == nil || key(g) != need {
			a.add(pi.Position, "pageInfo of %s must select %s", pathText, need)
		}
	}

	// first: $first, after: $after (their declarations are checked only
	// when the argument is right, not to say the same thing twice).
	for _, v := range []struct {
		name, typ string
		nullable  bool
	}{{VarFirst, "Int", false}, {VarAfter, "String", true}} {
		arg := f.Arguments.ForName(v.name)
		switch {
		case arg == nil:
			a.add(f.Position, "%s must take %s: $%s", pathText, v.name, v.name)
		case arg.Value == nil || arg.Value.Kind != ast.Variable || arg.Value.Raw != v.name:
			a.add(arg.Position, "%s must take %s: $%s, not %s: %s", pathText, v.name, v.name, v.name, arg.Value.String())
		default:
			a.checkVarType(v.name, v.typ, v.nullable)
		}
		a.onlyOn(v.name, f, v.name)
	}

	// filter: $filter.
	filterType := "FilterExpression_" + upperFirst(f.Name)
	if arg := f.Arguments.ForName("filter"); arg != nil && arg.Value != nil && arg.Value.Kind == ast.Variable && arg.Value.Raw == VarFilter {
		a.paged.HasFilterVar = true
	}
	if def := a.declared[VarFilter]; def != nil {
		if !a.paged.HasFilterVar {
			a.add(def.Position, "$filter is declared but %s does not take filter: $filter", pathText)
		} else if def.Type.Elem != nil || def.Type.NamedType != filterType {
			a.add(def.Position, "$filter must be declared %s (the filter type of %s), not %s", filterType, f.Name, def.Type.String())
		}
		a.onlyOn(VarFilter, f, "filter")
	}

	// items.
	items := child(children, "items")
	itemFields := a.fields(items.SelectionSet)
	seen := map[string]bool{}
	for _, it := range itemFields {
		if k := key(it); !seen[k] {
			seen[k] = true
			a.paged.Fields = append(a.paged.Fields, k)
		}
	}
	a.nested(itemFields, nil)

	if inc := a.opts.Incremental; inc != nil {
		a.checkIncremental(c, inc, itemFields, filterType)
	}
}

// checkIncremental: filter: $filter, the field and key selected under items,
// and orderBy: [{field: ASC}, {key1: ASC}, ...].
func (a *analyser) checkIncremental(c candidate, inc *Incremental, itemFields []*ast.Field, filterType string) {
	f := c.field
	pathText := strings.Join(c.path, ".")
	if !a.paged.HasFilterVar {
		if a.declared[VarFilter] == nil {
			a.add(f.Position, "an incremental job needs filter: $filter on %s, with $filter: %s declared", pathText, filterType)
		}
	}
	selected := func(name string) bool {
		g := child(itemFields, name)
		return g != nil && key(g) == name
	}
	if inc.Field != "" && !selected(inc.Field) {
		a.addKey(nil, "incremental.field", "%s must be selected (without an alias) under items of %s", inc.Field, pathText)
	}
	for i, k := range inc.Key {
		if k != "" && !selected(k) {
			a.addKey(nil, fmt.Sprintf("incremental.key[%d]", i), "%s must be selected (without an alias) under items of %s", k, pathText)
		}
	}
	want := append([]string{inc.Field}, inc.Key...)
	wantText := make([]string, len(want))
	for i, w := range want {
		wantText[i] = "{" + w + ": ASC}"
	}
	expected := "orderBy: [" + strings.Join(wantText, ", ") + "]"
	arg := f.Arguments.ForName("orderBy")
	if arg == nil {
		a.add(f.Position, "an incremental job needs a total order on %s: %s", pathText, expected)
		return
	}
	got, ok := orderBy(arg.Value)
	if !ok {
		a.add(arg.Position, "orderBy of %s must be a literal list of single-field entries, as in %s", pathText, expected)
		return
	}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], wantText) {
		a.add(arg.Position, "orderBy of %s must start with the incremental field and then the key, in order: %s (found [%s])", pathText, expected, strings.Join(got, ", "))
	}
}

// orderBy renders a literal orderBy value as its entries ("{field: DIR}").
func orderBy(v *ast.Value) ([]string, bool) {
	if v == nil {
		return nil, false
	}
	entries := []*ast.Value{v}
	switch v.Kind {
	case ast.ListValue:
		entries = nil
		for _, c := range v.Children {
			entries = append(entries, c.Value)
		}
	case ast.ObjectValue:
	default:
		return nil, false
	}
	var out []string
	for _, e := range entries {
		if e == nil || e.Kind != ast.ObjectValue || len(e.Children) != 1 || e.Children[0].Value == nil {
			return nil, false
		}
		out = append(out, "{"+e.Children[0].Name+": "+e.Children[0].Value.Raw+"}")
	}
	return out, true
}

// nested checks every connection below an item: a field selecting items
// must select pageInfo { hasNextPage }. Paths are relative to one item; a
// connection inside another's items has "items" in its path.
func (a *analyser) nested(fields []*ast.Field, path []string) {
	for _, g := range fields {
		p := append(slices.Clone(path), key(g))
		children := a.fields(g.SelectionSet)
		if selects(children, "items") {
			pi := child(children, "pageInfo")
			ok := false
			if pi != nil {
				h := child(a.fields(pi.SelectionSet), "hasNextPage")
				ok = h != nil && key(h) == "hasNextPage"
			}
			if !ok {
				a.add(g.Position, "nested connection %s must select pageInfo { hasNextPage } so a truncated import is noticed", strings.Join(p, "."))
			}
			a.paged.Nested = append(a.paged.Nested, p)
			if items := child(children, "items"); items != nil {
				a.nested(a.fields(items.SelectionSet), append(p, "items"))
			}
			continue
		}
		a.nested(children, p)
	}
}

// checkCompany: $cid declared means useCompany(no: $cid), and a useCompany
// field must take $cid.
func (a *analyser) checkCompany(op *ast.OperationDefinition) {
	def := a.declared[VarCompany]
	a.paged.UsesCompany = def != nil
	if def != nil {
		a.checkVarType(VarCompany, "Int", false)
	}
	used := false
	a.walk(op.SelectionSet, nil, func(f *ast.Field, _ []string, _ []*ast.Field) {
		if f.Name != "useCompany" {
			return
		}
		arg := f.Arguments.ForName("no")
		if arg == nil || arg.Value == nil || arg.Value.Kind != ast.Variable || arg.Value.Raw != VarCompany {
			got := "no argument"
			if arg != nil && arg.Value != nil {
				got = "no: " + arg.Value.String()
			}
			a.add(f.Position, "useCompany must take no: $cid (nxtcron runs the query once per company), not %s", got)
			return
		}
		used = true
	})
	if def != nil && !used {
		a.add(def.Position, "$cid is declared but no useCompany(no: $cid) uses it")
	}
}

// checkVarType checks a declared variable's named type (lists refused);
// nullable requires it to be nullable.
func (a *analyser) checkVarType(name, typ string, nullable bool) {
	def := a.declared[name]
	if def == nil {
		if name != VarCompany && !a.undeclared[name] {
			a.add(nil, "$%s must be declared, as in query($%s: %s)", name, name, typ)
		}
		return
	}
	switch {
	case def.Type.Elem != nil || def.Type.NamedType != typ:
		a.add(def.Position, "$%s must be declared %s, not %s", name, typ, def.Type.String())
	case nullable && def.Type.NonNull:
		a.add(def.Position, "$%s must be nullable (%s, not %s!): the first page has no cursor", name, typ, typ)
	}
}

// onlyOn reports uses of $name other than as argument arg of f.
func (a *analyser) onlyOn(name string, f *ast.Field, arg string) {
	a.eachVariable(a.doc.Operations[0], func(owner *ast.Field, argName string, v *ast.Value) {
		if v.Raw != name || (owner == f && argName == arg) {
			return
		}
		a.add(v.Position, "$%s may only be used as %s: on the paged connection", name, arg)
	})
}

// checkVariableUse: every variable used is declared, every one declared is
// used (the server rejects both).
func (a *analyser) checkVariableUse(op *ast.OperationDefinition) {
	used := map[string]bool{}
	a.eachVariable(op, func(_ *ast.Field, _ string, v *ast.Value) {
		used[v.Raw] = true
		if a.declared[v.Raw] == nil {
			a.add(v.Position, "$%s is used but not declared", v.Raw)
		}
	})
	for _, def := range op.VariableDefinitions {
		switch def.Variable {
		case VarCompany, VarFirst, VarAfter, VarFilter:
			// Checked where they belong, with a more useful message.
		default:
			if !used[def.Variable] {
				a.add(def.Position, "$%s is declared but never used", def.Variable)
			}
		}
	}
	a.undeclared = map[string]bool{}
	for v := range used {
		if a.declared[v] == nil {
			a.undeclared[v] = true
		}
	}
}

// eachVariable calls fn for every variable reference in the operation:
// field arguments (owner and argument name given), directive arguments
// (owner nil) and inside literals.
func (a *analyser) eachVariable(op *ast.OperationDefinition, fn func(owner *ast.Field, arg string, v *ast.Value)) {
	var inValue func(owner *ast.Field, arg string, v *ast.Value)
	inValue = func(owner *ast.Field, arg string, v *ast.Value) {
		if v == nil {
			return
		}
		if v.Kind == ast.Variable {
			fn(owner, arg, v)
			return
		}
		for _, c := range v.Children {
			// Nested inside a literal: not the argument itself.
			inValue(nil, "", c.Value)
		}
	}
	directives := func(ds ast.DirectiveList) {
		for _, d := range ds {
			for _, arg := range d.Arguments {
				inValue(nil, "", arg.Value)
			}
		}
	}
	directives(op.Directives)
	// A fragment's fields are the same *ast.Field wherever it is spread:
	// visiting each fragment once sees every reference once, and keeps a
	// fragment spread many times over from costing more.
	visited := map[string]bool{}
	var sel func(ss ast.SelectionSet)
	sel = func(ss ast.SelectionSet) {
		for _, s := range ss {
			switch s := s.(type) {
			case *ast.Field:
				for _, arg := range s.Arguments {
					inValue(s, arg.Name, arg.Value)
				}
				directives(s.Directives)
				sel(s.SelectionSet)
			case *ast.InlineFragment:
				directives(s.Directives)
				sel(s.SelectionSet)
			case *ast.FragmentSpread:
				directives(s.Directives)
				fd := a.doc.Fragments.ForName(s.Name)
				if fd == nil || visited[s.Name] {
					continue
				}
				visited[s.Name] = true
				directives(fd.Directives)
				sel(fd.SelectionSet)
			}
		}
	}
	sel(op.SelectionSet)
}

// walk visits every field of ss (fragments expanded) depth first, with its
// response-key path and its own (expanded) child fields.
func (a *analyser) walk(ss ast.SelectionSet, path []string, fn func(f *ast.Field, path []string, children []*ast.Field)) {
	for _, f := range a.fields(ss) {
		p := append(slices.Clone(path), key(f))
		children := a.fields(f.SelectionSet)
		fn(f, p, children)
		a.walk(f.SelectionSet, p, fn)
	}
}

// checkFragments reports fragments that are undefined, defined twice,
// unused or that spread themselves (directly or through others); the
// analysis stops on any of these, since expanding them would not end.
func (a *analyser) checkFragments() bool {
	ok := true
	defs := map[string]*ast.FragmentDefinition{}
	for _, fd := range a.doc.Fragments {
		if _, dup := defs[fd.Name]; dup {
			a.add(fd.Position, "fragment %s is defined twice", fd.Name)
			ok = false
		}
		defs[fd.Name] = fd
	}
	// spreads lists the fragments a selection set spreads, at any depth.
	spreads := func(ss ast.SelectionSet) []*ast.FragmentSpread {
		var out []*ast.FragmentSpread
		var visit func(ss ast.SelectionSet)
		visit = func(ss ast.SelectionSet) {
			for _, s := range ss {
				switch s := s.(type) {
				case *ast.Field:
					visit(s.SelectionSet)
				case *ast.InlineFragment:
					visit(s.SelectionSet)
				case *ast.FragmentSpread:
					out = append(out, s)
				}
			}
		}
		visit(ss)
		return out
	}
	used := map[string]bool{}
	for _, op := range a.doc.Operations {
		for _, s := range spreads(op.SelectionSet) {
			used[s.Name] = true
			if defs[s.Name] == nil {
				a.add(s.Position, "fragment %s is not defined", s.Name)
				ok = false
			}
		}
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var visit func(fd *ast.FragmentDefinition)
	visit = func(fd *ast.FragmentDefinition) {
		state[fd.Name] = visiting
		for _, s := range spreads(fd.SelectionSet) {
			used[s.Name] = true
			next := defs[s.Name]
			switch {
			case next == nil:
				a.add(s.Position, "fragment %s is not defined", s.Name)
				ok = false
			case state[next.Name] == visiting:
				a.add(s.Position, "fragment cycle: %s spreads %s", fd.Name, s.Name)
				ok = false
			case state[next.Name] == unvisited:
				visit(next)
			}
		}
		state[fd.Name] = done
	}
	for _, fd := range a.doc.Fragments {
		if state[fd.Name] == unvisited {
			visit(fd)
		}
	}
	for _, fd := range a.doc.Fragments {
		if !used[fd.Name] {
			a.add(fd.Position, "fragment %s is never used", fd.Name)
			ok = false
		}
	}
	return ok
}

// fields flattens a selection set: fragment spreads and inline fragments
// are replaced by their fields (checkFragments made sure they are finite).
func (a *analyser) fields(ss ast.SelectionSet) []*ast.Field {
	var out []*ast.Field
	var flat func(ss ast.SelectionSet)
	flat = func(ss ast.SelectionSet) {
		for _, s := range ss {
			if a.budget--; a.budget == 0 {
				a.add(s.GetPosition(), "query too large: more than %d fields with its fragments expanded", maxQueryFields)
			}
			if a.budget < 0 {
				return
			}
			switch s := s.(type) {
			case *ast.Field:
				out = append(out, s)
			case *ast.InlineFragment:
				flat(s.SelectionSet)
			case *ast.FragmentSpread:
				if fd := a.doc.Fragments.ForName(s.Name); fd != nil {
					flat(fd.SelectionSet)
				}
			}
		}
	}
	flat(ss)
	return out
}

// key is a field's response key: its alias, else its name.
func key(f *ast.Field) string {
	if f.Alias != "" {
		return f.Alias
	}
	return f.Name
}

// child returns the first field named name.
func child(fields []*ast.Field, name string) *ast.Field {
	for _, f := range fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func selects(fields []*ast.Field, name string) bool { return child(fields, name) != nil }

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
