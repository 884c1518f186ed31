// Package tokens obtains OAuth2 access tokens from Visma Connect for the
// configured connections and shares them between every job and replica;
// it keeps the rotating refresh tokens of web-application connections
// alive, enrolls them, and encrypts every token it stores.
//
// A [Manager] holds one [Source] per connection. A Source hands out one
// access token to every caller until it is due for renewal, renews it ahead
// of its expiry by min(5m, lifetime/4) (a response without expires_in counts
// as 300 s), and lets concurrent callers share one request to the token
// endpoint. With a store ([Options].Store) the access token lives in the
// store, sealed, so every replica uses and renews the same one. After a 401
// the GraphQL client calls [Source.Invalidate] with the hash of the token
// that failed; the stored token is dropped only if it is still that one, so
// a late 401 for an old token never evicts a newer one.
//
// Refresh-token connections (grant refresh_token) rotate a one-time refresh
// token under the connection's durable lease in the store
// ([store.TokenStore]): tx1 takes the lease for the generation it read, the
// exchange runs with no transaction open on a context that neither shutdown
// nor job cancellation cancels (20 s time-out), tx2 stores the new tokens
// and generation+1 only if the generation and lease are still this
// replica's. Other replicas use the current token while it is valid, else
// wait for the lease and adopt the stored result: one refresh per expiry per
// connection across every job and replica. If tx2 fails after the exchange
// succeeded, the new tokens stay in memory (and in use) while the write is
// retried; the old refresh token is never used again. An invalid_grant
// marks the connection needs_reenroll: every run that needs it fails with
// [ErrNeedsReenroll] (and [ErrPermanent]) saying to run
// `nxtcron tokens enroll CONN`, and nothing asks the provider for it until a
// person enrolls again. [Manager.Run] rotates a refresh token that has not
// changed for the connection's keepalive, so that a sliding expiry never
// runs out, and keeps the metrics current.
//
// Enrollment ([NewLink], [Manager.MountEnrollment]): a signed one-time link
// (30 minutes) to public_url/enroll/CONN redirects to the authorize endpoint
// with state, nonce and PKCE S256; the callback swaps the code, verifies the
// ID token with go-oidc (issuer compared without a trailing slash, audience
// = client id, expiry), the nonce, and the optional expected_email, then
// stores the refresh token.
//
// Encryption at rest ([Keyring], [OpenKeys]): AES-256-GCM with the first
// configured key; each ciphertext names its key by a short id so that
// [Rekey] can rotate keys; a key-check row refuses a wrong key at startup.
//
// Errors the provider will answer the same way next time (invalid_client,
// invalid_grant, invalid_scope, unauthorized_client, unsupported_grant_type)
// wrap [ErrPermanent]. Token values, client secrets and keys never appear in
// errors or logs; a token is referred to by the first characters of its
// hash.
package tokens
