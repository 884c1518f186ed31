package jobs

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sinks"
)

func oslo(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Oslo")
	require.NoError(t, err)
	return loc
}

func item(t *testing.T, no int, ts any) map[string]json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"associateNo": no, "changedTimestamp": ts})
	require.NoError(t, err)
	m, err := decodeObject(raw)
	require.NoError(t, err)
	return m
}

func TestCursorFirstRunIsUnfilteredAndFloorsWithoutTimestamps(t *testing.T) {
	inc := &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}, Lookback: 5 * time.Minute, ServerTimezone: oslo(t)}
	c, err := newCursor(inc, nil, false)
	require.NoError(t, err)
	require.Equal(t, map[string]any{}, c.filter())

	keep, err := c.observe(item(t, 1, nil))
	require.NoError(t, err)
	require.True(t, keep)
	wm, err := c.next()
	require.NoError(t, err)
	require.Equal(t, floorWatermark, wm.Value)

	c2, err := newCursor(inc, wm, false)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"changedTimestamp": map[string]any{"_gte": "1899-12-31T23:55:00.000"}}, c2.filter())
}

func TestCursorDropsRepeatsInsideLookback(t *testing.T) {
	inc := &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}, Lookback: 5 * time.Minute, ServerTimezone: oslo(t)}
	c, err := newCursor(inc, nil, false)
	require.NoError(t, err)
	for i, ts := range []string{"2026-03-01T10:00:00.000", "2026-03-01T10:07:00.123", "2026-03-01T10:09:59.5"} {
		keep, err := c.observe(item(t, i+1, ts))
		require.NoError(t, err)
		require.True(t, keep)
	}
	wm, err := c.next()
	require.NoError(t, err)
	require.Equal(t, "2026-03-01T10:09:59.500", wm.Value)
	var keys map[string]string
	require.NoError(t, json.Unmarshal(wm.Keys, &keys))
	require.Equal(t, map[string]string{"[2]": "2026-03-01T10:07:00.123", "[3]": "2026-03-01T10:09:59.500"}, keys)

	// The next run re-reads from 10:04:59.5: rows 2 and 3 come back
	// unchanged and are dropped; row 2 changed again is delivered.
	c2, err := newCursor(inc, wm, false)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"changedTimestamp": map[string]any{"_gte": "2026-03-01T10:04:59.500"}}, c2.filter())
	keep, err := c2.observe(item(t, 3, "2026-03-01T10:09:59.500"))
	require.NoError(t, err)
	require.False(t, keep)
	keep, err = c2.observe(item(t, 2, "2026-03-01T10:12:00.000"))
	require.NoError(t, err)
	require.True(t, keep)
	wm2, err := c2.next()
	require.NoError(t, err)
	require.Equal(t, "2026-03-01T10:12:00.000", wm2.Value)
	require.NoError(t, json.Unmarshal(wm2.Keys, &keys))
	// Row 3 is still inside the new window (10:07:00 onwards), row 2 moved.
	require.Equal(t, map[string]string{"[2]": "2026-03-01T10:12:00.000", "[3]": "2026-03-01T10:09:59.500"}, keys)
}

func TestCursorNeverMovesBackwards(t *testing.T) {
	inc := &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}, Lookback: time.Minute}
	prev := &sinks.Watermark{Value: "2026-03-01T10:00:00.000"}
	c, err := newCursor(inc, prev, false)
	require.NoError(t, err)
	keep, err := c.observe(item(t, 9, "2026-03-01T09:59:30.000"))
	require.NoError(t, err)
	require.True(t, keep)
	wm, err := c.next()
	require.NoError(t, err)
	require.Equal(t, prev.Value, wm.Value)
}

func TestCursorFullRunIgnoresWatermark(t *testing.T) {
	inc := &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}, Lookback: time.Minute}
	c, err := newCursor(inc, &sinks.Watermark{Value: "2026-03-01T10:00:00.000"}, true)
	require.NoError(t, err)
	require.Equal(t, map[string]any{}, c.filter())
}

func TestCursorMissingFieldsAreErrors(t *testing.T) {
	inc := &Incremental{Field: "changedTimestamp", Key: []string{"associateNo", "lineNo"}, Lookback: time.Minute}
	c, err := newCursor(inc, nil, false)
	require.NoError(t, err)
	_, err = c.observe(item(t, 1, "2026-03-01T10:00:00"))
	require.ErrorContains(t, err, `incremental key "lineNo" is not selected in items`)
}

func TestLowerBoundWidensAcrossAutumnFallBack(t *testing.T) {
	loc := oslo(t)
	wall := func(s string) time.Time {
		v, err := time.Parse(serverTimeLayout, s)
		require.NoError(t, err)
		return v
	}
	// 2026-10-25: Oslo's clocks go from 03:00 CEST back to 02:00 CET, so
	// wall times 02:00-03:00 happen twice.
	cases := []struct{ wm, want string }{
		{"2026-10-25T01:30:00.000", "2026-10-25T01:25:00.000"},
		{"2026-10-25T02:40:00.000", "2026-10-25T01:55:00.000"},
		{"2026-10-25T03:04:00.000", "2026-10-25T01:55:00.000"},
		{"2026-10-25T03:10:00.000", "2026-10-25T03:05:00.000"},
		{"2026-03-29T02:40:00.000", "2026-03-29T02:35:00.000"}, // spring: nothing repeats
	}
	for _, tc := range cases {
		got := lowerBound(wall(tc.wm), 5*time.Minute, loc)
		require.Equal(t, tc.want, got.Format(serverTimeLayout), "watermark %s", tc.wm)
	}
}

func TestCombineFilter(t *testing.T) {
	inc := map[string]any{"changedTimestamp": map[string]any{"_gte": "x"}}
	own := map[string]any{"customerNo": map[string]any{"_gt": 0}}
	require.Equal(t, inc, combineFilter(nil, inc))
	require.Equal(t, own, combineFilter(own, map[string]any{}))
	require.Equal(t, map[string]any{"_and": []any{own, inc}}, combineFilter(own, inc))
}
