// Package tokens obtains OAuth2 access tokens from Visma Connect for the
// configured connections and shares them between every job.
//
// A [Manager] holds one [Source] per client-credentials connection. A Source
// keeps one cached access token, hands it to every caller until it is due for
// renewal, renews it ahead of its expiry by min(5m, lifetime/4) (a response
// without expires_in counts as 300 s), and lets concurrent callers share one
// request to the token endpoint. After a 401 the GraphQL client calls
// [Source.Invalidate] with the hash of the token that failed; the cached token
// is dropped only if it is still that one, so a late 401 for an old token
// never evicts a newer one.
//
// Errors the provider will answer the same way next time (invalid_client,
// invalid_grant, invalid_scope, unauthorized_client, unsupported_grant_type)
// wrap [ErrPermanent]. Token values and client secrets never appear in errors
// or logs; a token is referred to by the first characters of its hash.
package tokens
