// Package configtest holds test helpers shared by every package that handles
// configuration secrets: the one place that asserts no secret leaks into
// logs, errors, pages or marshalled output.
package configtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// AssertNoSecret fails t when haystack contains any of secrets, as written
// or in a common encoding (JSON string escaping, URL query escaping, base64).
// The failure message shows where, with the secret itself masked. Empty
// secrets are a mistake in the test and fail it too.
func AssertNoSecret(t testing.TB, haystack string, secrets ...string) {
	t.Helper()
	if len(secrets) == 0 {
		t.Fatal("AssertNoSecret: no secrets given")
	}
	for i, s := range secrets {
		if s == "" {
			t.Fatalf("AssertNoSecret: secret %d is empty", i)
		}
		for _, form := range encodings(s) {
			at := strings.Index(haystack, form.text)
			if at < 0 {
				continue
			}
			from, to := max(0, at-40), min(len(haystack), at+len(form.text)+40)
			context := strings.ReplaceAll(haystack[from:to], form.text, "<SECRET>")
			t.Errorf("secret %d leaked (%s) at offset %d: …%s…", i, form.name, at, context)
			break // one report per secret is enough
		}
	}
}

type encoded struct{ name, text string }

func encodings(s string) []encoded {
	out := []encoded{{"as is", s}}
	add := func(name, text string) {
		for _, e := range out {
			if e.text == text {
				return
			}
		}
		out = append(out, encoded{name, text})
	}
	if b, err := json.Marshal(s); err == nil {
		add("JSON-escaped", string(b[1:len(b)-1]))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(s) == nil {
		b := bytes.TrimSpace(buf.Bytes())
		add("JSON-escaped", string(b[1:len(b)-1]))
	}
	add("URL-escaped", url.QueryEscape(s))
	add("path-escaped", url.PathEscape(s))
	add("base64", base64.StdEncoding.EncodeToString([]byte(s)))
	add("base64url", base64.RawURLEncoding.EncodeToString([]byte(s)))
	return out
}
