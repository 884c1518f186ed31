package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/nxtcron/nxtcron/store"
)

var _ store.TokenStore = (*Store)(nil)

// The SQL of store.TokenStore (migration 00002). Like queries.go: constants,
// bound parameters, @now read once per write transaction.

const qTokenStateColumns = `
connection, access_cipher, access_hash, access_expiry, refresh_cipher, generation,
lease_owner, lease_until, refresh_expires_at, status, status_message, updated_at,
refreshed_at, enrolled_at, enrolled_as`

const qTokenState = `SELECT ` + qTokenStateColumns + ` FROM tokens WHERE connection = @connection`

const qTokenStates = `SELECT ` + qTokenStateColumns + ` FROM tokens ORDER BY connection`

// sqlLeaseFree is true when no live lease of another owner exists.
const sqlLeaseFree = `(lease_owner = '' OR lease_owner = @owner OR lease_until IS NULL OR lease_until <= @now)`

const qLeaseRefresh = `
UPDATE tokens SET lease_owner = @owner, lease_until = ` + sqlLeaseUntil + `, updated_at = @now
WHERE connection = @connection AND generation = @generation
  AND refresh_cipher IS NOT NULL AND status <> 'needs_reenroll'
  AND ` + sqlLeaseFree

const qCompleteRefresh = `
UPDATE tokens SET
    refresh_cipher = @refresh_cipher,
    access_cipher = @access_cipher, access_hash = @access_hash, access_expiry = @access_expiry,
    generation = generation + 1, status = 'ok', status_message = '',
    lease_owner = '', lease_until = NULL,
    refresh_expires_at = COALESCE(@refresh_expires_at, refresh_expires_at),
    refreshed_at = @now, updated_at = @now
WHERE connection = @connection AND generation = @generation AND ` + sqlLeaseFree

const qReleaseRefresh = `
UPDATE tokens SET lease_owner = '', lease_until = NULL, updated_at = @now
WHERE connection = @connection AND generation = @generation AND lease_owner = @owner`

const qMarkNeedsReenroll = `
UPDATE tokens SET
    status = 'needs_reenroll', status_message = @message,
    refresh_cipher = NULL, access_cipher = NULL, access_hash = NULL, access_expiry = NULL,
    lease_owner = '', lease_until = NULL, updated_at = @now
WHERE connection = @connection AND generation = @generation AND ` + sqlLeaseFree

const qEnroll = `
INSERT INTO tokens (connection, access_cipher, access_hash, access_expiry, refresh_cipher, generation,
    lease_owner, lease_until, refresh_expires_at, status, status_message, updated_at,
    refreshed_at, enrolled_at, enrolled_as)
VALUES (@connection, @access_cipher, @access_hash, @access_expiry, @refresh_cipher, 1,
    '', NULL, @refresh_expires_at, 'ok', '', @now, @now, @now, @enrolled_as)
ON CONFLICT (connection) DO UPDATE SET
    access_cipher = excluded.access_cipher, access_hash = excluded.access_hash,
    access_expiry = excluded.access_expiry, refresh_cipher = excluded.refresh_cipher,
    generation = tokens.generation + 1, lease_owner = '', lease_until = NULL,
    refresh_expires_at = excluded.refresh_expires_at, status = 'ok', status_message = '',
    updated_at = excluded.updated_at, refreshed_at = excluded.refreshed_at,
    enrolled_at = excluded.enrolled_at, enrolled_as = excluded.enrolled_as`

const qDeleteTokens = `DELETE FROM tokens WHERE connection = @connection`

const qTokensExist = `SELECT 1 FROM tokens WHERE connection = @connection`

const qRenameTokens = `UPDATE tokens SET connection = @to, updated_at = @now WHERE connection = @from`

const qEnsureKeyCheck = `
INSERT INTO token_key_check (id, cipher, updated_at) VALUES (1, @cipher, @now)
ON CONFLICT (id) DO NOTHING`

const qKeyCheck = `SELECT cipher FROM token_key_check WHERE id = 1`

const qSetKeyCheck = `UPDATE token_key_check SET cipher = @cipher, updated_at = @now WHERE id = 1`

const qRekeyRows = `SELECT connection, refresh_cipher, access_cipher FROM tokens ORDER BY connection`

const qRekeyRow = `
UPDATE tokens SET refresh_cipher = @refresh_cipher, access_cipher = @access_cipher, updated_at = @now
WHERE connection = @connection`

const qPruneUsedOnce = `DELETE FROM token_used_once WHERE expires_at < @now`

const qUseOnce = `
INSERT INTO token_used_once (id, expires_at, used_at) VALUES (@id, @expires, @now)
ON CONFLICT (id) DO NOTHING`

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

func scanTokenState(row rowScanner) (store.TokenState, error) {
	var st store.TokenState
	var accessCipher []byte
	var accessHash, accessExpiry, leaseUntil, refreshExpires, refreshedAt, enrolledAt sql.NullString
	var updated string
	err := row.Scan(&st.Connection, &accessCipher, &accessHash, &accessExpiry, &st.RefreshCipher, &st.Generation,
		&st.LeaseOwner, &leaseUntil, &refreshExpires, &st.Status, &st.StatusMessage, &updated,
		&refreshedAt, &enrolledAt, &st.EnrolledAs)
	if err != nil {
		return store.TokenState{}, err
	}
	if err := decodeToken(&st.TokenRecord, accessCipher, accessHash, accessExpiry, leaseUntil, refreshExpires, updated); err != nil {
		return store.TokenState{}, err
	}
	if st.RefreshedAt, err = parseNullTime(refreshedAt); err != nil {
		return store.TokenState{}, err
	}
	if st.EnrolledAt, err = parseNullTime(enrolledAt); err != nil {
		return store.TokenState{}, err
	}
	return st, nil
}

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func tokenState(ctx context.Context, q queryer, connection string) (store.TokenState, error) {
	st, err := scanTokenState(q.QueryRowContext(ctx, qTokenState, sql.Named("connection", connection)))
	if errors.Is(err, sql.ErrNoRows) {
		return store.TokenState{}, store.ErrNotFound
	}
	return st, err
}

// TokenState returns a connection's record with its rotation metadata.
func (s *Store) TokenState(ctx context.Context, connection string) (store.TokenState, error) {
	st, err := tokenState(ctx, s.read, connection)
	if err != nil {
		return store.TokenState{}, fmt.Errorf("reading the tokens of connection %q: %w", connection, err)
	}
	return st, nil
}

// TokenStates lists every connection's record.
func (s *Store) TokenStates(ctx context.Context) ([]store.TokenState, error) {
	rows, err := s.read.QueryContext(ctx, qTokenStates)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	var out []store.TokenState
	for rows.Next() {
		st, err := scanTokenState(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return out, nil
}

// leaseConflict explains why a conditional update of the refresh state
// changed nothing: the record is gone, superseded, or leased by another.
func leaseConflict(st store.TokenState, generation int64, now string) error {
	switch {
	case st.Generation != generation:
		return fmt.Errorf("generation is %d, not %d: %w", st.Generation, generation, store.ErrStale)
	case st.Status == store.TokenStatusNeedsReenroll:
		return fmt.Errorf("connection needs a new enrollment: %w", store.ErrStale)
	case st.RefreshCipher == nil:
		return fmt.Errorf("no refresh token stored: %w", store.ErrStale)
	case st.LeaseOwner != "" && st.LeaseUntil != nil && formatTime(*st.LeaseUntil) > now:
		return fmt.Errorf("leased by %s until %s: %w", st.LeaseOwner, formatTime(*st.LeaseUntil), store.ErrLeaseHeld)
	}
	return fmt.Errorf("lease not held: %w", store.ErrStale)
}

// LeaseRefresh takes the refresh lease (tx1).
func (s *Store) LeaseRefresh(ctx context.Context, connection, owner string, generation int64, lease time.Duration) (store.TokenState, error) {
	if owner == "" || lease <= 0 {
		return store.TokenState{}, fmt.Errorf("leasing the refresh token of connection %q: an owner and a positive lease are required", connection)
	}
	var st store.TokenState
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		res, err := tx.ExecContext(ctx, qLeaseRefresh,
			sql.Named("connection", connection), sql.Named("owner", owner), sql.Named("generation", generation),
			sql.Named("now", now), sql.Named("lease", modifier(lease)))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if st, err = tokenState(ctx, tx, connection); err != nil {
			return err
		}
		if n == 0 {
			return leaseConflict(st, generation, now)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("leasing the refresh token of connection %q: %w", connection, err)
	}
	return st, nil
}

// accessArgs binds an optional access token.
func accessArgs(a *store.AccessToken) []any {
	if a == nil {
		return []any{sql.Named("access_cipher", nil), sql.Named("access_hash", nil), sql.Named("access_expiry", nil)}
	}
	return []any{sql.Named("access_cipher", a.Cipher), sql.Named("access_hash", a.Hash), sql.Named("access_expiry", formatTime(a.Expiry))}
}

func nullTimeArg(name string, t *time.Time) any {
	if t == nil {
		return sql.Named(name, nil)
	}
	return sql.Named(name, formatTime(*t))
}

func checkAccess(a *store.AccessToken) error {
	if a != nil && (len(a.Cipher) == 0 || a.Hash == "") {
		return errors.New("access token with empty ciphertext or hash")
	}
	return nil
}

// CompleteRefresh stores a rotation (tx2).
func (s *Store) CompleteRefresh(ctx context.Context, connection, owner string, generation int64, r store.Rotation) (store.TokenState, error) {
	if len(r.RefreshCipher) == 0 {
		return store.TokenState{}, fmt.Errorf("storing the rotated tokens of connection %q: empty refresh token ciphertext", connection)
	}
	if err := checkAccess(r.Access); err != nil {
		return store.TokenState{}, fmt.Errorf("storing the rotated tokens of connection %q: %w", connection, err)
	}
	var st store.TokenState
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		args := append([]any{
			sql.Named("connection", connection), sql.Named("owner", owner), sql.Named("generation", generation),
			sql.Named("now", now), sql.Named("refresh_cipher", r.RefreshCipher),
			nullTimeArg("refresh_expires_at", r.RefreshExpiresAt),
		}, accessArgs(r.Access)...)
		res, err := tx.ExecContext(ctx, qCompleteRefresh, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if st, err = tokenState(ctx, tx, connection); err != nil {
			return err
		}
		if n == 0 {
			if st.Generation != generation {
				return fmt.Errorf("generation is %d, not %d: %w", st.Generation, generation, store.ErrStale)
			}
			return fmt.Errorf("leased by %s: %w", st.LeaseOwner, store.ErrStale)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("storing the rotated tokens of connection %q: %w", connection, err)
	}
	return st, nil
}

// ReleaseRefresh clears owner's lease.
func (s *Store) ReleaseRefresh(ctx context.Context, connection, owner string, generation int64) error {
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		_, err := tx.ExecContext(ctx, qReleaseRefresh,
			sql.Named("connection", connection), sql.Named("owner", owner), sql.Named("generation", generation), sql.Named("now", now))
		return err
	})
	if err != nil {
		return fmt.Errorf("releasing the refresh lease of connection %q: %w", connection, err)
	}
	return nil
}

// MarkNeedsReenroll records that the provider refused the refresh token.
func (s *Store) MarkNeedsReenroll(ctx context.Context, connection, owner string, generation int64, message string) (store.TokenState, error) {
	var st store.TokenState
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		res, err := tx.ExecContext(ctx, qMarkNeedsReenroll,
			sql.Named("connection", connection), sql.Named("owner", owner), sql.Named("generation", generation),
			sql.Named("now", now), sql.Named("message", message))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if st, err = tokenState(ctx, tx, connection); err != nil {
			return err
		}
		if n == 0 {
			if st.Generation != generation {
				return fmt.Errorf("generation is %d, not %d: %w", st.Generation, generation, store.ErrStale)
			}
			return fmt.Errorf("leased by %s: %w", st.LeaseOwner, store.ErrStale)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("marking connection %q for a new enrollment: %w", connection, err)
	}
	return st, nil
}

// Enroll stores an enrolled (or imported) refresh token.
func (s *Store) Enroll(ctx context.Context, connection string, e store.Enrollment) (store.TokenState, error) {
	if len(e.RefreshCipher) == 0 {
		return store.TokenState{}, fmt.Errorf("enrolling connection %q: empty refresh token ciphertext", connection)
	}
	if err := checkAccess(e.Access); err != nil {
		return store.TokenState{}, fmt.Errorf("enrolling connection %q: %w", connection, err)
	}
	var st store.TokenState
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		args := append([]any{
			sql.Named("connection", connection), sql.Named("now", now), sql.Named("refresh_cipher", e.RefreshCipher),
			nullTimeArg("refresh_expires_at", e.RefreshExpiresAt), sql.Named("enrolled_as", e.EnrolledAs),
		}, accessArgs(e.Access)...)
		if _, err := tx.ExecContext(ctx, qEnroll, args...); err != nil {
			return err
		}
		var err error
		st, err = tokenState(ctx, tx, connection)
		return err
	})
	if err != nil {
		return store.TokenState{}, fmt.Errorf("enrolling connection %q: %w", connection, err)
	}
	return st, nil
}

// DeleteTokens forgets a connection's tokens.
func (s *Store) DeleteTokens(ctx context.Context, connection string) error {
	err := s.inWrite(ctx, func(tx *sql.Tx, _ string) error {
		res, err := tx.ExecContext(ctx, qDeleteTokens, sql.Named("connection", connection))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting the tokens of connection %q: %w", connection, err)
	}
	return nil
}

// RenameTokens moves a connection's record to another name.
func (s *Store) RenameTokens(ctx context.Context, from, to string) error {
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		var one int
		err := tx.QueryRowContext(ctx, qTokensExist, sql.Named("connection", to)).Scan(&one)
		if err == nil {
			return fmt.Errorf("connection %q has tokens: %w", to, store.ErrExists)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, qRenameTokens, sql.Named("from", from), sql.Named("to", to), sql.Named("now", now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, fmt.Errorf("connection %q has no tokens: %w", from, store.ErrNotFound))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("renaming the tokens of connection %q to %q: %w", from, to, err)
	}
	return nil
}

// EnsureKeyCheck stores the key-check value unless one exists.
func (s *Store) EnsureKeyCheck(ctx context.Context, cipher []byte) ([]byte, error) {
	if len(cipher) == 0 {
		return nil, errors.New("storing the key check: empty ciphertext")
	}
	var stored []byte
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		if _, err := tx.ExecContext(ctx, qEnsureKeyCheck, sql.Named("cipher", cipher), sql.Named("now", now)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, qKeyCheck).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("storing the key check: %w", err)
	}
	return stored, nil
}

// KeyCheck returns the stored key-check value.
func (s *Store) KeyCheck(ctx context.Context) ([]byte, error) {
	var stored []byte
	err := s.read.QueryRowContext(ctx, qKeyCheck).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading the key check: %w", err)
	}
	return stored, nil
}

// Rekey reseals every stored ciphertext in one transaction.
func (s *Store) Rekey(ctx context.Context, reseal func(cipher []byte) ([]byte, error)) (int, error) {
	count := 0
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		type row struct {
			connection      string
			refresh, access []byte
		}
		rows, err := tx.QueryContext(ctx, qRekeyRows)
		if err != nil {
			return err
		}
		var all []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.connection, &r.refresh, &r.access); err != nil {
				rows.Close()
				return err
			}
			all = append(all, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range all {
			for _, c := range []*[]byte{&r.refresh, &r.access} {
				if *c == nil {
					continue
				}
				if *c, err = reseal(*c); err != nil {
					return fmt.Errorf("connection %q: %w", r.connection, err)
				}
				count++
			}
			if _, err := tx.ExecContext(ctx, qRekeyRow, sql.Named("connection", r.connection),
				sql.Named("refresh_cipher", r.refresh), sql.Named("access_cipher", r.access), sql.Named("now", now)); err != nil {
				return err
			}
		}
		var check []byte
		err = tx.QueryRowContext(ctx, qKeyCheck).Scan(&check)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if check, err = reseal(check); err != nil {
			return fmt.Errorf("key check: %w", err)
		}
		count++
		_, err = tx.ExecContext(ctx, qSetKeyCheck, sql.Named("cipher", check), sql.Named("now", now))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("re-encrypting the tokens: %w", err)
	}
	return count, nil
}

// UseOnce records the single use of id.
func (s *Store) UseOnce(ctx context.Context, id string, expires time.Time) error {
	if id == "" {
		return errors.New("recording a single use: empty id")
	}
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		if _, err := tx.ExecContext(ctx, qPruneUsedOnce, sql.Named("now", now)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, qUseOnce, sql.Named("id", id), sql.Named("expires", formatTime(expires)), sql.Named("now", now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrUsed)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording the use of %q: %w", id, err)
	}
	return nil
}
