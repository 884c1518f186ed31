package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const day = 24 * time.Hour

// ParseDuration parses a Go duration ("90s", "1h30m") that may also use a
// "d" unit of 24 hours ("90d", "1d12h", "1.5d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "d") {
		return time.ParseDuration(s)
	}
	neg := false
	rest := s
	if rest != "" && (rest[0] == '-' || rest[0] == '+') {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	// Only the leading component may be in days: "1d12h", not "12h1d".
	num, after, ok := strings.Cut(rest, "d")
	if !ok || num == "" {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	days, err := strconv.ParseFloat(num, 64)
	if err != nil || strings.ContainsAny(num, "eEnNiI") || days > float64(1<<63-1)/float64(day) {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	d := time.Duration(days * float64(day))
	if after != "" {
		r, err := time.ParseDuration(after)
		if err != nil || r < 0 || strings.HasPrefix(after, "+") {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		if d > 1<<63-1-r {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

// FormatDuration is the inverse of ParseDuration: whole days in "d", the rest
// without zero units ("90d", "1d12h", "1h30m", "250ms", "0s").
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	sign := ""
	u := uint64(d)
	if d < 0 {
		sign, u = "-", -u
	}
	var b strings.Builder
	b.WriteString(sign)
	if days := u / uint64(day); days > 0 {
		b.WriteString(strconv.FormatUint(days, 10))
		b.WriteByte('d')
		u %= uint64(day)
	}
	if u == 0 {
		return b.String()
	}
	rest := time.Duration(u).String()
	// time.Duration.String writes "1h0m0s" and "2m0s": drop the zero units.
	if strings.HasSuffix(rest, "m0s") {
		rest = strings.TrimSuffix(rest, "0s")
	}
	if strings.HasSuffix(rest, "h0m") {
		rest = strings.TrimSuffix(rest, "0m")
	}
	b.WriteString(rest)
	return b.String()
}

// String formats d as FormatDuration does.
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// UnmarshalYAML accepts a duration string such as "90s", "15m" or "90d", and
// the number 0.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a duration like 90s, 15m, 2h or 90d")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("must be a duration like 90s, 15m, 2h or 90d, not %q", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes d as String does (JSON, logs).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses what MarshalText writes.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
