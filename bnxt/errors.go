package bnxt

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nxtcron/nxtcron/tokens"
)

// Class says what kind of failure an Error is, and so whether sending the
// request again can help.
type Class string

// The failure classes.
const (
	ClassUnauthorized       Class = "unauthorized"
	ClassRateLimited        Class = "rate_limited"
	ClassOutstandingLimited Class = "outstanding_limited"
	ClassServer             Class = "server"
	ClassTransport          Class = "transport"
	ClassDecode             Class = "decode"
	ClassToken              Class = "token"
	ClassGraphQL            Class = "graphql"
	ClassPartial            Class = "partial"
	ClassClient             Class = "client"
)

// CodeOutstandingLimitExceeded is the extensions.code Business NXT answers
// when a company or customer has more than 60 requests in progress.
const CodeOutstandingLimitExceeded = "OUTSTANDING_LIMIT_EXCEEDED"

// Error is a failed GraphQL request, after every retry the client made.
type Error struct {
	Class      Class
	Connection string
	// StatusCode is the HTTP status of the last attempt; 0 if none came back.
	StatusCode int
	// TraceID is the x-vbc-traceid of the last response, if any.
	TraceID string
	// Message says what went wrong, in a few words.
	Message string
	// Messages and Codes are the message and extensions.code of each
	// GraphQL error of the response (Codes only where one was given).
	Messages []string
	Codes    []string
	// RetryAfter is the delay the server asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Attempts is how many times the request was sent.
	Attempts int
	// Err is the underlying error (from hasura, the transport, tokens, or
	// the context when the caller gave up).
	Err error

	hash string // of the token the last attempt carried
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graphql request on connection %q failed (%s", e.Connection, e.Class)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ", HTTP %d", e.StatusCode)
	}
	trace := e.TraceID
	if trace == "" {
		trace = "none"
	}
	fmt.Fprintf(&b, ", trace_id %s", trace)
	if e.Attempts > 1 {
		fmt.Fprintf(&b, ", %d attempts", e.Attempts)
	}
	b.WriteString("): ")
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether sending the request again later could succeed.
func (e *Error) Retryable() bool {
	switch e.Class {
	case ClassRateLimited, ClassOutstandingLimited, ClassServer, ClassTransport, ClassDecode:
		return true
	case ClassToken:
		return !errors.Is(e.Err, tokens.ErrPermanent)
	default:
		return false
	}
}

// outcome is the nxtcron_graphql_requests_total label of an attempt that
// ended with this class.
func (c Class) outcome() string {
	switch c {
	case ClassServer:
		return "server_error"
	case ClassGraphQL, ClassPartial:
		return "graphql_error"
	case ClassDecode:
		return "decode_error"
	case ClassClient:
		return "client_error"
	default:
		return string(c)
	}
}

// parseRetryAfter reads a Retry-After value: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
