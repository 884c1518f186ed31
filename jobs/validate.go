package jobs

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/scheduler/spec"
	"github.com/nxtcron/nxtcron/sinks"
)

// nameRE is what a job name may be: it appears in file names ({job}),
// URLs (/api/jobs/{job}) and metric labels.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// builder turns a decoded fileSpec into a Job, recording every problem.
type builder struct {
	cfg   *config.Config
	d     *config.Decoder
	spec  *fileSpec
	root  *yaml.Node
	abs   string
	types []sinks.Type
	job   *Job

	// query is where the query text came from, to put its problems on the
	// right file and line.
	query querySource
	// sinkYAML is the decoded sink Config marshalled, for the hash.
	sinkYAML string
	// sinkMode is the sink section's mode key, if any.
	sinkMode string
}

func (b *builder) addf(path, format string, args ...any) {
	if b.d.Failed(path) {
		return
	}
	b.d.Addf(path, format, args...)
}

func (b *builder) build() {
	s, j := b.spec, b.job
	b.name()
	j.Description = s.Description

	j.Location = time.UTC
	if loc, err := time.LoadLocation(s.Timezone); err != nil || s.Timezone == "" {
		b.addf("timezone", "unknown time zone %q", s.Timezone)
	} else {
		j.Location = loc
	}
	j.Schedule = s.Schedule
	if strings.TrimSpace(s.Schedule) == "" {
		b.addf("schedule", "required, as in \"30 2 * * *\" or \"@every 1h\"")
	} else if sch, err := spec.Parse(s.Schedule, j.Location); err != nil {
		b.addf("schedule", "%s", err.Error())
	} else {
		j.Cron = sch
	}

	b.connection()
	b.companies()
	b.incremental()
	b.analyse()

	j.PageSize = s.PageSize
	if s.PageSize < 1 || s.PageSize > MaxPageSize {
		b.addf("page_size", "must be between 1 and %d, not %d", MaxPageSize, s.PageSize)
	}
	j.Parallelism = s.Parallelism
	if s.Parallelism < 1 {
		b.addf("parallelism", "must be at least 1, not %d", s.Parallelism)
	}
	b.sink()

	j.Timeout = s.Timeout.D()
	if s.Timeout <= 0 {
		b.addf("timeout", "must be a positive duration, not %s", s.Timeout)
	}
	j.Retry = Retry{Attempts: s.Retry.Attempts, Backoff: s.Retry.Backoff.D()}
	if s.Retry.Attempts < 1 {
		b.addf("retry.attempts", "must be at least 1 (it counts the first attempt), not %d", s.Retry.Attempts)
	}
	if s.Retry.Backoff <= 0 {
		b.addf("retry.backoff", "must be a positive duration, not %s", s.Retry.Backoff)
	}
	j.Catchup = s.Catchup.D()
	if s.Catchup <= 0 {
		b.addf("catchup", "must be a positive duration, not %s", s.Catchup)
	}
	b.overlap()
}

func (b *builder) name() {
	base := filepath.Base(b.abs)
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	name := b.spec.Name
	if !b.d.Has("name") {
		name = stem
	}
	b.job.Name = name
	switch {
	case name != stem:
		b.addf("name", "%q must match the file name %s (name defaults to the file's stem)", name, base)
	case !nameRE.MatchString(name):
		b.addf("name", "%q must be letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
}

func (b *builder) connection() {
	c := b.spec.Connection
	b.job.Connection = c
	if c == "" {
		b.addf("connection", "required: the name of a connection in %s", config.DisplayPath(b.cfg.Path))
		return
	}
	var names []string
	for _, conn := range b.cfg.Connections {
		if conn.Name == c {
			return
		}
		names = append(names, conn.Name)
	}
	b.addf("connection", "connection %q not found in %s%s", c, config.DisplayPath(b.cfg.Path), config.DidYouMean(c, names))
}

const companiesHint = "must be all or a list of company ids (vismaNetCompanyId)"

func (b *builder) companies() {
	n := &b.spec.Companies
	switch {
	case n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Value == "all" && n.ShortTag() == "!!str"):
		b.job.Companies = nil
	case n.Kind == yaml.SequenceNode:
		if len(n.Content) == 0 {
			b.addf("companies", "must list at least one company id, or be all")
			return
		}
		seen := map[int64]bool{}
		ids := []int64{}
		for i, item := range n.Content {
			p := fmt.Sprintf("companies[%d]", i)
			id, err := strconv.ParseInt(item.Value, 10, 64)
			if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!int" || err != nil || id <= 0 {
				b.addf(p, "must be a positive company id, not %q", item.Value)
				continue
			}
			if seen[id] {
				b.addf(p, "company %d is listed twice", id)
				continue
			}
			seen[id] = true
			ids = append(ids, id)
		}
		b.job.Companies = ids
	default:
		b.addf("companies", "%s, not %q", companiesHint, n.Value)
	}
}

func (b *builder) incremental() {
	s := b.spec.Incremental
	if s == nil {
		return
	}
	inc := &Incremental{Field: s.Field, Key: s.Key, Lookback: s.Lookback.D(), ServerTimezone: time.UTC}
	b.job.Incremental = inc
	if s.Field == "" {
		b.addf("incremental.field", "required: the timestamp field to filter on, as in changedTimestamp")
	}
	if len(s.Key) == 0 {
		b.addf("incremental.key", "required: the fields that identify a row, as in [associateNo] (rows re-read inside the lookback are dropped by key)")
	}
	seen := map[string]bool{}
	for i, k := range s.Key {
		p := fmt.Sprintf("incremental.key[%d]", i)
		switch {
		case k == "":
			b.addf(p, "must not be empty")
		case k == s.Field:
			b.addf(p, "%s is the incremental field; the key names the fields that identify a row", k)
		case seen[k]:
			b.addf(p, "%s is listed twice", k)
		}
		seen[k] = true
	}
	if s.Lookback < 0 {
		b.addf("incremental.lookback", "must not be negative, not %s", s.Lookback)
	}
	if loc, err := time.LoadLocation(s.ServerTimezone); err != nil || s.ServerTimezone == "" {
		b.addf("incremental.server_timezone", "unknown time zone %q", s.ServerTimezone)
	} else {
		inc.ServerTimezone = loc
	}
}

// querySource says where the query text is, to map its lines.
type querySource struct {
	// file is the .graphql file (display name) for query_file, else "".
	file string
	// line is the job file line the query text starts on; literal is true
	// for a literal block (|), whose lines map one to one.
	line    int
	literal bool
	// lines is the number of lines of the query text: a problem "at" the
	// end of the text (an unexpected end of input) goes on its last line.
	lines int
}

func lineCount(s string) int {
	return strings.Count(strings.TrimRight(s, "\n"), "\n") + 1
}

// queryText reads query or query_file (exactly one).
func (b *builder) queryText() (string, bool) {
	s := b.spec
	hasQ, hasF := b.d.Has("query"), b.d.Has("query_file")
	switch {
	case hasQ && hasF:
		b.addf("query_file", "set only one of query and query_file")
		return "", false
	case hasF:
		if s.QueryFile == "" {
			b.addf("query_file", "must name a file")
			return "", false
		}
		p := config.ResolvePath(filepath.Dir(b.abs), s.QueryFile)
		data, err := config.ReadFileLimit(p, MaxQueryFileSize)
		if err != nil {
			b.addf("query_file", "reading query file: %v", err)
			return "", false
		}
		b.query = querySource{file: config.DisplayPath(p), lines: lineCount(string(data))}
		return string(data), true
	case hasQ:
		b.query.lines = lineCount(s.Query)
		for _, p := range b.d.Pairs(b.root, "") {
			if p.Key == "query" {
				v := p.Value
				b.query.line, b.query.literal = v.Line, v.Style&yaml.LiteralStyle != 0
				if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
					b.query.line = v.Line - 1 // the text starts on the key's own line
				}
			}
		}
		return s.Query, true
	}
	b.addf("query", "required: the GraphQL query (or query_file)")
	return "", false
}

// addQueryProblem records a problem of the query analysis: on the job file
// line its query line maps to (inline query), on the .graphql file's own
// line (query_file), or on the line of the key it names.
func (b *builder) addQueryProblem(p queryProblem) {
	if p.Key != "query" || p.Line == 0 {
		if p.Key == "query" && b.query.file != "" {
			p.Key = "query_file"
		}
		b.d.Addf(p.Key, "%s", p.Message)
		return
	}
	if p.Line > b.query.lines {
		p.Line = b.query.lines
	} else if p.Column > 0 {
		p.Message += fmt.Sprintf(" (column %d of the query)", p.Column)
	}
	if b.query.file != "" {
		b.d.Add(config.Problem{File: b.query.file, Line: p.Line, Key: "query", Message: p.Message})
		return
	}
	line := b.query.line + 1
	if b.query.literal {
		line = b.query.line + p.Line
	}
	b.d.AddAt(line, "query", p.Message)
}

func (b *builder) analyse() {
	s, j := b.spec, b.job
	text, ok := b.queryText()
	j.Query = text
	j.Variables = s.Variables
	if j.Variables == nil {
		j.Variables = map[string]any{}
	}
	if !ok {
		return
	}
	var opts queryOptions
	if p := s.Pagination.Path; b.d.Has("pagination.path") {
		opts.PaginationPath = strings.Split(p, ".")
		if slices.Contains(opts.PaginationPath, "") {
			b.addf("pagination.path", "must be dotted field names (aliases where the query has them), as in useCompany.associate, not %q", p)
			opts.PaginationPath = nil
		}
	}
	opts.Incremental = j.Incremental
	a := analyseQuery(text, opts)
	for _, p := range a.Problems {
		b.addQueryProblem(p)
	}
	j.Paged = a.Paged
	if a.Declared == nil {
		return // the query did not parse: its variables are unknown
	}
	b.variables(a)
}

// variables checks the job's variables against the query.
func (b *builder) variables(a queryAnalysis) {
	vars := b.job.Variables
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		p := "variables." + k
		switch k {
		case VarCompany, VarFirst, VarAfter:
			b.addf(p, "$%s is set by nxtcron (cid: each company, first: page_size, after: the cursor)", k)
		case VarFilter:
			if !a.Paged.HasFilterVar {
				b.addf(p, "the query does not pass $filter to its paged connection (filter: $filter)")
			} else if _, ok := vars[k].(map[string]any); !ok {
				b.addf(p, "must be a mapping (a filter expression, as in {name: {_like: \"A%%\"}})")
			}
		default:
			if a.Declared[k] == nil {
				b.addf(p, "the query does not declare $%s", k)
			}
		}
	}
	for name, def := range a.Declared {
		switch name {
		case VarCompany, VarFirst, VarAfter, VarFilter:
			continue
		}
		if _, set := vars[name]; !set && def.Type.NonNull && def.DefaultValue == nil {
			b.addQueryProblem(queryProblem{Line: def.Position.Line, Key: "query",
				Message: fmt.Sprintf("$%s is required (%s) and has no default: set it under variables", name, def.Type.String())})
		}
	}
}

func (b *builder) sink() {
	n := &b.spec.Sink
	if n.Kind == 0 {
		b.addf("sink", "required: where the rows go, as in {type: file, path: out/{job}/{company}/{slot}.ndjson}")
		return
	}
	if n.Kind != yaml.MappingNode {
		b.addf("sink", "must be a mapping with a type (one of %s)", strings.Join(sinkTypeNames(b.types), ", "))
		return
	}
	var typ string
	for _, p := range b.d.Pairs(n, "sink") {
		switch p.Key {
		case "type":
			if p.Value.Kind != yaml.ScalarNode {
				b.addf("sink.type", "must be a string")
				return
			}
			v, ok := b.d.Expand("sink.type", p.Value.Value)
			if !ok {
				return
			}
			typ = v
		case "mode":
			if p.Value.Kind == yaml.ScalarNode {
				b.sinkMode, _ = config.Expand(p.Value.Value, nil)
			}
		}
	}
	names := sinkTypeNames(b.types)
	if !b.d.Has("sink.type") {
		b.addf("sink.type", "required (one of %s)", strings.Join(names, ", "))
		return
	}
	t, ok := sinkType(b.types, typ)
	if !ok {
		b.addf("sink.type", "unknown sink type %q (one of %s)%s", typ, strings.Join(names, ", "), config.DidYouMean(typ, names))
		return
	}
	sc := t.New()
	before := len(b.d.Problems())
	b.d.Decode(n, "sink", sc, "type")
	b.job.Sink = SinkSpec{Type: t.Name, Config: sc}
	if len(b.d.Problems()) > before {
		return // Validate would only repeat what decoding found
	}
	info := sinks.JobInfo{Name: b.job.Name, Incremental: b.job.Incremental != nil, Fields: b.job.Paged.Fields}
	if inc := b.job.Incremental; inc != nil {
		info.Key = inc.Key
	}
	for _, fe := range sc.Validate(info) {
		path := "sink"
		if fe.Key != "" {
			path = "sink." + fe.Key
		}
		b.d.Addf(path, "%s", fe.Message)
	}
	b.sinkYAML = marshalSink(sc)
}

// marshalSink renders a sink Config for the definition hash; a Secret in it
// marshals as "<secret>".
func marshalSink(sc sinks.Config) (out string) {
	defer func() {
		if r := recover(); r != nil {
			out = fmt.Sprintf("%T %v", sc, r)
		}
	}()
	b, err := yaml.Marshal(sc)
	if err != nil {
		return fmt.Sprintf("%T %v", sc, err)
	}
	return string(b)
}

func (b *builder) overlap() {
	o := b.spec.Overlap
	b.job.Overlap = o
	switch o {
	case OverlapSkip:
	case OverlapAllow:
		if b.job.Incremental != nil {
			b.addf("overlap", "allow is refused for an incremental job: two runs at once would race on the watermark")
		} else if b.sinkMode == "append" {
			b.addf("overlap", "allow is refused with a sink in append mode: two runs at once would append the same rows twice")
		}
	default:
		b.addf("overlap", "must be skip or allow, not %q%s", o, config.DidYouMean(o, []string{OverlapSkip, OverlapAllow}))
	}
}
