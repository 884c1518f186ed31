package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/nxtcron/nxtcron/bnxt"
	"github.com/nxtcron/nxtcron/sinks"
)

// fieldTypesQuery asks for the fields of one type with their types, unwrapped
// through NON_NULL and LIST wrappers (four levels cover [T!]!).
const fieldTypesQuery = `query nxtcronFieldTypes($name: String!) {
  __type(name: $name) {
    name
    fields {
      name
      type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
    }
  }
}`

// introType is an __Type as fieldTypesQuery selects it.
type introType struct {
	Kind   string     `json:"kind"`
	Name   *string    `json:"name"`
	OfType *introType `json:"ofType"`
}

// fieldTypes returns the selected item fields of job with their GraphQL
// types, from one introspection of the item type (the paged table's name
// with an upper-case first letter, e.g. Associate). A field the type does
// not have keeps an empty Type; the sink decides whether that matters.
func fieldTypes(ctx context.Context, client *bnxt.Client, job *Job) ([]sinks.Field, error) {
	typeName := upperFirst(job.Paged.Table)
	resp, err := client.Do(ctx, bnxt.Request{
		Query:         fieldTypesQuery,
		Variables:     map[string]any{"name": typeName},
		OperationName: "nxtcronFieldTypes",
	})
	if err != nil {
		return nil, fmt.Errorf("introspecting type %s: %w", typeName, err)
	}
	var data struct {
		Type *struct {
			Fields []struct {
				Name string    `json:"name"`
				Type introType `json:"type"`
			} `json:"fields"`
		} `json:"__type"`
	}
	if err := json.Unmarshal(resp.Data, &data); err != nil {
		return nil, fmt.Errorf("decoding the introspection of type %s: %w", typeName, err)
	}
	if data.Type == nil {
		return nil, permanent(fmt.Errorf("introspecting type %s: the schema has no such type", typeName))
	}
	types := make(map[string]introType, len(data.Type.Fields))
	for _, f := range data.Type.Fields {
		types[f.Name] = f.Type
	}
	names := itemFieldNames(job)
	out := make([]sinks.Field, len(job.Paged.Fields))
	for i, key := range job.Paged.Fields {
		name := key
		if n, ok := names[key]; ok {
			name = n
		}
		out[i] = sinks.Field{Name: key}
		if t, ok := types[name]; ok {
			out[i].Type, out[i].List, out[i].Object = unwrapType(t)
		}
	}
	return out, nil
}

// unwrapType returns the named type under t's wrappers, whether a LIST
// wrapper was among them, and whether the named type is an object (OBJECT,
// INTERFACE or UNION: a nested join or connection).
func unwrapType(t introType) (name string, list, object bool) {
	for cur := &t; cur != nil; cur = cur.OfType {
		switch cur.Kind {
		case "NON_NULL":
		case "LIST":
			list = true
		default:
			if cur.Name != nil {
				name = *cur.Name
			}
			object = cur.Kind == "OBJECT" || cur.Kind == "INTERFACE" || cur.Kind == "UNION"
			return name, list, object
		}
	}
	return name, list, object
}

// itemFieldNames maps the response keys of the paged connection's items to
// their schema field names (they differ where the query aliases a field).
// The query was validated when the job loaded; nil means it could not be
// walked, and the keys are taken as the names.
func itemFieldNames(job *Job) map[string]string {
	doc, err := parser.ParseQuery(&ast.Source{Name: "query", Input: job.Query})
	if err != nil || len(doc.Operations) == 0 {
		return nil
	}
	a := &analyser{doc: doc, budget: maxQueryFields}
	ss := doc.Operations[0].SelectionSet
	for _, step := range job.Paged.Path {
		var next *ast.Field
		for _, f := range a.fields(ss) {
			if key(f) == step {
				next = f
				break
			}
		}
		if next == nil {
			return nil
		}
		ss = next.SelectionSet
	}
	items := child(a.fields(ss), "items")
	if items == nil {
		return nil
	}
	out := map[string]string{}
	for _, f := range a.fields(items.SelectionSet) {
		if _, seen := out[key(f)]; !seen {
			out[key(f)] = f.Name
		}
	}
	return out
}
