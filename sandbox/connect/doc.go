// Package connect emulates Visma Connect, the OpenID Connect provider in front
// of the Visma Business NXT APIs, closely enough for nxtcron's token code to be
// tested against it.
//
// A [Provider] is an [http.Handler] serving the discovery document
// (/.well-known/openid-configuration), its key set
// (/.well-known/openid-configuration/jwks), and /connect/authorize,
// /connect/token, /connect/userinfo, /connect/revoke and /connect/endsession.
// It knows a fixed set of demo identities: the service client
// isv_sandbox_service (client credentials), the web client sandbox_web
// (authorization code with PKCE S256 and refresh tokens) and the users
// job.user@example.com and other.user@example.com, both with the password
// "sandbox".
//
// Access tokens are RS256 JWTs with the header typ at+JWT, signed by an RSA key
// made when the provider is created; their audience is the Business NXT
// GraphQL endpoint they are meant for: the base URL the token was requested
// at plus /api/graphql for user tokens and /api/graphql-service for service
// tokens. [Provider.VerifyAccessToken] checks them for the GraphQL endpoints.
//
// Refresh tokens are opaque strings grouped into chains, one per login. With
// one-time usage every refresh consumes the presented token and returns a new
// one. A consumed token presented again within the grace period is accepted
// and answered with the same successor it was rotated to the first time (no
// new token is minted), so two callers racing with the same token end up with
// the same refresh token. After the grace period a consumed token is reuse:
// the request fails with invalid_grant and, with reuse detection on, every
// token of the chain is revoked. Chains expire after the sliding lifetime
// without use and, at the latest, the absolute lifetime after the login.
//
// Errors of the token and revocation endpoints follow RFC 6749 §5.2 (JSON
// with error and error_description, HTTP 400, and 401 for invalid_client);
// errors of the authorize endpoint follow §4.1.2.1: a redirect carrying error
// and state when the client and redirect URI are valid, an HTML error page
// otherwise.
package connect
