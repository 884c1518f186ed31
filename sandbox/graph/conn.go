package graph

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/vektah/gqlparser/v2/ast"
)

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

// spec compiles a connection field on t. A nested spec is compiled with its
// parent's plan, once per request.
func (x *exec) spec(g *fieldGroup, t *table) *connSpec {
	s := &connSpec{field: g.first, t: t}
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
