package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/postgres"
	"github.com/nxtcron/nxtcron/store/postgres/pgtest"
)

// Helpers of the tests that run replicas on a Postgres store: the server
// at TEST_DATABASE_URL, a schema per test, and a TCP proxy that plays a
// database outage without disturbing anyone else on the server.

// pgDSN is the test server (pgtest.DSN).
func pgDSN(t *testing.T) string { return pgtest.DSN(t) }

// pgSchema names a schema for this test alone (the daemons create it when
// they migrate) and drops it when the test ends.
func pgSchema(t *testing.T) string { return pgtest.Schema(t, "nxtcron_e2e_") }

// pgStore opens the test's schema directly, to assert from the store what
// the replicas did (attempts, owners, the database's clock).
func pgStore(t *testing.T, schema string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), pgDSN(t), postgres.Options{Schema: schema, Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

// pgKeys writes the encryption key file WriteConfig names: replicas on a
// shared store must share their keys, and none of them may invent one.
func pgKeys(e *Env) {
	e.t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	path := e.WriteFile("nxtcron.keys", base64.StdEncoding.EncodeToString(key)+"\n")
	require.NoError(e.t, os.Chmod(path, 0o600))
}

// dbNow reads the database's clock.
func dbNow(t *testing.T, st store.Store) time.Time {
	t.Helper()
	now, err := st.Now(t.Context())
	require.NoError(t, err)
	return now
}

// waitDBTime waits until the database's clock passes tm: the way a test
// lets slots go by while no replica runs.
func waitDBTime(t *testing.T, st store.Store, tm time.Time) {
	t.Helper()
	eventually(t, "the database clock to pass "+tm.Format(time.RFC3339Nano), func() (bool, string) {
		now := dbNow(t, st)
		return now.After(tm), now.Format(time.RFC3339Nano)
	})
}

// slotAttempts lists the attempts of one slot record.
func slotAttempts(t *testing.T, st store.Store, slotID int64) []store.Attempt {
	t.Helper()
	as, err := st.Attempts(t.Context(), slotID)
	require.NoError(t, err)
	return as
}
