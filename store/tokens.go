package store

import (
	"context"
	"errors"
	"time"
)

// Errors of TokenStore; match with errors.Is.
var (
	// ErrLeaseHeld: another replica holds a live refresh lease on the
	// connection; wait for it to finish (or for the lease to run out) and
	// adopt the token it stores.
	ErrLeaseHeld = errors.New("refresh lease held by another replica")
	// ErrStale: the connection's generation is no longer the caller's, or
	// the caller no longer holds the lease (another replica rotated the
	// refresh token, or an operator enrolled a new one). Read the record
	// again.
	ErrStale = errors.New("token generation or lease superseded")
	// ErrExists: the row to create exists already.
	ErrExists = errors.New("already exists")
	// ErrUsed: a single-use marker was used already.
	ErrUsed = errors.New("already used")
)

// Token statuses (TokenRecord.Status).
const (
	// TokenStatusOK: the connection holds a refresh token that worked the
	// last time it was used.
	TokenStatusOK = "ok"
	// TokenStatusNeedsReenroll: the provider refused the refresh token
	// (invalid_grant); a person must sign in again (nxtcron tokens enroll).
	TokenStatusNeedsReenroll = "needs_reenroll"
)

// TokenStore is what the store offers for refresh-token rotation,
// enrollment and key management, beside the access-token cache of Store.
// Both store/sqlite and store/postgres implement it; the daemon asserts
// it on its Store. storetest.RunTokens is its conformance suite.
//
// Rotation of a refresh token runs in two short transactions with the
// exchange at the provider between them, never inside one:
//
//  1. LeaseRefresh takes the connection's lease for the generation the
//     caller read, if no live lease exists;
//  2. CompleteRefresh stores the new tokens and generation+1 only if the
//     generation is unchanged and the lease is still the caller's (or ran
//     out without anyone taking it).
//
// Every lease time is computed with the database's clock.
type TokenStore interface {
	// TokenState returns a connection's record with its rotation
	// metadata; ErrNotFound if none.
	TokenState(ctx context.Context, connection string) (TokenState, error)
	// TokenStates lists every connection's record, by connection.
	TokenStates(ctx context.Context) ([]TokenState, error)

	// LeaseRefresh (tx1) sets lease_owner = owner and lease_until = now() +
	// lease if the record's generation is generation, it has a refresh
	// token, its status is not needs_reenroll and no live lease exists
	// (an expired lease is taken over). It returns the record after the
	// update. Errors: ErrNotFound; ErrLeaseHeld (another owner's lease is
	// live); ErrStale (the generation differs, the status is needs_reenroll
	// or there is no refresh token: read again). With ErrLeaseHeld and
	// ErrStale the current record is returned too. An owner may take its
	// own live lease again.
	LeaseRefresh(ctx context.Context, connection, owner string, generation int64, lease time.Duration) (TokenState, error)
	// CompleteRefresh (tx2) stores a rotation: the new refresh token, the
	// access token, generation+1, status ok, refreshed_at = now(), and
	// clears the lease, if the generation is still generation and the
	// lease is owner's, or no live lease of another owner exists. Else
	// ErrStale (nothing changes; the current record is returned too).
	// RefreshExpiresAt nil keeps the stored expiry.
	CompleteRefresh(ctx context.Context, connection, owner string, generation int64, r Rotation) (TokenState, error)
	// ReleaseRefresh clears owner's lease on generation (after an exchange
	// that failed without consuming the token); a lease that is not
	// owner's any more is left alone and nil returned.
	ReleaseRefresh(ctx context.Context, connection, owner string, generation int64) error
	// MarkNeedsReenroll sets status needs_reenroll with message, forgets the
	// refresh and access tokens and clears the lease, if the generation is
	// still generation and the lease is owner's or not live. Else ErrStale
	// (with the current record).
	// The generation stays (a rotation still in flight may complete).
	MarkNeedsReenroll(ctx context.Context, connection, owner string, generation int64, message string) (TokenState, error)
	// Enroll stores a refresh token a person obtained (or an operator
	// imported), creating the record if needed: generation+1, status ok, no
	// message, no lease, enrolled_at = refreshed_at = now(). It returns the
	// record after the update.
	Enroll(ctx context.Context, connection string, e Enrollment) (TokenState, error)
	// DeleteTokens forgets every token of a connection (the record goes);
	// ErrNotFound if none.
	DeleteTokens(ctx context.Context, connection string) error
	// RenameTokens moves the record of connection from to connection to.
	// ErrNotFound if from has none, ErrExists if to has one.
	RenameTokens(ctx context.Context, from, to string) error

	// EnsureKeyCheck stores cipher as the key-check value unless one is
	// stored already, and returns the stored one (so that replicas starting
	// at once agree on it).
	EnsureKeyCheck(ctx context.Context, cipher []byte) ([]byte, error)
	// KeyCheck returns the stored key-check value; ErrNotFound if none.
	KeyCheck(ctx context.Context) ([]byte, error)
	// Rekey replaces, in one transaction, every stored ciphertext (refresh
	// and access tokens of every connection, and the key-check value) by
	// reseal(ciphertext). If reseal fails nothing changes. It returns the
	// number of ciphertexts replaced.
	Rekey(ctx context.Context, reseal func(cipher []byte) ([]byte, error)) (int, error)

	// UseOnce records the single use of id (an enrollment link or
	// session), kept until expires; ErrUsed if id was used before.
	// Markers past their expiry are pruned.
	UseOnce(ctx context.Context, id string, expires time.Time) error
}

// TokenState is a TokenRecord with its rotation metadata.
type TokenState struct {
	TokenRecord
	// RefreshedAt is when the refresh token last changed hands at the
	// provider (rotation) or was enrolled; the keepalive counts from it.
	RefreshedAt *time.Time
	// EnrolledAt is when a person enrolled (or an operator imported) the
	// current chain; EnrolledAs names who ("" when imported).
	EnrolledAt *time.Time
	EnrolledAs string
}

// Rotation is what CompleteRefresh stores.
type Rotation struct {
	RefreshCipher []byte
	// Access is the access token issued with the rotation; nil forgets the
	// cached one.
	Access *AccessToken
	// RefreshExpiresAt replaces the stored absolute expiry when set.
	RefreshExpiresAt *time.Time
}

// Enrollment is what Enroll stores.
type Enrollment struct {
	RefreshCipher    []byte
	Access           *AccessToken
	RefreshExpiresAt *time.Time
	// EnrolledAs names the person who signed in (e-mail, else subject).
	EnrolledAs string
}
