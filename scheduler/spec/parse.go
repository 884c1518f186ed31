package spec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed schedule. Its slots are instants; Next returns them in
// the schedule's zone.
type Schedule interface {
	// Next returns the first slot strictly after t, or the zero time when
	// there is none within 5 years.
	Next(t time.Time) time.Time
	// FixedHour reports whether the spec's hour field is fixed (no "*", no
	// step), which selects the daylight saving rules of a fixed-time job.
	FixedHour() bool
	// Every is D for @every D, else 0.
	Every() time.Duration
	// Location is the zone the spec's fields are read in.
	Location() *time.Location
	// String returns the spec as written.
	String() string
}

// horizon is how far ahead a schedule must have a slot to be valid.
const horizon = 5 * 365 * 24 * time.Hour

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// descriptors maps each descriptor to its 6-field spec.
var descriptors = map[string]string{
	"@yearly":   "0 0 0 1 1 *",
	"@annually": "0 0 0 1 1 *",
	"@monthly":  "0 0 0 1 * *",
	"@weekly":   "0 0 0 * * 0",
	"@daily":    "0 0 0 * * *",
	"@midnight": "0 0 0 * * *",
	"@hourly":   "0 0 * * * *",
}

// Parse parses a schedule whose fields are read in loc (nil means UTC). Its
// errors are short phrases meant to follow "schedule: ".
func Parse(spec string, loc *time.Location) (s Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("invalid schedule (%v)", r)
		}
	}()
	if loc == nil {
		loc = time.UTC
	}
	text := strings.TrimSpace(spec)
	upper := strings.ToUpper(text)
	switch {
	case text == "":
		return nil, errors.New("empty schedule")
	case strings.HasPrefix(upper, "TZ="):
		return nil, errors.New("TZ= is not allowed in a schedule; set timezone instead")
	case strings.HasPrefix(upper, "CRON_TZ="):
		return nil, errors.New("CRON_TZ= is not allowed in a schedule; set timezone instead")
	}

	if strings.HasPrefix(text, "@") {
		s, err = parseDescriptor(text, loc)
	} else {
		s, err = parseFields(text, loc)
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if next := s.Next(now); next.IsZero() || next.Sub(now) > horizon {
		return nil, errors.New("no occurrence within 5 years")
	}
	return s, nil
}

func parseDescriptor(text string, loc *time.Location) (Schedule, error) {
	words := strings.Fields(text)
	name := words[0]
	if name == "@every" {
		switch len(words) {
		case 1:
			return nil, errors.New("@every needs a duration, as in @every 10m")
		case 2:
		default:
			return nil, fmt.Errorf("@every takes one duration, found %d words", len(words)-1)
		}
		d, err := time.ParseDuration(words[1])
		switch {
		case err != nil:
			return nil, fmt.Errorf("@every: invalid duration %q", words[1])
		case d <= 0:
			return nil, fmt.Errorf("@every: duration %s is not positive", words[1])
		case d < time.Second:
			return nil, fmt.Errorf("@every: duration %s is shorter than 1s", d)
		case d%time.Second != 0:
			return nil, fmt.Errorf("@every: duration %s is not a whole number of seconds", d)
		}
		return &everySchedule{spec: text, every: d, loc: loc}, nil
	}
	fields, ok := descriptors[name]
	if !ok {
		return nil, fmt.Errorf("unknown descriptor %q; use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>", name)
	}
	if len(words) > 1 {
		return nil, fmt.Errorf("unexpected %q after %s", strings.Join(words[1:], " "), name)
	}
	return newCron(text, fields, name != "@hourly", loc)
}

// field describes one cron field for validation.
type field struct {
	name     string
	min, max uint64
	names    map[string]uint64
	nameKind string // what a name is, for messages ("month", "day")
	hint     string // appended to an out-of-range message
}

var (
	secondField = field{name: "second", max: 59}
	minuteField = field{name: "minute", max: 59}
	hourField   = field{name: "hour", max: 23}
	domField    = field{name: "day-of-month", min: 1, max: 31}
	monthField  = field{name: "month", min: 1, max: 12, nameKind: "month name", names: map[string]uint64{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}}
	dowField = field{name: "day-of-week", max: 6, nameKind: "day name", hint: " (sunday is 0)", names: map[string]uint64{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}}
)

func parseFields(text string, loc *time.Location) (Schedule, error) {
	words := strings.Fields(text)
	if len(words) != 5 && len(words) != 6 {
		return nil, fmt.Errorf("expected 5 or 6 fields, found %d", len(words))
	}
	if len(words) == 5 {
		words = append([]string{"0"}, words...)
	}
	for i, f := range []field{secondField, minuteField, hourField, domField, monthField, dowField} {
		if err := f.check(words[i]); err != nil {
			return nil, fmt.Errorf("%s field: %w", f.name, err)
		}
	}
	return newCron(text, strings.Join(words, " "), fixedHour(words[2]), loc)
}

// fixedHour reports whether an hour field names fixed hours: no "*" or "?"
// and no step.
func fixedHour(hours string) bool {
	for _, item := range strings.Split(hours, ",") {
		if strings.Contains(item, "/") || strings.HasPrefix(item, "*") || strings.HasPrefix(item, "?") {
			return false
		}
	}
	return true
}

// check validates a field with the grammar robfig/cron accepts (a little
// stricter: no empty list items, no "*-N"), to name the exact problem.
func (f field) check(text string) error {
	for _, item := range strings.Split(text, ",") {
		if item == "" {
			return errors.New("empty list item")
		}
		rng, step, hasStep := strings.Cut(item, "/")
		if hasStep {
			if strings.Contains(step, "/") {
				return fmt.Errorf("%q has more than one \"/\"", item)
			}
			if n, err := strconv.ParseUint(step, 10, 32); err != nil || n == 0 || !digits(step) {
				return fmt.Errorf("step must be a positive number, found %q", step)
			}
		}
		if rng == "*" || rng == "?" {
			continue
		}
		lo, hi, isRange := strings.Cut(rng, "-")
		if strings.HasPrefix(lo, "*") || strings.HasPrefix(lo, "?") {
			return fmt.Errorf("%q is not a valid range", rng)
		}
		if isRange && strings.Contains(hi, "-") {
			return fmt.Errorf("%q has more than one \"-\"", rng)
		}
		if isRange && (lo == "" || hi == "") {
			return fmt.Errorf("%q is not a valid range", rng)
		}
		first, err := f.value(lo)
		if err != nil {
			return err
		}
		if isRange {
			last, err := f.value(hi)
			if err != nil {
				return err
			}
			if first > last {
				return fmt.Errorf("range %s runs backwards", rng)
			}
		}
	}
	return nil
}

func (f field) value(text string) (uint64, error) {
	if n, ok := f.names[strings.ToLower(text)]; ok {
		return n, nil
	}
	if text == "" || !digits(text) {
		if f.nameKind != "" {
			return 0, fmt.Errorf("%q is not a number or %s", text, f.nameKind)
		}
		return 0, fmt.Errorf("%q is not a number", text)
	}
	n, err := strconv.ParseUint(text, 10, 32)
	if err != nil || n < f.min || n > f.max {
		return 0, fmt.Errorf("%s is out of range %d-%d%s", text, f.min, f.max, f.hint)
	}
	return n, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func newCron(text, fields string, fixed bool, loc *time.Location) (Schedule, error) {
	parsed, err := parser.Parse(fields)
	if err != nil {
		return nil, fmt.Errorf("invalid schedule (%s)", strings.ToLower(err.Error()))
	}
	ss, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("invalid schedule (unexpected %T)", parsed)
	}
	wall := *ss
	wall.Location = time.UTC
	return &cronSchedule{spec: text, wall: &wall, fixed: fixed, loc: loc}, nil
}
