package graph

import (
	"fmt"
	"hash/fnv"
	"slices"
)

// scalarType is the GraphQL scalar of a column.
type scalarType uint8

const (
	typeInt scalarType = iota
	typeLong
	typeDecimal
	typeString
	typeDateTime
	typeBoolean
)

// graphQL returns the scalar's name in the schema.
func (s scalarType) graphQL() string {
	switch s {
	case typeInt:
		return "Int"
	case typeLong:
		return "Long"
	case typeDecimal:
		return "Decimal"
	case typeString:
		return "String"
	case typeDateTime:
		return "DateTime"
	case typeBoolean:
		return "Boolean"
	}
	panic(fmt.Sprintf("graph: unknown scalar type %d", s))
}

// column is one column of a table. gen computes its value for a row; it must
// be a pure function of the row (company, table, index, touch version).
type column struct {
	name        string
	typ         scalarType
	scale       int // digits after the point, for Decimal
	description string
	gen         func(r *row) value
	// lookup finds the row whose value of this column is v, for columns that
	// are unique but not the key (the target of a joinup that is not by key).
	lookup func(r *row, v int64) (int, bool)

	pos int // index in table.columns
}

type relationKind uint8

const (
	joinUp relationKind = iota
	joinDown
)

// relation is a joinup_ (to one row) or joindown_ (to a connection of rows)
// field. from columns of this table equal to columns of the target.
type relation struct {
	field       string
	kind        relationKind
	target      string // table field name
	from, to    []string
	description string

	targetTable *table
	fromCols    []*column
	toCols      []*column
}

// table is one company table of the model. Row indexes follow key order: the
// key columns must be non-decreasing in the index (lexicographically, and
// strictly increasing as a whole), so key lookups are binary searches.
type table struct {
	name        string // GraphQL type name: Associate
	field       string // field on Query_UseCompany: associate
	description string
	columns     []*column
	key         []string
	relations   []*relation
	fixedRows   int // > 0: the table has this many rows whatever Options.Rows says

	id       int
	salt     uint64
	byName   map[string]*column
	keyCols  []*column
	created  *column
	changed  *column
	connType string // Query_UseCompany_<Name>_Connection
}

func (t *table) col(name string) *column { return t.byName[name] }

// model is the set of tables, indexed.
type model struct {
	tables  []*table
	byField map[string]*table
}

func (m *model) table(field string) *table { return m.byField[field] }

// newModel builds the model: the tables of tables.go plus the two timestamp
// columns every table has, with derived indexes. It panics on an inconsistent
// model, which is a programming error.
func newModel() *model {
	m := &model{byField: map[string]*table{}}
	for i, t := range companyTables() {
		t.id = i
		t.salt = nameSalt(t.name)
		t.connType = "Query_UseCompany_" + t.name + "_Connection"
		t.created = &column{name: "createdTimestamp", typ: typeDateTime,
			description: "When the row was created, server local time; null for rows older than October 2024.",
			gen:         genCreatedTimestamp}
		t.changed = &column{name: "changedTimestamp", typ: typeDateTime,
			description: "When the row was last changed, server local time; null for rows untouched since before October 2024.",
			gen:         genChangedTimestamp}
		t.columns = append(t.columns, t.created, t.changed)
		t.byName = map[string]*column{}
		for p, c := range t.columns {
			c.pos = p
			if _, dup := t.byName[c.name]; dup {
				panic("graph: duplicate column " + t.name + "." + c.name)
			}
			t.byName[c.name] = c
		}
		for _, k := range t.key {
			c := t.byName[k]
			if c == nil || (c.typ != typeInt && c.typ != typeLong) {
				panic("graph: key column " + t.name + "." + k + " must be an Int or Long column")
			}
			t.keyCols = append(t.keyCols, c)
		}
		m.tables = append(m.tables, t)
		m.byField[t.field] = t
	}
	for field, id := range map[string]int{"associate": tidAssociate, "generalLedgerAccount": tidGeneralLedgerAccount,
		"order": tidOrder, "orderLine": tidOrderLine, "country": tidCountry} {
		if m.byField[field] == nil || m.byField[field].id != id {
			panic("graph: table ids out of step with companyTables: " + field)
		}
	}
	for _, t := range m.tables {
		for _, r := range t.relations {
			r.targetTable = m.byField[r.target]
			if r.targetTable == nil || len(r.from) != len(r.to) || len(r.from) == 0 {
				panic("graph: bad relation " + t.name + "." + r.field)
			}
			for i := range r.from {
				fc, tc := t.byName[r.from[i]], r.targetTable.byName[r.to[i]]
				if fc == nil || tc == nil || fc.typ != tc.typ {
					panic("graph: bad relation columns " + t.name + "." + r.field)
				}
				r.fromCols = append(r.fromCols, fc)
				r.toCols = append(r.toCols, tc)
			}
			switch {
			case r.kind == joinDown && !isPrefix(r.toCols, r.targetTable.keyCols):
				panic("graph: joindown must go to a key prefix: " + t.name + "." + r.field)
			case r.kind == joinUp && !slices.Equal(r.toCols, r.targetTable.keyCols) && (len(r.toCols) != 1 || r.toCols[0].lookup == nil):
				panic("graph: joinup must go to the key or a lookup column: " + t.name + "." + r.field)
			}
			if _, dup := t.byName[r.field]; dup {
				panic("graph: relation shadows column " + t.name + "." + r.field)
			}
		}
	}
	return m
}

func isPrefix(p, of []*column) bool {
	return len(p) <= len(of) && slices.Equal(p, of[:len(p)])
}

func nameSalt(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}
