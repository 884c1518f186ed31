package configtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
	fatal  bool
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatal(args ...any) {
	r.fatal = true
	r.errors = append(r.errors, fmt.Sprint(args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = true
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestAssertNoSecret(t *testing.T) {
	const secret = "p@ss word/+"
	tests := []struct {
		name     string
		haystack string
		want     string // "" when AssertNoSecret must pass
	}{
		{"clean", "dsn=<secret> user=x", ""},
		{"as is", "connecting with p@ss word/+ now", "(as is)"},
		{"json", `{"pw":"p@ss word/+"}`, "(as is)"},
		{"url query", "https://h/?pw=p%40ss+word%2F%2B", "(URL-escaped)"},
		{"url path", "https://h/p@ss%20word%2F+", "(path-escaped)"},
		{"base64", "Authorization: Basic cEBzcyB3b3JkLys=", "(base64)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			AssertNoSecret(r, tt.haystack, secret)
			if tt.want == "" {
				require.Empty(t, r.errors)
				return
			}
			require.Len(t, r.errors, 1)
			require.Contains(t, r.errors[0], tt.want)
			require.NotContains(t, r.errors[0], secret, "the failure message must not print the secret")
		})
	}
}

func TestAssertNoSecretJSONEscaping(t *testing.T) {
	r := &recorder{TB: t}
	AssertNoSecret(r, `{"pw":"a\"b<c"}`, `a"b<c`)
	require.Len(t, r.errors, 1)
	require.True(t, strings.Contains(r.errors[0], "JSON-escaped"), r.errors[0])
}

func TestAssertNoSecretRefusesEmpty(t *testing.T) {
	r := &recorder{TB: t}
	AssertNoSecret(r, "anything", "")
	require.True(t, r.fatal)
}
