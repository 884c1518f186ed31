package bnxt

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/andybalholm/brotli"

	"github.com/nxtcron/nxtcron/tokens"
)

// attempt is what the transport learns about one HTTP attempt; it travels
// to the transport in the request's context, because hasura reports
// failures as text and drops the response.
type attempt struct {
	tokenHash  string
	tokenErr   error // no token could be obtained; nothing was sent
	sendErr    error // the transport failed before a response came back
	responded  bool
	status     int
	traceID    string
	retryAfter string
}

type attemptKey struct{}

func withAttempt(ctx context.Context, a *attempt) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

// transport authenticates requests and decodes compressed responses.
type transport struct {
	base   http.RoundTripper
	tokens tokens.Source
}

var errNoAttempt = errors.New("request without attempt state (not sent by bnxt.Client)")

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	a, ok := req.Context().Value(attemptKey{}).(*attempt)
	if !ok {
		return nil, errNoAttempt
	}
	tok, err := t.tokens.Token(req.Context())
	if err != nil {
		a.tokenErr = err
		return nil, fmt.Errorf("getting an access token: %w", err)
	}
	a.tokenHash = tok.Hash
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+tok.Value.Reveal())
	out.Header.Set("Accept-Encoding", "br, gzip")
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		a.sendErr = err
		return nil, err
	}
	a.responded = true
	a.status = resp.StatusCode
	a.traceID = resp.Header.Get("x-vbc-traceid")
	a.retryAfter = resp.Header.Get("Retry-After")
	decodeBody(resp)
	return resp, nil
}

// decodeBody replaces a compressed body with its decoded form, whether or
// not the request asked for that encoding. An unknown encoding makes the body
// fail on its first read, so the attempt ends as a decode failure.
func decodeBody(resp *http.Response) {
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	if enc == "" || enc == "identity" || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	resp.Body = &decodingBody{raw: resp.Body, encoding: enc}
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	resp.Uncompressed = true
}

// decodingBody decodes its raw body lazily, so that a bad header shows as a
// read error where hasura decodes the JSON.
type decodingBody struct {
	raw      io.ReadCloser
	encoding string
	r        io.Reader
	err      error
}

func (b *decodingBody) Read(p []byte) (int, error) {
	if b.r == nil && b.err == nil {
		switch b.encoding {
		case "br":
			b.r = brotli.NewReader(b.raw)
		case "gzip", "x-gzip":
			zr, err := gzip.NewReader(b.raw)
			if err != nil {
				b.err = fmt.Errorf("decoding gzip body: %w", err)
			} else {
				b.r = zr
			}
		default:
			b.err = fmt.Errorf("unsupported Content-Encoding %q", b.encoding)
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("decoding %s body: %w", b.encoding, err)
	}
	return n, err
}

func (b *decodingBody) Close() error { return b.raw.Close() }
