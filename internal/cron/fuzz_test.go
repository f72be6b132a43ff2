package cron

import (
	"errors"
	"testing"
	"time"
)

var fuzzZones = []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kolkata"}

// FuzzParse checks that Parse never panics, that every rejection is a
// *CronError, that String parses back to the same expression, and that Next
// moves strictly forward: Next(Next(t)) > Next(t) > t.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"* * * * *", "*/15 2 * * *", "30 2 * * *", "30 1 * * *", "0 0 29 2 *", "0 0 30 2 *",
		"0 9 13 * FRI", "0 0 1 JAN-JUN/2 MON-WED", "* * ? * 7", "@hourly", "@reboot", "L * * * *",
		"* * 15W * *", "* * * * 5#3", "* * * JUL WED", "1,,2 * * * *", "*/0 * * * *", "0 * * * * *",
	} {
		f.Add(s, int64(1793491200), uint8(0)) // 2026-11-01T00:00:00Z
		f.Add(s, int64(1774828800), uint8(2)) // 2026-03-30T00:00:00Z
		f.Add(s, int64(1772928000), uint8(1)) // 2026-03-08T00:00:00Z
		f.Add(s, int64(1775318400), uint8(3)) // 2026-04-04T16:00:00Z
	}
	locs := make([]*time.Location, len(fuzzZones))
	for i, name := range fuzzZones {
		locs[i] = mustLoad(f, name)
	}
	// Keep instants within years where Next's eight-year search and the
	// time package's calendar arithmetic stay meaningful.
	const minUnix, maxUnix = -2208988800, 7258118400 // 1900 .. 2200
	f.Fuzz(func(t *testing.T, expr string, unix int64, zone uint8) {
		e, err := Parse(expr)
		if err != nil {
			var ce *CronError
			if !errors.As(err, &ce) {
				t.Fatalf("Parse(%q) error %T, want *CronError", expr, err)
			}
			if ce.Problem == "" || err.Error() == "" {
				t.Fatalf("Parse(%q): empty problem", expr)
			}
			return
		}
		again, err := Parse(e.String())
		if err != nil {
			t.Fatalf("Parse(String()) of %q: %v", expr, err)
		}
		if *again != *e {
			t.Fatalf("Parse(String()) of %q differs: %+v vs %+v", expr, again, e)
		}
		if unix < minUnix || unix > maxUnix {
			unix = minUnix + (unix%(maxUnix-minUnix)+(maxUnix-minUnix))%(maxUnix-minUnix)
		}
		loc := locs[int(zone)%len(locs)]
		start := time.Unix(unix, 0)
		n1, ok := e.Next(start, loc)
		if !ok {
			return
		}
		if !n1.After(start) {
			t.Fatalf("Next(%q, %s) = %s, not after the start", expr, start.UTC(), n1)
		}
		if loc == time.UTC && n1.Second() != 0 {
			t.Fatalf("Next(%q, %s) = %s, not on a minute", expr, start.UTC(), n1)
		}
		n2, ok := e.Next(n1, loc)
		if ok && !n2.After(n1) {
			t.Fatalf("Next(%q) not monotonic: Next(%s) = %s", expr, n1, n2)
		}
	})
}
