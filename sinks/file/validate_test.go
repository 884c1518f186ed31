package file

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nxtcron/nxtcron/sinks"
)

func TestTypeDefaults(t *testing.T) {
	require.Equal(t, "file", Type.Name)
	require.Equal(t, &Config{Format: FormatNDJSON}, Type.New())
}

func TestValidate(t *testing.T) {
	full := sinks.JobInfo{Name: "associates", Fields: []string{"associateNo"}}
	incremental := sinks.JobInfo{Name: "associates", Incremental: true, Key: []string{"associateNo"}, Fields: []string{"associateNo"}}
	tests := []struct {
		name string
		cfg  Config
		job  sinks.JobInfo
		want []sinks.FieldError
	}{
		{"design example", Config{Path: "out/{job}/{company}/{slot}.ndjson", Format: FormatNDJSON}, incremental, nil},
		{"every placeholder", Config{Path: "/var/lib/x/{job}/{company}/{date}/{slot}-{attempt}.csv", Format: FormatCSV}, incremental, nil},
		{"incremental with attempt only", Config{Path: "{company}/{date}-{attempt}.json", Format: FormatJSON}, incremental, nil},
		{"incremental overwrite with slot and attempt", Config{Path: "{company}/{slot}-{attempt}.ndjson", Format: FormatNDJSON, Overwrite: true}, incremental, nil},
		{"full snapshot replaced every run", Config{Path: "latest/{company}.csv", Format: FormatCSV, Overwrite: true}, full, nil},
		{"full daily file", Config{Path: "{date}/{company}.ndjson", Format: FormatNDJSON}, full, nil},
		{"missing path", Config{Format: FormatNDJSON}, full,
			[]sinks.FieldError{{Key: "path", Message: "required"}}},
		{"unknown format and missing path", Config{Format: "xml"}, full,
			[]sinks.FieldError{
				{Key: "format", Message: `unknown format "xml" (want ndjson, csv or json)`},
				{Key: "path", Message: "required"},
			}},
		{"empty format", Config{Path: "{company}/{slot}.x"}, full,
			[]sinks.FieldError{{Key: "format", Message: `unknown format "" (want ndjson, csv or json)`}}},
		{"misspelt placeholder", Config{Path: "out/{compnay}/{slot}.ndjson", Format: FormatNDJSON}, full,
			[]sinks.FieldError{{Key: "path", Message: "unknown placeholder {compnay} (did you mean {company}?)"}}},
		{"unknown placeholders, each named", Config{Path: "{company}/{table}/{Slot}/{}.ndjson", Format: FormatNDJSON}, full,
			[]sinks.FieldError{
				{Key: "path", Message: "unknown placeholder {table}; use {job}, {company}, {slot}, {date} or {attempt}"},
				{Key: "path", Message: "unknown placeholder {Slot} (did you mean {slot}?)"},
				{Key: "path", Message: "unknown placeholder {}; use {job}, {company}, {slot}, {date} or {attempt}"},
			}},
		{"unclosed brace", Config{Path: "{company}/{slot.ndjson", Format: FormatNDJSON}, full,
			[]sinks.FieldError{{Key: "path", Message: `"{" at offset 10 has no closing "}"`}}},
		{"nested brace", Config{Path: "{company}/{{slot}}.ndjson", Format: FormatNDJSON}, full,
			[]sinks.FieldError{
				{Key: "path", Message: `"{" at offset 10 has no closing "}"`},
				{Key: "path", Message: `"}" at offset 17 has no opening "{"`},
			}},
		{"stray closing brace", Config{Path: "{company}/slot}.ndjson", Format: FormatNDJSON}, full,
			[]sinks.FieldError{{Key: "path", Message: `"}" at offset 14 has no opening "{"`}}},
		{"a directory", Config{Path: "out/{company}/{slot}/", Format: FormatNDJSON}, full,
			[]sinks.FieldError{{Key: "path", Message: "must name a file, not a directory"}}},
		{"no company", Config{Path: "out/{slot}.ndjson", Format: FormatNDJSON}, full,
			[]sinks.FieldError{{Key: "path", Message: "must contain {company}: each company is committed to its own file"}}},
		{"incremental without slot or attempt", Config{Path: "out/{date}/{company}.ndjson", Format: FormatNDJSON}, incremental,
			[]sinks.FieldError{{Key: "path", Message: "must contain {slot} or {attempt}: an incremental run writes only the changed rows, so every run needs its own file"}}},
		{"full job, same file every run", Config{Path: "out/{job}/{company}.ndjson", Format: FormatNDJSON}, full,
			[]sinks.FieldError{{Key: "path", Message: "names the same file on every run; add {slot}, {date} or {attempt}, or set overwrite: true"}}},
		{"incremental overwrite without attempt", Config{Path: "{company}/{slot}.ndjson", Format: FormatNDJSON, Overwrite: true}, incremental,
			[]sinks.FieldError{{Key: "overwrite", Message: "an incremental job may replace files only when path contains both {slot} and {attempt}; otherwise a later run would replace rows the watermark has already moved past"}}},
		{"incremental overwrite of one file", Config{Path: "{company}.ndjson", Format: FormatNDJSON, Overwrite: true}, incremental,
			[]sinks.FieldError{
				{Key: "path", Message: "must contain {slot} or {attempt}: an incremental run writes only the changed rows, so every run needs its own file"},
				{Key: "overwrite", Message: "an incremental job may replace files only when path contains both {slot} and {attempt}; otherwise a later run would replace rows the watermark has already moved past"},
			}},
		{"every problem at once", Config{Path: "out.ndjson", Format: "tsv"}, incremental,
			[]sinks.FieldError{
				{Key: "format", Message: `unknown format "tsv" (want ndjson, csv or json)`},
				{Key: "path", Message: "must contain {company}: each company is committed to its own file"},
				{Key: "path", Message: "must contain {slot} or {attempt}: an incremental run writes only the changed rows, so every run needs its own file"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.cfg.Validate(tt.job))
		})
	}
}

func TestOpenRefusesInvalidConfig(t *testing.T) {
	tests := []struct {
		cfg Config
		err string
	}{
		{Config{Path: "{company}.x", Format: "xml"}, `file sink: unknown format "xml"`},
		{Config{Format: FormatNDJSON}, `file sink: invalid path ""`},
		{Config{Path: "{nope}.x", Format: FormatNDJSON}, `file sink: invalid path "{nope}.x"`},
	}
	for _, tt := range tests {
		_, err := tt.cfg.Open(context.Background(), sinks.Env{Dir: t.TempDir()})
		require.EqualError(t, err, tt.err)
		require.ErrorIs(t, err, sinks.ErrPermanent)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"slot", "slot", 0},
		{"compnay", "company", 2},
		{"", "job", 3},
		{"date", "data", 1},
		{"attempts", "attempt", 1},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, editDistance(tt.a, tt.b), "%q %q", tt.a, tt.b)
	}
}

// TestDecodeStrict decodes a sink section as the jobs loader does: known
// fields only, over the defaults of Type.New.
func TestDecodeStrict(t *testing.T) {
	decode := func(src string) (sinks.Config, error) {
		cfg := Type.New()
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		return cfg, dec.Decode(cfg)
	}
	cfg, err := decode("path: out/{job}/{company}/{slot}.csv\nformat: csv\noverwrite: true\n")
	require.NoError(t, err)
	require.Equal(t, &Config{Path: "out/{job}/{company}/{slot}.csv", Format: FormatCSV, Overwrite: true}, cfg)

	cfg, err = decode("path: \"{company}/{slot}.ndjson\"\n")
	require.NoError(t, err)
	require.Equal(t, &Config{Path: "{company}/{slot}.ndjson", Format: FormatNDJSON}, cfg)

	_, err = decode("path: x\noverwite: true\n")
	require.ErrorContains(t, err, "field overwite not found")
}
