package stdout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nxtcron/nxtcron/sinks"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// syncBuffer is an io.Writer that records each Write call.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testRun(t *testing.T) sinks.Run {
	t.Helper()
	oslo, err := time.LoadLocation("Europe/Oslo")
	require.NoError(t, err)
	return sinks.Run{
		Job:      "associates",
		RunID:    "4f8c2a9e-0d7b-4c43-9a57-1c0de5a1b2c3",
		Slot:     time.Date(2024, 3, 1, 1, 30, 0, 0, time.UTC),
		Attempt:  2,
		Location: oslo,
	}
}

func openSink(t *testing.T, cfg *Config, out *syncBuffer) sinks.Sink {
	t.Helper()
	cfg.out = out
	s, err := cfg.Open(context.Background(), sinks.Env{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Prepare(context.Background(), testRun(t)))
	return s
}

func pageItems(t *testing.T) []sinks.Row {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "page.response.json"))
	require.NoError(t, err)
	var page struct {
		Data struct {
			UseCompany struct {
				Associate struct {
					Items []json.RawMessage `json:"items"`
				} `json:"associate"`
			} `json:"useCompany"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(raw, &page))
	require.NotEmpty(t, page.Data.UseCompany.Associate.Items)
	return page.Data.UseCompany.Associate.Items
}

func TestTypeDefaults(t *testing.T) {
	require.Equal(t, "stdout", Type.Name)
	require.Equal(t, &Config{Format: FormatNDJSON, Envelope: true}, Type.New())
}

func TestValidate(t *testing.T) {
	require.Empty(t, (&Config{Format: FormatNDJSON}).Validate(sinks.JobInfo{Incremental: true}))
	require.Equal(t, []sinks.FieldError{{
		Key:     "format",
		Message: `unknown format "csv" (the stdout sink writes ndjson; use a file sink for csv or json)`,
	}}, (&Config{Format: "csv"}).Validate(sinks.JobInfo{}))

	_, err := (&Config{Format: "json"}).Open(context.Background(), sinks.Env{})
	require.EqualError(t, err, `stdout sink: unknown format "json" (the stdout sink writes ndjson; use a file sink for csv or json)`)
	require.ErrorIs(t, err, sinks.ErrPermanent)
}

// TestGoldenPage prints a GraphQL page, with and without the envelope, and
// compares it with testdata/page.golden*.ndjson.
func TestGoldenPage(t *testing.T) {
	items := pageItems(t)
	for _, envelope := range []bool{true, false} {
		name := "page.golden.ndjson"
		if !envelope {
			name = "page.golden.bare.ndjson"
		}
		t.Run(name, func(t *testing.T) {
			var out syncBuffer
			s := openSink(t, &Config{Format: FormatNDJSON, Envelope: envelope}, &out)
			ctx := context.Background()
			w, err := s.Open(ctx, testRun(t), 1001)
			require.NoError(t, err)
			require.NoError(t, w.Write(ctx, items[:2]))
			require.NoError(t, w.Write(ctx, items[2:]))
			require.NoError(t, w.Commit(ctx, nil))

			golden := filepath.Join("testdata", name)
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(out.String()), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			require.Equal(t, string(want), out.String())
			require.Equal(t, 1, out.writes, "one write per company")
		})
	}
}

// TestGoldenEnvelope checks every golden line against the items: the
// envelope's fields, and the row byte for byte.
func TestGoldenEnvelope(t *testing.T) {
	items := pageItems(t)
	raw, err := os.ReadFile(filepath.Join("testdata", "page.golden.ndjson"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	require.Len(t, lines, len(items))
	for i, line := range lines {
		var env struct {
			Job     string          `json:"job"`
			Slot    string          `json:"slot"`
			Attempt int             `json:"attempt"`
			Company int64           `json:"company"`
			Row     json.RawMessage `json:"row"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &env))
		require.Equal(t, "associates", env.Job)
		require.Equal(t, "2024-03-01T02:30:00+01:00", env.Slot)
		require.Equal(t, 2, env.Attempt)
		require.Equal(t, int64(1001), env.Company)
		require.Equal(t, string(items[i]), string(env.Row))
	}
}

func TestRowsSpanningLinesAreCompacted(t *testing.T) {
	var out syncBuffer
	s := openSink(t, &Config{Format: FormatNDJSON}, &out)
	ctx := context.Background()
	w, err := s.Open(ctx, testRun(t), 1)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{
		sinks.Row("{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1, 2]\n}"),
		sinks.Row(`{"kept": "as is"}`),
	}))
	require.NoError(t, w.Commit(ctx, nil))
	require.Equal(t, "{\"a\":\"x\\ny\",\"b\":[1,2]}\n{\"kept\": \"as is\"}\n", out.String())

	w, err = s.Open(ctx, testRun(t), 1)
	require.NoError(t, err)
	require.EqualError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{}`), sinks.Row(``)}), "row 2: empty row")
	require.EqualError(t, w.Write(ctx, []sinks.Row{sinks.Row("{\n")}), "row 1: compacting row: unexpected end of JSON input")
	require.NoError(t, w.Abort(ctx))
}

func TestNothingBeforeCommit(t *testing.T) {
	var out syncBuffer
	s := openSink(t, &Config{Format: FormatNDJSON}, &out)
	ctx := context.Background()
	run := testRun(t)

	aborted, err := s.Open(ctx, run, 1)
	require.NoError(t, err)
	require.NoError(t, aborted.Write(ctx, []sinks.Row{sinks.Row(`{"a":1}`)}))
	require.Empty(t, out.String())
	require.NoError(t, aborted.Abort(ctx))
	require.Empty(t, out.String(), "an aborted company prints nothing")
	require.EqualError(t, aborted.Commit(ctx, nil), "committing a committed or aborted stdout writer")
	require.Empty(t, out.String())

	empty, err := s.Open(ctx, run, 2)
	require.NoError(t, err)
	require.NoError(t, empty.Commit(ctx, nil))
	require.Empty(t, out.String(), "a company without rows prints nothing")
	require.Zero(t, out.writes)

	w, err := s.Open(ctx, run, 3)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{"a":3}`)}))
	require.NoError(t, w.Commit(ctx, nil))
	require.NoError(t, w.Abort(ctx), "Abort after Commit is a no-op")
	require.EqualError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{}`)}), "writing to a committed or aborted stdout writer")
	require.Equal(t, `{"a":3}`+"\n", out.String())

	ctx2, cancel := context.WithCancel(ctx)
	c, err := s.Open(ctx2, run, 4)
	require.NoError(t, err)
	require.NoError(t, c.Write(ctx2, []sinks.Row{sinks.Row(`{"a":4}`)}))
	cancel()
	require.ErrorIs(t, c.Commit(ctx2, nil), context.Canceled)
	require.Equal(t, `{"a":3}`+"\n", out.String())
}

// TestConcurrentCompaniesDoNotInterleave commits many companies at once
// through two sinks (two jobs) and checks each company's lines are one
// contiguous block.
func TestConcurrentCompaniesDoNotInterleave(t *testing.T) {
	var out syncBuffer
	sinksUnderTest := []sinks.Sink{
		openSink(t, &Config{Format: FormatNDJSON, Envelope: true}, &out),
		openSink(t, &Config{Format: FormatNDJSON, Envelope: true, spoolLimit: 1 << 10}, &out),
	}
	const companies, pages, perPage = 12, 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, 2*companies)
	for si, s := range sinksUnderTest {
		for c := int64(1); c <= companies; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				w, err := s.Open(ctx, testRun(t), int64(si)*1000+c)
				if err != nil {
					errs <- err
					return
				}
				for p := range pages {
					rows := make([]sinks.Row, perPage)
					for i := range rows {
						rows[i] = sinks.Row(fmt.Sprintf(`{"n":%d}`, p*perPage+i))
					}
					if err := w.Write(ctx, rows); err != nil {
						errs <- err
						return
					}
				}
				errs <- w.Commit(ctx, nil)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 2*companies*pages*perPage)
	seen := map[int64]bool{}
	for start := 0; start < len(lines); start += pages * perPage {
		var first struct{ Company int64 }
		require.NoError(t, json.Unmarshal([]byte(lines[start]), &first))
		require.False(t, seen[first.Company], "company %d printed twice", first.Company)
		seen[first.Company] = true
		for i := range pages * perPage {
			want := fmt.Sprintf(`{"job":"associates","slot":"2024-03-01T02:30:00+01:00","attempt":2,"company":%d,"row":{"n":%d}}`, first.Company, i)
			require.Equal(t, want, lines[start+i])
		}
	}
	require.Len(t, seen, 2*companies)
}

// TestSpool holds a company's lines in a temporary file once they pass the
// limit, prints them all at Commit, and removes the file at Commit or Abort.
func TestSpool(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)

	var out syncBuffer
	s := openSink(t, &Config{Format: FormatNDJSON, spoolLimit: 64}, &out)
	ctx := context.Background()
	var want strings.Builder
	w, err := s.Open(ctx, testRun(t), 7)
	require.NoError(t, err)
	for i := range 100 {
		row := fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", i))
		want.WriteString(row + "\n")
		require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(row)}))
	}
	require.True(t, w.(*writer).spool.InFile(), "the rows went to a file")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "the spool file is unlinked at once")

	require.NoError(t, w.Commit(ctx, nil))
	require.Equal(t, want.String(), out.String())
	require.False(t, w.(*writer).spool.InFile())

	a, err := s.Open(ctx, testRun(t), 8)
	require.NoError(t, err)
	require.NoError(t, a.Write(ctx, []sinks.Row{sinks.Row(`{"pad":"` + strings.Repeat("y", 100) + `"}`)}))
	require.True(t, a.(*writer).spool.InFile())
	require.NoError(t, a.Abort(ctx))
	require.False(t, a.(*writer).spool.InFile())
	require.Equal(t, want.String(), out.String())
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteFailureIsRetryable(t *testing.T) {
	cfg := &Config{Format: FormatNDJSON, Envelope: false, out: failingWriter{}}
	s, err := cfg.Open(context.Background(), sinks.Env{})
	require.NoError(t, err)
	ctx := context.Background()
	w, err := s.Open(ctx, testRun(t), 1)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{}`)}))
	err = w.Commit(ctx, nil)
	require.EqualError(t, err, "writing to stdout: broken pipe")
	require.NotErrorIs(t, err, sinks.ErrPermanent)
}

func TestDefaultsToStdout(t *testing.T) {
	s, err := Type.New().Open(context.Background(), sinks.Env{})
	require.NoError(t, err)
	require.Equal(t, os.Stdout, s.(*Sink).out)
	require.Equal(t, defaultSpoolLimit, s.(*Sink).spoolLimit)
	require.True(t, s.(*Sink).envelope)
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
	cfg, err := decode("envelope: false\n")
	require.NoError(t, err)
	require.Equal(t, &Config{Format: FormatNDJSON, Envelope: false}, cfg)

	cfg, err = decode("format: ndjson\n")
	require.NoError(t, err)
	require.Equal(t, &Config{Format: FormatNDJSON, Envelope: true}, cfg)

	_, err = decode("out: stderr\n")
	require.ErrorContains(t, err, "field out not found")
}
