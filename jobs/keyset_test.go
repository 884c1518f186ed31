package jobs

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeyAfter(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	got, err := json.Marshal(keyAfter([]string{"associateNo"}, []json.RawMessage{raw(`17`)}))
	require.NoError(t, err)
	require.JSONEq(t, `{"associateNo":{"_gt":17}}`, string(got))

	got, err = json.Marshal(keyAfter([]string{"orderNo", "lineNo"}, []json.RawMessage{raw(`5`), raw(`2`)}))
	require.NoError(t, err)
	require.JSONEq(t, `{"_or":[{"orderNo":{"_gt":5}},{"_and":[{"orderNo":{"_eq":5}},{"lineNo":{"_gt":2}}]}]}`, string(got))
}

// TestKeysetPagesAdvance walks the phases of a first run: rows without a
// timestamp (by key), then by timestamp, a page of one timestamp (by key
// within it), and after it.
func TestKeysetPagesAdvance(t *testing.T) {
	inc := &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}}
	row := func(ts string, no int) json.RawMessage {
		if ts != "null" {
			ts = `"` + ts + `"`
		}
		return json.RawMessage(fmt.Sprintf(`{"associateNo":%d,"changedTimestamp":%s,"name":"x"}`, no, ts))
	}
	nos := func(rows []json.RawMessage) []int {
		var out []int
		for _, r := range rows {
			var v struct{ AssociateNo int }
			require.NoError(t, json.Unmarshal(r, &v))
			out = append(out, v.AssociateNo)
		}
		return out
	}
	const t1, t2, t3, t4 = "2025-01-01T00:00:00.001", "2025-01-01T00:00:00.002", "2025-01-01T00:00:00.003", "2025-01-01T00:00:00.004"
	steps := []struct {
		filter string // of the page
		rows   []json.RawMessage
		more   bool
		want   []int // delivered
	}{
		{`{}`, []json.RawMessage{row("null", 1), row("null", 2)}, true, []int{1, 2}},
		{`{"_and":[{"changedTimestamp":{"_eq":null}},{"associateNo":{"_gt":2}}]}`, []json.RawMessage{row("null", 3)}, false, []int{3}},
		{`{"changedTimestamp":{"_not_eq":null}}`, []json.RawMessage{row(t1, 4), row(t2, 5), row(t2, 6)}, true, []int{4, 5, 6}},
		// field >= t2 again: 5 and 6 were delivered.
		{`{"changedTimestamp":{"_gte":"` + t2 + `"}}`, []json.RawMessage{row(t2, 5), row(t2, 6), row(t2, 7), row(t3, 8)}, true, []int{7, 8}},
		// A page of one timestamp: on by key within it.
		{`{"changedTimestamp":{"_gte":"` + t3 + `"}}`, []json.RawMessage{row(t3, 8), row(t3, 9), row(t3, 10)}, true, []int{9, 10}},
		{`{"_and":[{"changedTimestamp":{"_eq":"` + t3 + `"}},{"associateNo":{"_gt":10}}]}`, []json.RawMessage{row(t3, 11), row(t3, 12)}, true, []int{11, 12}},
		// The timestamp is exhausted, not the import.
		{`{"_and":[{"changedTimestamp":{"_eq":"` + t3 + `"}},{"associateNo":{"_gt":12}}]}`, nil, false, nil},
		{`{"changedTimestamp":{"_gt":"` + t3 + `"}}`, []json.RawMessage{row(t4, 13)}, false, []int{13}},
	}
	k := &keysetPages{inc: inc, base: map[string]any{}}
	for i, s := range steps {
		require.False(t, k.done, "step %d", i)
		f, err := json.Marshal(k.filter())
		require.NoError(t, err)
		require.JSONEq(t, s.filter, string(f), "step %d", i)
		out, err := k.advance(s.rows, s.more)
		require.NoError(t, err)
		require.Equal(t, s.want, nos(out), "step %d", i)
	}
	require.True(t, k.done)
}

func TestKeysetPagesFilterKeepsTheBase(t *testing.T) {
	inc := &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}}
	base := map[string]any{"_and": []any{
		map[string]any{"associateNo": map[string]any{"_lt": 100}},
		map[string]any{"changedTimestamp": map[string]any{"_gte": "2025-10-26T02:25:00.000"}},
	}}
	k := &keysetPages{inc: inc, base: base}
	f, err := json.Marshal(k.filter())
	require.NoError(t, err)
	require.JSONEq(t, `{"_and":[{"associateNo":{"_lt":100}},{"changedTimestamp":{"_gte":"2025-10-26T02:25:00.000"}}]}`, string(f))

	_, err = k.advance([]json.RawMessage{json.RawMessage(`{"associateNo":7,"changedTimestamp":"2025-10-26T02:26:00.000"}`),
		json.RawMessage(`{"associateNo":3,"changedTimestamp":"2025-10-26T02:27:00.000"}`)}, true)
	require.NoError(t, err)
	f, err = json.Marshal(k.filter())
	require.NoError(t, err)
	require.JSONEq(t, `{"_and":[`+string(mustJSON(t, base))+`,{"changedTimestamp":{"_gte":"2025-10-26T02:27:00.000"}}]}`, string(f))

	_, err = k.advance([]json.RawMessage{json.RawMessage(`{"changedTimestamp":"2025-10-26T02:28:00.000"}`)}, true)
	require.EqualError(t, err, `item 1: incremental key "associateNo" is not selected in items`)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
