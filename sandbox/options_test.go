package sandbox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nxtcron/nxtcron/sandbox"
)

func TestDefaultOptions(t *testing.T) {
	o := sandbox.DefaultOptions()
	require.NoError(t, o.Validate())
	require.Equal(t, sandbox.Options{
		Listen:             "127.0.0.1:8700",
		Companies:          2,
		Rows:               250,
		ServerTimezone:     "Europe/Oslo",
		AccessTokenTTL:     3600 * time.Second,
		RefreshTokenUsage:  "one_time",
		RefreshGrace:       0,
		RefreshSlidingTTL:  720 * time.Hour,
		RefreshAbsoluteTTL: 8760 * time.Hour,
		ReuseDetection:     true,
		RateLimit:          600,
		ConcurrencyLimit:   60,
		Latency:            0,
		Compression:        "auto",
		Admin:              false,
	}, o)
}

func TestOptionsFlags(t *testing.T) {
	o := sandbox.DefaultOptions()
	fs := pflag.NewFlagSet("sandbox", pflag.ContinueOnError)
	o.AddFlags(fs)
	require.NoError(t, fs.Parse([]string{
		"--listen=127.0.0.1:9000", "--issuer=https://connect.visma.com", "--companies=5", "--rows=10",
		"--server-timezone=UTC", "--access-token-ttl=90s", "--refresh-token-usage=reuse", "--refresh-grace=10s",
		"--refresh-sliding-ttl=1h", "--refresh-absolute-ttl=2h", "--reuse-detection=false", "--rate-limit=0",
		"--concurrency-limit=4", "--latency=25ms", "--compression=always-br", "--admin",
	}))
	require.NoError(t, o.Validate())
	require.Equal(t, sandbox.Options{
		Listen: "127.0.0.1:9000", Issuer: "https://connect.visma.com", Companies: 5, Rows: 10,
		ServerTimezone: "UTC", AccessTokenTTL: 90 * time.Second, RefreshTokenUsage: "reuse", RefreshGrace: 10 * time.Second,
		RefreshSlidingTTL: time.Hour, RefreshAbsoluteTTL: 2 * time.Hour, ReuseDetection: false, RateLimit: 0,
		ConcurrencyLimit: 4, Latency: 25 * time.Millisecond, Compression: "always-br", Admin: true,
	}, o)
}

func TestOptionsYAML(t *testing.T) {
	o := sandbox.DefaultOptions()
	const doc = `
listen: 127.0.0.1:0
companies: 3
server_timezone: UTC
access_token_ttl: 3600s
refresh_token_usage: reuse
refresh_grace: 15s
refresh_sliding_ttl: 720h
rate_limit: 100
latency: 20ms
compression: none
admin: true
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&o))
	require.NoError(t, o.Validate())
	require.Equal(t, "127.0.0.1:0", o.Listen)
	require.Equal(t, 3, o.Companies)
	require.Equal(t, 250, o.Rows, "absent keys keep their defaults")
	require.Equal(t, time.Hour, o.AccessTokenTTL)
	require.Equal(t, 15*time.Second, o.RefreshGrace)
	require.Equal(t, 20*time.Millisecond, o.Latency)
	require.Equal(t, "none", o.Compression)
	require.True(t, o.Admin)
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mutate      func(*sandbox.Options)
		errContains string
	}{
		{"listen", func(o *sandbox.Options) { o.Listen = "8700" }, "listen"},
		{"issuer", func(o *sandbox.Options) { o.Issuer = "connect.visma.com" }, "issuer"},
		{"companies", func(o *sandbox.Options) { o.Companies = 0 }, "companies"},
		{"rows", func(o *sandbox.Options) { o.Rows = -1 }, "rows"},
		{"server_timezone", func(o *sandbox.Options) { o.ServerTimezone = "Mars/Olympus" }, "server_timezone"},
		{"access_token_ttl", func(o *sandbox.Options) { o.AccessTokenTTL = 0 }, "access_token_ttl"},
		{"refresh_token_usage", func(o *sandbox.Options) { o.RefreshTokenUsage = "twice" }, "refresh_token_usage"},
		{"refresh_grace", func(o *sandbox.Options) { o.RefreshGrace = -time.Second }, "refresh_grace"},
		{"refresh_sliding_ttl", func(o *sandbox.Options) { o.RefreshSlidingTTL = 0 }, "refresh_sliding_ttl"},
		{"refresh_absolute_ttl", func(o *sandbox.Options) { o.RefreshAbsoluteTTL = 0 }, "refresh_absolute_ttl"},
		{"rate_limit", func(o *sandbox.Options) { o.RateLimit = -1 }, "rate_limit"},
		{"concurrency_limit", func(o *sandbox.Options) { o.ConcurrencyLimit = -1 }, "concurrency_limit"},
		{"latency", func(o *sandbox.Options) { o.Latency = -1 }, "latency"},
		{"compression", func(o *sandbox.Options) { o.Compression = "zstd" }, "compression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := sandbox.DefaultOptions()
			tc.mutate(&o)
			require.ErrorContains(t, o.Validate(), tc.errContains)
			_, err := sandbox.New(o)
			require.ErrorContains(t, err, tc.errContains)
		})
	}
	o := sandbox.DefaultOptions()
	o.Companies, o.Compression = 0, "zstd"
	err := o.Validate()
	require.ErrorContains(t, err, "companies")
	require.ErrorContains(t, err, "compression", "every problem is reported")
}
