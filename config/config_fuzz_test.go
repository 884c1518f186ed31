package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig: arbitrary bytes never panic, and either load or give
// Problems, each in the file and on a line.
func FuzzLoadConfig(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("<<: {log: {level: debug}}"))
	f.Add([]byte("connections: [{<<: [{name: x}], grant: refresh_token, client_secret: ${X:-y}}]"))
	f.Add([]byte("\x00\xff"))
	dir := f.TempDir()
	abs := filepath.Join(dir, "config.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := load("config.yaml", abs, data)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without an error")
			}
			return
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error is not Problems: %v", err)
		}
		for _, p := range ps {
			if p.File != "config.yaml" || p.Line < 1 || p.Message == "" {
				t.Fatalf("problem without file, line or message: %#v", p)
			}
		}
	})
}
