package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/postgres"
)

// Helpers of the tests that run replicas on a Postgres store: the server
// at TEST_DATABASE_URL, a schema per test, and a TCP proxy that plays a
// database outage without disturbing anyone else on the server.

var (
	pgOnce sync.Once
	pgErr  error
)

// pgDSN returns TEST_DATABASE_URL (or the default); an unreachable server
// fails the test under CI=true and skips it otherwise.
func pgDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("TEST_DATABASE_URL")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		pgErr = err
	})
	if pgErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("postgres at TEST_DATABASE_URL is required under CI: %v", pgErr)
		}
		t.Skipf("postgres not reachable (set TEST_DATABASE_URL): %v", pgErr)
	}
	return dsn
}

// pgSchema names a schema for this test alone (the daemons create it when
// they migrate) and drops it when the test ends.
func pgSchema(t *testing.T) string {
	t.Helper()
	dsn := pgDSN(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "nxtcron_e2e_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`)
		require.NoError(t, err)
	})
	return name
}

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

// dbProxy is a TCP proxy in front of the test database. Down cuts every
// connection through it and refuses new ones (to the daemon, the database
// is gone); Up accepts again. The server and its other clients (other
// packages' tests) notice nothing.
type dbProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	down   bool
	closed bool
	conns  map[net.Conn]struct{}
}

// newDBProxy starts a proxy to the host of dsn and returns it with the DSN
// that goes through it.
func newDBProxy(t *testing.T, dsn string) (*dbProxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dbProxy{t: t, ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *dbProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.down || p.closed
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 10*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.down || p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *dbProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	if _, err := io.Copy(dst, src); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset by peer") {
		p.t.Logf("db proxy: %v", err)
	}
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Down cuts every connection and refuses new ones until Up.
func (p *dbProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Up accepts connections again.
func (p *dbProxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func (p *dbProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}
