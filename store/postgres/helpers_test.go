package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store/postgres"
	"github.com/nxtcron/nxtcron/store/postgres/pgtest"
)

// testDSN is the test server (pgtest.DSN).
func testDSN(t testing.TB) string { return pgtest.DSN(t) }

// newSchema names a schema for this test alone, dropped when it ends; the
// store's Migrate creates it.
func newSchema(t testing.TB) string { return pgtest.Schema(t, "nxtcron_test_") }

// open opens a migrated store on a fresh schema.
func open(t testing.TB) *postgres.Store {
	t.Helper()
	return openSchema(t, newSchema(t))
}

func openSchema(t testing.TB, schema string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), testDSN(t), postgres.Options{Schema: schema, Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// rawConn is a plain connection to the test database, to look at what the
// store wrote.
func rawConn(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), testDSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
