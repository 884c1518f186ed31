package jobs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nxtcron/nxtcron/config"
)

// FuzzLoadJob: arbitrary bytes as a job file never panic, and either load
// or give Problems, each in a file and on a line.
func FuzzLoadJob(f *testing.F) {
	for _, pattern := range []string{"testdata/*.yaml", "testdata/valid/*.yaml"} {
		seeds, _ := filepath.Glob(pattern)
		for _, s := range seeds {
			b, err := os.ReadFile(s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("query: '{ a(after: $x) { pageInfo { hasNextPage } items { ...A } } } fragment A on B { c { ...A } }'"))
	f.Add([]byte("variables: &v {a: *v}\nsink: {type: memory, dsn_file: /dev/zero}"))
	f.Add([]byte("query_file: /dev/zero\nsink: {<<: {type: file}, path: x}"))
	cfg := testConfig(f)
	dir := f.TempDir()
	abs := filepath.Join(dir, "fuzz.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		job, _, ps := loadFile(cfg, abs, data, testTypes)
		if len(ps) == 0 {
			if job == nil || job.DefinitionHash == "" || job.Cron == nil {
				t.Fatalf("no problem but no complete job: %+v", job)
			}
			return
		}
		if job != nil {
			t.Fatal("a job despite problems")
		}
		err := ps.Err()
		var got config.Problems
		if !errors.As(err, &got) {
			t.Fatalf("not Problems: %v", err)
		}
		for _, p := range got {
			if p.File == "" || p.Line < 1 || p.Message == "" {
				t.Fatalf("problem without file, line or message: %#v", p)
			}
		}
	})
}
