package graph

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"
)

// Arguments and directive arguments are read from the validated document:
// literals and variables become plain values (see norm).

// included evaluates @skip and @include.
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
