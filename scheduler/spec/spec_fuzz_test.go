package spec

import (
	"testing"
	"time"
)

var fuzzZones = []string{"UTC", "Europe/Oslo", "America/Los_Angeles", "Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Apia"}

// FuzzParse: Parse never panics; an accepted schedule's Next is strictly
// increasing, and Between agrees with walking Next.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"30 2 * * *", "0 1 * * *", "*/15 * * * *", "0 */2 * * *", "0 0 29 2 *", "0 0 30 2 *",
		"*/20 * * * * *", "@daily", "@hourly", "@every 10m", "@every 1s", "TZ=UTC 0 0 * * *",
		"TZ=Europe/Oslo", "0 0 1-31/2 * mon", "1,,2 * * * *", "5/7 * * * *", "* * ? * *",
		"0 0 * JAN-dec SUN", "*-3 * * * *", "@every 1h30m", "0 0 31 4 *", "59 23 31 12 *",
	} {
		f.Add(s, uint8(1), int64(1_743_296_400)) // 2025-03-30T01:00:00Z, the Oslo spring jump
		f.Add(s, uint8(2), int64(1_762_074_000)) // 2025-11-02T09:00:00Z, the LA fall-back
	}
	f.Fuzz(func(t *testing.T, text string, zone uint8, unix int64) {
		loc, err := time.LoadLocation(fuzzZones[int(zone)%len(fuzzZones)])
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(text, loc)
		if err != nil {
			if s != nil {
				t.Fatalf("Parse(%q) returned a schedule with error %v", text, err)
			}
			return
		}
		// Between 1990 and 2080, away from the 2100 leap-year gap.
		start := time.Unix(631_152_000+mod(unix, 2_840_000_000), 0).In(loc)
		at := start
		for i := 0; i < 50; i++ {
			next := s.Next(at)
			if next.IsZero() {
				break
			}
			if !next.After(at) {
				t.Fatalf("Parse(%q).Next(%s) = %s, not after", text, at, next)
			}
			at = next
		}
		// Between over two days agrees with walking Next.
		through := start.Add(48 * time.Hour)
		var walked []time.Time
		for x := s.Next(start); !x.IsZero() && !x.After(through) && len(walked) <= 5000; x = s.Next(x) {
			walked = append(walked, x)
		}
		if len(walked) > 5000 {
			return
		}
		tail, count := Between(s, start, through, 3)
		if count != len(walked) {
			t.Fatalf("Parse(%q): Between counted %d slots in (%s, %s], Next walked %d", text, count, start, through, len(walked))
		}
		want := walked[max(0, len(walked)-3):]
		if len(tail) != len(want) {
			t.Fatalf("Parse(%q): Between tail %v, want %v", text, tail, want)
		}
		for i := range want {
			if !tail[i].Equal(want[i]) {
				t.Fatalf("Parse(%q): Between tail %v, want %v", text, tail, want)
			}
		}
	})
}

func mod(a, b int64) int64 {
	if m := a % b; m >= 0 {
		return m
	}
	return a%b + b
}
