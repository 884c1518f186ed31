package config

import (
	_ "embed"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/nxtcron/nxtcron/sandbox"
)

// Every default lives in this file: the built-in document defaults.yaml
// (the top-level keys), the sandbox package's DefaultOptions (the sandbox
// knobs), and the per-connection defaults below (for the connections a
// config.yaml lists itself).

//go:embed defaults.yaml
var defaultsYAML []byte

// Per-connection defaults.
const (
	DefaultAuthority             = "https://connect.visma.com"
	DefaultGraphQLServiceURL     = "https://business.visma.net/api/graphql-service"
	DefaultGraphQLUserURL        = "https://business.visma.net/api/graphql"
	DefaultRequestsPerMinute     = 588
	DefaultConcurrencyPerCompany = 8
	DefaultRedirectPath          = "/signin-oidc"
	DefaultKeepalive             = Duration(24 * time.Hour)
	DefaultRefreshTokenLifetime  = Duration(365 * 24 * time.Hour)
)

// DefaultScopes are the scopes of a connection that lists none, by grant.
var DefaultScopes = map[string][]string{
	GrantClientCredentials: {"business-graphql-service-api:access-group-based"},
	GrantRefreshToken:      {"openid", "profile", "email", "business-graphql-api:access-group-based", "offline_access"},
}

// Default returns the configuration of an empty config.yaml: the embedded
// store and the in-process sandbox with its two demo connections. Relative
// paths in it are not yet resolved (Load resolves them against the config
// file's directory). Environment variables named by the defaults
// (NXTCRON_ADMIN_TOKEN, BNXT_CLIENT_SECRET, BNXT_WEB_SECRET) are read now.
func Default() Config {
	c := Config{Sandbox: Sandbox{Options: sandbox.DefaultOptions()}}
	d := NewDecoder("defaults.yaml", ".")
	d.Decode(d.Parse(defaultsYAML), "", &c)
	if err := d.Problems().Err(); err != nil {
		panic("config: the built-in defaults do not decode: " + err.Error())
	}
	for i := range c.Connections {
		applyConnectionDefaults(&c.Connections[i], d.prefixed(fmt.Sprintf("connections[%d]", i)))
	}
	return c
}

// applyConnectionDefaults fills what a listed connection left out; set
// reports whether the file set a key of the connection (an explicit 0 is
// kept, for validation to refuse).
func applyConnectionDefaults(c *Connection, set func(key string) bool) {
	if c.Authority == "" {
		c.Authority = DefaultAuthority
	}
	if c.GraphQLURL == "" {
		switch {
		case c.Authority == AuthoritySandbox:
			c.GraphQLURL = GraphQLSandbox
		case c.Grant == GrantRefreshToken:
			c.GraphQLURL = DefaultGraphQLUserURL
		default:
			c.GraphQLURL = DefaultGraphQLServiceURL
		}
	}
	if c.Scopes == nil {
		c.Scopes = append([]string(nil), DefaultScopes[c.Grant]...)
	}
	if !set("limits.requests_per_minute") {
		c.Limits.RequestsPerMinute = DefaultRequestsPerMinute
	}
	if !set("limits.concurrency_per_company") {
		c.Limits.ConcurrencyPerCompany = DefaultConcurrencyPerCompany
	}
	if c.Grant == GrantRefreshToken {
		if c.RedirectPath == "" {
			c.RedirectPath = DefaultRedirectPath
		}
		if !set("keepalive") {
			c.Keepalive = DefaultKeepalive
		}
		if !set("refresh_token_lifetime") {
			c.RefreshTokenLifetime = DefaultRefreshTokenLifetime
		}
	}
}

// applyDerivedDefaults sets defaults that follow from other keys: a
// public_url left out follows http.listen (and https when TLS is on).
func applyDerivedDefaults(c *Config, d *Decoder) {
	if !d.Has("http.public_url") && (d.Has("http.listen") || d.Has("http.tls_cert_file")) {
		host, port, err := net.SplitHostPort(c.HTTP.Listen)
		if err == nil {
			if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
				host = "127.0.0.1"
			}
			scheme := "http"
			if c.HTTP.TLSCertFile != "" {
				scheme = "https"
			}
			c.HTTP.PublicURL = scheme + "://" + net.JoinHostPort(host, port)
		}
	}
	c.HTTP.PublicURL = strings.TrimSuffix(c.HTTP.PublicURL, "/")
}
