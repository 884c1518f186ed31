package jobs

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeysetAfter(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	tests := []struct {
		name  string
		names []string
		vals  []json.RawMessage
		want  string
	}{
		{
			name:  "timestamp and one key",
			names: []string{"changedTimestamp", "associateNo"},
			vals:  []json.RawMessage{raw(`"2025-10-26T02:30:00.000"`), raw(`17`)},
			want: `[{"changedTimestamp":{"_gte":"2025-10-26T02:30:00.000"}},
				{"_or":[{"changedTimestamp":{"_gt":"2025-10-26T02:30:00.000"}},
					{"_and":[{"changedTimestamp":{"_eq":"2025-10-26T02:30:00.000"}},{"associateNo":{"_gt":17}}]}]}]`,
		},
		{
			name:  "two keys",
			names: []string{"changedTimestamp", "orderNo", "lineNo"},
			vals:  []json.RawMessage{raw(`"2025-01-02T03:04:05.006"`), raw(`5`), raw(`2`)},
			want: `[{"changedTimestamp":{"_gte":"2025-01-02T03:04:05.006"}},
				{"_or":[{"changedTimestamp":{"_gt":"2025-01-02T03:04:05.006"}},
					{"_and":[{"changedTimestamp":{"_eq":"2025-01-02T03:04:05.006"}},{"orderNo":{"_gt":5}}]},
					{"_and":[{"changedTimestamp":{"_eq":"2025-01-02T03:04:05.006"}},{"orderNo":{"_eq":5}},{"lineNo":{"_gt":2}}]}]}]`,
		},
		{
			name:  "after a row without a timestamp (nulls sort first)",
			names: []string{"changedTimestamp", "accountNo"},
			vals:  []json.RawMessage{raw(`null`), raw(`"1920"`)},
			want: `[{"_or":[{"changedTimestamp":{"_not_eq":null}},
					{"_and":[{"changedTimestamp":{"_eq":null}},{"accountNo":{"_gt":"1920"}}]}]}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(keysetAfter(tt.names, tt.vals))
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(got))
		})
	}
}

func TestKeysetPagesFilter(t *testing.T) {
	inc := &Incremental{Field: "changedTimestamp", Key: []string{"associateNo"}}
	after := []json.RawMessage{json.RawMessage(`"2025-10-26T02:30:00.000"`), json.RawMessage(`17`)}
	keyset := `{"changedTimestamp":{"_gte":"2025-10-26T02:30:00.000"}},
		{"_or":[{"changedTimestamp":{"_gt":"2025-10-26T02:30:00.000"}},
			{"_and":[{"changedTimestamp":{"_eq":"2025-10-26T02:30:00.000"}},{"associateNo":{"_gt":17}}]}]}`
	tests := []struct {
		name  string
		base  any
		after []json.RawMessage
		want  string
	}{
		{name: "first page of a first run", base: map[string]any{}, want: `{}`},
		{name: "first page without a filter variable", want: `{}`},
		{name: "first page", base: map[string]any{"changedTimestamp": map[string]any{"_gte": "2025-10-26T02:25:00.000"}},
			want: `{"changedTimestamp":{"_gte":"2025-10-26T02:25:00.000"}}`},
		{name: "next page of a first run", base: map[string]any{}, after: after, want: `{"_and":[` + keyset + `]}`},
		{name: "next page", base: map[string]any{"associateNo": map[string]any{"_lt": 100}}, after: after,
			want: `{"_and":[{"associateNo":{"_lt":100}},` + keyset + `]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &keysetPages{inc: inc, base: tt.base, after: tt.after}
			got, err := json.Marshal(k.filter())
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(got))
		})
	}
}
