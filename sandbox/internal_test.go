package sandbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8700", true},
		{"127.1.2.3:1", true},
		{"[::1]:8700", true},
		{"[::ffff:127.0.0.1]:8700", true},
		{"::1", true},
		{"10.0.0.1:8700", false},
		{"192.168.1.20:55000", false},
		{"[2001:db8::1]:443", false},
		{"[fe80::1%eth0]:80", false},
		{"0.0.0.0:1", false},
		{"", false},
		{"localhost:8700", false},
	} {
		require.Equal(t, tc.want, isLoopback(tc.addr), tc.addr)
	}
}

func TestChooseEncoding(t *testing.T) {
	for _, tc := range []struct{ mode, accept, want string }{
		{CompressionAuto, "", ""},
		{CompressionAuto, "gzip", "gzip"},
		{CompressionAuto, "x-gzip", "gzip"},
		{CompressionAuto, "gzip, br", "br"},
		{CompressionAuto, "BR;q=0.5", "br"},
		{CompressionAuto, "br;q=0, gzip;q=0", ""},
		{CompressionAuto, "*", "br"},
		{CompressionAuto, "deflate", ""},
		{CompressionAlwaysBrotli, "", "br"},
		{CompressionNone, "br", ""},
	} {
		require.Equal(t, tc.want, chooseEncoding(tc.mode, tc.accept), "%s %q", tc.mode, tc.accept)
	}
}

func TestRateLimiterWindow(t *testing.T) {
	var l rateLimiter
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ok, _ := l.allow("a", t0, 2)
	require.True(t, ok)
	ok, _ = l.allow("a", t0.Add(time.Second), 2)
	require.True(t, ok)
	ok, retry := l.allow("a", t0.Add(2*time.Second), 2)
	require.False(t, ok)
	require.Equal(t, 58*time.Second, retry)
	ok, _ = l.allow("a", t0.Add(RateWindow), 2)
	require.True(t, ok, "the first request left the window")
	ok, _ = l.allow("b", t0, 0)
	require.True(t, ok, "limit 0 is off")

	// Idle tokens are forgotten.
	l.allow("c", t0.Add(3*RateWindow), 2)
	require.NotContains(t, l.windows, "a")
	require.Contains(t, l.windows, "c")
}

func TestFaultSetTake(t *testing.T) {
	var s faultSet
	require.NoError(t, s.add(Fault{Endpoint: EndpointToken, Kind: FaultSlow, Phase: PhaseAfterRotate, Next: 1}))
	require.NoError(t, s.add(Fault{Kind: FaultInternalError, Next: 2}))
	require.Nil(t, s.take("other"))
	f := s.take(EndpointToken)
	require.NotNil(t, f)
	require.Equal(t, DefaultFaultDelay, f.Delay)
	require.Nil(t, s.take(EndpointToken), "used up")
	require.Equal(t, FaultInternalError, s.take(EndpointGraphQL).Kind)
	require.Equal(t, FaultInternalError, s.take(EndpointGraphQLService).Kind)
	require.Nil(t, s.take(EndpointGraphQL))
	require.Empty(t, s.list())

	require.NoError(t, s.add(Fault{Kind: FaultTooManyRequests, Rate: 1}))
	for range 5 {
		f := s.take(EndpointGraphQL)
		require.NotNil(t, f)
		require.Equal(t, DefaultFaultRetryAfter, f.RetryAfter)
		require.Equal(t, uint64(DefaultFaultSeed), f.Seed)
	}
	s.clear()
	require.Nil(t, s.take(EndpointGraphQL))
}

func TestMergeSettings(t *testing.T) {
	o := DefaultOptions()
	got, err := o.mergeSettings([]byte(`{"refresh_grace": 30, "refresh-sliding-ttl": "2h", "reuse_detection": false}`))
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, got.RefreshGrace)
	require.Equal(t, 2*time.Hour, got.RefreshSlidingTTL)
	require.False(t, got.ReuseDetection)
	require.True(t, o.ReuseDetection, "the receiver is not changed")

	_, err = o.mergeSettings([]byte(`{"a": 1, "b": 2}`))
	require.ErrorContains(t, err, "a: unknown setting")
	require.ErrorContains(t, err, "b: unknown setting")
	_, err = o.mergeSettings([]byte(`null`))
	require.ErrorContains(t, err, "expected a JSON object")

	settings := o.settingsJSON()
	require.Equal(t, "1h0m0s", settings["access_token_ttl"])
	require.Len(t, settings, 16)
	require.NotContains(t, settings, "now")
}
