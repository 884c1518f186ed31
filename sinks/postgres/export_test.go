package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// OpenTestDatabase gives an external test the test server's DSN, a schema name
// of its own (dropped at the end) and a pool for its queries.
func OpenTestDatabase(t *testing.T) (dsn, schema string, admin *pgxpool.Pool) {
	t.Helper()
	h := newHarness(t)
	return testDSN(), h.schema, h.admin
}
