package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// MaxServiceClientIDLen is the longest client id of a client_credentials
// connection: Business NXT stores it in its User table.
const MaxServiceClientIDLen = 24

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

// validate records every problem of c; d knows the lines and which keys the
// file set.
func validate(c *Config, d *Decoder) {
	v := validator{d}
	v.store(&c.Store)
	v.http(&c.HTTP)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "auto", "console", "json")
	v.scheduler(&c.Scheduler)
	v.sandbox(&c.Sandbox)
	v.connections(c)
	for i, g := range c.Jobs {
		if _, err := filepath.Match(g, ""); err != nil {
			v.addf(fmt.Sprintf("jobs[%d]", i), "invalid glob: %v", err)
		}
	}
	if _, err := time.LoadLocation(c.Defaults.Timezone); err != nil || c.Defaults.Timezone == "" {
		v.addf("defaults.timezone", "unknown time zone %q", c.Defaults.Timezone)
	}
	v.positive("defaults.catchup", c.Defaults.Catchup)
	v.positive("defaults.timeout", c.Defaults.Timeout)
}

type validator struct{ d *Decoder }

// addf records a problem unless decoding already reported one at path.
func (v validator) addf(path, format string, args ...any) {
	if v.d.Failed(path) {
		return
	}
	v.d.Addf(path, format, args...)
}

func (v validator) oneOf(path, got string, allowed ...string) bool {
	for _, a := range allowed {
		if got == a {
			return true
		}
	}
	v.addf(path, "must be %s, not %q%s", orList(allowed), got, DidYouMean(got, allowed))
	return false
}

func (v validator) positive(path string, d Duration) {
	if d <= 0 {
		v.addf(path, "must be a positive duration, not %s", d)
	}
}

// orList writes "a, b or c".
func orList(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

func (v validator) store(s *Store) {
	dsn := s.DSN.Reveal()
	key := "store.dsn"
	from := ""
	if os.Getenv(EnvStoreDSN) != "" {
		from = " (from " + EnvStoreDSN + ")"
	}
	switch {
	case strings.HasPrefix(dsn, SQLitePrefix):
		if strings.TrimPrefix(dsn, SQLitePrefix) == "" {
			v.addf(key, "sqlite: needs a path, as in sqlite:var/nxtcron.db%s", from)
		}
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			// url.Parse errors quote the URL, and with it the password.
			v.addf(key, "not a valid postgres:// URL%s", from)
		}
	default:
		v.addf(key, "must be sqlite:PATH or postgres://...%s", from)
	}
	if !schemaRE.MatchString(s.Schema) {
		v.addf("store.schema", "must be a lower-case SQL identifier (letters, digits, _), not %q", s.Schema)
	}
	v.oneOf("store.migrate", s.Migrate, "auto", "off")
	if v.d.Has("store.encryption_keys") && v.d.Has("store.encryption_keys_file") {
		v.addf("store.encryption_keys_file", "set only one of encryption_keys and encryption_keys_file")
	}
	for i, k := range s.EncryptionKeys {
		b, err := base64.StdEncoding.DecodeString(k.Reveal())
		if err != nil || len(b) != 32 {
			v.addf(fmt.Sprintf("store.encryption_keys[%d]", i), "must be 32 bytes in base64 (make one with: openssl rand -base64 32)")
		}
	}
}

func (v validator) http(h *HTTP) {
	host, _, err := net.SplitHostPort(h.Listen)
	if err != nil {
		v.addf("http.listen", "must be host:port, as in 127.0.0.1:8080, not %q", h.Listen)
	} else if !IsLoopback(host) && h.AdminToken.IsZero() && !v.d.Failed("http.admin_token") && !v.d.Failed("http.admin_token_file") {
		line := v.d.Line("http.admin_token")
		if !v.d.Has("http.admin_token") {
			line = v.d.Line("http.listen")
		}
		v.d.AddAt(line, "http.admin_token", fmt.Sprintf("required when http.listen (%s) is not a loopback address (or set NXTCRON_ADMIN_TOKEN)", h.Listen))
	}
	if u, err := url.Parse(h.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.addf("http.public_url", "must be an http:// or https:// URL, not %q", h.PublicURL)
	}
	switch {
	case (h.TLSCertFile == "") != (h.TLSKeyFile == ""):
		set, missing := "http.tls_cert_file", "tls_key_file"
		if h.TLSCertFile == "" {
			set, missing = "http.tls_key_file", "tls_cert_file"
		}
		v.addf(set, "needs %s too (set both or neither)", missing)
	case h.TLSCertFile != "":
		for _, f := range [][2]string{{"http.tls_cert_file", h.TLSCertFile}, {"http.tls_key_file", h.TLSKeyFile}} {
			if _, err := os.Stat(f[1]); err != nil {
				v.addf(f[0], "%v", err)
			}
		}
	}
}

func (v validator) scheduler(s *Scheduler) {
	v.positive("scheduler.heartbeat_interval", s.HeartbeatInterval)
	v.positive("scheduler.lease_timeout", s.LeaseTimeout)
	v.positive("scheduler.shutdown_grace", s.ShutdownGrace)
	v.positive("scheduler.retention", s.Retention)
	// Compare only values that decoded: a bad heartbeat_interval keeps its
	// default, and comparing against that would invent a second problem.
	if s.HeartbeatInterval > 0 && s.LeaseTimeout <= s.HeartbeatInterval &&
		!v.d.Failed("scheduler.heartbeat_interval") && !v.d.Failed("scheduler.lease_timeout") {
		v.addf("scheduler.lease_timeout", "must be longer than heartbeat_interval (%s), not %s", s.HeartbeatInterval, s.LeaseTimeout)
	}
}

func (v validator) sandbox(s *Sandbox) {
	err := s.Options.Validate()
	if err == nil {
		return
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		// Options.Validate names the knob first ("rows: must be ..."): put
		// the problem on that key's line when it does.
		key, msg := "sandbox", e.Error()
		if k, rest, ok := strings.Cut(msg, ": "); ok && sandboxKnob(k) {
			key, msg = "sandbox."+k, rest
		}
		v.addf(key, "%s", msg)
	}
}

// sandboxKnob reports whether k is a key of the sandbox section.
func sandboxKnob(k string) bool {
	_, ok := infoFor(typeOfSandbox).byName[k]
	return ok
}

func (v validator) connections(c *Config) {
	seen := map[string]int{}
	sandboxUsed := false
	for i := range c.Connections {
		conn := &c.Connections[i]
		p := fmt.Sprintf("connections[%d]", i)
		key := func(k string) string { return p + "." + k }
		switch {
		case conn.Name == "":
			v.addf(key("name"), "required")
		case !nameRE.MatchString(conn.Name):
			v.addf(key("name"), "must be letters, digits, '.', '_' or '-', not %q", conn.Name)
		default:
			if first, dup := seen[conn.Name]; dup {
				v.addf(key("name"), "%q is already the name of connections[%d]", conn.Name, first)
			} else {
				seen[conn.Name] = i
			}
		}
		grantOK := v.oneOf(key("grant"), conn.Grant, GrantClientCredentials, GrantRefreshToken)
		if conn.Authority == AuthoritySandbox {
			sandboxUsed = true
		} else if !secureURL(conn.Authority) {
			v.addf(key("authority"), "must be sandbox or an https:// URL (http:// only on a loopback host), not %q", conn.Authority)
		}
		if conn.GraphQLURL == GraphQLSandbox {
			sandboxUsed = true
		} else if !secureURL(conn.GraphQLURL) {
			v.addf(key("graphql_url"), "must be sandbox or an https:// URL (http:// only on a loopback host), not %q", conn.GraphQLURL)
		}
		switch {
		case conn.ClientID == "":
			v.addf(key("client_id"), "required")
		case conn.Grant == GrantClientCredentials && len(conn.ClientID) > MaxServiceClientIDLen:
			v.addf(key("client_id"), "must be at most %d characters for client_credentials (Business NXT stores it in its User table), not %d", MaxServiceClientIDLen, len(conn.ClientID))
		}
		if conn.ClientSecret.IsZero() && !v.d.Failed(key("client_secret_file")) {
			v.addf(key("client_secret"), "required (or client_secret_file)")
		}
		if len(conn.Scopes) == 0 && (grantOK || v.d.Has(key("scopes"))) {
			v.addf(key("scopes"), "must list at least one scope")
		}
		for j, s := range conn.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\n") {
				v.addf(fmt.Sprintf("%s[%d]", key("scopes"), j), "must be one scope without spaces, not %q", s)
			}
		}
		if conn.Limits.RequestsPerMinute <= 0 {
			v.addf(key("limits.requests_per_minute"), "must be positive, not %d", conn.Limits.RequestsPerMinute)
		}
		if conn.Limits.ConcurrencyPerCompany <= 0 {
			v.addf(key("limits.concurrency_per_company"), "must be positive, not %d", conn.Limits.ConcurrencyPerCompany)
		}
		if !grantOK {
			continue
		}
		if conn.Grant == GrantClientCredentials {
			for _, k := range []string{"keepalive", "redirect_path", "expected_email", "refresh_token_lifetime"} {
				if v.d.Has(key(k)) {
					v.addf(key(k), "only applies to grant refresh_token")
				}
			}
			continue
		}
		if !strings.HasPrefix(conn.RedirectPath, "/") {
			v.addf(key("redirect_path"), "must be a path starting with /, not %q", conn.RedirectPath)
		}
		if conn.ExpectedEmail != "" && !strings.Contains(conn.ExpectedEmail, "@") {
			v.addf(key("expected_email"), "must be an e-mail address, not %q", conn.ExpectedEmail)
		}
		v.positive(key("keepalive"), conn.Keepalive)
		v.positive(key("refresh_token_lifetime"), conn.RefreshTokenLifetime)
	}
	if sandboxUsed && !c.Sandbox.Enabled {
		for i, conn := range c.Connections {
			if conn.Authority == AuthoritySandbox || conn.GraphQLURL == GraphQLSandbox {
				v.addf(fmt.Sprintf("connections[%d]", i), "uses the sandbox, but sandbox.enabled is false")
			}
		}
	}
}

// secureURL reports whether s is an https URL, or an http URL on a loopback
// host.
func secureURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return IsLoopback(u.Hostname())
	}
	return false
}

// IsLoopback reports whether host (a name or an IP, without port) is a
// loopback host: localhost, 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var typeOfSandbox = reflect.TypeFor[Sandbox]()
