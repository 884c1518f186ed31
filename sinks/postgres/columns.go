package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/nxtcron/nxtcron/sinks"
)

// Postgres types, spelt as format_type prints them (the comparison with an
// existing table's columns is by this text) and valid in DDL.
const (
	typeBigint      = "bigint"
	typeNumeric     = "numeric"
	typeText        = "text"
	typeBoolean     = "boolean"
	typeTimestamp   = "timestamp without time zone"
	typeTimestampTZ = "timestamp with time zone"
	typeDouble      = "double precision"
	typeJSONB       = "jsonb"
	typeUUID        = "uuid"
)

// Columns every target table has besides the fields' columns.
const (
	colCompany  = "company_no"
	colRunID    = "_nxtcron_run_id"
	colLoadedAt = "_nxtcron_loaded_at"
	// colData holds each row in columns: jsonb.
	colData = "data"
)

// Names of the sink's own tables in the target's schema.
const (
	stateTable  = "nxtcron_sink_state"
	stageTable  = "nxtcron_sink_stage"
	stagePrefix = "_nxtcron_stage_"
)

// maxIdent is Postgres's identifier limit (NAMEDATALEN-1 bytes); longer
// names are truncated silently, so they are refused instead.
const maxIdent = 63

// identPattern is what table and schema names may look like: lower case,
// so that they need no quoting in the SQL people write against them.
var identPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// snakeCase turns a GraphQL field name into a column name: associateNo ->
// associate_no, joinup_Country -> joinup_country, vismaNetCompanyId ->
// visma_net_company_id, orderID -> order_id, XMLName -> xml_name.
func snakeCase(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && rs[i-1] != '_' {
				prev := rs[i-1]
				nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
				if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
					b.WriteByte('_')
				}
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// parseTable splits "schema.table" (or "table", in schema public).
func parseTable(s string) (schema, table string, err error) {
	schema, table = "public", s
	if before, after, ok := strings.Cut(s, "."); ok {
		schema, table = before, after
	}
	for _, part := range []string{schema, table} {
		switch {
		case part == "":
			return "", "", fmt.Errorf("must be schema.table, as in bnxt.associate, not %q", s)
		case !identPattern.MatchString(part):
			return "", "", fmt.Errorf("%q: names must be lower-case letters, digits and _, starting with a letter or _", part)
		case len(part) > maxIdent:
			return "", "", fmt.Errorf("%q is longer than %d bytes", part, maxIdent)
		}
	}
	if table == stateTable || table == stageTable || strings.HasPrefix(table, stagePrefix) {
		return "", "", fmt.Errorf("%q is a name the sink uses for its own tables", table)
	}
	return schema, table, nil
}

// column is one column the rows fill.
type column struct {
	name  string // column name
	field string // the row's key it comes from ("" for the data column)
	gql   string // the field's GraphQL type, for messages
	typ   string // Postgres type
	expr  string // SQL giving the value from s.item, the staged row (jsonb)
	key   bool
}

// plan is the columns of a target table, in order, and its key.
type plan struct {
	cols []column // the fields' columns (typed) or key columns and data (jsonb)
	keys []column // the key columns, in key order
}

// reservedColumns are the columns every target has; no field may map to
// one of them.
var reservedColumns = []string{colCompany, colRunID, colLoadedAt}

// columnNames checks the names the fields would get and returns a problem
// per collision or bad name. columns is ColumnsTyped or ColumnsJSONB; in
// jsonb mode only the key fields get columns.
func columnNames(fields, key []string, columns string) []string {
	var problems []string
	owner := map[string]string{}
	for _, r := range reservedColumns {
		owner[r] = ""
	}
	if columns == ColumnsJSONB {
		owner[colData] = ""
		fields = key
	}
	for _, f := range fields {
		name := snakeCase(f)
		switch prev, taken := owner[name]; {
		case taken && prev == "":
			problems = append(problems, fmt.Sprintf("field %s maps to column %s, which the sink uses itself; alias the field in the query", f, name))
			continue
		case taken && prev != f:
			problems = append(problems, fmt.Sprintf("fields %s and %s both map to column %s; alias one of them in the query", prev, f, name))
			continue
		case taken:
			continue
		}
		if len(name) > maxIdent {
			problems = append(problems, fmt.Sprintf("field %s maps to column %s, longer than %d bytes; alias it in the query", f, name, maxIdent))
		}
		owner[name] = f
	}
	return problems
}

// scalarTypes maps GraphQL scalars to column types. Int is bigint, not
// integer, so that no Int a data model extension widens overflows; Date-like
// Ints (yyyymmdd) stay numbers.
var scalarTypes = map[string]string{
	"Int":      typeBigint,
	"Long":     typeBigint,
	"Decimal":  typeNumeric,
	"Float":    typeDouble,
	"String":   typeText,
	"ID":       typeText,
	"Boolean":  typeBoolean,
	"DateTime": typeTimestamp,
}

// columnFor gives the column of one field.
func columnFor(f sinks.Field) (column, error) {
	c := column{name: snakeCase(f.Name), field: f.Name, gql: f.Type}
	lit := literal(f.Name)
	jsonCol := func() column {
		c.typ = typeJSONB
		// JSON null is stored as SQL NULL, like every other column's null.
		c.expr = "NULLIF(s.item->" + lit + ", 'null'::jsonb)"
		return c
	}
	if f.List || f.Object {
		if c.gql == "" {
			c.gql = "object"
		}
		return jsonCol(), nil
	}
	if f.Type == "" {
		return column{}, fmt.Errorf("field %s has no GraphQL type (introspection did not find it on the item type); columns: typed needs one for every field", f.Name)
	}
	typ, ok := scalarTypes[f.Type]
	if !ok {
		// Enums and custom scalars: the JSON value as it came.
		return jsonCol(), nil
	}
	c.typ = typ
	if typ == typeText {
		c.expr = "(s.item->>" + lit + ")"
	} else {
		c.expr = "(s.item->>" + lit + ")::" + typ
	}
	return c, nil
}

// buildPlan lays out the target's columns from the run's fields.
func buildPlan(cfg *Config, fields []sinks.Field) (*plan, error) {
	names := make([]string, len(fields))
	byName := make(map[string]sinks.Field, len(fields))
	for i, f := range fields {
		names[i] = f.Name
		byName[f.Name] = f
	}
	if len(fields) == 0 {
		return nil, errors.New("the run selects no item fields")
	}
	if problems := columnNames(names, cfg.Key, cfg.Columns); len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	p := &plan{}
	keyCol := func(k string) (column, error) {
		f, ok := byName[k]
		if !ok {
			return column{}, fmt.Errorf("key field %s is not selected under items", k)
		}
		if f.List || f.Object {
			return column{}, fmt.Errorf("key field %s is a nested object or list; a key must be a scalar field", k)
		}
		c, err := columnFor(f)
		if err != nil {
			return column{}, err
		}
		c.key = true
		return c, nil
	}
	switch cfg.Columns {
	case ColumnsJSONB:
		for _, k := range cfg.Key {
			c, err := keyCol(k)
			if err != nil {
				return nil, err
			}
			p.cols = append(p.cols, c)
			p.keys = append(p.keys, c)
		}
		p.cols = append(p.cols, column{name: colData, gql: "row", typ: typeJSONB, expr: "s.item"})
	default:
		for _, f := range fields {
			if slices.Contains(cfg.Key, f.Name) {
				c, err := keyCol(f.Name)
				if err != nil {
					return nil, err
				}
				p.cols = append(p.cols, c)
				continue
			}
			c, err := columnFor(f)
			if err != nil {
				return nil, err
			}
			p.cols = append(p.cols, c)
		}
		for _, k := range cfg.Key {
			i := slices.IndexFunc(p.cols, func(c column) bool { return c.field == k })
			if i < 0 {
				return nil, fmt.Errorf("key field %s is not selected under items", k)
			}
			p.keys = append(p.keys, p.cols[i])
		}
	}
	return p, nil
}

// ident quotes an identifier (schema-qualified when given several parts).
func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// literal quotes a string constant (standard_conforming_strings is on in
// every supported Postgres).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
