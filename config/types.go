package config

import (
	"time"

	"github.com/nxtcron/nxtcron/sandbox"
)

// Config is config.yaml after decoding, expansion, defaults and validation.
// Every relative path in it is already resolved against the file that named it.
type Config struct {
	// Path is the absolute path of the file this configuration came from.
	Path string `yaml:"-"`

	Store       Store        `yaml:"store"`
	HTTP        HTTP         `yaml:"http"`
	Log         Log          `yaml:"log"`
	Scheduler   Scheduler    `yaml:"scheduler"`
	Sandbox     Sandbox      `yaml:"sandbox"`
	Connections []Connection `yaml:"connections"`
	// Jobs are globs of job files, resolved against the config file's directory.
	Jobs     []string `yaml:"jobs"`
	Defaults Defaults `yaml:"defaults"`
}

// Store configures the state store.
type Store struct {
	// DSN is sqlite:PATH or postgres://...; NXTCRON_STORE_DSN wins over the file.
	DSN                Secret   `yaml:"dsn"`
	Schema             string   `yaml:"schema"`
	Migrate            string   `yaml:"migrate"` // auto | off
	EncryptionKeysFile string   `yaml:"encryption_keys_file"`
	EncryptionKeys     []Secret `yaml:"encryption_keys"`
}

// HTTP configures the daemon's HTTP listener.
type HTTP struct {
	Listen      string `yaml:"listen"`
	PublicURL   string `yaml:"public_url"`
	AdminToken  Secret `yaml:"admin_token"`
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // auto | console | json
}

// Scheduler configures slot claiming.
type Scheduler struct {
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`
	LeaseTimeout      Duration `yaml:"lease_timeout"`
	ShutdownGrace     Duration `yaml:"shutdown_grace"`
	Retention         Duration `yaml:"retention"`
}

// Sandbox configures the in-process emulator; its knobs are sandbox.Options.
type Sandbox struct {
	Enabled         bool `yaml:"enabled"`
	sandbox.Options `yaml:",inline"`
}

// Grant types of a connection.
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
)

// AuthoritySandbox and GraphQLSandbox name the in-process emulator.
const (
	AuthoritySandbox = "sandbox"
	GraphQLSandbox   = "sandbox"
)

// Connection is one OAuth2 client and the GraphQL endpoint it talks to.
type Connection struct {
	Name          string   `yaml:"name"`
	Grant         string   `yaml:"grant"`
	Authority     string   `yaml:"authority"`
	ClientID      string   `yaml:"client_id"`
	ClientSecret  Secret   `yaml:"client_secret"`
	Scopes        []string `yaml:"scopes"`
	TenantID      string   `yaml:"tenant_id"`
	GraphQLURL    string   `yaml:"graphql_url"`
	Limits        Limits   `yaml:"limits"`
	RedirectPath  string   `yaml:"redirect_path"`
	ExpectedEmail string   `yaml:"expected_email"`
	Keepalive     Duration `yaml:"keepalive"`
	// RefreshTokenLifetime is the refresh token lifetime set in the Visma
	// Developer Portal: the absolute expiry reported ahead of time is the
	// enrollment time plus this (Visma Connect's token response does not
	// say).
	RefreshTokenLifetime Duration `yaml:"refresh_token_lifetime"`

	// Line is the line of this connection in config.yaml, for messages.
	Line int `yaml:"-"`
}

// Limits budget the requests of one connection.
type Limits struct {
	RequestsPerMinute     int `yaml:"requests_per_minute"`
	ConcurrencyPerCompany int `yaml:"concurrency_per_company"`
}

// Defaults apply to every job that does not set the key itself.
type Defaults struct {
	Timezone string   `yaml:"timezone"`
	Catchup  Duration `yaml:"catchup"`
	Timeout  Duration `yaml:"timeout"`
}

// Duration is a time.Duration that also accepts a "d" (24h) unit, as in "90d",
// and marshals back in the same form.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
