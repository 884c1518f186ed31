package spool

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpoolStaysInMemoryUnderTheLimit(t *testing.T) {
	s := Spool{Limit: 16, Pattern: "spool-test-*"}
	require.NoError(t, s.Write([]byte("hello ")))
	require.NoError(t, s.Write([]byte("world")))
	require.False(t, s.InFile())
	r, err := s.Reader()
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "hello world", string(got))
	require.NoError(t, s.Release())
}

func TestSpoolMovesToAFilePastTheLimit(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	s := Spool{Limit: 10, Pattern: "spool-test-*"}
	var want bytes.Buffer
	for i := range 1000 {
		line := []byte(strings.Repeat("x", i%7) + "\n")
		want.Write(line)
		require.NoError(t, s.Write(line))
	}
	require.True(t, s.InFile())
	r, err := s.Reader()
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, want.String(), string(got))
	require.NoError(t, s.Release())
	require.False(t, s.InFile())
	// The file was unlinked at once: nothing is left behind.
	entries, err := filepath.Glob(filepath.Join(os.TempDir(), "spool-test-*"))
	require.NoError(t, err)
	require.Empty(t, entries)
}
