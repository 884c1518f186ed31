package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/nxtcron/nxtcron/bnxt"
	"github.com/nxtcron/nxtcron/sinks"
)

// Watermark values are the server's local DateTime text, normalised to this
// fixed-width layout so that they compare as strings.
const serverTimeLayout = "2006-01-02T15:04:05.000"

// floorWatermark is the watermark after a first import that saw no
// timestamp at all (every row untouched since before timestamps existed):
// the next run reads every row that has one, and none that has not.
const floorWatermark = "1900-01-01T00:00:00.000"

// cursor follows one company's incremental import: it builds the filter
// from the previous watermark, drops rows already delivered inside the
// lookback, and computes the next watermark.
type cursor struct {
	inc  *Incremental
	prev *sinks.Watermark
	// lower is the filter's lower bound (server wall time, kept in UTC so
	// that arithmetic is plain); zero means unfiltered.
	lower time.Time
	// seen maps a row key to the timestamp it was delivered with, for rows
	// inside the previous lookback window.
	seen map[string]string
	// observed holds the rows of this run near its maximum, to become the
	// next run's seen set.
	observed map[string]time.Time
	max      time.Time
	hasMax   bool
	dropped  int
}

func newCursor(inc *Incremental, prev *sinks.Watermark, full bool) (*cursor, error) {
	c := &cursor{inc: inc, seen: map[string]string{}, observed: map[string]time.Time{}}
	if prev == nil || prev.Value == "" || full {
		return c, nil
	}
	c.prev = prev
	t, err := parseServerTime(prev.Value, time.UTC)
	if err != nil {
		return nil, fmt.Errorf("watermark %q: %w", prev.Value, err)
	}
	c.lower = lowerBound(t, inc.Lookback, inc.ServerTimezone)
	if len(prev.Keys) > 0 {
		if err := json.Unmarshal(prev.Keys, &c.seen); err != nil {
			return nil, fmt.Errorf("decoding watermark keys: %w", err)
		}
	}
	return c, nil
}

// filter is the incremental part of $filter: {} on a first or full run.
func (c *cursor) filter() map[string]any {
	if c.lower.IsZero() {
		return map[string]any{}
	}
	return map[string]any{c.inc.Field: map[string]any{"_gte": c.lower.Format(serverTimeLayout)}}
}

// combineFilter ANDs a job's own filter variable with the incremental one.
func combineFilter(own any, inc map[string]any) any {
	if own == nil {
		return inc
	}
	if len(inc) == 0 {
		return own
	}
	return map[string]any{"_and": []any{own, inc}}
}

// observe records one row and reports whether to deliver it: a row whose
// key was delivered with the same timestamp inside the lookback is a repeat.
func (c *cursor) observe(fields map[string]json.RawMessage) (bool, error) {
	raw, ok := fields[c.inc.Field]
	if !ok {
		return false, fmt.Errorf("incremental field %q is not selected in items", c.inc.Field)
	}
	key, err := rowKey(fields, c.inc.Key)
	if err != nil {
		return false, err
	}
	if string(raw) == "null" {
		return true, nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		return false, fmt.Errorf("incremental field %q: expected a DateTime string, got %s", c.inc.Field, raw)
	}
	ts, err := parseServerTime(text, time.UTC)
	if err != nil {
		return false, fmt.Errorf("incremental field %q: %w", c.inc.Field, err)
	}
	norm := ts.Format(serverTimeLayout)
	if prev, ok := c.seen[key]; ok && prev == norm {
		c.dropped++
		return false, nil
	}
	if !c.hasMax || ts.After(c.max) {
		c.max, c.hasMax = ts, true
	}
	c.observed[key] = ts
	if len(c.observed) > 4096 && len(c.observed)%4096 == 0 {
		c.prune()
	}
	return true, nil
}

// prune forgets observed rows that fall outside the window of the current
// maximum; rows arrive in timestamp order, so the set stays small.
func (c *cursor) prune() {
	low := lowerBound(c.max, c.inc.Lookback, c.inc.ServerTimezone)
	for k, t := range c.observed {
		if t.Before(low) {
			delete(c.observed, k)
		}
	}
}

// next is the watermark after this run: the greatest timestamp seen (never
// below the previous watermark), with the keys inside its lookback window.
func (c *cursor) next() (*sinks.Watermark, error) {
	var value time.Time
	switch {
	case c.hasMax:
		value = c.max
	case c.prev != nil:
		t, err := parseServerTime(c.prev.Value, time.UTC)
		if err != nil {
			return nil, err
		}
		value = t
	default:
		t, _ := time.Parse(serverTimeLayout, floorWatermark)
		value = t
	}
	if c.prev != nil {
		if pt, err := parseServerTime(c.prev.Value, time.UTC); err == nil && pt.After(value) {
			value = pt
		}
	}
	low := lowerBound(value, c.inc.Lookback, c.inc.ServerTimezone)
	keys := make(map[string]string)
	for k, v := range c.seen {
		if t, err := parseServerTime(v, time.UTC); err == nil && !t.Before(low) {
			keys[k] = v
		}
	}
	for k, t := range c.observed {
		if !t.Before(low) {
			keys[k] = t.Format(serverTimeLayout)
		}
	}
	enc, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	return &sinks.Watermark{Value: value.Format(serverTimeLayout), Keys: enc}, nil
}

// rowKey is the row's key values as compact JSON text, e.g. [1001] or [5,2].
func rowKey(fields map[string]json.RawMessage, key []string) (string, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, k := range key {
		raw, ok := fields[k]
		if !ok {
			return "", fmt.Errorf("incremental key %q is not selected in items", k)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(raw)
	}
	b.WriteByte(']')
	return b.String(), nil
}

// parseServerTime reads a DateTime as the server writes it (no zone, any
// fraction) as wall time in loc. An explicit zone or offset is honoured and
// converted to loc.
func parseServerTime(s string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.Truncate(time.Millisecond), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if loc == time.UTC {
			return t.UTC(), nil
		}
		return t.In(loc).Truncate(time.Millisecond), nil
	}
	return time.Time{}, errors.New("not a DateTime: " + s)
}

// lowerBound is where the next filter starts for watermark wm (server wall
// time held in UTC): wm minus the lookback, widened to re-read a whole
// repeated hour when wm is near an autumn fall-back of the server's zone,
// since rows written in the repeated hour carry wall times below wm.
func lowerBound(wm time.Time, lookback time.Duration, zone *time.Location) time.Time {
	low := wm.Add(-lookback)
	if zone == nil {
		return low
	}
	for _, fb := range fallBacks(wm, zone) {
		// fb.start..fb.end is the repeated wall interval; a watermark inside
		// it, or within the lookback after it, may have rows below it still
		// to come or just written.
		if !wm.Before(fb.start) && !wm.After(fb.end.Add(lookback)) {
			if w := fb.start.Add(-lookback); w.Before(low) {
				low = w
			}
		}
	}
	return low
}

type wallInterval struct{ start, end time.Time }

// fallBacks lists the repeated wall intervals of zone within two days of the
// wall time wm (held in UTC), as UTC-held wall times.
func fallBacks(wm time.Time, zone *time.Location) []wallInterval {
	var out []wallInterval
	// The instant that wm names, give or take an offset; two days either side
	// catches any transition that matters.
	probe := time.Date(wm.Year(), wm.Month(), wm.Day(), wm.Hour(), wm.Minute(), 0, 0, zone).Add(-48 * time.Hour)
	stop := probe.Add(96 * time.Hour)
	for probe.Before(stop) {
		_, end := probe.ZoneBounds()
		if end.IsZero() || end.After(stop) {
			break
		}
		_, before := end.Add(-time.Second).Zone()
		_, after := end.Zone()
		if after < before {
			x := end.UTC()
			out = append(out, wallInterval{
				start: x.Add(time.Duration(after) * time.Second),
				end:   x.Add(time.Duration(before) * time.Second),
			})
		}
		probe = end
	}
	return out
}

// decodeObject splits one item object into its fields, undecoded.
func decodeObject(raw json.RawMessage) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// pageSource gives the pages of one company's import in order, io.EOF after
// the last: *bnxt.Pages (cursor paging) or keysetPages.
type pageSource interface {
	Next(ctx context.Context) (*bnxt.Page, error)
}

// keysetPages pages through an incremental import by keyset rather than by
// cursor: every page has $after null, and its filter starts where the page
// before ended, by value, in the (field, key...) order the query sorts by.
//
// Business NXT's cursors are offsets into the filtered, ordered result. A
// row changed (or deleted) while the import runs leaves its place, every
// later row moves up one, and the next offset page skips one of them: a row
// whose timestamp is below the watermark the run then commits, which no
// later run reads again. A page that starts at a value skips nothing.
//
// The filters are ranges on the field wherever they can be (an index seek
// for the server, and the emulator's fast path): after a page that ends at
// timestamp T the next asks for field >= T and drops the rows at T it
// already returned. Only a page that holds nothing but rows of one timestamp
// (or of none: a first run's rows without one, which sort first) goes on by
// key within that timestamp.
type keysetPages struct {
	client *bnxt.Client
	q      bnxt.PageQuery
	inc    *Incremental
	// base is the filter of every page: the job's own and the incremental
	// lower bound (q.Variables["filter"]).
	base any

	phase keysetPhase
	// ts and key are the field and key values where the next page starts,
	// as the server wrote them.
	ts  json.RawMessage
	key []json.RawMessage
	// atTS holds the keys of the rows at ts already returned (phaseFrom).
	atTS map[string]bool
	n    int
	done bool
}

type keysetPhase int

const (
	phaseFirst     keysetPhase = iota // the base filter alone
	phaseFrom                         // field >= ts, minus the rows in atTS
	phaseGroup                        // field = ts and key > key
	phaseAfter                        // field > ts
	phaseNullGroup                    // field is null and key > key
	phaseNotNull                      // field is not null
)

func newKeysetPages(client *bnxt.Client, q bnxt.PageQuery, inc *Incremental) *keysetPages {
	return &keysetPages{client: client, q: q, inc: inc, base: q.Variables["filter"]}
}

// Next fetches the next page; io.EOF after the last. A failed Next can be
// called again: it asks for the same page.
func (k *keysetPages) Next(ctx context.Context) (*bnxt.Page, error) {
	if k.done {
		return nil, io.EOF
	}
	q := k.q
	q.Variables = maps.Clone(k.q.Variables)
	if q.Variables == nil {
		q.Variables = map[string]any{}
	}
	q.Variables["filter"] = k.filter()
	page, err := k.client.Pages(q).Next(ctx)
	if err != nil {
		return nil, err
	}
	items, err := k.advance(page.Items, page.HasNextPage)
	if err != nil {
		return nil, fmt.Errorf("paging by keyset, page %d: %w", k.n+1, err)
	}
	k.n++
	page.Number = k.n
	page.Items = items
	return page, nil
}

// advance takes the rows of a page fetched in the current phase, moves to
// where the next page starts, and returns the rows to deliver (those of the
// page less the ones an earlier page returned). It decodes only the rows at
// either end of the page that share a timestamp with the first or the last.
func (k *keysetPages) advance(rows []json.RawMessage, more bool) ([]json.RawMessage, error) {
	ds := make([]*keysetRow, len(rows))
	row := func(i int) (*keysetRow, error) {
		if ds[i] == nil {
			r, err := k.decode(rows[i])
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i+1, err)
			}
			ds[i] = r
		}
		return ds[i], nil
	}

	out := rows
	if k.phase == phaseFrom {
		// The page starts with the rows at ts; drop those returned before.
		var kept []json.RawMessage
		i := 0
		for ; i < len(rows); i++ {
			r, err := row(i)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(r.ts, k.ts) {
				break
			}
			if !k.atTS[r.id] {
				kept = append(kept, rows[i])
			}
		}
		out = append(kept, rows[i:]...)
	}

	if !more || len(rows) == 0 {
		switch k.phase {
		case phaseGroup: // the timestamp is done, not the import
			k.phase, k.key = phaseAfter, nil
		case phaseNullGroup:
			k.phase, k.ts, k.key = phaseNotNull, nil, nil
		default:
			k.done = true
		}
		return out, nil
	}
	first, err := row(0)
	if err != nil {
		return nil, err
	}
	last, err := row(len(rows) - 1)
	if err != nil {
		return nil, err
	}
	switch {
	case isJSONNull(last.ts):
		k.phase, k.ts, k.key = phaseNullGroup, nil, last.key
	case k.phase == phaseGroup || bytes.Equal(first.ts, last.ts):
		// One timestamp fills the page: go on by key within it.
		k.phase, k.ts, k.key = phaseGroup, last.ts, last.key
	default:
		k.phase, k.ts, k.key = phaseFrom, last.ts, nil
		k.atTS = map[string]bool{}
		for i := len(rows) - 1; i >= 0; i-- {
			r, err := row(i)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(r.ts, last.ts) {
				break
			}
			k.atTS[r.id] = true
		}
	}
	return out, nil
}

// keysetRow is what paging by keyset reads of a row.
type keysetRow struct {
	ts  json.RawMessage
	key []json.RawMessage
	id  string // rowKey
}

func (k *keysetPages) decode(raw json.RawMessage) (*keysetRow, error) {
	fields, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	ts, ok := fields[k.inc.Field]
	if !ok {
		return nil, fmt.Errorf("incremental field %q is not selected in items", k.inc.Field)
	}
	r := &keysetRow{ts: ts}
	for _, name := range k.inc.Key {
		v, ok := fields[name]
		if !ok {
			return nil, fmt.Errorf("incremental key %q is not selected in items", name)
		}
		r.key = append(r.key, v)
	}
	if r.id, err = rowKey(fields, k.inc.Key); err != nil {
		return nil, err
	}
	return r, nil
}

// filter is the base filter ANDed with where the next page starts.
func (k *keysetPages) filter() any {
	var parts []any
	if m, ok := k.base.(map[string]any); k.base != nil && !(ok && len(m) == 0) {
		parts = append(parts, k.base)
	}
	field := func(op string, v json.RawMessage) map[string]any {
		return map[string]any{k.inc.Field: map[string]any{op: v}}
	}
	null := json.RawMessage("null")
	switch k.phase {
	case phaseFrom:
		parts = append(parts, field("_gte", k.ts))
	case phaseGroup:
		parts = append(parts, field("_eq", k.ts), keyAfter(k.inc.Key, k.key))
	case phaseAfter:
		parts = append(parts, field("_gt", k.ts))
	case phaseNullGroup:
		parts = append(parts, field("_eq", null), keyAfter(k.inc.Key, k.key)) // _eq: null is "is null"
	case phaseNotNull:
		parts = append(parts, field("_not_eq", null))
	}
	switch len(parts) {
	case 0:
		return map[string]any{}
	case 1:
		return parts[0]
	}
	return map[string]any{"_and": parts}
}

// keyAfter is the filter of the rows whose key comes after vals in the
// ascending order of the key fields: lexicographically greater.
func keyAfter(names []string, vals []json.RawMessage) any {
	var or []any
	for i, name := range names {
		var and []any
		for j := range i {
			and = append(and, map[string]any{names[j]: map[string]any{"_eq": vals[j]}})
		}
		and = append(and, map[string]any{name: map[string]any{"_gt": vals[i]}})
		if len(and) == 1 {
			or = append(or, and[0])
		} else {
			or = append(or, map[string]any{"_and": and})
		}
	}
	if len(or) == 1 {
		return or[0]
	}
	return map[string]any{"_or": or}
}

func isJSONNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }
