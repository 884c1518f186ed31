package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nxtcron/nxtcron/sandbox/connect"
)

// Compression modes of the GraphQL endpoints.
const (
	// CompressionAuto compresses with Brotli or gzip as Accept-Encoding asks,
	// preferring Brotli.
	CompressionAuto = "auto"
	// CompressionAlwaysBrotli compresses with Brotli even when not asked to,
	// as Business NXT does.
	CompressionAlwaysBrotli = "always-br"
	// CompressionNone never compresses.
	CompressionNone = "none"
)

// Options are the sandbox's knobs: the flags of `nxtcron sandbox` (with -)
// and the keys under sandbox: in config.yaml (with _).
type Options struct {
	// Listen is the address Start and Run listen on.
	Listen string `yaml:"listen"`
	// Issuer is the iss of tokens and the discovery document; empty means
	// the base URL each request came to.
	Issuer string `yaml:"issuer"`
	// Companies is the number of companies (ids 1001, 1002, ...).
	Companies int `yaml:"companies"`
	// Rows is the number of rows per table per company.
	Rows int `yaml:"rows"`
	// ServerTimezone is the zone of the server's local timestamps.
	ServerTimezone string `yaml:"server_timezone"`
	// AccessTokenTTL is the lifetime of access tokens.
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
	// RefreshTokenUsage is one_time or reuse.
	RefreshTokenUsage string `yaml:"refresh_token_usage"`
	// RefreshGrace is how long a consumed one-time refresh token is still
	// accepted (answered with the same successor).
	RefreshGrace time.Duration `yaml:"refresh_grace"`
	// RefreshSlidingTTL: a refresh token chain unused this long expires.
	RefreshSlidingTTL time.Duration `yaml:"refresh_sliding_ttl"`
	// RefreshAbsoluteTTL: a chain expires this long after its login.
	RefreshAbsoluteTTL time.Duration `yaml:"refresh_absolute_ttl"`
	// ReuseDetection revokes a whole chain when a consumed refresh token is
	// used again after the grace period.
	ReuseDetection bool `yaml:"reuse_detection"`
	// RateLimit is the number of GraphQL requests per token in any 60
	// seconds; 0 turns the limit off.
	RateLimit int `yaml:"rate_limit"`
	// ConcurrencyLimit is the number of concurrent GraphQL requests per
	// company before OUTSTANDING_LIMIT_EXCEEDED; 0 turns the limit off.
	ConcurrencyLimit int `yaml:"concurrency_limit"`
	// Latency is added to every GraphQL request.
	Latency time.Duration `yaml:"latency"`
	// Compression is auto, always-br or none.
	Compression string `yaml:"compression"`
	// Admin turns the admin API (/sandbox/...) on, for loopback peers only.
	Admin bool `yaml:"admin"`

	// Now is the clock of token lifetimes and the rate limit; nil means
	// time.Now. For tests.
	Now func() time.Time `yaml:"-" json:"-"`
}

// DefaultOptions returns the defaults of every knob.
func DefaultOptions() Options {
	return Options{
		Listen:             "127.0.0.1:8700",
		Companies:          2,
		Rows:               250,
		ServerTimezone:     "Europe/Oslo",
		AccessTokenTTL:     connect.DefaultAccessTokenTTL,
		RefreshTokenUsage:  string(connect.OneTime),
		RefreshSlidingTTL:  connect.DefaultRefreshSlidingTTL,
		RefreshAbsoluteTTL: connect.DefaultRefreshAbsoluteTTL,
		ReuseDetection:     true,
		RateLimit:          600,
		ConcurrencyLimit:   60,
		Compression:        CompressionAuto,
	}
}

// AddFlags registers every knob on fs, with o's values as defaults. Call it
// on the result of DefaultOptions.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Listen, "listen", o.Listen, "address to listen on")
	fs.StringVar(&o.Issuer, "issuer", o.Issuer, "issuer of tokens and discovery (default: the base URL of each request)")
	fs.IntVar(&o.Companies, "companies", o.Companies, "number of companies (ids 1001, 1002, ...)")
	fs.IntVar(&o.Rows, "rows", o.Rows, "rows per table per company")
	fs.StringVar(&o.ServerTimezone, "server-timezone", o.ServerTimezone, "time zone of the server's local timestamps")
	fs.DurationVar(&o.AccessTokenTTL, "access-token-ttl", o.AccessTokenTTL, "lifetime of access tokens")
	fs.StringVar(&o.RefreshTokenUsage, "refresh-token-usage", o.RefreshTokenUsage, "refresh token usage: one_time or reuse")
	fs.DurationVar(&o.RefreshGrace, "refresh-grace", o.RefreshGrace, "how long a consumed one-time refresh token is still accepted")
	fs.DurationVar(&o.RefreshSlidingTTL, "refresh-sliding-ttl", o.RefreshSlidingTTL, "a refresh token chain unused this long expires")
	fs.DurationVar(&o.RefreshAbsoluteTTL, "refresh-absolute-ttl", o.RefreshAbsoluteTTL, "a refresh token chain expires this long after its login")
	fs.BoolVar(&o.ReuseDetection, "reuse-detection", o.ReuseDetection, "revoke a whole chain when a consumed refresh token is used again")
	fs.IntVar(&o.RateLimit, "rate-limit", o.RateLimit, "GraphQL requests per token per sliding minute (0: off)")
	fs.IntVar(&o.ConcurrencyLimit, "concurrency-limit", o.ConcurrencyLimit, "concurrent GraphQL requests per company before OUTSTANDING_LIMIT_EXCEEDED (0: off)")
	fs.DurationVar(&o.Latency, "latency", o.Latency, "latency added to every GraphQL request")
	fs.StringVar(&o.Compression, "compression", o.Compression, "GraphQL response compression: auto, always-br or none")
	fs.BoolVar(&o.Admin, "admin", o.Admin, "enable the admin API under /sandbox/ (loopback peers only)")
}

// MaxCompanies bounds the companies knob.
const MaxCompanies = 1000

// Validate reports every invalid knob, by its config key.
func (o Options) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		bad("listen", "%q is not host:port", o.Listen)
	}
	if o.Issuer != "" {
		u, err := url.Parse(o.Issuer)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("issuer", "%q must be an http or https URL without query or fragment", o.Issuer)
		}
	}
	if o.Companies < 1 || o.Companies > MaxCompanies {
		bad("companies", "%d must be between 1 and %d", o.Companies, MaxCompanies)
	}
	if o.Rows < 0 {
		bad("rows", "%d must not be negative", o.Rows)
	}
	if o.ServerTimezone == "" {
		bad("server_timezone", "must be set")
	} else if _, err := time.LoadLocation(o.ServerTimezone); err != nil {
		bad("server_timezone", "unknown time zone %q", o.ServerTimezone)
	}
	if o.AccessTokenTTL < time.Second {
		bad("access_token_ttl", "%s must be at least 1s", o.AccessTokenTTL)
	}
	if o.RefreshTokenUsage != string(connect.OneTime) && o.RefreshTokenUsage != string(connect.Reuse) {
		bad("refresh_token_usage", "%q must be %s or %s", o.RefreshTokenUsage, connect.OneTime, connect.Reuse)
	}
	if o.RefreshGrace < 0 {
		bad("refresh_grace", "%s must not be negative", o.RefreshGrace)
	}
	if o.RefreshSlidingTTL <= 0 {
		bad("refresh_sliding_ttl", "%s must be positive", o.RefreshSlidingTTL)
	}
	if o.RefreshAbsoluteTTL <= 0 {
		bad("refresh_absolute_ttl", "%s must be positive", o.RefreshAbsoluteTTL)
	}
	if o.RateLimit < 0 {
		bad("rate_limit", "%d must not be negative (0 turns the limit off)", o.RateLimit)
	}
	if o.ConcurrencyLimit < 0 {
		bad("concurrency_limit", "%d must not be negative (0 turns the limit off)", o.ConcurrencyLimit)
	}
	if o.Latency < 0 {
		bad("latency", "%s must not be negative", o.Latency)
	}
	switch o.Compression {
	case CompressionAuto, CompressionAlwaysBrotli, CompressionNone:
	default:
		bad("compression", "%q must be %s, %s or %s", o.Compression, CompressionAuto, CompressionAlwaysBrotli, CompressionNone)
	}
	return errors.Join(errs...)
}

func (o Options) connect() connect.Options {
	return connect.Options{
		Issuer:             o.Issuer,
		AccessTokenTTL:     o.AccessTokenTTL,
		RefreshTokenUsage:  connect.RefreshUsage(o.RefreshTokenUsage),
		RefreshGrace:       o.RefreshGrace,
		RefreshSlidingTTL:  o.RefreshSlidingTTL,
		RefreshAbsoluteTTL: o.RefreshAbsoluteTTL,
		ReuseDetection:     o.ReuseDetection,
		Now:                o.Now,
	}
}

// knob is one field of Options, by its config key.
type knob struct {
	key   string
	index int
}

var durationType = reflect.TypeFor[time.Duration]()

func knobs() []knob {
	t := reflect.TypeFor[Options]()
	var out []knob
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		out = append(out, knob{key: key, index: i})
	}
	return out
}

// settingsJSON renders o as the admin API shows it: config keys, durations as
// strings such as "3600s" or "1h0m0s".
func (o Options) settingsJSON() map[string]any {
	v := reflect.ValueOf(o)
	out := map[string]any{}
	for _, k := range knobs() {
		f := v.Field(k.index)
		if f.Type() == durationType {
			out[k.key] = time.Duration(f.Int()).String()
		} else {
			out[k.key] = f.Interface()
		}
	}
	return out
}

// mergeSettings returns o with the knobs in patch (a JSON object keyed by
// config key; "-" may stand for "_") replaced. Durations are strings such as
// "250ms" or numbers of seconds.
func (o Options) mergeSettings(patch []byte) (Options, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(patch, &fields); err != nil {
		return o, fmt.Errorf("decoding settings: %w", err)
	}
	if fields == nil {
		return o, errors.New("decoding settings: expected a JSON object")
	}
	byKey := map[string]knob{}
	for _, k := range knobs() {
		byKey[k.key] = k
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	v := reflect.ValueOf(&o).Elem()
	var errs []error
	for _, key := range keys {
		k, ok := byKey[strings.ReplaceAll(key, "-", "_")]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown setting", key))
			continue
		}
		f := v.Field(k.index)
		if f.Type() == durationType {
			d, err := parseDuration(fields[key])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				continue
			}
			f.SetInt(int64(d))
			continue
		}
		if err := json.Unmarshal(fields[key], f.Addr().Interface()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	return o, errors.Join(errs...)
}

// parseDuration reads a JSON duration: a Go duration string or a number of
// seconds.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("parsing duration: %w", err)
		}
		return d, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, errors.New("expected a duration such as \"3s\" or a number of seconds")
	}
	return time.Duration(secs * float64(time.Second)), nil
}
