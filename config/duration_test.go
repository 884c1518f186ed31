package config

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "90s", want: 90 * time.Second},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "0", want: 0},
		{in: "90d", want: 90 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "-2d", want: -48 * time.Hour},
		{in: " 7d ", want: 7 * 24 * time.Hour},
		{in: "d", wantErr: true},
		{in: "12h1d", wantErr: true},
		{in: "1d-2h", wantErr: true},
		{in: "1d2d", wantErr: true},
		{in: "1e3d", wantErr: true},
		{in: "NaNd", wantErr: true},
		{in: "999999999d", wantErr: true},
		{in: "90", wantErr: true},
		{in: "90 days", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{90 * 24 * time.Hour, "90d"},
		{36 * time.Hour, "1d12h"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{2 * time.Minute, "2m"},
		{90 * time.Second, "1m30s"},
		{250 * time.Millisecond, "250ms"},
		{24*time.Hour + time.Second, "1d1s"},
		{-48 * time.Hour, "-2d"},
		{time.Duration(1<<63 - 1), "106751d23h47m16.854775807s"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, FormatDuration(tt.in), tt.in.String())
		back, err := ParseDuration(tt.want)
		require.NoError(t, err)
		require.Equal(t, tt.in, back, "round trip of %s", tt.want)
	}
}

func TestDurationYAML(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("d: 90d"), &v))
	require.Equal(t, Duration(90*24*time.Hour), v.D)
	out, err := yaml.Marshal(v)
	require.NoError(t, err)
	require.Equal(t, "d: 90d\n", string(out))

	err = yaml.Unmarshal([]byte("d: soon"), &v)
	require.EqualError(t, err, `must be a duration like 90s, 15m, 2h or 90d, not "soon"`)
	err = yaml.Unmarshal([]byte("d: [1h]"), &v)
	require.Error(t, err)

	j, err := json.Marshal(v)
	require.NoError(t, err)
	require.Equal(t, `{"D":"90d"}`, string(j))
	var back struct{ D Duration }
	require.NoError(t, json.Unmarshal(j, &back))
	require.Equal(t, v.D, back.D)
	require.Equal(t, "1d12h", Duration(36*time.Hour).String())
	require.Equal(t, 36*time.Hour, Duration(36*time.Hour).D())
}
