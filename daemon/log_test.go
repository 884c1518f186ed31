package daemon_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/daemon"
)

func TestNewLoggerJSON(t *testing.T) {
	for _, format := range []string{"json", "auto", ""} {
		t.Run("format "+format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := daemon.NewLogger(config.Log{Level: "info", Format: format}, &buf)
			require.NoError(t, err)
			log.With(zap.String("component", "scheduler")).Info("attempt started",
				zap.String("job", "associates"), zap.Int64("company", 1001), zap.Error(errors.New("boom")))
			log.Debug("not at info")
			require.NoError(t, log.Sync())

			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			require.Len(t, lines, 1, "debug is below info: %s", buf.String())
			var entry map[string]any
			require.NoError(t, json.Unmarshal([]byte(lines[0]), &entry), "a buffer is not a terminal: auto is json")
			require.Equal(t, "info", entry["level"])
			require.Equal(t, "attempt started", entry["msg"])
			require.Equal(t, "scheduler", entry["component"])
			require.Equal(t, "associates", entry["job"])
			require.Equal(t, float64(1001), entry["company"])
			require.Equal(t, "boom", entry["error"])
			ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", entry["ts"].(string))
			require.NoError(t, err, "ts is ISO 8601")
			require.WithinDuration(t, time.Now(), ts, time.Minute)
		})
	}
}

func TestNewLoggerConsole(t *testing.T) {
	var buf bytes.Buffer
	log, err := daemon.NewLogger(config.Log{Level: "debug", Format: "console"}, &buf)
	require.NoError(t, err)
	log.Debug("token cached", zap.String("connection", "service"))
	log.Warn("heartbeat failed", zap.Int("attempt", 2))
	require.NoError(t, log.Sync())

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	fields := strings.Split(lines[0], "\t")
	require.GreaterOrEqual(t, len(fields), 4, "ts, level, message, fields: %q", lines[0])
	require.Equal(t, "DEBUG", fields[1])
	require.Equal(t, "token cached", fields[2])
	require.JSONEq(t, `{"connection": "service"}`, fields[3])
	require.Contains(t, lines[1], "\tWARN\theartbeat failed\t")
	require.NotContains(t, buf.String(), "\x1b[", "no colour codes when not writing to a terminal")
}

func TestNewLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	log, err := daemon.NewLogger(config.Log{Level: "warn", Format: "json"}, &buf)
	require.NoError(t, err)
	log.Info("dropped")
	log.Warn("kept")
	log.Error("kept too")
	require.NoError(t, log.Sync())
	require.Equal(t, 2, strings.Count(buf.String(), "\n"))
	require.NotContains(t, buf.String(), "dropped")
}

func TestNewLoggerRejectsBadSettings(t *testing.T) {
	tests := []struct {
		name        string
		log         config.Log
		errContains string
	}{
		{"bad level", config.Log{Level: "verbose", Format: "json"}, `log.level: unrecognized level: "verbose"`},
		{"bad format", config.Log{Level: "info", Format: "xml"}, `log.format: "xml" is not auto, console or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, err := daemon.NewLogger(tt.log, &bytes.Buffer{})
			require.Nil(t, log)
			require.ErrorContains(t, err, tt.errContains)
		})
	}
}
