package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/postgres"
	"github.com/nxtcron/nxtcron/store/storetest"
)

// TestBehindPgBouncer runs the conformance suites, migrations included,
// through PgBouncer in transaction pooling mode with a server pool smaller
// than the store's, so that consecutive transactions of one client land on
// different server connections: anything that relied on session state
// (prepared statements, SET, session advisory locks) would fail. It runs
// when a pgbouncer binary is on the PATH (apt-get install pgbouncer).
func TestBehindPgBouncer(t *testing.T) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/pgbouncer") // Debian's place, off a user's PATH
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("pgbouncer is required under CI (.ci/run installs it)")
		}
		t.Skip("pgbouncer is not installed")
	}
	dsn := startPgBouncer(t, bin, testDSN(t))
	openVia := func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), dsn, postgres.Options{Schema: newSchema(t), Migrate: true})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	}
	t.Run("Store", func(t *testing.T) { storetest.Run(t, openVia) })
	t.Run("Tokens", func(t *testing.T) { storetest.RunTokens(t, openVia) })
	t.Run("Budget", func(t *testing.T) { storetest.RunBudget(t, openVia) })
	t.Run("ConcurrentMigrate", func(t *testing.T) {
		schema := newSchema(t)
		errs := make(chan error, 3)
		for range 3 {
			go func() {
				s, err := postgres.Open(t.Context(), dsn, postgres.Options{Schema: schema, Migrate: true})
				if err == nil {
					err = s.Close()
				}
				errs <- err
			}()
		}
		for range 3 {
			require.NoError(t, <-errs)
		}
		var n int
		require.NoError(t, rawConn(t).QueryRow(t.Context(),
			fmt.Sprintf(`SELECT count(*) - count(DISTINCT version_id) FROM %s.goose_db_version`, schema)).Scan(&n))
		require.Zero(t, n, "each migration applied once")
	})
}

// startPgBouncer runs pgbouncer in transaction pooling mode in front of
// the server target names, and returns a DSN that goes through it.
func startPgBouncer(t *testing.T, bin, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	host, port, err := net.SplitHostPort(u.Host)
	require.NoError(t, err)
	user := u.User.Username()
	password, _ := u.User.Password()
	db := strings.TrimPrefix(u.Path, "/")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listen := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755)) // pgbouncer may run as another user
	conn := fmt.Sprintf("host=%s port=%s dbname=%s user=%s", host, port, db, user)
	if password != "" {
		conn += " password=" + password
	}
	ini := fmt.Sprintf(`[databases]
%s = %s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits
`, db, conn, listen, filepath.Join(dir, "userlist.txt"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "userlist.txt"), fmt.Appendf(nil, "%q \"\"\n", user), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o644))

	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "postgres"}, args...) // it refuses to run as root
	}
	cmd := exec.Command(bin, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pgbouncer output:\n%s", out.String())
		}
	})

	via := *u
	via.Host = fmt.Sprintf("127.0.0.1:%d", listen)
	dsn := via.String()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := postgres.Open(ctx, dsn, postgres.Options{Schema: "pgbouncer_probe"})
		cancel()
		if err == nil {
			require.NoError(t, s.Close())
			return dsn
		}
		require.Truef(t, time.Now().Before(deadline), "pgbouncer did not start: %v\n%s", err, out.String())
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of a command
// and the test reading it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
