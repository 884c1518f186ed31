package sandbox

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strconv"
	"strings"

	"github.com/andybalholm/brotli"
)

// brotliLevel trades ratio for speed; Business NXT's answers are mostly
// repetitive JSON that compresses well at any level.
const brotliLevel = 4

// chooseEncoding returns the Content-Encoding for a response under mode:
// "br", "gzip" or "" (identity).
func chooseEncoding(mode, acceptEncoding string) string {
	switch mode {
	case CompressionNone:
		return ""
	case CompressionAlwaysBrotli:
		return "br"
	}
	var br, gz, star bool
	for _, part := range strings.Split(acceptEncoding, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !acceptable(params) {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "br":
			br = true
		case "gzip", "x-gzip":
			gz = true
		case "*":
			star = true
		}
	}
	switch {
	case br:
		return "br"
	case gz:
		return "gzip"
	case star:
		return "br"
	}
	return ""
}

// acceptable reports whether the parameters of an Accept-Encoding element
// leave it a q above zero.
func acceptable(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q > 0
		}
	}
	return true
}

// compress encodes body with encoding ("br", "gzip" or "").
func compress(encoding string, body []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch encoding {
	case "":
		return body, nil
	case "br":
		w := brotli.NewWriterLevel(&buf, brotliLevel)
		if _, err := w.Write(body); err != nil {
			return nil, fmt.Errorf("compressing with brotli: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("compressing with brotli: %w", err)
		}
	case "gzip":
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(body); err != nil {
			return nil, fmt.Errorf("compressing with gzip: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("compressing with gzip: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown content encoding %q", encoding)
	}
	return buf.Bytes(), nil
}
