package graph

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// inField is one field of an input object, in the order given.
type inField struct {
	name string
	val  any
}

// objVal is a normalized input object: its fields in order (the literal's
// order, or the schema's order for objects that came in variables).
type objVal []inField

type filterOp uint8

const (
	opEq filterOp = iota
	opNotEq
	opGt
	opGte
	opLt
	opLte
	opIn
	opNotIn
	opBetween
	opNotBetween
	opLike
	opNotLike
	opIsNull
	opIsNotNull
)

var filterOps = map[string]filterOp{
	"_eq": opEq, "_not_eq": opNotEq, "_gt": opGt, "_gte": opGte, "_lt": opLt, "_lte": opLte,
	"_in": opIn, "_not_in": opNotIn, "_between": opBetween, "_not_between": opNotBetween,
	"_like": opLike, "_not_like": opNotLike,
}

// lit is a filter operand converted to a column's domain. For Int, Long,
// Decimal (scaled), DateTime (ticks) and Boolean it is v, or, when the operand
// falls between two representable values (exact false), the one below it.
type lit struct {
	null  bool
	v     int64
	exact bool
	s     string
}

type condKind uint8

const (
	condLeaf condKind = iota
	condAnd
	condOr
)

// cond is a compiled filter: a leaf on one column, or AND/OR of conditions.
// An AND without children holds for every row; so does an OR without children
// (an empty _or adds no condition).
type cond struct {
	kind condKind
	kids []*cond
	col  *column
	op   filterOp
	lits []lit
	like []rune // lower-cased LIKE pattern
}

// cmpLit compares a column value x with an operand.
func cmpLit(x int64, l lit) int {
	if l.exact {
		return cmpInt(x, l.v)
	}
	if x <= l.v {
		return -1
	}
	return 1
}

func (c *cond) cmp(v value, l lit) int {
	if c.col.typ == typeString {
		return collate(v.s, l.s)
	}
	return cmpLit(v.i, l)
}

// match evaluates the condition on a row (SQL semantics: a comparison with a
// null column value is false, except _eq: null, and _in with a null element).
func (c *cond) match(r *row) bool {
	switch c.kind {
	case condAnd:
		for _, k := range c.kids {
			if !k.match(r) {
				return false
			}
		}
		return true
	case condOr:
		if len(c.kids) == 0 {
			return true
		}
		for _, k := range c.kids {
			if k.match(r) {
				return true
			}
		}
		return false
	}
	v := c.col.gen(r)
	switch c.op {
	case opIsNull:
		return v.null
	case opIsNotNull:
		return !v.null
	case opIn:
		for _, l := range c.lits {
			if l.null {
				if v.null {
					return true
				}
			} else if !v.null && c.cmp(v, l) == 0 {
				return true
			}
		}
		return false
	}
	if v.null {
		return false
	}
	switch c.op {
	case opEq:
		return c.cmp(v, c.lits[0]) == 0
	case opNotEq:
		return c.cmp(v, c.lits[0]) != 0
	case opGt:
		return c.cmp(v, c.lits[0]) > 0
	case opGte:
		return c.cmp(v, c.lits[0]) >= 0
	case opLt:
		return c.cmp(v, c.lits[0]) < 0
	case opLte:
		return c.cmp(v, c.lits[0]) <= 0
	case opNotIn:
		for _, l := range c.lits {
			if !l.null && c.cmp(v, l) == 0 {
				return false
			}
		}
		return true
	case opBetween:
		return c.cmp(v, c.lits[0]) >= 0 && c.cmp(v, c.lits[1]) <= 0
	case opNotBetween:
		return c.cmp(v, c.lits[0]) < 0 || c.cmp(v, c.lits[1]) > 0
	case opLike:
		return likeMatch(c.like, v.s)
	case opNotLike:
		return !likeMatch(c.like, v.s)
	}
	return false
}

// compileFilter compiles a FilterExpression_<Table> value. nil means no filter.
func compileFilter(t *table, v any, loc *time.Location) (*cond, error) {
	if v == nil {
		return nil, nil
	}
	obj, ok := v.(objVal)
	if !ok {
		return nil, fmt.Errorf("filter: expected an object, got %T", v)
	}
	and := &cond{kind: condAnd}
	for _, f := range obj {
		switch f.name {
		case "_and", "_or":
			if f.val == nil {
				continue
			}
			list, ok := f.val.([]any)
			if !ok {
				return nil, fmt.Errorf("filter %s: expected a list", f.name)
			}
			group := &cond{kind: condOr}
			if f.name == "_and" {
				group = and
			}
			for _, el := range list {
				sub, err := compileFilter(t, el, loc)
				if err != nil {
					return nil, err
				}
				if sub != nil {
					group.kids = append(group.kids, sub)
				}
			}
			if f.name == "_or" {
				if len(group.kids) == 1 {
					and.kids = append(and.kids, group.kids[0]) // keeps the fast paths for {_or: [x]}
				} else {
					and.kids = append(and.kids, group)
				}
			}
		default:
			col := t.col(f.name)
			if col == nil {
				return nil, fmt.Errorf("filter: %s has no field %q", t.name, f.name)
			}
			if f.val == nil {
				continue
			}
			ops, ok := f.val.(objVal)
			if !ok {
				return nil, fmt.Errorf("filter %s: expected an object of operators", f.name)
			}
			for _, o := range ops {
				leaf, err := compileLeaf(col, o.name, o.val, loc)
				if err != nil {
					return nil, fmt.Errorf("filter %s.%s: %w", f.name, o.name, err)
				}
				and.kids = append(and.kids, leaf)
			}
		}
	}
	return and, nil
}

func compileLeaf(col *column, name string, v any, loc *time.Location) (*cond, error) {
	op, ok := filterOps[name]
	if !ok {
		return nil, fmt.Errorf("unknown operator")
	}
	c := &cond{kind: condLeaf, col: col, op: op}
	switch op {
	case opEq, opNotEq:
		if v == nil {
			c.op = opIsNull
			if op == opNotEq {
				c.op = opIsNotNull
			}
			return c, nil
		}
		fallthrough
	case opGt, opGte, opLt, opLte:
		if v == nil {
			return nil, fmt.Errorf("null is only allowed with _eq, _not_eq, _in and _not_in")
		}
		l, err := toLit(col, v, loc)
		if err != nil {
			return nil, err
		}
		c.lits = []lit{l}
	case opIn, opNotIn, opBetween, opNotBetween:
		if v == nil {
			return nil, fmt.Errorf("expected a list, got null")
		}
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		for _, el := range list {
			if el == nil {
				if op == opBetween || op == opNotBetween {
					return nil, fmt.Errorf("the bounds must not be null")
				}
				c.lits = append(c.lits, lit{null: true})
				continue
			}
			l, err := toLit(col, el, loc)
			if err != nil {
				return nil, err
			}
			c.lits = append(c.lits, l)
		}
		if (op == opBetween || op == opNotBetween) && len(c.lits) != 2 {
			return nil, fmt.Errorf("expected two values (from, to), got %d", len(c.lits))
		}
	case opLike, opNotLike:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("expected a string pattern")
		}
		c.like = []rune(s)
		for i, r := range c.like {
			c.like[i] = toLowerRune(r)
		}
	}
	return c, nil
}

// toLit converts an operand to the domain of col.
func toLit(col *column, v any, loc *time.Location) (lit, error) {
	switch col.typ {
	case typeString:
		s, ok := v.(string)
		if !ok {
			return lit{}, fmt.Errorf("expected a String, got %s", describe(v))
		}
		return lit{s: s}, nil
	case typeBoolean:
		b, ok := v.(bool)
		if !ok {
			return lit{}, fmt.Errorf("expected a Boolean, got %s", describe(v))
		}
		if b {
			return lit{v: 1, exact: true}, nil
		}
		return lit{v: 0, exact: true}, nil
	case typeDateTime:
		s, ok := v.(string)
		if !ok {
			return lit{}, fmt.Errorf("expected a DateTime string, got %s", describe(v))
		}
		tk, exact, err := parseDateTime(s, loc)
		if err != nil {
			return lit{}, err
		}
		return lit{v: tk, exact: exact}, nil
	case typeInt, typeLong, typeDecimal:
		r, err := toRat(v)
		if err != nil {
			return lit{}, fmt.Errorf("expected a %s, got %s", col.typ.graphQL(), describe(v))
		}
		if col.typ == typeDecimal {
			r.Mul(r, new(big.Rat).SetInt64(pow10[col.scale]))
		}
		q := new(big.Int).Div(r.Num(), r.Denom()) // Euclidean: floor for a positive denominator
		if !q.IsInt64() {
			return lit{}, fmt.Errorf("%s is out of range", r.FloatString(0))
		}
		return lit{v: q.Int64(), exact: r.IsInt()}, nil
	}
	return lit{}, fmt.Errorf("unsupported column type")
}

func toRat(v any) (*big.Rat, error) {
	switch x := v.(type) {
	case int64:
		return new(big.Rat).SetInt64(x), nil
	case int:
		return new(big.Rat).SetInt64(int64(x)), nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("not a finite number")
		}
		r, ok := new(big.Rat).SetString(strconv.FormatFloat(x, 'f', -1, 64))
		if !ok {
			return nil, fmt.Errorf("not a number")
		}
		return r, nil
	case json.Number:
		return toRat(string(x))
	case string:
		r, ok := new(big.Rat).SetString(strings.TrimSpace(x))
		if !ok || strings.ContainsAny(x, "/") {
			return nil, fmt.Errorf("not a number")
		}
		return r, nil
	}
	return nil, fmt.Errorf("not a number")
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case objVal:
		return "an object"
	case []any:
		return "a list"
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

// likeMatch matches s against a lower-cased SQL LIKE pattern: % is any run of
// characters, _ one character; case-insensitive.
func likeMatch(p []rune, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		r, n := utf8.DecodeRuneInString(s[si:])
		if pi < len(p) && p[pi] == '%' {
			starP, starS = pi, si
			pi++
			continue
		}
		if pi < len(p) && (p[pi] == '_' || p[pi] == toLowerRune(r)) {
			pi++
			si += n
			continue
		}
		if starP < 0 {
			return false
		}
		pi = starP + 1
		_, n0 := utf8.DecodeRuneInString(s[starS:])
		starS += n0
		si = starS
	}
	for pi < len(p) && p[pi] == '%' {
		pi++
	}
	return pi == len(p)
}

func toLowerRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	return unicode.ToLower(r)
}

// conjuncts flattens the top-level AND of c.
func conjuncts(c *cond) []*cond {
	if c == nil {
		return nil
	}
	if c.kind != condAnd {
		return []*cond{c}
	}
	var out []*cond
	for _, k := range c.kids {
		out = append(out, conjuncts(k)...)
	}
	return out
}

// rangeOf returns the inclusive bounds [lo, hi] of the values a range leaf
// (_eq, _gt, _gte, _lt, _lte, _between) on a numeric or DateTime column lets
// through; ok is false for other leaves.
func rangeOf(c *cond) (lo, hi int64, ok bool) {
	if c.kind != condLeaf || c.col.typ == typeString {
		return 0, 0, false
	}
	lo, hi = math.MinInt64, math.MaxInt64
	lower := func(l lit, strict bool) int64 { // first value > l (strict) or >= l
		if strict || !l.exact {
			if l.v == math.MaxInt64 {
				return math.MaxInt64
			}
			return l.v + 1
		}
		return l.v
	}
	upper := func(l lit, strict bool) int64 { // last value < l (strict) or <= l
		if strict && l.exact && l.v != math.MinInt64 {
			return l.v - 1
		}
		return l.v
	}
	switch c.op {
	case opEq:
		if !c.lits[0].exact {
			return 1, 0, true // empty
		}
		return c.lits[0].v, c.lits[0].v, true
	case opGt:
		return lower(c.lits[0], true), hi, true
	case opGte:
		return lower(c.lits[0], false), hi, true
	case opLt:
		return lo, upper(c.lits[0], true), true
	case opLte:
		return lo, upper(c.lits[0], false), true
	case opBetween:
		return lower(c.lits[0], false), upper(c.lits[1], false), true
	}
	return 0, 0, false
}
