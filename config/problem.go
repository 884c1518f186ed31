package config

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
)

// Problem is one thing wrong with a file, at a line and a key path such as
// connections[1].client_id or sink.key[0].
type Problem struct {
	File    string
	Line    int
	Key     string
	Message string
}

// Error formats the problem as "file:line: key.path: message".
func (p Problem) Error() string {
	if p.Key == "" {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Key, p.Message)
}

// Problems is every problem found in one or more files; it is the error that
// Load (and the jobs loader) return for invalid files. Sort it with Sort.
type Problems []Problem

// Error prints one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the problems by file, then line, keeping the order in which
// problems on the same line were found.
func (ps Problems) Sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// Err returns ps sorted as an error, or nil when there are none (never a
// typed nil).
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone(ps)
	out.Sort()
	return out
}

// DisplayPath is how a file is named in problems: relative to the working
// directory when it lies under it, else absolute.
func DisplayPath(abs string) string {
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return abs
	}
	return rel
}

// DidYouMean returns ` (did you mean "x"?)` for the candidate nearest to got,
// or "" when none is near enough to be a plausible typo.
func DidYouMean(got string, candidates []string) string {
	if s := Suggest(got, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// Suggest returns the candidate nearest to got (case-insensitively) when it is
// within a typo's distance: one edit for words of up to three letters, else
// two or one per three letters; or when the two share a prefix of at least
// four letters that covers the shorter but for its last letter ("retries"
// and "retry", "refresh" and "refresh_token"). It returns "" when none is.
func Suggest(got string, candidates []string) string {
	if got == "" {
		return ""
	}
	g := strings.ToLower(got)
	limit := 1
	if len(g) > 3 {
		limit = max(2, len(g)/3)
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if c == got {
			continue
		}
		lc := strings.ToLower(c)
		d := levenshtein.ComputeDistance(g, lc)
		if common, shorter := commonPrefix(g, lc), min(len(g), len(lc)); common >= max(4, shorter-1) {
			d = min(d, limit)
		}
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
