package webhook

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/sinks"
)

func TestValidate(t *testing.T) {
	valid := func() Config {
		return Config{URL: "https://hooks.example.com/nxtcron?token=x", Secret: "s3cret", BatchSize: 500, Timeout: config.Duration(70 * time.Second)}
	}
	tests := []struct {
		name        string
		edit        func(*Config)
		key         string
		errContains string
	}{
		{"valid", func(*Config) {}, "", ""},
		{"url missing", func(c *Config) { c.URL = "" }, "url", "required"},
		{"url scheme", func(c *Config) { c.URL = "ftp://hooks.example.com/" }, "url", `must be an http or https URL, not "ftp"`},
		{"url relative", func(c *Config) { c.URL = "/hook" }, "url", "must be an http or https URL"},
		{"url without host", func(c *Config) { c.URL = "https:///hook" }, "url", "must name a host"},
		{"url with password", func(c *Config) { c.URL = "https://user:pw@hooks.example.com/" }, "url", "must not contain a user or password"},
		{"url unparsable", func(c *Config) { c.URL = "https://hooks.example.com/%zz" }, "url", "not a valid URL"},
		{"secret missing", func(c *Config) { c.Secret = "" }, "secret", "required: the key that signs every body"},
		{"batch size zero", func(c *Config) { c.BatchSize = 0 }, "batch_size", "must be between 1 and 10000, not 0"},
		{"batch size large", func(c *Config) { c.BatchSize = 10001 }, "batch_size", "must be between 1 and 10000, not 10001"},
		{"timeout zero", func(c *Config) { c.Timeout = 0 }, "timeout", "must be a positive duration, not 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			errs := c.Validate(sinks.JobInfo{})
			if tt.errContains == "" {
				require.Empty(t, errs)
				s, err := c.Open(context.Background(), sinks.Env{})
				require.NoError(t, err)
				require.NoError(t, s.Close())
				return
			}
			require.Len(t, errs, 1)
			require.Equal(t, tt.key, errs[0].Key)
			require.Contains(t, errs[0].Message, tt.errContains)
			_, err := c.Open(context.Background(), sinks.Env{})
			require.ErrorIs(t, err, sinks.ErrPermanent)
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Type.New().(*Config)
	require.Equal(t, DefaultBatchSize, c.BatchSize)
	require.Equal(t, config.Duration(70*time.Second), c.Timeout)
}
