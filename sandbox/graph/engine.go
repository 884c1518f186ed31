package graph

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // Europe/Oslo must load on images without zoneinfo

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// Options are the engine's knobs. The zero value is usable: 2 companies with
// empty tables, Europe/Oslo, no latency, no concurrency limit.
type Options struct {
	Companies        int            // number of companies; ids 1001, 1002, ... (default 2 when <= 0)
	Rows             int            // rows per table per company (default 250 when < 0; 0 is allowed = empty tables)
	Location         *time.Location // server local zone of timestamps (default Europe/Oslo when nil)
	Latency          time.Duration  // slept once per request while holding the company slots (ctx-aware)
	ConcurrencyLimit int            // max concurrent requests per company; 0 = off
}

// Defaults applied by New and SetOptions.
const (
	DefaultCompanies = 2
	DefaultRows      = 250
	DefaultLocation  = "Europe/Oslo"
)

// normalized returns o with the defaults applied.
func (o Options) normalized() Options {
	if o.Companies <= 0 {
		o.Companies = DefaultCompanies
	}
	if o.Rows < 0 {
		o.Rows = DefaultRows
	}
	if o.Location == nil {
		o.Location = osloLocation()
	}
	if o.Latency < 0 {
		o.Latency = 0
	}
	if o.ConcurrencyLimit < 0 {
		o.ConcurrencyLimit = 0
	}
	return o
}

var osloLocation = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation(DefaultLocation)
	if err != nil {
		panic(fmt.Sprintf("graph: loading %s: %v", DefaultLocation, err)) // time/tzdata is linked in
	}
	return loc
})

// compiled is the model, its SDL and the parsed schema: the same for every
// engine, so built once.
type compiled struct {
	model  *model
	sdl    string
	schema *ast.Schema
	rules  *rules.Rules // the specified validation rules, read-only
}

var theSchema = sync.OnceValue(func() *compiled {
	m := newModel()
	sdl := buildSDL(m)
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "businessnxt.graphql", Input: sdl})
	if err != nil {
		panic(fmt.Sprintf("graph: generated schema does not load: %v", err))
	}
	return &compiled{model: m, sdl: sdl, schema: s, rules: rules.NewDefaultRules()}
})

type tableKey struct {
	company int
	table   int
}

// Engine emulates the Business NXT GraphQL API over generated rows. It is
// safe for concurrent use.
type Engine struct {
	c     *compiled
	state atomic.Pointer[world]

	mu       sync.Mutex // serializes Touch and SetOptions; guards touches and touchSeq
	touches  map[tableKey]map[int]touchRaw
	touchSeq map[tableKey]int

	slotMu   sync.Mutex
	inflight map[int]int
}

// New returns an engine with opts (defaults applied).
func New(opts Options) *Engine {
	e := &Engine{
		c:        theSchema(),
		touches:  map[tableKey]map[int]touchRaw{},
		touchSeq: map[tableKey]int{},
		inflight: map[int]int{},
	}
	e.state.Store(e.buildWorld(opts.normalized()))
	return e
}

// SetOptions applies opts (defaults applied) to the requests that start after
// it; requests under way finish with the options they started with. Touched
// rows are kept (those beyond a smaller Rows are ignored while it lasts).
func (e *Engine) SetOptions(opts Options) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state.Store(e.buildWorld(opts.normalized()))
}

// Options returns the options in effect, with defaults applied.
func (e *Engine) Options() Options { return e.state.Load().opts }

// SDL returns the generated schema in GraphQL SDL.
func (e *Engine) SDL() string { return e.c.sdl }

// Companies returns the vismaNetCompanyId of every company.
func (e *Engine) Companies() []int {
	w := e.state.Load()
	ids := make([]int, len(w.comps))
	for i, cs := range w.comps {
		ids[i] = cs.id
	}
	return ids
}

// Tables returns the field names of the company tables (associate, ...).
func (e *Engine) Tables() []string {
	var out []string
	for _, t := range e.c.model.tables {
		out = append(out, t.field)
	}
	return out
}

// buildWorld derives the state of every company and table; e.mu must be held
// (or e not yet shared).
func (e *Engine) buildWorld(opts Options) *world {
	w := &world{opts: opts, zl: newZoneLayout(opts.Location)}
	w.comps = make([]*companyState, opts.Companies)
	for i := range w.comps {
		id := firstCompanyID + i
		cs := &companyState{id: id, name: fmt.Sprintf("Sandbox Company %d", id)}
		for _, t := range e.c.model.tables {
			ts := newTableState(t, id, opts.Rows, w.zl)
			ts.touch = buildTouchSet(e.touches[tableKey{id, t.id}], ts.n, opts.Location)
			cs.tabs = append(cs.tabs, ts)
		}
		w.comps[i] = cs
	}
	return w
}

// lookupTable finds a table by field name (associate) or type name
// (Associate), ignoring case.
func (m *model) lookupTable(name string) *table {
	for _, t := range m.tables {
		if strings.EqualFold(t.field, name) || strings.EqualFold(t.name, name) {
			return t
		}
	}
	return nil
}

// ErrUnknownCompany and ErrUnknownTable are returned by Touch.
var (
	ErrUnknownCompany = errors.New("unknown company")
	ErrUnknownTable   = errors.New("unknown table")
)

// Touch sets changedTimestamp of count existing rows of table in company to
// at, converted to the server zone and truncated to the millisecond, as if a
// user had edited them: the rows leave their place in changedTimestamp order
// and some of their editable columns change. The rows are chosen
// deterministically (the n-th Touch of a table picks the same rows in every
// run); one call never picks a row twice. It returns how many rows were
// touched: count, or fewer when the table is smaller.
func (e *Engine) Touch(company int, table string, count int, at time.Time) (int, error) {
	t := e.c.model.lookupTable(table)
	if t == nil {
		return 0, fmt.Errorf("touching %q: %w (tables: %s)", table, ErrUnknownTable, strings.Join(e.Tables(), ", "))
	}
	if count < 0 {
		return 0, fmt.Errorf("touching %s: count %d is negative", t.field, count)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.state.Load()
	cs := w.company(company)
	if cs == nil {
		return 0, fmt.Errorf("touching %s of company %d: %w", t.field, company, ErrUnknownCompany)
	}
	ts := cs.tabs[t.id]
	if count == 0 || ts.n == 0 {
		return 0, nil
	}
	k := tableKey{company, t.id}
	seq := e.touchSeq[k]
	e.touchSeq[k] = seq + 1
	raw := e.touches[k]
	if raw == nil {
		raw = map[int]touchRaw{}
		e.touches[k] = raw
	}
	picks := touchPicks(ts.seed, seq, ts.n, count)
	for _, idx := range picks {
		tr := raw[idx]
		raw[idx] = touchRaw{at: at, ver: tr.ver + 1}
	}

	nts := *ts
	nts.touch = buildTouchSet(raw, nts.n, w.opts.Location)
	ncs := *cs
	ncs.tabs = slices.Clone(cs.tabs)
	ncs.tabs[t.id] = &nts
	nw := *w
	nw.comps = slices.Clone(w.comps)
	nw.comps[company-firstCompanyID] = &ncs
	e.state.Store(&nw)
	return len(picks), nil
}

// InFlight returns how many requests hold a slot of company now.
func (e *Engine) InFlight(company int) int {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	return e.inflight[company]
}

// acquire takes one slot of every company, or none when one of them already
// has limit requests in flight (limit 0: no limit).
func (e *Engine) acquire(companies []int, limit int) bool {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	if limit > 0 {
		for _, c := range companies {
			if e.inflight[c] >= limit {
				return false
			}
		}
	}
	for _, c := range companies {
		e.inflight[c]++
	}
	return true
}

func (e *Engine) release(companies []int) {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	for _, c := range companies {
		if e.inflight[c]--; e.inflight[c] <= 0 {
			delete(e.inflight, c)
		}
	}
}
