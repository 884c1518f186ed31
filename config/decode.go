package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits that keep hostile documents (alias bombs, deep nesting) cheap.
const (
	maxNodes = 200_000
	maxDepth = 200
)

// A Decoder decodes the YAML of one file strictly into Go values: unknown
// keys are problems (with a suggestion), string values are ${VAR}-expanded
// after parsing, a Secret field x also accepts an x_file key naming a file
// that holds it, and every problem is recorded with its line and key path
// rather than stopping the decoding.
//
// Decoding follows the yaml struct tags of the target. An absent or null key
// leaves the target's value alone, so decoding onto defaults keeps them; a
// list replaces the target list. A field tagged `config:"noexpand"` is taken
// verbatim (no ${VAR} expansion). A field of type yaml.Node receives the
// (expanded) node itself for the caller to decode later.
type Decoder struct {
	file     string
	dir      string
	lookup   func(string) (string, bool)
	problems Problems
	lines    map[string]int
	failed   map[string]bool
	nodes    int
	tooBig   bool
}

// NewDecoder returns a decoder for a file shown as file in problems; dir is
// the directory that relative _file paths resolve against.
func NewDecoder(file, dir string) *Decoder {
	return &Decoder{
		file:   file,
		dir:    dir,
		lookup: os.LookupEnv,
		lines:  map[string]int{},
		failed: map[string]bool{},
	}
}

// File is the file name the decoder reports problems against.
func (d *Decoder) File() string { return d.file }

// Dir is the directory that relative paths resolve against.
func (d *Decoder) Dir() string { return d.dir }

// Problems returns the problems recorded so far, in the order found.
func (d *Decoder) Problems() Problems { return d.problems }

// Failed reports whether a problem was recorded at path.
func (d *Decoder) Failed(path string) bool { return d.failed[path] }

// Has reports whether the decoded document set path (a key or list item).
func (d *Decoder) Has(path string) bool {
	_, ok := d.lines[path]
	return ok
}

// prefixed returns Has for keys below prefix.
func (d *Decoder) prefixed(prefix string) func(key string) bool {
	return func(key string) bool { return d.Has(joinPath(prefix, key)) }
}

// Line returns the line of path, or of its nearest ancestor present in the
// document, or 1.
func (d *Decoder) Line(path string) int {
	for {
		if l, ok := d.lines[path]; ok && l > 0 {
			return l
		}
		if path == "" {
			return 1
		}
		path = parentPath(path)
	}
}

// Addf records a problem at path, on the line of path (or its nearest
// present ancestor).
func (d *Decoder) Addf(path, format string, args ...any) {
	d.AddAt(d.Line(path), path, fmt.Sprintf(format, args...))
}

// AddAt records a problem at path on an explicit line.
func (d *Decoder) AddAt(line int, path, msg string) {
	if line < 1 {
		line = 1
	}
	d.failed[path] = true
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Key: path, Message: msg})
}

// Add records a problem as it is, in whatever file it names (a job's
// query_file, say).
func (d *Decoder) Add(p Problem) {
	d.failed[p.Key] = true
	d.problems = append(d.problems, p)
}

// Expand expands s as found at path, recording a problem when it fails.
func (d *Decoder) Expand(path, s string) (string, bool) {
	v, err := Expand(s, d.lookup)
	if err != nil {
		d.Addf(path, "%s", err.Error())
		return "", false
	}
	return v, true
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse parses data as one YAML document and returns its root node, or nil
// when the document is empty or does not parse (a problem is recorded).
func (d *Decoder) Parse(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on hostile input before; a file must never
		// take the process down.
		if r := recover(); r != nil {
			d.AddAt(1, "", fmt.Sprintf("parsing YAML: %v", r))
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		d.AddAt(line, "", "invalid YAML: "+msg)
		return nil
	}
	// A trailing "---" with nothing after it is harmless; a second document
	// with content is not.
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && (len(more.Content) == 0 || isNull(more.Content[0])) {
			continue
		}
		line := more.Line
		if err != nil {
			line = 1
			if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
				line, _ = strconv.Atoi(m[1])
			}
		}
		d.AddAt(line, "", "only one YAML document is allowed")
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root = doc.Content[0]
	if isNull(d.resolve(root)) {
		return nil
	}
	d.lines[""] = root.Line
	return root
}

// Decode decodes n (a node of the parsed document, or nil) at path into out,
// a non-nil pointer. Keys listed in skip are ignored when n is a mapping.
func (d *Decoder) Decode(n *yaml.Node, path string, out any, skip ...string) {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic("config: Decode needs a non-nil pointer")
	}
	if n == nil {
		return
	}
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = n.Line
	}
	d.decode(n, path, v.Elem(), false, 0, skip)
}

// Node returns a deep copy of n with aliases and merge keys resolved and,
// unless noexpand, every string scalar ${VAR}-expanded. It returns nil when
// expansion failed (problems are recorded).
func (d *Decoder) Node(n *yaml.Node, path string, noexpand bool) *yaml.Node {
	before := len(d.problems)
	c := d.copyNode(n, path, noexpand, 0)
	if len(d.problems) > before {
		return nil
	}
	return c
}

// Pairs returns the key/value pairs of mapping n (aliases resolved, merge
// keys applied, the first of duplicate keys) without recording anything:
// for a caller that looks at a node Decode has already reported on.
func (d *Decoder) Pairs(n *yaml.Node, path string) []Pair {
	quiet := &Decoder{file: d.file, dir: d.dir, lookup: d.lookup, lines: map[string]int{}, failed: map[string]bool{}}
	return quiet.pairs(quiet.resolve(n), path, 0)
}

// Pair is one entry of a mapping.
type Pair struct {
	Key   string
	Path  string
	KeyN  *yaml.Node
	Value *yaml.Node
}

var (
	nodeType        = reflect.TypeFor[yaml.Node]()
	secretType      = reflect.TypeFor[Secret]()
	durationType    = reflect.TypeFor[time.Duration]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (d *Decoder) spend(path string, depth int) bool {
	if d.tooBig {
		return false
	}
	d.nodes++
	if d.nodes > maxNodes || depth > maxDepth {
		d.tooBig = true
		d.Addf(path, "document too large or too deeply nested (aliases expand to more than %d nodes, or nesting deeper than %d)", maxNodes, maxDepth)
		return false
	}
	return true
}

// resolve follows aliases.
func (d *Decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func isString(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str"
}

func (d *Decoder) decode(n *yaml.Node, path string, v reflect.Value, noexpand bool, depth int, skip []string) {
	n = d.resolve(n)
	if !d.spend(path, depth) {
		return
	}
	if n == nil {
		d.Addf(path, "unresolvable alias")
		return
	}
	t := v.Type()
	switch {
	case t == nodeType:
		if c := d.Node(n, path, noexpand); c != nil {
			v.Set(reflect.ValueOf(*c))
		}
		return
	case isNull(n):
		return
	case t == secretType:
		if s, ok := d.scalarString(n, path, noexpand); ok {
			v.SetString(s)
		}
		return
	case t == durationType:
		s, ok := d.scalarString(n, path, noexpand)
		if !ok {
			return
		}
		dur, err := ParseDuration(s)
		if err != nil {
			d.Addf(path, "must be a duration like 90s, 15m, 2h or 90d, not %q", s)
			return
		}
		v.SetInt(int64(dur))
		return
	case reflect.PointerTo(t).Implements(unmarshalerType), reflect.PointerTo(t).Implements(textType) && t.Kind() != reflect.String:
		d.decodeWithYAML(n, path, v, noexpand)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, path, v.Elem(), noexpand, depth+1, skip)
	case reflect.Struct:
		d.decodeStruct(n, path, v, depth, skip)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.Addf(path, "must be a list")
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			d.decode(item, p, s.Index(i), noexpand, depth+1, nil)
		}
		v.Set(s)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			d.decodeWithYAML(n, path, v, noexpand)
			return
		}
		if n.Kind != yaml.MappingNode {
			d.Addf(path, "must be a mapping")
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		for _, p := range d.pairs(n, path, depth) {
			e := reflect.New(t.Elem()).Elem()
			if old := v.MapIndex(reflect.ValueOf(p.Key).Convert(t.Key())); old.IsValid() {
				e.Set(old)
			}
			d.decode(p.Value, p.Path, e, noexpand, depth+1, nil)
			v.SetMapIndex(reflect.ValueOf(p.Key).Convert(t.Key()), e)
		}
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.Addf(path, "cannot be decoded")
			return
		}
		if a, ok := d.toAny(n, path, noexpand, depth); ok {
			if a == nil {
				v.SetZero()
			} else {
				v.Set(reflect.ValueOf(a))
			}
		}
	case reflect.String:
		if s, ok := d.scalarString(n, path, noexpand); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if r, ok := d.resolvedScalar(n, path, noexpand); ok {
			var b bool
			if r.ShortTag() != "!!bool" || r.Decode(&b) != nil {
				d.Addf(path, "must be true or false, not %q", r.Value)
				return
			}
			v.SetBool(b)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		r, ok := d.resolvedScalar(n, path, noexpand)
		if !ok {
			return
		}
		if r.ShortTag() != "!!int" || r.Decode(v.Addr().Interface()) != nil {
			d.Addf(path, "must be an integer, not %q", r.Value)
		}
	case reflect.Float32, reflect.Float64:
		r, ok := d.resolvedScalar(n, path, noexpand)
		if !ok {
			return
		}
		if tag := r.ShortTag(); (tag != "!!int" && tag != "!!float") || r.Decode(v.Addr().Interface()) != nil {
			d.Addf(path, "must be a number, not %q", r.Value)
		}
	default:
		d.decodeWithYAML(n, path, v, noexpand)
	}
}

// scalarString returns the text of a scalar, expanded when it is a string.
func (d *Decoder) scalarString(n *yaml.Node, path string, noexpand bool) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.Addf(path, "must be a string")
		return "", false
	}
	if noexpand || !isString(n) {
		return n.Value, true
	}
	return d.Expand(path, n.Value)
}

// resolvedScalar expands a string scalar; when it was written plain (no
// quotes, no tag) the result is resolved again as YAML would have resolved it
// had it been written there, so "port: ${PORT}" is an integer.
func (d *Decoder) resolvedScalar(n *yaml.Node, path string, noexpand bool) (*yaml.Node, bool) {
	if n.Kind != yaml.ScalarNode {
		d.Addf(path, "must be a single value, not a %s", kindName(n))
		return nil, false
	}
	if noexpand || !isString(n) {
		return n, true
	}
	s, ok := d.Expand(path, n.Value)
	if !ok {
		return nil, false
	}
	if s == n.Value {
		return n, true
	}
	r := &yaml.Node{Kind: yaml.ScalarNode, Value: s, Line: n.Line, Column: n.Column}
	if n.Style != 0 {
		r.Tag, r.Style = "!!str", n.Style
	}
	return r, true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// decodeWithYAML hands an (expanded) node to yaml.v3, for types that decode
// themselves.
func (d *Decoder) decodeWithYAML(n *yaml.Node, path string, v reflect.Value, noexpand bool) {
	c := d.Node(n, path, noexpand)
	if c == nil {
		return
	}
	if c.Kind == yaml.ScalarNode && !noexpand && isString(n) && n.Style == 0 && c.Value != n.Value {
		c.Tag = "" // resolve the expanded text as if written in place
	}
	tmp := reflect.New(v.Type())
	tmp.Elem().Set(v)
	if err := c.Decode(tmp.Interface()); err != nil {
		d.Addf(path, "%s", yamlMessage(err))
		return
	}
	v.Set(tmp.Elem())
}

var yamlTypeLineRE = regexp.MustCompile(`^line \d+: `)

// yamlMessage strips yaml.v3's "yaml: unmarshal errors: line N:" framing.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return yamlTypeLineRE.ReplaceAllString(te.Errors[0], "")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// toAny decodes n into plain Go values (map[string]any, []any, string, int,
// float64, bool, nil): what json.Marshal accepts.
func (d *Decoder) toAny(n *yaml.Node, path string, noexpand bool, depth int) (any, bool) {
	n = d.resolve(n)
	if !d.spend(path, depth) {
		return nil, false
	}
	if n == nil {
		d.Addf(path, "unresolvable alias")
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		ok := true
		for _, p := range d.pairs(n, path, depth) {
			v, vok := d.toAny(p.Value, p.Path, noexpand, depth+1)
			ok = ok && vok
			m[p.Key] = v
		}
		return m, ok
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		ok := true
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			v, vok := d.toAny(item, p, noexpand, depth+1)
			ok = ok && vok
			l[i] = v
		}
		return l, ok
	case yaml.ScalarNode:
		r, ok := d.resolvedScalar(n, path, noexpand)
		if !ok {
			return nil, false
		}
		if r.ShortTag() == "!!str" || r.ShortTag() == "!!timestamp" || r.ShortTag() == "!!binary" {
			return r.Value, true
		}
		var a any
		if err := r.Decode(&a); err != nil {
			d.Addf(path, "%s", yamlMessage(err))
			return nil, false
		}
		switch x := a.(type) {
		case float64:
			if math.IsInf(x, 0) || math.IsNaN(x) {
				d.Addf(path, "must be a finite number")
				return nil, false
			}
			return x, true
		case nil, bool, int, int64, uint64, string:
			return x, true
		}
		return r.Value, true
	}
	d.Addf(path, "unsupported YAML node")
	return nil, false
}

// copyNode deep-copies n, resolving aliases and merge keys and expanding
// string scalars unless noexpand.
func (d *Decoder) copyNode(n *yaml.Node, path string, noexpand bool, depth int) *yaml.Node {
	n = d.resolve(n)
	if !d.spend(path, depth) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	if n == nil {
		d.Addf(path, "unresolvable alias")
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	c := *n
	c.Anchor = ""
	c.Content = nil
	switch n.Kind {
	case yaml.ScalarNode:
		if !noexpand && isString(n) {
			if s, ok := d.Expand(path, n.Value); ok {
				c.Value = s
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			c.Content = append(c.Content, d.copyNode(item, p, noexpand, depth+1))
		}
	case yaml.MappingNode:
		for _, p := range d.pairs(n, path, depth) {
			k := *p.KeyN
			c.Content = append(c.Content, &k, d.copyNode(p.Value, p.Path, noexpand, depth+1))
		}
	}
	return &c
}

// pairs lists a mapping's entries with merge keys applied: explicit keys win
// over merged ones, and earlier merged mappings over later ones.
func (d *Decoder) pairs(n *yaml.Node, path string, depth int) []Pair {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []Pair
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.AddAt(k.Line, path, "keys must be plain strings")
			continue
		}
		p := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.AddAt(k.Line, p, fmt.Sprintf("duplicate key (first set on line %d)", first))
			continue
		}
		seen[k.Value] = k.Line
		d.lines[p] = k.Line
		out = append(out, Pair{Key: k.Value, Path: p, KeyN: k, Value: v})
	}
	for _, m := range merges {
		m = d.resolve(m)
		var sources []*yaml.Node
		switch {
		case m != nil && m.Kind == yaml.MappingNode:
			sources = []*yaml.Node{m}
		case m != nil && m.Kind == yaml.SequenceNode:
			for _, s := range m.Content {
				sources = append(sources, d.resolve(s))
			}
		}
		for _, s := range sources {
			if s == nil || s.Kind != yaml.MappingNode {
				d.AddAt(n.Line, path, "a merge key (<<) needs a mapping or a list of mappings")
				continue
			}
			if !d.spend(path, depth+1) {
				return out
			}
			for _, p := range d.pairs(s, path, depth+1) {
				if _, dup := seen[p.Key]; dup {
					continue
				}
				seen[p.Key] = p.KeyN.Line
				out = append(out, p)
			}
		}
	}
	return out
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// parentPath strips the last ".key" or "[i]" of a key path.
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// field is one decodable key of a struct.
type field struct {
	name     string
	index    []int
	noexpand bool
	// twinOf is set on a synthetic x_file key: the index of Secret field x.
	twinOf []int
	twin   string
}

type structInfo struct {
	fields []field
	byName map[string]int
	names  []string
}

var structCache sync.Map // reflect.Type -> *structInfo

func infoFor(t reflect.Type) *structInfo {
	if si, ok := structCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byName: map[string]int{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), index...), i)
			if strings.Contains(","+opts+",", ",inline,") && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, idx)
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			if _, dup := si.byName[name]; dup {
				continue
			}
			si.byName[name] = len(si.fields)
			si.fields = append(si.fields, field{name: name, index: idx, noexpand: sf.Tag.Get("config") == "noexpand"})
		}
	}
	walk(t, nil)
	for _, f := range si.fields {
		if t.FieldByIndex(f.index).Type != secretType {
			continue
		}
		twin := f.name + "_file"
		if _, exists := si.byName[twin]; exists {
			continue
		}
		si.byName[twin] = len(si.fields)
		si.fields = append(si.fields, field{name: twin, twinOf: f.index, twin: f.name})
	}
	for _, f := range si.fields {
		si.names = append(si.names, f.name)
	}
	structCache.Store(t, si)
	return si
}

func (d *Decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value, depth int, skip []string) {
	if n.Kind != yaml.MappingNode {
		if path == "" {
			d.AddAt(n.Line, path, "the file must be a mapping of keys, not a "+kindName(n))
			return
		}
		d.Addf(path, "must be a mapping")
		return
	}
	si := infoFor(v.Type())
	set := map[string]string{} // field name -> key path, to catch x and x_file both set
	for _, p := range d.pairs(n, path, depth) {
		if contains(skip, p.Key) {
			continue
		}
		i, ok := si.byName[p.Key]
		if !ok {
			hint := Suggest(p.Key, si.names)
			if hint != "" {
				// The misspelt key explains any problem of the key it
				// meant ("required"): report the misspelling only.
				d.failed[joinPath(path, hint)] = true
				d.AddAt(p.KeyN.Line, p.Path, fmt.Sprintf("unknown key (did you mean %q?)", hint))
			} else {
				d.AddAt(p.KeyN.Line, p.Path, "unknown key")
			}
			continue
		}
		f := si.fields[i]
		if f.twinOf == nil {
			if other, both := set[f.name]; both {
				d.AddAt(p.KeyN.Line, p.Path, fmt.Sprintf("set only one of %s and %s", lastKey(other), p.Key))
				continue
			}
			set[f.name] = p.Path
			d.decode(p.Value, p.Path, fieldByIndex(v, f.index), f.noexpand, depth+1, nil)
			continue
		}
		if other, both := set[f.twin]; both {
			d.AddAt(p.KeyN.Line, p.Path, fmt.Sprintf("set only one of %s and %s", lastKey(other), p.Key))
			continue
		}
		set[f.twin] = p.Path
		var file string
		d.decode(p.Value, p.Path, reflect.ValueOf(&file).Elem(), false, depth+1, nil)
		if file == "" || d.failed[p.Path] {
			continue
		}
		secret, err := ReadSecretFile(ResolvePath(d.dir, file))
		if err != nil {
			d.AddAt(p.KeyN.Line, p.Path, err.Error())
			continue
		}
		fieldByIndex(v, f.twinOf).SetString(secret)
	}
}

// MaxSecretFileSize bounds a secret file.
const MaxSecretFileSize = 64 << 10

// ReadSecretFile reads a secret from a file (a systemd credential, a mounted
// Kubernetes Secret): its content without one trailing newline.
func ReadSecretFile(path string) (string, error) {
	b, err := ReadFileLimit(path, MaxSecretFileSize)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	return s, nil
}

// ReadFileLimit reads a regular file of at most limit bytes: a file named
// in a configuration (a secret, a query) is small, and a device such as
// /dev/zero must not hang the loader.
func ReadFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// ResolvePath makes p absolute against dir unless it already is; "" stays "".
func ResolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for _, i := range index {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

func lastKey(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
