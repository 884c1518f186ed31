package file

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sinks"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var oslo = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Oslo")
	if err != nil {
		panic(err)
	}
	return loc
}()

var pageFields = []sinks.Field{
	{Name: "associateNo"}, {Name: "name"}, {Name: "customerNo"}, {Name: "supplierNo"},
	{Name: "changedTimestamp"}, {Name: "active"}, {Name: "creditLimit"},
	{Name: "joinup_Country", Object: true}, {Name: "tags", List: true},
}

func testRun(job string) sinks.Run {
	return sinks.Run{
		Job:      job,
		RunID:    "4f8c2a9e-0d7b-4c43-9a57-1c0de5a1b2c3",
		Slot:     time.Date(2024, 3, 1, 2, 30, 0, 0, oslo),
		Attempt:  1,
		Fence:    7,
		Trigger:  "schedule",
		Location: oslo,
		Fields:   pageFields,
	}
}

// openSink opens and prepares a file sink over dir.
func openSink(t *testing.T, cfg Config, dir string, run sinks.Run) *Sink {
	t.Helper()
	s, err := cfg.Open(context.Background(), sinks.Env{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Prepare(context.Background(), run))
	return s.(*Sink)
}

// writeCompany writes rows for one company and commits them.
func writeCompany(t *testing.T, s *Sink, run sinks.Run, company int64, batches ...[]sinks.Row) {
	t.Helper()
	ctx := context.Background()
	w, err := s.Open(ctx, run, company)
	require.NoError(t, err)
	for _, b := range batches {
		require.NoError(t, w.Write(ctx, b))
	}
	require.NoError(t, w.Commit(ctx, nil))
}

// pageItems reads the items of a GraphQL page response as the API sent them.
func pageItems(t *testing.T, name string) []sinks.Row {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
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
	items := page.Data.UseCompany.Associate.Items
	require.NotEmpty(t, items)
	return items
}

// listFiles lists every regular file below dir, relative and sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	require.NoError(t, err)
	sort.Strings(out)
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// TestGoldenPage turns a GraphQL page into each format and compares the
// file with testdata/page.golden.<format>. Rows arrive in two batches, as pages do.
func TestGoldenPage(t *testing.T) {
	items := pageItems(t, "page.response.json")
	for _, format := range []string{FormatNDJSON, FormatCSV, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			run := testRun("associates")
			s := openSink(t, Config{Path: "out/{company}." + format, Format: format}, dir, run)
			writeCompany(t, s, run, 1001, items[:1], items[1:])

			got := readFile(t, filepath.Join(dir, "out", "1001."+format))
			golden := filepath.Join("testdata", "page.golden."+format)
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			require.Equal(t, readFile(t, golden), got)
		})
	}
}

// TestGoldenRowsUnchanged checks that the ndjson and json goldens hold the
// page's items byte for byte, so that a golden cannot drift into
// re-encoded rows unnoticed.
func TestGoldenRowsUnchanged(t *testing.T) {
	items := pageItems(t, "page.response.json")

	lines := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join("testdata", "page.golden.ndjson")), "\n"), "\n")
	require.Len(t, lines, len(items))
	for i, item := range items {
		require.Equal(t, string(item), lines[i])
	}

	var arr []json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(readFile(t, filepath.Join("testdata", "page.golden.json"))), &arr))
	require.Len(t, arr, len(items))
	for i, item := range items {
		require.Equal(t, string(item), string(arr[i]))
	}
}

func TestPlaceholders(t *testing.T) {
	autumn1 := time.Date(2024, 10, 27, 0, 30, 0, 0, time.UTC).In(oslo) // the first 02:30 (CEST)
	autumn2 := autumn1.Add(time.Hour)                                  // the second 02:30 (CET)
	require.Equal(t, "02:30", autumn1.Format("15:04"))
	require.Equal(t, "02:30", autumn2.Format("15:04"))

	tests := []struct {
		name    string
		path    string
		slot    time.Time
		attempt int
		want    string
	}{
		{"every placeholder", "{job}/{company}/{date}/{slot}-{attempt}.ndjson", time.Date(2024, 3, 1, 2, 30, 0, 0, oslo), 2,
			"associates/1001/2024-03-01/20240301T023000+0100-2.ndjson"},
		{"summer time", "{company}-{slot}.ndjson", time.Date(2024, 7, 1, 2, 30, 0, 0, oslo), 1,
			"1001-20240701T023000+0200.ndjson"},
		{"first of a repeated hour", "{company}-{slot}.ndjson", autumn1, 1, "1001-20241027T023000+0200.ndjson"},
		{"second of a repeated hour", "{company}-{slot}.ndjson", autumn2, 1, "1001-20241027T023000+0100.ndjson"},
		{"date in the job's zone, not UTC", "{company}/{date}.ndjson", time.Date(2024, 3, 1, 0, 30, 0, 0, oslo), 1,
			"1001/2024-03-01.ndjson"},
		{"placeholder twice", "{company}/{company}-{job}.ndjson", time.Date(2024, 3, 1, 2, 30, 0, 0, oslo), 1,
			"1001/1001-associates.ndjson"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			run := testRun("associates")
			run.Slot = tt.slot.UTC() // the sink puts it in run.Location
			run.Attempt = tt.attempt
			s := openSink(t, Config{Path: tt.path, Format: FormatNDJSON, Overwrite: true}, dir, run)
			writeCompany(t, s, run, 1001, []sinks.Row{sinks.Row(`{"a":1}`)})
			require.Equal(t, []string{tt.want}, listFiles(t, dir))
		})
	}
}

func TestPathResolution(t *testing.T) {
	t.Run("relative to the job file's directory", func(t *testing.T) {
		dir := t.TempDir()
		run := testRun("associates")
		s := openSink(t, Config{Path: "a/b/{company}.ndjson", Format: FormatNDJSON}, dir, run)
		writeCompany(t, s, run, 1)
		require.Equal(t, []string{"a/b/1.ndjson"}, listFiles(t, dir))
	})
	t.Run("absolute ignores the job file's directory", func(t *testing.T) {
		dir, other := t.TempDir(), t.TempDir()
		run := testRun("associates")
		s := openSink(t, Config{Path: filepath.Join(other, "{company}.ndjson"), Format: FormatNDJSON}, dir, run)
		writeCompany(t, s, run, 1)
		require.Empty(t, listFiles(t, dir))
		require.Equal(t, []string{"1.ndjson"}, listFiles(t, other))
	})
	t.Run("a file in the way of a directory", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "a"), nil, 0o644))
		run := testRun("associates")
		s := openSink(t, Config{Path: "a/{company}.ndjson", Format: FormatNDJSON}, dir, run)
		_, err := s.Open(context.Background(), run, 1)
		require.EqualError(t, err, fmt.Sprintf("creating directory %[1]s: %[1]s is not a directory", filepath.Join(dir, "a")))
	})
}

func TestCommitMakesTheFileVisible(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	s := openSink(t, Config{Path: "out/{company}.ndjson", Format: FormatNDJSON}, dir, run)
	ctx := context.Background()

	w, err := s.Open(ctx, run, 1001)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{"a":1}`), sinks.Row(`{"a":2}`)}))

	files := listFiles(t, dir)
	require.Len(t, files, 1, "only the temporary file before Commit")
	require.Regexp(t, `^out/\.nxtcron-tmp-associates-1001-[0-9a-f]{16}$`, files[0])
	require.NoFileExists(t, filepath.Join(dir, "out", "1001.ndjson"))

	require.NoError(t, w.Commit(ctx, &sinks.Watermark{Value: "2024-03-01T02:00:00"}))
	require.Equal(t, []string{"out/1001.ndjson"}, listFiles(t, dir))
	require.Equal(t, "{\"a\":1}\n{\"a\":2}\n", readFile(t, filepath.Join(dir, "out", "1001.ndjson")))

	require.NoError(t, w.Abort(ctx), "Abort after Commit is a no-op")
	require.FileExists(t, filepath.Join(dir, "out", "1001.ndjson"))
	require.EqualError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{}`)}), "writing to a committed or aborted file")
	require.EqualError(t, w.Commit(ctx, nil), "committing a committed or aborted file")
}

func TestAbortLeavesNothing(t *testing.T) {
	for _, format := range []string{FormatNDJSON, FormatCSV, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			run := testRun("associates")
			s := openSink(t, Config{Path: "{company}/{slot}." + format, Format: format}, dir, run)
			ctx := context.Background()
			w, err := s.Open(ctx, run, 1001)
			require.NoError(t, err)
			require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{"associateNo":1}`)}))
			require.Len(t, listFiles(t, dir), 1)

			require.NoError(t, w.Abort(ctx))
			require.Empty(t, listFiles(t, dir))
			require.NoError(t, w.Abort(ctx), "a second Abort is a no-op")
			require.EqualError(t, w.Commit(ctx, nil), "committing a committed or aborted file")
			require.Empty(t, listFiles(t, dir))
		})
	}
}

func TestCloseAbortsOpenWriters(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	s, err := (&Config{Path: "{company}.ndjson", Format: FormatNDJSON}).Open(context.Background(), sinks.Env{Dir: dir})
	require.NoError(t, err)
	ctx := context.Background()
	done, err := s.Open(ctx, run, 1)
	require.NoError(t, err)
	require.NoError(t, done.Commit(ctx, nil))
	_, err = s.Open(ctx, run, 2)
	require.NoError(t, err)
	require.Len(t, listFiles(t, dir), 2)

	require.NoError(t, s.Close())
	require.Equal(t, []string{"1.ndjson"}, listFiles(t, dir))
}

func TestCommitCancelled(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	s := openSink(t, Config{Path: "{company}.ndjson", Format: FormatNDJSON}, dir, run)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := s.Open(ctx, run, 1)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{"a":1}`)}))
	cancel()
	require.ErrorIs(t, w.Commit(ctx, nil), context.Canceled)
	require.Empty(t, listFiles(t, dir))
}

func TestNoOverwrite(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	final := filepath.Join(dir, "1001.ndjson")
	require.NoError(t, os.WriteFile(final, []byte("earlier\n"), 0o644))

	s := openSink(t, Config{Path: "{company}.ndjson", Format: FormatNDJSON}, dir, run)
	ctx := context.Background()
	w, err := s.Open(ctx, run, 1001)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{"a":1}`)}))
	err = w.Commit(ctx, nil)
	require.EqualError(t, err, final+" already exists; not replacing it (set overwrite: true to allow)")
	require.ErrorIs(t, err, sinks.ErrPermanent)

	require.NoError(t, w.Abort(ctx))
	require.Equal(t, "earlier\n", readFile(t, final))
	require.Equal(t, []string{"1001.ndjson"}, listFiles(t, dir), "the temporary file is gone")
}

func TestOverwrite(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	final := filepath.Join(dir, "1001.csv")
	require.NoError(t, os.WriteFile(final, []byte("earlier\n"), 0o644))

	run.Fields = []sinks.Field{{Name: "a"}}
	s := openSink(t, Config{Path: "{company}.csv", Format: FormatCSV, Overwrite: true}, dir, run)
	writeCompany(t, s, run, 1001, []sinks.Row{sinks.Row(`{"a":1}`)})
	require.Equal(t, "a\n1\n", readFile(t, final))

	writeCompany(t, s, run, 1001, []sinks.Row{sinks.Row(`{"a":2}`)})
	require.Equal(t, "a\n2\n", readFile(t, final))
	require.Equal(t, []string{"1001.csv"}, listFiles(t, dir))
}

// TestTwoWritersOfOnePath is a takeover: two attempts write the same path
// at once; the first commit wins and the second is refused, never merged.
func TestTwoWritersOfOnePath(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	ctx := context.Background()
	a := openSink(t, Config{Path: "{company}/{slot}.ndjson", Format: FormatNDJSON}, dir, run)
	b := openSink(t, Config{Path: "{company}/{slot}.ndjson", Format: FormatNDJSON}, dir, run)
	wa, err := a.Open(ctx, run, 1)
	require.NoError(t, err)
	wb, err := b.Open(ctx, run, 1)
	require.NoError(t, err)
	require.NoError(t, wa.Write(ctx, []sinks.Row{sinks.Row(`{"from":"a"}`)}))
	require.NoError(t, wb.Write(ctx, []sinks.Row{sinks.Row(`{"from":"b"}`)}))

	require.NoError(t, wa.Commit(ctx, nil))
	require.ErrorIs(t, wb.Commit(ctx, nil), sinks.ErrPermanent)
	require.Equal(t, []string{"1/20240301T023000+0100.ndjson"}, listFiles(t, dir))
	require.Equal(t, "{\"from\":\"a\"}\n", readFile(t, filepath.Join(dir, "1", "20240301T023000+0100.ndjson")))
}

func TestZeroRows(t *testing.T) {
	tests := []struct {
		format string
		want   string
	}{
		{FormatNDJSON, ""},
		{FormatCSV, "associateNo,name,customerNo,supplierNo,changedTimestamp,active,creditLimit,joinup_Country,tags\n"},
		{FormatJSON, "[]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			dir := t.TempDir()
			run := testRun("associates")
			s := openSink(t, Config{Path: "{company}.out", Format: tt.format}, dir, run)
			writeCompany(t, s, run, 1001)
			writeCompany(t, s, run, 1002, []sinks.Row{})
			require.Equal(t, []string{"1001.out", "1002.out"}, listFiles(t, dir))
			require.Equal(t, tt.want, readFile(t, filepath.Join(dir, "1001.out")))
			require.Equal(t, tt.want, readFile(t, filepath.Join(dir, "1002.out")))
		})
	}
}

func TestCSVValues(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	run.Fields = []sinks.Field{{Name: "s"}, {Name: "n"}, {Name: "b"}, {Name: "o", Object: true}, {Name: "l", List: true}, {Name: "missing"}}
	s := openSink(t, Config{Path: "{company}.csv", Format: FormatCSV}, dir, run)
	writeCompany(t, s, run, 1, []sinks.Row{
		sinks.Row(`{"s":"plain","n":1,"b":true,"o":{"x":1},"l":[1,2]}`),
		sinks.Row(`{"s":null,"n":null,"b":null,"o":null,"l":null,"missing":null}`),
		sinks.Row(`{"s":"a,b","n":-2.50e3,"b":false,"o":{ "k" : "v, \"q\"" },"l":[]}`),
		sinks.Row(`{"s":"say \"hi\"","n":12345678901234567890123,"o":{},"l":["x\ny"]}`),
		sinks.Row(`{"s":"two\nlines","extra":"ignored"}`),
		sinks.Row(`{"s":""," n":0}`),
		sinks.Row("{\n  \"s\": \"spread\",\n  \"n\": 3\n}"),
	})
	want := "s,n,b,o,l,missing\n" +
		`plain,1,true,"{""x"":1}","[1,2]",` + "\n" +
		",,,,,\n" +
		`"a,b",-2.50e3,false,"{""k"":""v, \""q\""""}",[],` + "\n" +
		`"say ""hi""",12345678901234567890123,,{},"[""x\ny""]",` + "\n" +
		"\"two\nlines\",,,,,\n" +
		",,,,,\n" +
		"spread,3,,,,\n"
	require.Equal(t, want, readFile(t, filepath.Join(dir, "1.csv")))
}

func TestBadRows(t *testing.T) {
	tests := []struct {
		format string
		row    string
		err    string
	}{
		{FormatNDJSON, ``, "empty row"},
		{FormatNDJSON, "{\"a\":\n", "compacting row: unexpected end of JSON input"},
		{FormatJSON, ``, "empty row"},
		{FormatCSV, `[1]`, "decoding row: not a JSON object"},
		{FormatCSV, `null`, "decoding row: not a JSON object"},
		{FormatCSV, `{"a":`, "decoding row: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.format+" "+tt.row, func(t *testing.T) {
			dir := t.TempDir()
			run := testRun("associates")
			run.Fields = []sinks.Field{{Name: "a"}}
			s := openSink(t, Config{Path: "{company}.out", Format: tt.format}, dir, run)
			ctx := context.Background()
			w, err := s.Open(ctx, run, 1)
			require.NoError(t, err)
			require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{"a":1}`)}))
			err = w.Write(ctx, []sinks.Row{sinks.Row(tt.row)})
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "writing row 2 to "), err.Error())
			require.True(t, strings.HasSuffix(err.Error(), ": "+tt.err), err.Error())
			require.NoError(t, w.Abort(ctx))
		})
	}
}

func TestCSVNeedsFields(t *testing.T) {
	run := testRun("associates")
	run.Fields = nil
	s, err := (&Config{Path: "{company}.csv", Format: FormatCSV}).Open(context.Background(), sinks.Env{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	err = s.Prepare(context.Background(), run)
	require.EqualError(t, err, "csv needs the selected item fields for its header, and the run has none")
	require.ErrorIs(t, err, sinks.ErrPermanent)
}

func TestConcurrentCompanies(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	for _, format := range []string{FormatNDJSON, FormatCSV, FormatJSON} {
		s := openSink(t, Config{Path: format + "/{company}/{slot}." + format, Format: format}, dir, run)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for c := int64(1); c <= 16; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				w, err := s.Open(ctx, run, c)
				if err != nil {
					errs <- err
					return
				}
				for page := range 5 {
					rows := make([]sinks.Row, 100)
					for i := range rows {
						rows[i] = sinks.Row(fmt.Sprintf(`{"associateNo":%d,"name":"c%d"}`, page*100+i, c))
					}
					if err := w.Write(ctx, rows); err != nil {
						errs <- err
						return
					}
				}
				if c%4 == 0 {
					errs <- w.Abort(ctx)
					return
				}
				errs <- w.Commit(ctx, nil)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}

	var want []string
	for _, format := range []string{FormatCSV, FormatJSON, FormatNDJSON} {
		for c := int64(1); c <= 16; c++ {
			if c%4 != 0 {
				want = append(want, fmt.Sprintf("%s/%d/20240301T023000+0100.%s", format, c, format))
			}
		}
	}
	sort.Strings(want)
	require.Equal(t, want, listFiles(t, dir))

	for c := int64(1); c <= 16; c++ {
		if c%4 == 0 {
			continue
		}
		name := fmt.Sprintf("%d/20240301T023000+0100", c)
		nd := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(dir, "ndjson", name+".ndjson")), "\n"), "\n")
		require.Len(t, nd, 500)
		for i, line := range nd {
			require.Equal(t, fmt.Sprintf(`{"associateNo":%d,"name":"c%d"}`, i, c), line)
		}
		var arr []map[string]any
		require.NoError(t, json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "json", name+".json"))), &arr))
		require.Len(t, arr, 500)
		require.Equal(t, map[string]any{"associateNo": float64(499), "name": fmt.Sprintf("c%d", c)}, arr[499])
		csvLines := strings.Split(readFile(t, filepath.Join(dir, "csv", name+".csv")), "\n")
		require.Len(t, csvLines, 502) // header, 500 rows, the final newline
		require.Equal(t, fmt.Sprintf("499,c%d,,,,,,,", c), csvLines[500])
	}
}

// TestCommitFailureIsRetryable breaks the temporary file under the writer,
// as a full or failing disk would, and checks the error is retryable and
// nothing is left behind.
func TestCommitFailureIsRetryable(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	s := openSink(t, Config{Path: "{company}.ndjson", Format: FormatNDJSON}, dir, run)
	ctx := context.Background()
	w, err := s.Open(ctx, run, 1)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{"a":1}`)}))
	require.NoError(t, w.(*writer).f.Close())

	err = w.Commit(ctx, nil)
	require.ErrorIs(t, err, os.ErrClosed)
	require.NotErrorIs(t, err, sinks.ErrPermanent)
	require.Empty(t, listFiles(t, dir))
	require.NoError(t, w.Abort(ctx))
}
