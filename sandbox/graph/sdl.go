package graph

import (
	"strings"
)

// Filter operators of every per-scalar filter input; String adds the LIKE
// pair.
var (
	compareOps = []string{"_eq", "_not_eq", "_gt", "_gte", "_lt", "_lte"}
	listOps    = []string{"_in", "_not_in", "_between", "_not_between"}
	likeOps    = []string{"_like", "_not_like"}
)

// connectionArgs are the arguments of every table connection field.
func connectionArgs(t *table) string {
	return "first: Int, after: String, last: Int, before: String, skip: Int, filter: FilterExpression_" + t.name + ", orderBy: [OrderBy_" + t.name + "]"
}

func sdlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// buildSDL generates the schema of the model, with the type names of the
// Business NXT GraphQL API.
func buildSDL(m *model) string {
	var b strings.Builder
	w := func(lines ...string) {
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	w(`"Business NXT GraphQL (sandbox emulator)."`,
		`schema { query: Query }`,
		``,
		`"A 64-bit integer."`,
		`scalar Long`,
		`"A decimal number, written as a JSON number."`,
		`scalar Decimal`,
		`"Server local date and time without zone: yyyy-MM-ddTHH:mm:ss.fff in results; filters also take a zone or offset, converted to server time."`,
		`scalar DateTime`,
		``,
		`"Sort direction."`,
		`enum SortOrder {`,
		`  "Ascending; nulls first."`,
		`  ASC`,
		`  "Descending; nulls last."`,
		`  DESC`,
		`}`,
		``,
		`"Paging information of a connection."`,
		`type PageInfo {`,
		`  hasNextPage: Boolean!`,
		`  hasPreviousPage: Boolean!`,
		`  startCursor: String`,
		`  endCursor: String`,
		`}`,
		``,
		`type Query {`,
		`  "The companies the caller may use."`,
		`  availableCompanies(customerNo: Int): Query_AvailableCompanies_Connection`,
		`  "The tables of one company, by its Visma.net company id."`,
		`  useCompany(no: Int): Query_UseCompany`,
		`}`,
		``,
		`type Query_AvailableCompanies_Connection {`,
		`  totalCount: Int`,
		`  items: [AvailableCompany]`,
		`}`,
		``,
		`"A company the caller may use."`,
		`type AvailableCompany {`,
		`  name: String`,
		`  vismaNetCompanyId: Int`,
		`  vismaNetCustomerId: Int`,
		`}`,
		``,
		`"The company tables."`,
		`type Query_UseCompany {`)
	for _, t := range m.tables {
		w("  " + sdlString(t.description))
		w("  " + t.field + "(" + connectionArgs(t) + "): " + t.connType)
	}
	w(`}`, ``)

	scalars := map[scalarType]bool{}
	for _, t := range m.tables {
		w(`type `+t.connType+` {`,
			`  totalCount: Int`,
			`  pageInfo: PageInfo`,
			`  items: [`+t.name+`]`,
			`}`, ``)
		w(sdlString(t.description), `type `+t.name+` {`)
		for _, c := range t.columns {
			scalars[c.typ] = true
			w("  "+sdlString(c.description), "  "+c.name+": "+c.typ.graphQL())
		}
		for _, r := range t.relations {
			w("  " + sdlString(r.description))
			switch r.kind {
			case joinUp:
				w("  " + r.field + ": " + r.targetTable.name)
			case joinDown:
				w("  " + r.field + "(" + connectionArgs(r.targetTable) + "): " + r.targetTable.connType)
			}
		}
		w(`}`, ``)
		w(`"Filter on `+t.name+`: the fields of one object must all hold; _and and _or combine filters."`,
			`input FilterExpression_`+t.name+` {`)
		for _, c := range t.columns {
			w("  " + c.name + ": FilterExpression_" + c.typ.graphQL())
		}
		w(`  _and: [FilterExpression_`+t.name+`]`,
			`  _or: [FilterExpression_`+t.name+`]`,
			`}`, ``)
		w(`"Sort on `+t.name+`: a list is applied in order; the key breaks ties."`,
			`input OrderBy_`+t.name+` {`)
		for _, c := range t.columns {
			w("  " + c.name + ": SortOrder")
		}
		w(`}`, ``)
	}
	for _, s := range []scalarType{typeInt, typeLong, typeDecimal, typeString, typeDateTime, typeBoolean} {
		if !scalars[s] {
			continue
		}
		g := s.graphQL()
		w(`"Conditions on a `+g+` field; all given must hold. _eq: null matches null."`,
			`input FilterExpression_`+g+` {`)
		for _, op := range compareOps {
			w("  " + op + ": " + g)
		}
		for _, op := range listOps {
			w("  " + op + ": [" + g + "]")
		}
		if s == typeString {
			for _, op := range likeOps {
				w("  " + op + ": String")
			}
		}
		w(`}`, ``)
	}
	return b.String()
}
