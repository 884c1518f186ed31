package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql
var sqliteFiles embed.FS

//go:embed postgres/*.sql
var postgresFiles embed.FS

// SQLite holds the SQLite migrations at its root, as goose.NewProvider wants
// them.
var SQLite fs.FS = mustSub(sqliteFiles, "sqlite")

// Postgres holds the Postgres migrations at its root. store/postgres applies
// each file through goose with the configured schema first on the
// transaction's search_path.
var Postgres fs.FS = mustSub(postgresFiles, "postgres")

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a constant naming an embedded directory
	}
	return sub
}
