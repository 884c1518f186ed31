package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvStoreDSN, when set, wins over store.dsn.
const EnvStoreDSN = "NXTCRON_STORE_DSN"

// Load reads, decodes and validates config.yaml at path. An invalid file
// gives Problems, every problem of the file, sorted; a file that cannot be
// read gives a plain error.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolving config path: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	name := filepath.Clean(path)
	if filepath.IsAbs(path) {
		name = DisplayPath(abs)
	}
	return load(name, abs, data)
}

// load decodes data (the content of the file at abs, shown as name) onto
// the defaults, then resolves, derives and validates.
func load(name, abs string, data []byte) (*Config, error) {
	cfg := Default()
	cfg.Path = abs
	d := NewDecoder(name, filepath.Dir(abs))
	d.Decode(d.Parse(data), "", &cfg)

	if d.Has("connections") {
		for i := range cfg.Connections {
			p := fmt.Sprintf("connections[%d]", i)
			cfg.Connections[i].Line = d.Line(p)
			applyConnectionDefaults(&cfg.Connections[i], d.prefixed(p))
		}
	}
	if d.Has("store.encryption_keys") && !d.Has("store.encryption_keys_file") {
		cfg.Store.EncryptionKeysFile = "" // the keys are inline: no key file
	}
	if dsn, ok := os.LookupEnv(EnvStoreDSN); ok && dsn != "" {
		cfg.Store.DSN = Secret(resolveDSN(".", dsn))
	}
	applyDerivedDefaults(&cfg, d)
	resolvePaths(&cfg, d.Dir())

	validate(&cfg, d)
	if err := d.Problems().Err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// resolvePaths makes every relative path absolute against dir (the config
// file's directory).
func resolvePaths(c *Config, dir string) {
	c.Store.DSN = Secret(resolveDSN(dir, c.Store.DSN.Reveal()))
	c.Store.EncryptionKeysFile = ResolvePath(dir, c.Store.EncryptionKeysFile)
	c.HTTP.TLSCertFile = ResolvePath(dir, c.HTTP.TLSCertFile)
	c.HTTP.TLSKeyFile = ResolvePath(dir, c.HTTP.TLSKeyFile)
	for i, g := range c.Jobs {
		c.Jobs[i] = ResolvePath(dir, g)
	}
}

// SQLitePrefix starts a SQLite store DSN: sqlite:PATH.
const SQLitePrefix = "sqlite:"

// resolveDSN makes the PATH of a sqlite:PATH[?params] DSN absolute against
// dir; other DSNs (and :memory: or file: URIs) are returned unchanged.
func resolveDSN(dir, dsn string) string {
	rest, ok := strings.CutPrefix(dsn, SQLitePrefix)
	if !ok {
		return dsn
	}
	p, params, hasParams := strings.Cut(rest, "?")
	if p == "" || strings.HasPrefix(p, ":") || strings.HasPrefix(p, "file:") || filepath.IsAbs(p) {
		return dsn
	}
	abs, err := filepath.Abs(filepath.Join(dir, p))
	if err != nil {
		return dsn
	}
	if hasParams {
		return SQLitePrefix + abs + "?" + params
	}
	return SQLitePrefix + abs
}
