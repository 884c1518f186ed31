package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nxtcron/nxtcron/store"
)

// Token returns a connection's token record.
func (s *Store) Token(ctx context.Context, connection string) (store.TokenRecord, error) {
	var rec store.TokenRecord
	var accessCipher []byte
	var accessHash, accessExpiry, leaseUntil, refreshExpires sql.NullString
	var updated string
	err := s.read.QueryRowContext(ctx, qToken, sql.Named("connection", connection)).Scan(
		&rec.Connection, &accessCipher, &accessHash, &accessExpiry, &rec.RefreshCipher, &rec.Generation,
		&rec.LeaseOwner, &leaseUntil, &refreshExpires, &rec.Status, &rec.StatusMessage, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err == nil {
		err = decodeToken(&rec, accessCipher, accessHash, accessExpiry, leaseUntil, refreshExpires, updated)
	}
	if err != nil {
		return store.TokenRecord{}, fmt.Errorf("reading the tokens of connection %q: %w", connection, err)
	}
	return rec, nil
}

func decodeToken(rec *store.TokenRecord, accessCipher []byte, accessHash, accessExpiry, leaseUntil, refreshExpires sql.NullString, updated string) error {
	var err error
	if accessCipher != nil && accessExpiry.Valid {
		expiry, err := parseTime(accessExpiry.String)
		if err != nil {
			return err
		}
		rec.Access = &store.AccessToken{Cipher: accessCipher, Hash: accessHash.String, Expiry: expiry}
	}
	if rec.LeaseUntil, err = parseNullTime(leaseUntil); err != nil {
		return err
	}
	if rec.RefreshExpiresAt, err = parseNullTime(refreshExpires); err != nil {
		return err
	}
	rec.UpdatedAt, err = parseTime(updated)
	return err
}

// PutAccessToken caches an (encrypted) access token for a connection.
func (s *Store) PutAccessToken(ctx context.Context, connection string, tok store.AccessToken) error {
	if len(tok.Cipher) == 0 || tok.Hash == "" {
		return fmt.Errorf("caching the access token of connection %q: empty ciphertext or hash", connection)
	}
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		_, err := tx.ExecContext(ctx, qPutAccessToken,
			sql.Named("connection", connection), sql.Named("cipher", tok.Cipher), sql.Named("hash", tok.Hash),
			sql.Named("expiry", formatTime(tok.Expiry)), sql.Named("now", now))
		return err
	})
	if err != nil {
		return fmt.Errorf("caching the access token of connection %q: %w", connection, err)
	}
	return nil
}

// InvalidateAccessToken forgets the cached access token only if its hash is
// still hash.
func (s *Store) InvalidateAccessToken(ctx context.Context, connection, hash string) error {
	err := s.inWrite(ctx, func(tx *sql.Tx, now string) error {
		_, err := tx.ExecContext(ctx, qInvalidateAccessToken,
			sql.Named("connection", connection), sql.Named("hash", hash), sql.Named("now", now))
		return err
	})
	if err != nil {
		return fmt.Errorf("invalidating the access token of connection %q: %w", connection, err)
	}
	return nil
}
