package file

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/nxtcron/nxtcron/sinks"
)

// Placeholders of a path, in the order the docs list them.
const (
	phJob     = "job"
	phCompany = "company"
	phSlot    = "slot"
	phDate    = "date"
	phAttempt = "attempt"
)

var placeholders = []string{phJob, phCompany, phSlot, phDate, phAttempt}

// Layouts of {slot} and {date}, in the job's zone.
const (
	slotLayout = "20060102T150405-0700"
	dateLayout = "2006-01-02"
)

// part is a literal run of a path template or, when ph is set, a
// placeholder.
type part struct {
	lit string
	ph  string
}

// template is a parsed path with placeholders.
type template []part

// parseTemplate splits a path into literals and placeholders. Every
// problem is returned (an unknown placeholder, a brace without its pair),
// so that validation can report them all.
func parseTemplate(s string) (template, []string) {
	var (
		t    template
		errs []string
		lit  strings.Builder
	)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			end := strings.IndexAny(s[i+1:], "{}")
			if end < 0 || s[i+1+end] == '{' {
				errs = append(errs, fmt.Sprintf("%q at offset %d has no closing %q", "{", i, "}"))
				continue
			}
			name := s[i+1 : i+1+end]
			if !isPlaceholder(name) {
				errs = append(errs, unknownPlaceholder(name))
			}
			if lit.Len() > 0 {
				t = append(t, part{lit: lit.String()})
				lit.Reset()
			}
			t = append(t, part{ph: name})
			i += end + 1
		case '}':
			errs = append(errs, fmt.Sprintf("%q at offset %d has no opening %q", "}", i, "{"))
		default:
			lit.WriteByte(s[i])
		}
	}
	if lit.Len() > 0 {
		t = append(t, part{lit: lit.String()})
	}
	return t, errs
}

func isPlaceholder(name string) bool {
	for _, p := range placeholders {
		if p == name {
			return true
		}
	}
	return false
}

func unknownPlaceholder(name string) string {
	best, bestDist := "", 3
	for _, p := range placeholders {
		if d := editDistance(name, p); d < bestDist {
			best, bestDist = p, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown placeholder {%s} (did you mean {%s}?)", name, best)
	}
	return fmt.Sprintf("unknown placeholder {%s}; use {job}, {company}, {slot}, {date} or {attempt}", name)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// has reports whether the template uses the placeholder.
func (t template) has(name string) bool {
	for _, p := range t {
		if p.ph == name {
			return true
		}
	}
	return false
}

// expand fills the placeholders for one company of one attempt.
func (t template) expand(run sinks.Run, company int64) string {
	slot := run.Slot
	if run.Location != nil {
		slot = slot.In(run.Location)
	}
	var b strings.Builder
	for _, p := range t {
		switch p.ph {
		case "":
			b.WriteString(p.lit)
		case phJob:
			b.WriteString(run.Job)
		case phCompany:
			b.WriteString(strconv.FormatInt(company, 10))
		case phSlot:
			b.WriteString(slot.Format(slotLayout))
		case phDate:
			b.WriteString(slot.Format(dateLayout))
		case phAttempt:
			b.WriteString(strconv.Itoa(run.Attempt))
		}
	}
	return b.String()
}

// dirGlob is a filepath.Glob pattern matching every directory the
// template can write to for the job: {job} is the job's name, every other
// placeholder matches anything within one path element.
func (t template) dirGlob(job string) string {
	var b strings.Builder
	for _, p := range t {
		switch p.ph {
		case "":
			b.WriteString(escapeGlob(p.lit))
		case phJob:
			b.WriteString(escapeGlob(job))
		default:
			b.WriteString("*")
		}
	}
	return filepath.Dir(b.String())
}

// escapeGlob quotes the characters filepath.Match treats specially.
// Character classes quote on every platform; a backslash is a separator on
// Windows and an escape elsewhere.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '*' || r == '?' || r == '[':
			b.WriteString("[" + string(r) + "]")
		case r == '\\' && runtime.GOOS != "windows":
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
