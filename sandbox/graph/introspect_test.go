package graph

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// introspectionQuery is graphql-js getIntrospectionQuery with every option
// on (descriptions, specifiedByURL, isRepeatable, schema description,
// input value deprecation, oneOf), as GraphiQL sends it.
const introspectionQuery = `
query IntrospectionQuery {
  __schema {
    description
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types { ...FullType }
    directives {
      name
      description
      isRepeatable
      locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}
fragment FullType on __Type {
  kind
  name
  description
  specifiedByURL
  isOneOf
  fields(includeDeprecated: true) {
    name
    description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
  isDeprecated
  deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}`

type typeRef struct {
	Kind   string   `json:"kind"`
	Name   *string  `json:"name"`
	OfType *typeRef `json:"ofType"`
}

func (t *typeRef) String() string {
	switch t.Kind {
	case "NON_NULL":
		return t.OfType.String() + "!"
	case "LIST":
		return "[" + t.OfType.String() + "]"
	}
	return *t.Name
}

type inputValueJSON struct {
	Name         string  `json:"name"`
	Type         typeRef `json:"type"`
	DefaultValue *string `json:"defaultValue"`
	IsDeprecated bool    `json:"isDeprecated"`
	Description  *string `json:"description"`
}

type fullType struct {
	Kind        string  `json:"kind"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	IsOneOf     *bool   `json:"isOneOf"`
	Fields      []struct {
		Name         string           `json:"name"`
		Description  *string          `json:"description"`
		Args         []inputValueJSON `json:"args"`
		Type         typeRef          `json:"type"`
		IsDeprecated bool             `json:"isDeprecated"`
	} `json:"fields"`
	InputFields []inputValueJSON `json:"inputFields"`
	Interfaces  []typeRef        `json:"interfaces"`
	EnumValues  []struct {
		Name string `json:"name"`
	} `json:"enumValues"`
	PossibleTypes []typeRef `json:"possibleTypes"`
}

type schemaJSON struct {
	Schema struct {
		Description  *string `json:"description"`
		QueryType    typeRef `json:"queryType"`
		MutationType *typeRef
		Types        []fullType `json:"types"`
		Directives   []struct {
			Name         string           `json:"name"`
			IsRepeatable bool             `json:"isRepeatable"`
			Locations    []string         `json:"locations"`
			Args         []inputValueJSON `json:"args"`
		} `json:"directives"`
	} `json:"__schema"`
}

func TestFullIntrospectionQuery(t *testing.T) {
	e := New(Options{})
	d := ok(t, e, introspectionQuery, nil)
	b, err := json.Marshal(d)
	require.NoError(t, err)
	var s schemaJSON
	require.NoError(t, json.Unmarshal(b, &s))

	require.Equal(t, "Query", *s.Schema.QueryType.Name)
	require.Nil(t, s.Schema.MutationType)
	byName := map[string]fullType{}
	var names []string
	for _, ty := range s.Schema.Types {
		byName[ty.Name] = ty
		names = append(names, ty.Name)
	}
	require.True(t, sort.StringsAreSorted(names))

	// Every type of the schema is there, with its fields, and nothing else.
	var want []string
	for name := range e.c.schema.Types {
		want = append(want, name)
	}
	slices.Sort(want)
	require.Equal(t, want, names)
	for _, name := range []string{"Query", "Query_UseCompany", "Query_AvailableCompanies_Connection", "AvailableCompany", "PageInfo",
		"Query_UseCompany_Associate_Connection", "Associate", "FilterExpression_Associate", "OrderBy_Associate",
		"Query_UseCompany_GeneralLedgerAccount_Connection", "Query_UseCompany_Order_Connection", "Query_UseCompany_OrderLine_Connection",
		"FilterExpression_Int", "FilterExpression_String", "FilterExpression_DateTime", "FilterExpression_Decimal", "FilterExpression_Long",
		"FilterExpression_Boolean", "SortOrder", "DateTime", "Decimal", "Long", "__Schema", "__Type"} {
		require.Contains(t, byName, name)
	}
	for name, def := range e.c.schema.Types {
		ty := byName[name]
		require.Equal(t, string(def.Kind), ty.Kind, name)
		switch ty.Kind {
		case "OBJECT":
			var fields []string
			for _, f := range def.Fields {
				if !strings.HasPrefix(f.Name, "__") {
					fields = append(fields, f.Name+": "+f.Type.String())
				}
			}
			var got []string
			for _, f := range ty.Fields {
				got = append(got, f.Name+": "+f.Type.String())
			}
			require.Equal(t, fields, got, name)
			require.NotNil(t, ty.Interfaces, name)
			require.Nil(t, ty.InputFields, name)
		case "INPUT_OBJECT":
			require.Len(t, ty.InputFields, len(def.Fields), name)
			require.NotNil(t, ty.IsOneOf, name)
			require.Nil(t, ty.Fields, name)
		case "ENUM":
			require.Len(t, ty.EnumValues, len(def.EnumValues), name)
		case "SCALAR":
			require.Nil(t, ty.Fields, name)
			require.Nil(t, ty.IsOneOf, name)
		}
	}

	q := byName["Query"]
	var qf []string
	for _, f := range q.Fields {
		qf = append(qf, f.Name)
	}
	require.Equal(t, []string{"availableCompanies", "useCompany"}, qf, "__schema and __type are not listed")
	require.Equal(t, "no", q.Fields[1].Args[0].Name)
	require.Equal(t, "Int", q.Fields[1].Args[0].Type.String(), "useCompany(no: Int) is nullable")

	conn := byName["Query_UseCompany"].Fields[0]
	require.Equal(t, "associate", conn.Name)
	var args []string
	for _, a := range conn.Args {
		args = append(args, a.Name+": "+a.Type.String())
	}
	require.Equal(t, []string{"first: Int", "after: String", "last: Int", "before: String", "skip: Int",
		"filter: FilterExpression_Associate", "orderBy: [OrderBy_Associate]"}, args)

	var ops []string
	for _, f := range byName["FilterExpression_String"].InputFields {
		ops = append(ops, f.Name+": "+f.Type.String())
	}
	require.Equal(t, []string{"_eq: String", "_not_eq: String", "_gt: String", "_gte: String", "_lt: String", "_lte: String",
		"_in: [String]", "_not_in: [String]", "_between: [String]", "_not_between: [String]", "_like: String", "_not_like: String"}, ops)

	var pi []string
	for _, f := range byName["PageInfo"].Fields {
		pi = append(pi, f.Name+": "+f.Type.String())
	}
	require.Equal(t, []string{"hasNextPage: Boolean!", "hasPreviousPage: Boolean!", "startCursor: String", "endCursor: String"}, pi)

	var dirs []string
	for _, d := range s.Schema.Directives {
		dirs = append(dirs, d.Name)
		if d.Name == "deprecated" {
			require.Equal(t, `"No longer supported"`, *d.Args[0].DefaultValue)
		}
	}
	require.Subset(t, dirs, []string{"include", "skip", "deprecated", "specifiedBy"})
}

func TestTypeIntrospection(t *testing.T) {
	e := New(Options{})
	d := ok(t, e, `{ __typename t: __type(name: "Query_UseCompany_Associate_Connection") { kind name fields { name type { kind name ofType { kind name } } } }
		o: __type(name: "Order") { fields { name args { name } type { name kind } } }
		s: __type(name: "SortOrder") { enumValues { name description } }
		none: __type(name: "Nope") { name } }`, nil)
	require.Equal(t, "Query", d["__typename"])
	require.Nil(t, d["none"])
	b, _ := json.Marshal(d["t"])
	require.JSONEq(t, `{"kind":"OBJECT","name":"Query_UseCompany_Associate_Connection","fields":[
		{"name":"totalCount","type":{"kind":"SCALAR","name":"Int","ofType":null}},
		{"name":"pageInfo","type":{"kind":"OBJECT","name":"PageInfo","ofType":null}},
		{"name":"items","type":{"kind":"LIST","name":null,"ofType":{"kind":"OBJECT","name":"Associate"}}}]}`, string(b))
	var rel []string
	for _, f := range objs(t, dig(t, d, "o", "fields")) {
		if strings.HasPrefix(f["name"].(string), "join") {
			rel = append(rel, f["name"].(string)+":"+dig(t, f, "type", "name").(string))
		}
	}
	require.Equal(t, []string{"joinup_Associate_via_Customer:Associate", "joindown_OrderLine_via_Order:Query_UseCompany_OrderLine_Connection"}, rel)
	require.Len(t, objs(t, dig(t, d, "s", "enumValues")), 2)
}

func TestSDLDescribesTheModel(t *testing.T) {
	sdl := New(Options{}).SDL()
	for _, s := range []string{
		"type Query_UseCompany {",
		"useCompany(no: Int): Query_UseCompany",
		"availableCompanies(customerNo: Int): Query_AvailableCompanies_Connection",
		"joinup_Country: Country",
		"joindown_OrderLine_via_Order(first: Int, after: String, last: Int, before: String, skip: Int, filter: FilterExpression_OrderLine, orderBy: [OrderBy_OrderLine]): Query_UseCompany_OrderLine_Connection",
		"input OrderBy_OrderLine {",
		"changedTimestamp: DateTime",
		"totalAmount: Decimal",
		"gln: Long",
		"enum SortOrder {",
	} {
		require.Contains(t, sdl, s)
	}
	m := newModel()
	for _, tb := range m.tables {
		require.Contains(t, sdl, "type "+tb.name+" {")
		require.LessOrEqual(t, len(tb.columns), 12, tb.name)
		require.NotNil(t, tb.col("createdTimestamp"))
		require.NotNil(t, tb.col("changedTimestamp"))
	}
}
