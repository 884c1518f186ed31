package graph

import (
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// Introspection is resolved generically over the gqlparser schema, so it
// always describes the schema that validates the requests.

// introNode is the value behind an introspection object.
type introNode struct {
	typ   *ast.Type // __Type
	field *ast.FieldDefinition
	input *inputValue
	enum  *ast.EnumValueDefinition
	dir   *ast.DirectiveDefinition
}

// inputValue is an argument or an input field (__InputValue).
type inputValue struct {
	name, description string
	typ               *ast.Type
	defaultValue      *ast.Value
	directives        ast.DirectiveList
}

func (x *exec) writeTypeByName(g *fieldGroup) {
	name, _ := x.args(g.first)["name"].(string)
	if x.schema.Types[name] == nil {
		x.out.raw("null")
		return
	}
	x.writeIntro(g.sub(), "__Type", introNode{typ: ast.NamedType(name, nil)})
}

func deprecation(dirs ast.DirectiveList) (bool, string) {
	d := dirs.ForName("deprecated")
	if d == nil {
		return false, ""
	}
	if a := d.Arguments.ForName("reason"); a != nil && a.Value != nil {
		return true, a.Value.Raw
	}
	return true, "No longer supported"
}

func (x *exec) includeDeprecated(f *ast.Field) bool {
	b, _ := x.args(f)["includeDeprecated"].(bool)
	return b
}

// writeList writes a JSON array of introspection objects.
func (x *exec) writeList(sel ast.SelectionSet, typeName string, nodes []introNode) {
	x.out.raw("[")
	for i, n := range nodes {
		if i > 0 {
			x.out.raw(",")
		}
		x.writeIntro(sel, typeName, n)
	}
	x.out.raw("]")
}

func (x *exec) namedTypes(names []string) []introNode {
	out := make([]introNode, 0, len(names))
	for _, n := range names {
		out = append(out, introNode{typ: ast.NamedType(n, nil)})
	}
	return out
}

// writeIntro writes one introspection object of type typeName.
func (x *exec) writeIntro(sel ast.SelectionSet, typeName string, n introNode) {
	o := x.out
	o.raw("{")
	for i, g := range x.collect(sel) {
		if i > 0 {
			o.raw(",")
		}
		o.str(g.key)
		o.raw(":")
		if g.name() == "__typename" {
			o.str(typeName)
			continue
		}
		switch typeName {
		case "__Schema":
			x.schemaField(g)
		case "__Type":
			x.typeField(g, n.typ)
		case "__Field":
			x.fieldField(g, n.field)
		case "__InputValue":
			x.inputValueField(g, n.input)
		case "__EnumValue":
			x.enumValueField(g, n.enum)
		case "__Directive":
			x.directiveField(g, n.dir)
		default:
			o.raw("null")
		}
	}
	o.raw("}")
}

func (x *exec) schemaField(g *fieldGroup) {
	o, s := x.out, x.schema
	switch g.name() {
	case "description":
		o.strOrNull(s.Description)
	case "types":
		names := make([]string, 0, len(s.Types))
		for name := range s.Types {
			names = append(names, name)
		}
		slices.Sort(names)
		x.writeList(g.sub(), "__Type", x.namedTypes(names))
	case "queryType":
		x.writeIntro(g.sub(), "__Type", introNode{typ: ast.NamedType(s.Query.Name, nil)})
	case "mutationType":
		x.writeOptionalRoot(g, s.Mutation)
	case "subscriptionType":
		x.writeOptionalRoot(g, s.Subscription)
	case "directives":
		names := make([]string, 0, len(s.Directives))
		for name := range s.Directives {
			names = append(names, name)
		}
		slices.Sort(names)
		var nodes []introNode
		for _, name := range names {
			nodes = append(nodes, introNode{dir: s.Directives[name]})
		}
		x.writeList(g.sub(), "__Directive", nodes)
	default:
		o.raw("null")
	}
}

func (x *exec) writeOptionalRoot(g *fieldGroup, def *ast.Definition) {
	if def == nil {
		x.out.raw("null")
		return
	}
	x.writeIntro(g.sub(), "__Type", introNode{typ: ast.NamedType(def.Name, nil)})
}

func (x *exec) typeField(g *fieldGroup, t *ast.Type) {
	o := x.out
	var def *ast.Definition
	if !t.NonNull && t.Elem == nil {
		def = x.schema.Types[t.NamedType]
	}
	kind := ""
	switch {
	case t.NonNull:
		kind = "NON_NULL"
	case t.Elem != nil:
		kind = "LIST"
	case def != nil:
		kind = string(def.Kind)
	}
	is := func(kinds ...ast.DefinitionKind) bool { return def != nil && slices.Contains(kinds, def.Kind) }
	switch g.name() {
	case "kind":
		o.str(kind)
	case "name":
		if def == nil {
			o.raw("null")
		} else {
			o.str(def.Name)
		}
	case "description":
		if def == nil {
			o.raw("null")
		} else {
			o.strOrNull(def.Description)
		}
	case "specifiedByURL":
		url := ""
		if def != nil {
			if d := def.Directives.ForName("specifiedBy"); d != nil {
				if a := d.Arguments.ForName("url"); a != nil && a.Value != nil {
					url = a.Value.Raw
				}
			}
		}
		o.strOrNull(url)
	case "fields":
		if !is(ast.Object, ast.Interface) {
			o.raw("null")
			return
		}
		incl := x.includeDeprecated(g.first)
		var nodes []introNode
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			if dep, _ := deprecation(f.Directives); dep && !incl {
				continue
			}
			nodes = append(nodes, introNode{field: f})
		}
		x.writeList(g.sub(), "__Field", nodes)
	case "interfaces":
		if !is(ast.Object, ast.Interface) {
			o.raw("null")
			return
		}
		x.writeList(g.sub(), "__Type", x.namedTypes(def.Interfaces))
	case "possibleTypes":
		if !is(ast.Interface, ast.Union) {
			o.raw("null")
			return
		}
		var names []string
		for _, p := range x.schema.GetPossibleTypes(def) {
			names = append(names, p.Name)
		}
		slices.Sort(names)
		x.writeList(g.sub(), "__Type", x.namedTypes(names))
	case "enumValues":
		if !is(ast.Enum) {
			o.raw("null")
			return
		}
		incl := x.includeDeprecated(g.first)
		var nodes []introNode
		for _, ev := range def.EnumValues {
			if dep, _ := deprecation(ev.Directives); dep && !incl {
				continue
			}
			nodes = append(nodes, introNode{enum: ev})
		}
		x.writeList(g.sub(), "__EnumValue", nodes)
	case "inputFields":
		if !is(ast.InputObject) {
			o.raw("null")
			return
		}
		incl := x.includeDeprecated(g.first)
		var nodes []introNode
		for _, f := range def.Fields {
			if dep, _ := deprecation(f.Directives); dep && !incl {
				continue
			}
			nodes = append(nodes, introNode{input: &inputValue{name: f.Name, description: f.Description,
				typ: f.Type, defaultValue: f.DefaultValue, directives: f.Directives}})
		}
		x.writeList(g.sub(), "__InputValue", nodes)
	case "ofType":
		switch {
		case t.NonNull:
			inner := *t
			inner.NonNull = false
			x.writeIntro(g.sub(), "__Type", introNode{typ: &inner})
		case t.Elem != nil:
			x.writeIntro(g.sub(), "__Type", introNode{typ: t.Elem})
		default:
			o.raw("null")
		}
	case "isOneOf":
		if !is(ast.InputObject) {
			o.raw("null")
			return
		}
		o.bool(def.Directives.ForName("oneOf") != nil)
	default:
		o.raw("null")
	}
}

func (x *exec) argNodes(g *fieldGroup, args ast.ArgumentDefinitionList) []introNode {
	incl := x.includeDeprecated(g.first)
	nodes := []introNode{}
	for _, a := range args {
		if dep, _ := deprecation(a.Directives); dep && !incl {
			continue
		}
		nodes = append(nodes, introNode{input: &inputValue{name: a.Name, description: a.Description,
			typ: a.Type, defaultValue: a.DefaultValue, directives: a.Directives}})
	}
	return nodes
}

func (x *exec) fieldField(g *fieldGroup, f *ast.FieldDefinition) {
	o := x.out
	dep, reason := deprecation(f.Directives)
	switch g.name() {
	case "name":
		o.str(f.Name)
	case "description":
		o.strOrNull(f.Description)
	case "args":
		x.writeList(g.sub(), "__InputValue", x.argNodes(g, f.Arguments))
	case "type":
		x.writeIntro(g.sub(), "__Type", introNode{typ: f.Type})
	case "isDeprecated":
		o.bool(dep)
	case "deprecationReason":
		o.strOrNull(reason)
	default:
		o.raw("null")
	}
}

func (x *exec) inputValueField(g *fieldGroup, v *inputValue) {
	o := x.out
	dep, reason := deprecation(v.directives)
	switch g.name() {
	case "name":
		o.str(v.name)
	case "description":
		o.strOrNull(v.description)
	case "type":
		x.writeIntro(g.sub(), "__Type", introNode{typ: v.typ})
	case "defaultValue":
		if v.defaultValue == nil {
			o.raw("null")
		} else {
			o.str(v.defaultValue.String())
		}
	case "isDeprecated":
		o.bool(dep)
	case "deprecationReason":
		o.strOrNull(reason)
	default:
		o.raw("null")
	}
}

func (x *exec) enumValueField(g *fieldGroup, ev *ast.EnumValueDefinition) {
	o := x.out
	dep, reason := deprecation(ev.Directives)
	switch g.name() {
	case "name":
		o.str(ev.Name)
	case "description":
		o.strOrNull(ev.Description)
	case "isDeprecated":
		o.bool(dep)
	case "deprecationReason":
		o.strOrNull(reason)
	default:
		o.raw("null")
	}
}

func (x *exec) directiveField(g *fieldGroup, d *ast.DirectiveDefinition) {
	o := x.out
	switch g.name() {
	case "name":
		o.str(d.Name)
	case "description":
		o.strOrNull(d.Description)
	case "isRepeatable":
		o.bool(d.IsRepeatable)
	case "locations":
		o.raw("[")
		for i, l := range d.Locations {
			if i > 0 {
				o.raw(",")
			}
			o.str(string(l))
		}
		o.raw("]")
	case "args":
		x.writeList(g.sub(), "__InputValue", x.argNodes(g, d.Arguments))
	default:
		o.raw("null")
	}
}
