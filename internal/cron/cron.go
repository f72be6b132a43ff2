// Package cron parses five-field cron expressions and computes their next
// occurrence in a time zone. It is the parser behind cron schedules; it has
// no third-party dependency.
//
// # Grammar
//
// An expression is five whitespace-separated fields:
//
//	minute        0-59
//	hour          0-23
//	day-of-month  1-31
//	month         1-12 or JAN-DEC
//	day-of-week   0-7 or SUN-SAT (0 and 7 are both Sunday)
//
// Each field is a comma-separated list of items. An item is one of
//
//	form     meaning
//	*        every value of the field
//	N        one value
//	A-B      A to B inclusive (A <= B)
//	*/S      every S-th value from the field's minimum
//	A-B/S    every S-th value from A to B
//	A/S      every S-th value from A to the field's maximum
//
// `?` may replace the whole day-of-month or the whole day-of-week field (not
// both) and means the same as `*`. Names (JAN-DEC in the month field,
// SUN-SAT in the day-of-week field) are case-insensitive and may appear
// wherever a number may: `JUL`, `WED`, `MON-WED`, `JAN-JUN/2`. In the
// day-of-week field the implicit maximum (for `*/S` and `A/S`) is 6; 7 is
// accepted only when written, so SUN is 0 and `FRI-SUN` is a reversed range
// (write `FRI-7` or `FRI,SAT,SUN`).
//
// The aliases @yearly and @annually (0 0 1 1 *), @monthly (0 0 1 * *),
// @weekly (0 0 * * 0), @daily and @midnight (0 0 * * *) and @hourly
// (0 * * * *) stand for a whole expression.
//
// A field is restricted when its values do not cover its whole range. When
// both day-of-month and day-of-week are restricted, a day matches when
// either matches (`0 0 1 * MON` is the first of the month and every
// Monday); otherwise a day matches when both do.
//
// Parse rejects, with a *CronError: @reboot and unknown aliases; a count of
// fields other than five (six or more are reported as unsupported seconds
// or year fields); the L, W and # operators (a token `L`, `nL`, `LW`, `nW`,
// or any `#`; names such as JUL and WED are not operators); empty list
// items; reversed ranges; values out of the field's range; unknown names;
// steps that are not positive integers; `?` in both day fields, in another
// field, or inside a list.
//
// # Next occurrence and daylight saving time
//
// Expr.Next matches local wall-clock minutes in a location. A local time
// that does not exist because the clocks jump forward (the spring-forward
// gap) is skipped, not moved: `30 2 * * *` in America/New_York does not fire
// on the day the clocks go from 2:00 to 3:00. A local time that occurs
// twice because the clocks fall back fires once, at its first occurrence
// (the earlier UTC instant). The search covers at most 8×366 days of local
// dates after the starting instant, long enough for any February 29, and
// reports false when nothing matches in that span (`0 0 30 2 *`).
package cron

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SearchDays bounds how many local days Next searches past its starting
// instant: eight years of leap years, so February 29 is always found even
// across a century year that is not a leap year.
const SearchDays = 8 * 366

// Field names used in CronError.Field.
const (
	FieldMinute     = "minute"
	FieldHour       = "hour"
	FieldDayOfMonth = "day-of-month"
	FieldMonth      = "month"
	FieldDayOfWeek  = "day-of-week"
)

// CronError reports an expression Parse rejects. Field names the field at
// fault (one of the Field constants) or is empty when the problem is the
// expression as a whole.
type CronError struct {
	Expr    string
	Field   string
	Problem string
}

// Error implements error.
func (e *CronError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("invalid cron expression %q: %s", e.Expr, e.Problem)
	}
	return fmt.Sprintf("invalid cron expression %q: %s field: %s", e.Expr, e.Field, e.Problem)
}

// Expr is a parsed cron expression. It is immutable and safe for concurrent
// use.
type Expr struct {
	src    string
	minute uint64 // bits 0-59
	hour   uint64 // bits 0-23
	dom    uint64 // bits 1-31
	month  uint64 // bits 1-12
	dow    uint64 // bits 0-6, Sunday = 0
	// domAll and dowAll record whether the day fields cover their whole
	// range; when both are restricted, days match by OR.
	domAll, dowAll bool
}

// String returns the expression as written, with runs of white space
// collapsed to one space.
func (e *Expr) String() string { return e.src }

type fieldSpec struct {
	name     string
	min, max int // range accepted when written
	implMax  int // maximum implied by * and A/S
	names    map[string]int
}

var (
	monthNames = map[string]int{
		"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
		"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12,
	}
	dayNames = map[string]int{
		"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6,
	}
	specs = [5]fieldSpec{
		{name: FieldMinute, min: 0, max: 59, implMax: 59},
		{name: FieldHour, min: 0, max: 23, implMax: 23},
		{name: FieldDayOfMonth, min: 1, max: 31, implMax: 31},
		{name: FieldMonth, min: 1, max: 12, implMax: 12, names: monthNames},
		{name: FieldDayOfWeek, min: 0, max: 7, implMax: 6, names: dayNames},
	}
	aliases = map[string]string{
		"@yearly":   "0 0 1 1 *",
		"@annually": "0 0 1 1 *",
		"@monthly":  "0 0 1 * *",
		"@weekly":   "0 0 * * 0",
		"@daily":    "0 0 * * *",
		"@midnight": "0 0 * * *",
		"@hourly":   "0 * * * *",
	}
)

// Parse parses a five-field cron expression or an alias. Every rejection
// is a *CronError.
func Parse(expr string) (*Expr, error) {
	fields := strings.Fields(expr)
	src := strings.Join(fields, " ")
	fail := func(field, problem string) (*Expr, error) {
		return nil, &CronError{Expr: expr, Field: field, Problem: problem}
	}
	if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
		name := strings.ToLower(fields[0])
		if name == "@reboot" {
			return fail("", "@reboot is not supported")
		}
		body, ok := aliases[name]
		if !ok {
			return fail("", fmt.Sprintf("unknown alias %q", fields[0]))
		}
		if len(fields) > 1 {
			return fail("", "an alias stands alone")
		}
		fields = strings.Fields(body)
	}
	switch {
	case len(fields) > 5:
		return fail("", "seconds or year fields are not supported")
	case len(fields) < 5:
		return fail("", fmt.Sprintf("expected 5 fields, got %d", len(fields)))
	}
	if fields[2] == "?" && fields[4] == "?" {
		return fail(FieldDayOfWeek, "? is allowed in day-of-month or day-of-week, not both")
	}
	var sets [5]uint64
	for i, f := range fields {
		set, problem := parseField(f, specs[i], i == 2 || i == 4)
		if problem != "" {
			return fail(specs[i].name, problem)
		}
		sets[i] = set
	}
	e := &Expr{src: src, minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4]}
	if e.dow&(1<<7) != 0 {
		e.dow = e.dow&^(1<<7) | 1
	}
	e.domAll = e.dom == bitRange(1, 31)
	e.dowAll = e.dow == bitRange(0, 6)
	return e, nil
}

func bitRange(lo, hi int) uint64 {
	var b uint64
	for v := lo; v <= hi; v++ {
		b |= 1 << uint(v)
	}
	return b
}

// parseField returns the field's set of values, or a problem description.
func parseField(f string, spec fieldSpec, questionOK bool) (uint64, string) {
	if strings.Contains(f, "?") {
		switch {
		case !questionOK:
			return 0, "? is only allowed in day-of-month or day-of-week"
		case f != "?":
			return 0, "? must be the whole field"
		}
		return bitRange(spec.min, spec.implMax), ""
	}
	var set uint64
	for _, item := range strings.Split(f, ",") {
		bits, problem := parseItem(item, spec)
		if problem != "" {
			return 0, problem
		}
		set |= bits
	}
	return set, ""
}

func parseItem(item string, spec fieldSpec) (uint64, string) {
	if item == "" {
		return 0, "empty list item"
	}
	if strings.Contains(item, "#") {
		return 0, fmt.Sprintf("the # operator is not supported (%q)", item)
	}
	rangePart, stepPart, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		switch {
		case stepPart == "":
			return 0, fmt.Sprintf("missing step in %q", item)
		case operatorProblem(stepPart) != "":
			return 0, operatorProblem(stepPart)
		case !isSignedDigits(stepPart):
			return 0, fmt.Sprintf("step %q is not a number", stepPart)
		case strings.HasPrefix(stepPart, "-"):
			return 0, fmt.Sprintf("step %s must be positive", stepPart)
		}
		n, err := strconv.Atoi(stepPart)
		if err != nil || n > 1<<16 {
			// A step beyond any field's range selects only the start, so
			// values too large for an int mean the same.
			n = 1 << 16
		}
		if n == 0 {
			return 0, fmt.Sprintf("step %s must be positive", stepPart)
		}
		step = n
	}
	var lo, hi int
	if rangePart == "*" {
		lo, hi = spec.min, spec.implMax
	} else {
		if strings.Count(rangePart, "-") > 1 {
			return 0, fmt.Sprintf("malformed range %q", rangePart)
		}
		loText, hiText, isRange := strings.Cut(rangePart, "-")
		var problem string
		if lo, problem = parseValue(loText, spec); problem != "" {
			return 0, problem
		}
		switch {
		case isRange:
			if hi, problem = parseValue(hiText, spec); problem != "" {
				return 0, problem
			}
			if lo > hi {
				return 0, fmt.Sprintf("reversed range %q", rangePart)
			}
		case hasStep:
			hi = spec.implMax
			if lo > hi {
				// Only day-of-week 7 can get here: 7/S is Sunday alone.
				hi = lo
			}
		default:
			hi = lo
		}
	}
	var bits uint64
	for v := lo; v <= hi; v += step {
		bits |= 1 << uint(v)
	}
	return bits, ""
}

func isSignedDigits(s string) bool {
	s = strings.TrimPrefix(s, "-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// operatorProblem recognises the L and W operators by whole token, so that
// names containing those letters (JUL, WED) are never mistaken for them.
func operatorProblem(tok string) string {
	u := strings.ToUpper(tok)
	switch {
	case u == "L" || u == "LW":
		return fmt.Sprintf("the %s operator is not supported (%q)", u, tok)
	case len(u) > 1 && (u[len(u)-1] == 'L' || u[len(u)-1] == 'W') && strings.Trim(u[:len(u)-1], "0123456789") == "":
		return fmt.Sprintf("the %c operator is not supported (%q)", u[len(u)-1], tok)
	}
	return ""
}

func parseValue(tok string, spec fieldSpec) (int, string) {
	if tok == "" {
		return 0, "missing value"
	}
	if p := operatorProblem(tok); p != "" {
		return 0, p
	}
	if strings.Trim(tok, "0123456789") == "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < spec.min || n > spec.max {
			return 0, fmt.Sprintf("value %s out of range %d-%d", tok, spec.min, spec.max)
		}
		return n, ""
	}
	if v, ok := spec.names[strings.ToUpper(tok)]; ok {
		return v, ""
	}
	return 0, fmt.Sprintf("unknown name %q", tok)
}

// Next returns the first matching local minute strictly after after
// (seconds and below ignored), searched in loc (nil means UTC), in UTC.
// It reports false when nothing matches within SearchDays local days.
func (e *Expr) Next(after time.Time, loc *time.Location) (time.Time, bool) {
	if loc == nil {
		loc = time.UTC
	}
	after = after.Truncate(time.Minute)
	la := after.In(loc)
	// Wall clock of the starting instant, as a UTC-labelled time so that
	// date arithmetic on it is plain calendar arithmetic.
	wa := time.Date(la.Year(), la.Month(), la.Day(), la.Hour(), la.Minute(), 0, 0, time.UTC)
	startDay := time.Date(wa.Year(), wa.Month(), wa.Day(), 0, 0, 0, 0, time.UTC)
	endDay := startDay.AddDate(0, 0, SearchDays)

	for day := startDay; !day.After(endDay); {
		if e.month&(1<<uint(day.Month())) == 0 {
			day = time.Date(day.Year(), day.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if e.dayMatches(day) {
			if t, ok := e.firstInDay(day, wa, after, loc); ok {
				return t, true
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return time.Time{}, false
}

func (e *Expr) dayMatches(day time.Time) bool {
	domOK := e.dom&(1<<uint(day.Day())) != 0
	dowOK := e.dow&(1<<uint(day.Weekday())) != 0
	if !e.domAll && !e.dowAll {
		return domOK || dowOK
	}
	return domOK && dowOK
}

// firstInDay returns the earliest matching instant after after whose wall
// clock falls on day (a UTC-labelled midnight). Wall times later in the day
// have later first occurrences, so the first hit in wall order is the
// earliest instant.
func (e *Expr) firstInDay(day, wa, after time.Time, loc *time.Location) (time.Time, bool) {
	h0 := 0
	if day.Before(wa) {
		// The starting day: skip straight to the starting wall hour.
		h0 = wa.Hour()
	}
	for h := h0; h < 24; h++ {
		if e.hour&(1<<uint(h)) == 0 {
			continue
		}
		for m := 0; m < 60; m++ {
			if e.minute&(1<<uint(m)) == 0 {
				continue
			}
			wall := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
			if !wall.After(wa) {
				continue
			}
			t, ok := firstInstant(wall, loc)
			if ok && t.After(after) {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// firstInstant maps a wall-clock time (UTC-labelled) to the earliest
// instant at which loc shows it, or false when loc skips it. It does not
// trust time.Date, whose choice inside a fold is unspecified, nor
// Time.ZoneBounds, which beyond the zone database's explicit transitions
// reports artificial bounds at year ends that do not always advance.
// Instead it tries every offset loc uses within 18 hours of the wall time
// (no offset exceeds 16 hours, and zones do not change offsets twice within
// nine hours): the instant wall-offset is valid when loc uses that offset
// there.
func firstInstant(wall time.Time, loc *time.Location) (time.Time, bool) {
	var offsets [5]int
	n := 0
	for _, d := range [...]time.Duration{-18, -9, 0, 9, 18} {
		_, off := wall.Add(d * time.Hour).In(loc).Zone()
		if !slices.Contains(offsets[:n], off) {
			offsets[n] = off
			n++
		}
	}
	var best time.Time
	found := false
	for _, off := range offsets[:n] {
		cand := wall.Add(-time.Duration(off) * time.Second)
		if _, o := cand.In(loc).Zone(); o != off {
			continue
		}
		if !found || cand.Before(best) {
			best, found = cand, true
		}
	}
	return best.UTC(), found
}
