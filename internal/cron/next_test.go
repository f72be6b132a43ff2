package cron

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// nextSeq returns the first n occurrences after start.
func nextSeq(t *testing.T, expr string, start time.Time, loc *time.Location, n int) []string {
	t.Helper()
	e, err := Parse(expr)
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	var out []string
	at := start
	for range n {
		next, ok := e.Next(at, loc)
		if !ok {
			out = append(out, "none")
			break
		}
		if next.Location() != time.UTC {
			t.Errorf("Next(%q) returned location %v, want UTC", expr, next.Location())
		}
		out = append(out, next.Format(time.RFC3339))
		at = next
	}
	return out
}

func TestNext(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	berlin := mustLoad(t, "Europe/Berlin")
	lordHowe := mustLoad(t, "Australia/Lord_Howe")
	tests := []struct {
		name  string
		expr  string
		start string
		loc   *time.Location
		want  []string
	}{
		{"every minute truncates seconds", "* * * * *", "2026-01-01T10:00:30.5Z", time.UTC,
			[]string{"2026-01-01T10:01:00Z", "2026-01-01T10:02:00Z"}},
		{"every minute strictly after", "* * * * *", "2026-01-01T10:00:00Z", time.UTC,
			[]string{"2026-01-01T10:01:00Z"}},
		{"nil location is UTC", "0 12 * * *", "2026-01-01T12:00:00Z", nil,
			[]string{"2026-01-02T12:00:00Z"}},
		{"minute step", "*/15 * * * *", "2026-01-01T10:07:00Z", time.UTC,
			[]string{"2026-01-01T10:15:00Z", "2026-01-01T10:30:00Z", "2026-01-01T10:45:00Z", "2026-01-01T11:00:00Z"}},
		{"range step across days", "0 22-23,1/12 * * *", "2026-01-01T20:00:00Z", time.UTC,
			[]string{"2026-01-01T22:00:00Z", "2026-01-01T23:00:00Z", "2026-01-02T01:00:00Z", "2026-01-02T13:00:00Z", "2026-01-02T22:00:00Z"}},
		{"month names and year wrap", "0 0 1 JAN-JUN/2 *", "2026-05-01T00:00:00Z", time.UTC,
			[]string{"2027-01-01T00:00:00Z", "2027-03-01T00:00:00Z", "2027-05-01T00:00:00Z", "2028-01-01T00:00:00Z"}},
		{"day-of-week only (AND with *)", "0 9 * * FRI", "2026-01-01T00:00:00Z", time.UTC,
			[]string{"2026-01-02T09:00:00Z", "2026-01-09T09:00:00Z", "2026-01-16T09:00:00Z"}},
		{"day-of-month only", "0 9 13 * ?", "2026-01-01T00:00:00Z", time.UTC,
			[]string{"2026-01-13T09:00:00Z", "2026-02-13T09:00:00Z"}},
		{"day-of-month OR day-of-week", "0 9 13 * FRI", "2026-01-01T00:00:00Z", time.UTC,
			[]string{"2026-01-02T09:00:00Z", "2026-01-09T09:00:00Z", "2026-01-13T09:00:00Z", "2026-01-16T09:00:00Z"}},
		{"Sunday as 7", "0 0 * * 7", "2026-01-01T00:00:00Z", time.UTC,
			[]string{"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"}},
		{"local zone", "0 9 * * MON-FRI", "2026-01-02T15:00:00Z", ny,
			[]string{"2026-01-05T14:00:00Z", "2026-01-06T14:00:00Z"}},
		{"leap day", "0 0 29 2 *", "2026-03-01T00:00:00Z", time.UTC,
			[]string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"leap day across 2100", "0 0 29 2 *", "2096-03-01T00:00:00Z", time.UTC,
			[]string{"2104-02-29T00:00:00Z"}},
		{"impossible Feb 30", "0 0 30 2 *", "2026-01-01T00:00:00Z", time.UTC,
			[]string{"none"}},
		{"impossible Apr 31", "0 0 31 4 *", "2026-01-01T00:00:00Z", berlin,
			[]string{"none"}},
		{"Feb 30 OR Monday", "0 0 30 2 MON", "2026-01-01T00:00:00Z", time.UTC,
			[]string{"2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"}},
		{"alias", "@monthly", "2026-01-15T00:00:00Z", berlin,
			[]string{"2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z"}},

		// America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
		{"NY gap skips the day", "30 2 * * *", "2026-03-07T12:00:00-05:00", ny,
			[]string{"2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"}},
		{"NY gap every 30 minutes", "*/30 * * * *", "2026-03-08T06:00:00Z", ny,
			[]string{"2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"}},
		{"NY fold fires once at the first 1:30", "30 1 * * *", "2026-10-31T12:00:00-04:00", ny,
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"NY fold from inside the second pass", "30 1 * * *", "2026-11-01T06:10:00Z", ny,
			[]string{"2026-11-02T06:30:00Z"}},
		{"NY fold every 30 minutes skips the repeated hour", "*/30 * * * *", "2026-11-01T04:45:00Z", ny,
			[]string{"2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:30:00Z"}},

		// Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
		{"Berlin gap skips the day", "30 2 * * *", "2026-03-28T12:00:00Z", berlin,
			[]string{"2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"}},
		{"Berlin fold fires once at the first 2:30", "30 2 * * *", "2026-10-24T12:00:00Z", berlin,
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"Berlin hourly across the fold", "0 * * * *", "2026-10-24T23:30:00Z", berlin,
			[]string{"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}},

		// Beyond the zone database's explicit transitions (rules, not a
		// table), across the year end where Time.ZoneBounds reports an
		// artificial bound.
		{"Berlin new year 2061", "0 0 1 1 *", "2060-12-31T12:00:00Z", berlin,
			[]string{"2060-12-31T23:00:00Z", "2061-12-31T23:00:00Z"}},
		{"Berlin every minute at the 2061 year end", "* * * * *", "2060-12-31T22:58:00Z", berlin,
			[]string{"2060-12-31T22:59:00Z", "2060-12-31T23:00:00Z", "2060-12-31T23:01:00Z"}},
		{"Berlin fold in 2099", "30 2 * * *", "2099-10-24T12:00:00Z", berlin,
			[]string{"2099-10-25T00:30:00Z", "2099-10-26T01:30:00Z"}},
		{"NY gap in 2099", "30 2 * * *", "2099-03-07T12:00:00Z", ny,
			[]string{"2099-03-09T06:30:00Z"}},

		// Australia/Lord_Howe shifts by 30 minutes: 2026-04-05 02:00 (+11) -> 01:30 (+10:30);
		// 2026-10-04 02:00 (+10:30) -> 02:30 (+11).
		{"Lord Howe gap", "15 2 * * *", "2026-10-03T00:00:00Z", lordHowe,
			[]string{"2026-10-04T15:15:00Z", "2026-10-05T15:15:00Z"}},
		{"Lord Howe after the gap", "45 2 * * *", "2026-10-03T00:00:00Z", lordHowe,
			[]string{"2026-10-03T15:45:00Z", "2026-10-04T15:45:00Z"}},
		{"Lord Howe fold", "45 1 * * *", "2026-04-04T00:00:00Z", lordHowe,
			[]string{"2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := nextSeq(t, tc.expr, utc(tc.start), tc.loc, len(tc.want))
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("Next(%q) from %s in %v:\n got  %v\n want %v", tc.expr, tc.start, tc.loc, got, tc.want)
			}
		})
	}
}

// bruteNext is the reference: it walks instant by instant, one minute at a
// time, and takes the first minute whose wall clock matches and has not
// been shown by the clock earlier (the first occurrence in a fold).
func bruteNext(e *Expr, after time.Time, loc *time.Location, horizon time.Duration) (time.Time, bool) {
	start := after.Truncate(time.Minute).Add(time.Minute)
	for t := start; t.Before(start.Add(horizon)); t = t.Add(time.Minute) {
		lt := t.In(loc)
		if !wallMatches(e, lt) {
			continue
		}
		if seenEarlier(t, lt, loc) {
			continue
		}
		return t, true
	}
	return time.Time{}, false
}

func wallMatches(e *Expr, lt time.Time) bool {
	has := func(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }
	if !has(e.minute, lt.Minute()) || !has(e.hour, lt.Hour()) || !has(e.month, int(lt.Month())) {
		return false
	}
	dom, dow := has(e.dom, lt.Day()), has(e.dow, int(lt.Weekday()))
	if e.dom != allDom && e.dow != allDow {
		return dom || dow
	}
	return dom && dow
}

func seenEarlier(t, lt time.Time, loc *time.Location) bool {
	for d := time.Minute; d <= 3*time.Hour; d += time.Minute {
		p := t.Add(-d).In(loc)
		if p.Year() == lt.Year() && p.YearDay() == lt.YearDay() && p.Hour() == lt.Hour() && p.Minute() == lt.Minute() {
			return true
		}
	}
	return false
}

func randomField(r *rand.Rand, lo, hi int, names []string) string {
	value := func() string {
		v := lo + r.IntN(hi-lo+1)
		if names != nil && r.IntN(3) == 0 {
			return names[v-lo]
		}
		return strconv.Itoa(v)
	}
	n := 1 + r.IntN(3)
	items := make([]string, 0, n)
	for range n {
		switch r.IntN(6) {
		case 0:
			items = append(items, "*")
		case 1:
			items = append(items, fmt.Sprintf("*/%d", 1+r.IntN(hi-lo+1)))
		case 2:
			a, b := lo+r.IntN(hi-lo+1), lo+r.IntN(hi-lo+1)
			items = append(items, fmt.Sprintf("%d-%d", min(a, b), max(a, b)))
		case 3:
			a, b := lo+r.IntN(hi-lo+1), lo+r.IntN(hi-lo+1)
			items = append(items, fmt.Sprintf("%d-%d/%d", min(a, b), max(a, b), 1+r.IntN(5)))
		case 4:
			items = append(items, fmt.Sprintf("%s/%d", value(), 1+r.IntN(7)))
		default:
			items = append(items, value())
		}
	}
	return strings.Join(items, ",")
}

func randomExpr(r *rand.Rand) string {
	months := []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}
	days := []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
	hour := randomField(r, 0, 23, nil)
	if r.IntN(2) == 0 {
		// Bias towards the hours where clocks change.
		hour = randomField(r, 0, 3, nil)
	}
	month := "*"
	if r.IntN(4) == 0 {
		month = randomField(r, 1, 12, months)
	}
	dom, dow := "*", "*"
	switch r.IntN(4) {
	case 0:
		dom = randomField(r, 1, 31, nil)
	case 1:
		dow = randomField(r, 0, 6, days)
	case 2:
		dom, dow = randomField(r, 1, 31, nil), randomField(r, 0, 7, nil)
	}
	return strings.Join([]string{randomField(r, 0, 59, nil), hour, dom, month, dow}, " ")
}

// transitions returns the instants in year at which loc changes its offset,
// or the middle of the year when it has none.
func transitions(loc *time.Location, year int) []time.Time {
	var out []time.Time
	_, prev := time.Date(year, 1, 1, 0, 0, 0, 0, loc).Zone()
	for t := time.Date(year, 1, 1, 0, 0, 0, 0, loc); t.Year() == year; t = t.Add(time.Hour) {
		if _, off := t.Zone(); off != prev {
			out = append(out, t)
			prev = off
		}
	}
	if len(out) == 0 {
		out = append(out, time.Date(year, 7, 1, 0, 0, 0, 0, time.UTC))
	}
	return out
}

// TestNextMatchesBruteForce compares Next with the minute-by-minute
// reference on random expressions and random instants within a few days of
// the clock changes of several zones, in years inside and beyond the
// explicit transitions of the zone database, within a fixed time budget.
func TestNextMatchesBruteForce(t *testing.T) {
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kolkata", "America/Sao_Paulo"}
	years := []int{1995, 2026, 2027, 2028, 2061, 2099}
	const horizon = 45 * 24 * time.Hour
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	budget := time.Now().Add(2 * time.Second)
	cases := 0
	for cases < 30 || (time.Now().Before(budget) && cases < 2000) {
		zone := zones[r.IntN(len(zones))]
		loc := mustLoad(t, zone)
		ts := transitions(loc, years[r.IntN(len(years))])
		base := ts[r.IntN(len(ts))]
		after := base.Add(time.Duration(r.Int64N(int64(72*time.Hour))) - 60*time.Hour)
		expr := randomExpr(r)
		e, err := Parse(expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", expr, err)
		}
		got, gotOK := e.Next(after, loc)
		want, wantOK := bruteNext(e, after, loc, horizon)
		cases++
		switch {
		case wantOK && (!gotOK || !got.Equal(want)):
			t.Fatalf("Next(%q) after %s in %s = %s %v, brute force %s", expr, after.Format(time.RFC3339), zone, got, gotOK, want)
		case !wantOK && gotOK && got.Before(after.Truncate(time.Minute).Add(time.Minute+horizon)):
			t.Fatalf("Next(%q) after %s in %s = %s, brute force found none within the horizon", expr, after.Format(time.RFC3339), zone, got)
		}
	}
	t.Logf("%d random cases", cases)
}

func BenchmarkNext(b *testing.B) {
	ny := mustLoad(b, "America/New_York")
	start := utc("2026-03-07T12:34:56Z")
	for _, expr := range []string{"* * * * *", "30 2 * * *", "0 0 29 2 *", "0 0 30 2 *", "0 9 13 * FRI"} {
		e, err := Parse(expr)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(expr, func(b *testing.B) {
			for b.Loop() {
				e.Next(start, ny)
			}
		})
	}
}
