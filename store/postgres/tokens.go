package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nxtcron/nxtcron/store"
)

var _ store.TokenStore = (*Store)(nil)

// The SQL of the access-token cache (store.Store) and of store.TokenStore
// (migration 00002). Like queries.go: constants, bound parameters, now()
// the transaction's clock.

const qTokenStateColumns = `
connection, access_cipher, access_hash, access_expiry, refresh_cipher, generation,
lease_owner, lease_until, refresh_expires_at, status, status_message, updated_at,
refreshed_at, enrolled_at, enrolled_as`

// sqlTokenState reads a record and the transaction's now() (to tell a live
// lease from an expired one).
const sqlTokenState = `SELECT ` + qTokenStateColumns + `, now() FROM {schema}.tokens WHERE connection = $1::text`

const sqlTokenStates = `SELECT ` + qTokenStateColumns + `, now() FROM {schema}.tokens ORDER BY connection`

const sqlPutAccessToken = `
INSERT INTO {schema}.tokens (connection, access_cipher, access_hash, access_expiry, updated_at)
VALUES ($1::text, $2::bytea, $3::text, $4::timestamptz, now())
ON CONFLICT (connection) DO UPDATE SET
    access_cipher = excluded.access_cipher, access_hash = excluded.access_hash,
    access_expiry = excluded.access_expiry, updated_at = excluded.updated_at`

const sqlInvalidateAccessToken = `
UPDATE {schema}.tokens SET access_cipher = NULL, access_hash = NULL, access_expiry = NULL, updated_at = now()
WHERE connection = $1::text AND access_hash = $2::text`

// sqlLeaseFree is true when no live lease of another owner than $2 exists.
const sqlLeaseFree = `(lease_owner = '' OR lease_owner = $2::text OR lease_until IS NULL OR lease_until <= now())`

// sqlLeaseRefresh: $1 connection, $2 owner, $3 generation, $4 lease (ms).
// Concurrent callers queue on the row; each re-checks the condition on
// the row as the one before it left it, so one wins.
const sqlLeaseRefresh = `
UPDATE {schema}.tokens SET lease_owner = $2::text, lease_until = now() + $4::bigint` + sqlMillis + `, updated_at = now()
WHERE connection = $1::text AND generation = $3::bigint
  AND refresh_cipher IS NOT NULL AND status <> 'needs_reenroll'
  AND ` + sqlLeaseFree

// sqlCompleteRefresh: $1 connection, $2 owner, $3 generation, $4 refresh
// cipher, $5 refresh expiry (NULL keeps), $6-$8 the access token.
const sqlCompleteRefresh = `
UPDATE {schema}.tokens SET
    refresh_cipher = $4::bytea,
    access_cipher = $6::bytea, access_hash = $7::text, access_expiry = $8::timestamptz,
    generation = generation + 1, status = 'ok', status_message = '',
    lease_owner = '', lease_until = NULL,
    refresh_expires_at = COALESCE($5::timestamptz, refresh_expires_at),
    refreshed_at = now(), updated_at = now()
WHERE connection = $1::text AND generation = $3::bigint AND ` + sqlLeaseFree

const sqlReleaseRefresh = `
UPDATE {schema}.tokens SET lease_owner = '', lease_until = NULL, updated_at = now()
WHERE connection = $1::text AND lease_owner = $2::text AND generation = $3::bigint`

// sqlMarkNeedsReenroll: $1 connection, $2 owner, $3 generation, $4 message.
const sqlMarkNeedsReenroll = `
UPDATE {schema}.tokens SET
    status = 'needs_reenroll', status_message = $4::text,
    refresh_cipher = NULL, access_cipher = NULL, access_hash = NULL, access_expiry = NULL,
    lease_owner = '', lease_until = NULL, updated_at = now()
WHERE connection = $1::text AND generation = $3::bigint AND ` + sqlLeaseFree

// sqlEnroll: $1 connection, $2 refresh cipher, $3 refresh expiry, $4
// enrolled as, $5-$7 the access token.
const sqlEnroll = `
INSERT INTO {schema}.tokens AS t (connection, access_cipher, access_hash, access_expiry, refresh_cipher, generation,
    lease_owner, lease_until, refresh_expires_at, status, status_message, updated_at,
    refreshed_at, enrolled_at, enrolled_as)
VALUES ($1::text, $5::bytea, $6::text, $7::timestamptz, $2::bytea, 1,
    '', NULL, $3::timestamptz, 'ok', '', now(), now(), now(), $4::text)
ON CONFLICT (connection) DO UPDATE SET
    access_cipher = excluded.access_cipher, access_hash = excluded.access_hash,
    access_expiry = excluded.access_expiry, refresh_cipher = excluded.refresh_cipher,
    generation = t.generation + 1, lease_owner = '', lease_until = NULL,
    refresh_expires_at = excluded.refresh_expires_at, status = 'ok', status_message = '',
    updated_at = excluded.updated_at, refreshed_at = excluded.refreshed_at,
    enrolled_at = excluded.enrolled_at, enrolled_as = excluded.enrolled_as`

const sqlDeleteTokens = `DELETE FROM {schema}.tokens WHERE connection = $1::text`

// sqlRenameTokens fails with a unique violation when $2 has a record.
const sqlRenameTokens = `UPDATE {schema}.tokens SET connection = $2::text, updated_at = now() WHERE connection = $1::text`

const sqlEnsureKeyCheck = `
INSERT INTO {schema}.token_key_check (id, cipher, updated_at) VALUES (1, $1::bytea, now())
ON CONFLICT (id) DO NOTHING`

const sqlKeyCheck = `SELECT cipher FROM {schema}.token_key_check WHERE id = 1`

const sqlKeyCheckForUpdate = sqlKeyCheck + ` FOR UPDATE`

const sqlSetKeyCheck = `UPDATE {schema}.token_key_check SET cipher = $1::bytea, updated_at = now() WHERE id = 1`

const sqlRekeyRows = `SELECT connection, refresh_cipher, access_cipher FROM {schema}.tokens ORDER BY connection FOR UPDATE`

const sqlRekeyRow = `
UPDATE {schema}.tokens SET refresh_cipher = $2::bytea, access_cipher = $3::bytea, updated_at = now()
WHERE connection = $1::text`

const sqlPruneUsedOnce = `DELETE FROM {schema}.token_used_once WHERE expires_at < now()`

const sqlUseOnce = `
INSERT INTO {schema}.token_used_once (id, expires_at, used_at) VALUES ($1::text, $2::timestamptz, now())
ON CONFLICT (id) DO NOTHING`

// tokenQueries holds the token statements with the schema filled in.
type tokenQueries struct {
	state, states, putAccess, invalidateAccess               string
	lease, complete, release, markNeedsReenroll, enroll      string
	deleteTokens, rename                                     string
	ensureKeyCheck, keyCheck, keyCheckForUpdate, setKeyCheck string
	rekeyRows, rekeyRow, pruneUsedOnce, useOnce              string
}

func newTokenQueries(sub func(string) string) tokenQueries {
	return tokenQueries{
		state: sub(sqlTokenState), states: sub(sqlTokenStates),
		putAccess: sub(sqlPutAccessToken), invalidateAccess: sub(sqlInvalidateAccessToken),
		lease: sub(sqlLeaseRefresh), complete: sub(sqlCompleteRefresh), release: sub(sqlReleaseRefresh),
		markNeedsReenroll: sub(sqlMarkNeedsReenroll), enroll: sub(sqlEnroll),
		deleteTokens: sub(sqlDeleteTokens), rename: sub(sqlRenameTokens),
		ensureKeyCheck: sub(sqlEnsureKeyCheck), keyCheck: sub(sqlKeyCheck),
		keyCheckForUpdate: sub(sqlKeyCheckForUpdate), setKeyCheck: sub(sqlSetKeyCheck),
		rekeyRows: sub(sqlRekeyRows), rekeyRow: sub(sqlRekeyRow),
		pruneUsedOnce: sub(sqlPruneUsedOnce), useOnce: sub(sqlUseOnce),
	}
}

// scanTokenState scans a record and the now() read with it.
func scanTokenState(r pgx.Row) (store.TokenState, time.Time, error) {
	var st store.TokenState
	var accessCipher []byte
	var accessHash *string
	var accessExpiry *time.Time
	var now time.Time
	err := r.Scan(&st.Connection, &accessCipher, &accessHash, &accessExpiry, &st.RefreshCipher, &st.Generation,
		&st.LeaseOwner, &st.LeaseUntil, &st.RefreshExpiresAt, &st.Status, &st.StatusMessage, &st.UpdatedAt,
		&st.RefreshedAt, &st.EnrolledAt, &st.EnrolledAs, &now)
	if err != nil {
		return store.TokenState{}, time.Time{}, err
	}
	if accessCipher != nil && accessExpiry != nil {
		st.Access = &store.AccessToken{Cipher: accessCipher, Expiry: accessExpiry.UTC()}
		if accessHash != nil {
			st.Access.Hash = *accessHash
		}
	}
	st.LeaseUntil, st.RefreshExpiresAt = utcPtr(st.LeaseUntil), utcPtr(st.RefreshExpiresAt)
	st.RefreshedAt, st.EnrolledAt = utcPtr(st.RefreshedAt), utcPtr(st.EnrolledAt)
	st.UpdatedAt = st.UpdatedAt.UTC()
	return st, now.UTC(), nil
}

func (s *Store) tokenState(ctx context.Context, q querier, connection string) (store.TokenState, time.Time, error) {
	st, now, err := scanTokenState(q.QueryRow(ctx, s.tq.state, connection))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.TokenState{}, time.Time{}, store.ErrNotFound
	}
	return st, now, err
}

// Token returns a connection's token record.
func (s *Store) Token(ctx context.Context, connection string) (store.TokenRecord, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	st, _, err := s.tokenState(ctx, s.pool, connection)
	if err != nil {
		return store.TokenRecord{}, fmt.Errorf("reading the tokens of connection %q: %w", connection, err)
	}
	return st.TokenRecord, nil
}

// PutAccessToken caches an (encrypted) access token for a connection.
func (s *Store) PutAccessToken(ctx context.Context, connection string, tok store.AccessToken) error {
	if len(tok.Cipher) == 0 || tok.Hash == "" {
		return fmt.Errorf("caching the access token of connection %q: empty ciphertext or hash", connection)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, s.tq.putAccess, connection, tok.Cipher, tok.Hash, ts(tok.Expiry)); err != nil {
		return fmt.Errorf("caching the access token of connection %q: %w", connection, err)
	}
	return nil
}

// InvalidateAccessToken forgets the cached access token only if its hash is
// still hash.
func (s *Store) InvalidateAccessToken(ctx context.Context, connection, hash string) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, s.tq.invalidateAccess, connection, hash); err != nil {
		return fmt.Errorf("invalidating the access token of connection %q: %w", connection, err)
	}
	return nil
}

// TokenState returns a connection's record with its rotation metadata.
func (s *Store) TokenState(ctx context.Context, connection string) (store.TokenState, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	st, _, err := s.tokenState(ctx, s.pool, connection)
	if err != nil {
		return store.TokenState{}, fmt.Errorf("reading the tokens of connection %q: %w", connection, err)
	}
	return st, nil
}

// TokenStates lists every connection's record, by connection.
func (s *Store) TokenStates(ctx context.Context) ([]store.TokenState, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, s.tq.states)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.TokenState, error) {
		st, _, err := scanTokenState(r)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return out, nil
}

// leaseConflict explains why a conditional update of the refresh state
// changed nothing: the record is superseded, or leased by another.
func leaseConflict(st store.TokenState, generation int64, now time.Time) error {
	switch {
	case st.Generation != generation:
		return fmt.Errorf("generation is %d, not %d: %w", st.Generation, generation, store.ErrStale)
	case st.Status == store.TokenStatusNeedsReenroll:
		return fmt.Errorf("connection needs a new enrollment: %w", store.ErrStale)
	case st.RefreshCipher == nil:
		return fmt.Errorf("no refresh token stored: %w", store.ErrStale)
	case st.LeaseOwner != "" && st.LeaseUntil != nil && st.LeaseUntil.After(now):
		return fmt.Errorf("leased by %s until %s: %w", st.LeaseOwner, fmtTime(*st.LeaseUntil), store.ErrLeaseHeld)
	}
	return fmt.Errorf("lease not held: %w", store.ErrStale)
}

// staleConflict explains why CompleteRefresh or MarkNeedsReenroll changed
// nothing.
func staleConflict(st store.TokenState, generation int64) error {
	if st.Generation != generation {
		return fmt.Errorf("generation is %d, not %d: %w", st.Generation, generation, store.ErrStale)
	}
	return fmt.Errorf("leased by %s: %w", st.LeaseOwner, store.ErrStale)
}

// conditional runs a conditional update of connection's record and reads
// the record after it in the same transaction; conflict explains an update
// that changed nothing.
func (s *Store) conditional(ctx context.Context, connection, sql string, args []any,
	conflict func(st store.TokenState, now time.Time) error) (store.TokenState, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var st store.TokenState
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return err
		}
		var now time.Time
		if st, now, err = s.tokenState(ctx, tx, connection); err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return conflict(st, now)
		}
		return nil
	})
	return st, err
}

// LeaseRefresh takes the refresh lease (tx1).
func (s *Store) LeaseRefresh(ctx context.Context, connection, owner string, generation int64, lease time.Duration) (store.TokenState, error) {
	if owner == "" || lease <= 0 {
		return store.TokenState{}, fmt.Errorf("leasing the refresh token of connection %q: an owner and a positive lease are required", connection)
	}
	st, err := s.conditional(ctx, connection, s.tq.lease, []any{connection, owner, generation, ms(lease)},
		func(st store.TokenState, now time.Time) error { return leaseConflict(st, generation, now) })
	if err != nil {
		return st, fmt.Errorf("leasing the refresh token of connection %q: %w", connection, err)
	}
	return st, nil
}

// accessArgs binds an optional access token: cipher, hash, expiry.
func accessArgs(a *store.AccessToken) []any {
	if a == nil {
		return []any{nil, nil, nil}
	}
	return []any{a.Cipher, a.Hash, ts(a.Expiry)}
}

func timeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
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
	args := append([]any{connection, owner, generation, r.RefreshCipher, timeArg(r.RefreshExpiresAt)}, accessArgs(r.Access)...)
	st, err := s.conditional(ctx, connection, s.tq.complete, args,
		func(st store.TokenState, _ time.Time) error { return staleConflict(st, generation) })
	if err != nil {
		return st, fmt.Errorf("storing the rotated tokens of connection %q: %w", connection, err)
	}
	return st, nil
}

// ReleaseRefresh clears owner's lease.
func (s *Store) ReleaseRefresh(ctx context.Context, connection, owner string, generation int64) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, s.tq.release, connection, owner, generation); err != nil {
		return fmt.Errorf("releasing the refresh lease of connection %q: %w", connection, err)
	}
	return nil
}

// MarkNeedsReenroll records that the provider refused the refresh token.
func (s *Store) MarkNeedsReenroll(ctx context.Context, connection, owner string, generation int64, message string) (store.TokenState, error) {
	st, err := s.conditional(ctx, connection, s.tq.markNeedsReenroll, []any{connection, owner, generation, message},
		func(st store.TokenState, _ time.Time) error { return staleConflict(st, generation) })
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
	ctx, cancel := bound(ctx)
	defer cancel()
	var st store.TokenState
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		args := append([]any{connection, e.RefreshCipher, timeArg(e.RefreshExpiresAt), e.EnrolledAs}, accessArgs(e.Access)...)
		if _, err := tx.Exec(ctx, s.tq.enroll, args...); err != nil {
			return err
		}
		var err error
		st, _, err = s.tokenState(ctx, tx, connection)
		return err
	})
	if err != nil {
		return store.TokenState{}, fmt.Errorf("enrolling connection %q: %w", connection, err)
	}
	return st, nil
}

// DeleteTokens forgets a connection's tokens.
func (s *Store) DeleteTokens(ctx context.Context, connection string) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.tq.deleteTokens, connection)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("deleting the tokens of connection %q: %w", connection, err)
	}
	return nil
}

// RenameTokens moves a connection's record to another name.
func (s *Store) RenameTokens(ctx context.Context, from, to string) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.tq.rename, from, to)
	switch {
	case isUniqueViolation(err):
		err = fmt.Errorf("connection %q has tokens: %w", to, store.ErrExists)
	case err == nil && tag.RowsAffected() == 0:
		err = fmt.Errorf("connection %q has no tokens: %w", from, store.ErrNotFound)
	}
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
	ctx, cancel := bound(ctx)
	defer cancel()
	var stored []byte
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.tq.ensureKeyCheck, cipher); err != nil {
			return err
		}
		return tx.QueryRow(ctx, s.tq.keyCheck).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("storing the key check: %w", err)
	}
	return stored, nil
}

// KeyCheck returns the stored key-check value.
func (s *Store) KeyCheck(ctx context.Context) ([]byte, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var stored []byte
	err := s.pool.QueryRow(ctx, s.tq.keyCheck).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading the key check: %w", err)
	}
	return stored, nil
}

// Rekey reseals every stored ciphertext in one transaction, with the token
// rows and the key check locked.
func (s *Store) Rekey(ctx context.Context, reseal func(cipher []byte) ([]byte, error)) (int, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	count := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		count = 0
		type row struct {
			connection      string
			refresh, access []byte
		}
		rows, err := tx.Query(ctx, s.tq.rekeyRows)
		if err != nil {
			return err
		}
		all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.connection, &x.refresh, &x.access)
			return x, err
		})
		if err != nil {
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
			if _, err := tx.Exec(ctx, s.tq.rekeyRow, r.connection, r.refresh, r.access); err != nil {
				return err
			}
		}
		var check []byte
		err = tx.QueryRow(ctx, s.tq.keyCheckForUpdate).Scan(&check)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if check, err = reseal(check); err != nil {
			return fmt.Errorf("key check: %w", err)
		}
		count++
		_, err = tx.Exec(ctx, s.tq.setKeyCheck, check)
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
	ctx, cancel := bound(ctx)
	defer cancel()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.tq.pruneUsedOnce); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, s.tq.useOnce, id, ts(expires))
		if err == nil && tag.RowsAffected() == 0 {
			err = store.ErrUsed
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recording the use of %q: %w", id, err)
	}
	return nil
}
