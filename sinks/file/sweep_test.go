//go:build unix

package file

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/sinks"
)

func TestTempPattern(t *testing.T) {
	p := tempPattern("a")
	name, err := tempName("a", 1001)
	require.NoError(t, err)
	require.Regexp(t, p, name)

	other, err := tempName("a-1001", 7)
	require.NoError(t, err)
	require.NotRegexp(t, p, other, "another job whose name starts like this one's")
	require.NotRegexp(t, tempPattern("a-1001"), name)
	require.NotRegexp(t, p, ".nxtcron-tmp-a-1001-0123456789abcdef.ndjson")
	require.NotRegexp(t, p, ".nxtcron-tmp-a-1001")
	require.NotRegexp(t, p, "a-1001-0123456789abcdef")

	dotted := tempPattern("a.b")
	require.NotRegexp(t, dotted, ".nxtcron-tmp-axb-1-0123456789abcdef", "the job name is literal, not a pattern")
}

func TestDirGlob(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/srv/out/{job}/{company}/{slot}.ndjson", "/srv/out/associates/*"},
		{"/srv/out/{date}/x-{company}/{job}-{attempt}.csv", "/srv/out/*/x-*"},
		{"/srv/out/{company}.json", "/srv/out"},
		{"/srv/[a]*?/{company}.json", "/srv/[[]a][*][?]"},
	}
	for _, tt := range tests {
		tmpl, errs := parseTemplate(tt.path)
		require.Empty(t, errs)
		require.Equal(t, tt.want, tmpl.dirGlob("associates"), tt.path)
	}
}

// TestPrepareSweeps leaves the kinds of file a crash or another job can
// leave and checks that Prepare removes exactly this job's dead ones.
func TestPrepareSweeps(t *testing.T) {
	dir := t.TempDir()
	run := testRun("associates")
	cfg := Config{Path: "out/{job}/{company}/{slot}.ndjson", Format: FormatNDJSON}

	// A live writer of this job, in another sink (another attempt).
	live, err := cfg.Open(context.Background(), sinks.Env{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, live.Close()) })
	lw, err := live.Open(context.Background(), run, 1002)
	require.NoError(t, err)
	require.NoError(t, lw.Write(context.Background(), []sinks.Row{sinks.Row(`{"live":true}`)}))

	write := func(rel string) string {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
		return p
	}
	crashed1 := write("out/associates/1001/.nxtcron-tmp-associates-1001-00112233445566ff")
	crashed2 := write("out/associates/1003/.nxtcron-tmp-associates-1003-aabbccddeeff0011")
	keep := []string{
		write("out/associates/1001/20240229T023000+0100.ndjson"),                     // committed
		write("out/associates/1001/.nxtcron-tmp-associates-x-1001-00112233445566ff"), // job associates-x
		write("out/associates/1001/.nxtcron-tmp-orders-1001-00112233445566ff"),       // job orders
		write("out/associates/1001/.nxtcron-tmp-associates-1001-xyz"),                // not our name
		write("out/orders/1001/.nxtcron-tmp-associates-1001-00112233445566ff"),       // not a directory of this path
		write("out/associates/.nxtcron-tmp-associates-1001-00112233445566ff"),        // nor this
	}
	filesBefore := listFiles(t, dir)

	s := openSink(t, cfg, dir, run) // Prepare sweeps
	_ = s

	require.NoFileExists(t, crashed1)
	require.NoFileExists(t, crashed2)
	for _, p := range keep {
		require.FileExists(t, p)
	}
	require.Len(t, listFiles(t, dir), len(filesBefore)-2, "the live writer's file stays")

	require.NoError(t, lw.Commit(context.Background(), nil))
	require.Equal(t, "{\"live\":true}\n", readFile(t, filepath.Join(dir, "out", "associates", "1002", "20240301T023000+0100.ndjson")))
}

func TestPermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := t.TempDir()
	run := testRun("associates")
	for _, overwrite := range []bool{false, true} {
		s := openSink(t, Config{Path: "a/b/{company}/{attempt}.ndjson", Format: FormatNDJSON, Overwrite: overwrite}, dir, run)
		writeCompany(t, s, run, 1)
		run.Attempt++
	}
	for _, d := range []string{"a", "a/b", "a/b/1"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), d)
	}
	for _, f := range []string{"a/b/1/1.ndjson", "a/b/1/2.ndjson"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), f)
	}
}

// TestDiskErrorIsRetryable fills no disk: it makes the target directory
// unwritable, which fails the same calls a full disk would. Root ignores
// directory permissions, so there (as in CI) a regular file stands where
// the directory should be, which fails those calls too.
func TestDiskErrorIsRetryable(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	root := os.Geteuid() == 0
	if root {
		require.NoError(t, os.WriteFile(out, nil, 0o644))
	} else {
		require.NoError(t, os.Mkdir(out, 0o555))
		t.Cleanup(func() { _ = os.Chmod(out, 0o755) })
	}
	run := testRun("associates")
	s := openSink(t, Config{Path: "out/{company}.ndjson", Format: FormatNDJSON}, dir, run)
	_, err := s.Open(context.Background(), run, 1)
	require.Error(t, err)
	if !root {
		require.ErrorIs(t, err, os.ErrPermission)
	}
	require.NotErrorIs(t, err, sinks.ErrPermanent)
}

// TestNoHardLinks acts as a file system without hard links (Linux answers
// EPERM): the sink checks for the final name, then renames.
func TestNoHardLinks(t *testing.T) {
	link = func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
	}
	t.Cleanup(func() { link = os.Link })

	dir := t.TempDir()
	run := testRun("associates")
	s := openSink(t, Config{Path: "{company}.ndjson", Format: FormatNDJSON}, dir, run)
	writeCompany(t, s, run, 1, []sinks.Row{sinks.Row(`{"a":1}`)})
	require.Equal(t, []string{"1.ndjson"}, listFiles(t, dir))
	require.Equal(t, "{\"a\":1}\n", readFile(t, filepath.Join(dir, "1.ndjson")))

	ctx := context.Background()
	w, err := s.Open(ctx, run, 1)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []sinks.Row{sinks.Row(`{"a":2}`)}))
	err = w.Commit(ctx, nil)
	require.EqualError(t, err, filepath.Join(dir, "1.ndjson")+" already exists; not replacing it (set overwrite: true to allow)")
	require.ErrorIs(t, err, sinks.ErrPermanent)
	require.Equal(t, "{\"a\":1}\n", readFile(t, filepath.Join(dir, "1.ndjson")))
	require.Equal(t, []string{"1.ndjson"}, listFiles(t, dir))

	link = func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EIO}
	}
	w, err = s.Open(ctx, run, 2)
	require.NoError(t, err)
	err = w.Commit(ctx, nil)
	require.ErrorIs(t, err, syscall.EIO)
	require.NotErrorIs(t, err, sinks.ErrPermanent)
	require.Equal(t, []string{"1.ndjson"}, listFiles(t, dir))
}
