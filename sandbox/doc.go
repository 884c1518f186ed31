// Package sandbox is a faithful local emulator of Visma Connect and the
// Business NXT GraphQL API, for demos, tests and benchmarks of nxtcron.
//
// One base URL serves the Visma Connect endpoints (package connect: discovery,
// JWKS at /.well-known/openid-configuration/jwks, /connect/authorize, token,
// userinfo, revoke, endsession), POST /api/graphql for user tokens and POST
// /api/graphql-service for service tokens (package graph executes the
// queries), and, with Options.Admin, an admin API under /sandbox/ for
// loopback peers: stats, refresh token chains, touching rows, injected faults
// and settings.
//
// The GraphQL endpoints behave like Business NXT where a client can tell:
// a missing, badly signed, expired, wrong-audience or wrong-scope token gets
// HTTP 401 with an HTML page and WWW-Authenticate: Bearer
// error="invalid_token"; more than Options.RateLimit requests per token in
// any 60 seconds get 429 with Retry-After; responses are Brotli or gzip
// compressed per Options.Compression (always-br sends Brotli unasked); every
// response carries an x-vbc-traceid header.
//
// A zero Server is ready with DefaultOptions:
//
//	srv := httptest.NewServer(&sandbox.Server{})
//
// and New, Listen/Start/Run, URL and Close run it on a real listener.
package sandbox
