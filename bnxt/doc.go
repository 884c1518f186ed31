// Package bnxt is the client of the Visma Business NXT GraphQL API.
//
// A [Client] sends GraphQL requests through github.com/hasura/go-graphql-client
// over a transport of its own that adds the bearer token of the connection,
// asks for Brotli or gzip and decodes either (Business NXT sends Brotli even
// unasked), and notes the status code, the x-vbc-traceid and Retry-After of
// every response, so that each failure gets a precise [Class]:
//
//	unauthorized         HTTP 401 (an HTML body): the token is invalidated and
//	                     the request sent once more with a fresh one
//	rate_limited         HTTP 429: retried after Retry-After
//	outstanding_limited  extensions.code OUTSTANDING_LIMIT_EXCEEDED: retried
//	                     after a backoff never shorter than BaseBackoff
//	server               HTTP 5xx: retried
//	transport            network failures and time-outs: retried unless the
//	                     caller's context is done
//	decode               a short, truncated or undecodable body: retried
//	token                no access token could be obtained: retried unless
//	                     the refusal is permanent (tokens.ErrPermanent)
//	graphql              an errors array without data: permanent
//	partial              data beside errors: permanent (partial data is a
//	                     failure, never a page)
//	client               any other status: permanent
//
// hasura's own retry stays off (it sleeps without watching the context); the
// client retries itself, with capped exponential backoff and full jitter,
// honouring Retry-After, sleeping through an injectable, context-aware sleep.
// Every HTTP attempt first takes a slot of its company's semaphore
// (ConcurrencyPerCompany) and then the connection's request budget
// ([Limiter]), and is counted in nxtcron_graphql_requests_total by outcome.
// Every error and every log line names the connection and the trace id.
//
// [Client.Pages] walks a paged table connection (first/after, pageInfo) one
// page at a time, and [Client.Companies] lists availableCompanies.
package bnxt
