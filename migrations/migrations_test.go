package migrations_test

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/migrations"
)

var fileName = regexp.MustCompile(`^(\d{5})_[a-z0-9_]+\.sql$`)

func TestSQLiteFiles(t *testing.T) {
	entries, err := fs.ReadDir(migrations.SQLite, ".")
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for i, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		require.NotNil(t, m, "%s: want NNNNN_name.sql", e.Name())
		require.Equal(t, fmt.Sprintf("%05d", i+1), m[1], "%s: versions are contiguous from 00001", e.Name())
		b, err := fs.ReadFile(migrations.SQLite, e.Name())
		require.NoError(t, err)
		require.Contains(t, string(b), "-- +goose Up", e.Name())
		require.NotContains(t, string(b), "-- +goose Down", "%s: migrations are additive and have no Down", e.Name())
		require.NotContains(t, strings.ToUpper(string(b)), "DROP ", "%s: migrations are additive", e.Name())
	}
}
