package tokens

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/store/postgres"
	"github.com/nxtcron/nxtcron/store/postgres/pgtest"
)

// usePostgres moves the rig onto a fresh Postgres schema (dropped when the
// test ends), with an inline key, as replicas on a shared store run.
func (r *rig) usePostgres() string {
	r.t.Helper()
	dsn := pgtest.DSN(r.t)
	schema := pgtest.Schema(r.t, "nxtcron_tokens_")
	pg, err := postgres.Open(context.Background(), dsn, postgres.Options{Schema: schema, Migrate: true})
	require.NoError(r.t, err)
	r.t.Cleanup(func() { require.NoError(r.t, pg.Close()) })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	r.keys, err = OpenKeys(context.Background(), pg, KeyOptions{Store: config.Store{
		EncryptionKeys: []config.Secret{config.Secret(base64.StdEncoding.EncodeToString(key))},
	}})
	require.NoError(r.t, err)
	r.st, r.dbPath = pg, ""
	return schema
}

// TestPostgresHoldsNoClearToken: replicas rotate on a Postgres store; a
// dump of every table of its schema (SELECT *) holds no token in clear
// text, and the logs none either.
func TestPostgresHoldsNoClearToken(t *testing.T) {
	const ttl = 10 * time.Minute
	r := newRig(t, withAccessTTL(ttl))
	schema := r.usePostgres()
	secrets := []string{r.enrollChain()}
	a := r.replica("replica-a")
	b := r.replica("replica-b")
	for i := range 5 {
		for _, m := range []*Manager{a, b} {
			for _, name := range []string{userConnName, "service"} {
				tok, err := source(t, m, name).Token(context.Background())
				require.NoError(t, err)
				secrets = append(secrets, tok.Value.Reveal())
			}
		}
		secrets = append(secrets, r.storedRefresh())
		require.Equal(t, int64(i+2), r.state().Generation)
		r.clock.Add(ttl)
	}
	require.Zero(t, r.stats().ReuseDetected)
	require.Equal(t, int64(5), r.stats().TokenRequests.RefreshToken.OK, "one refresh per expiry across both replicas")

	conn, err := pgx.Connect(context.Background(), pgtest.DSN(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, schema)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, tables, "tokens")
	var dump strings.Builder
	for _, table := range tables {
		rows, err := conn.Query(context.Background(), `SELECT * FROM `+pgx.Identifier{schema, table}.Sanitize())
		require.NoError(t, err)
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			for _, v := range vals {
				if raw, ok := v.([]byte); ok {
					dump.Write(raw)
				} else {
					fmt.Fprint(&dump, v)
				}
				dump.WriteByte('\t')
			}
		}
		require.NoError(t, rows.Err())
	}
	require.Contains(t, dump.String(), "nightly-user", "the dump has the rows")
	for _, s := range secrets {
		require.NotContains(t, dump.String(), s, "a token in clear text")
	}
	requireNoLeak(t, r.logs, nil, secrets...)
}
