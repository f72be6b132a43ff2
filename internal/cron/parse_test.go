package cron

import (
	"errors"
	"strings"
	"testing"
)

func bits(vs ...int) uint64 {
	var b uint64
	for _, v := range vs {
		b |= 1 << uint(v)
	}
	return b
}

func span(lo, hi, step int) uint64 {
	var b uint64
	for v := lo; v <= hi; v += step {
		b |= 1 << uint(v)
	}
	return b
}

var (
	allMin   = span(0, 59, 1)
	allHour  = span(0, 23, 1)
	allDom   = span(1, 31, 1)
	allMonth = span(1, 12, 1)
	allDow   = span(0, 6, 1)
)

func TestParseAccepts(t *testing.T) {
	type sets struct{ min, hour, dom, month, dow uint64 }
	every := sets{allMin, allHour, allDom, allMonth, allDow}
	with := func(f func(*sets)) sets { s := every; f(&s); return s }
	tests := []struct {
		expr string
		want sets
	}{
		{"* * * * *", every},
		{"  *  *\t* *   *  ", every},
		{"5 * * * *", with(func(s *sets) { s.min = bits(5) })},
		{"05 * * * *", with(func(s *sets) { s.min = bits(5) })},
		{"0,15,30,45 * * * *", with(func(s *sets) { s.min = bits(0, 15, 30, 45) })},
		{"10-20 * * * *", with(func(s *sets) { s.min = span(10, 20, 1) })},
		{"*/15 * * * *", with(func(s *sets) { s.min = bits(0, 15, 30, 45) })},
		{"10-30/7 * * * *", with(func(s *sets) { s.min = bits(10, 17, 24) })},
		{"50/3 * * * *", with(func(s *sets) { s.min = bits(50, 53, 56, 59) })},
		{"*/100 * * * *", with(func(s *sets) { s.min = bits(0) })},
		{"0 */5 * * *", with(func(s *sets) { s.min = bits(0); s.hour = bits(0, 5, 10, 15, 20) })},
		{"0 0 1,15,31 * *", with(func(s *sets) { s.min, s.hour, s.dom = bits(0), bits(0), bits(1, 15, 31) })},
		{"0 0 30 2 *", with(func(s *sets) { s.min, s.hour, s.dom, s.month = bits(0), bits(0), bits(30), bits(2) })},
		{"* * * JUL *", with(func(s *sets) { s.month = bits(7) })},
		{"* * * jul *", with(func(s *sets) { s.month = bits(7) })},
		{"* * * Jan-Jun/2 *", with(func(s *sets) { s.month = bits(1, 3, 5) })},
		{"* * * JAN-JUN/2 *", with(func(s *sets) { s.month = bits(1, 3, 5) })},
		{"* * * 2-DEC/5 *", with(func(s *sets) { s.month = bits(2, 7, 12) })},
		{"* * * OCT/1 *", with(func(s *sets) { s.month = bits(10, 11, 12) })},
		{"* * * * WED", with(func(s *sets) { s.dow = bits(3) })},
		{"* * * * wed", with(func(s *sets) { s.dow = bits(3) })},
		{"* * * * MON-WED", with(func(s *sets) { s.dow = bits(1, 2, 3) })},
		{"* * * * MON-FRI,SUN", with(func(s *sets) { s.dow = bits(0, 1, 2, 3, 4, 5) })},
		{"* * * * 7", with(func(s *sets) { s.dow = bits(0) })},
		{"* * * * 0", with(func(s *sets) { s.dow = bits(0) })},
		{"* * * * 5-7", with(func(s *sets) { s.dow = bits(0, 5, 6) })},
		{"* * * * FRI-7", with(func(s *sets) { s.dow = bits(0, 5, 6) })},
		{"* * * * 0-7", every},
		{"* * * * */2", with(func(s *sets) { s.dow = bits(0, 2, 4, 6) })},
		{"* * * * 1/2", with(func(s *sets) { s.dow = bits(1, 3, 5) })},
		{"* * * * 7/3", with(func(s *sets) { s.dow = bits(0) })},
		{"* * ? * MON", with(func(s *sets) { s.dow = bits(1) })},
		{"* * 1 * ?", with(func(s *sets) { s.dom = bits(1) })},
		{"59 23 31 12 6", sets{bits(59), bits(23), bits(31), bits(12), bits(6)}},
		{"@yearly", sets{bits(0), bits(0), bits(1), bits(1), allDow}},
		{"@annually", sets{bits(0), bits(0), bits(1), bits(1), allDow}},
		{"@monthly", sets{bits(0), bits(0), bits(1), allMonth, allDow}},
		{"@weekly", sets{bits(0), bits(0), allDom, allMonth, bits(0)}},
		{"@daily", sets{bits(0), bits(0), allDom, allMonth, allDow}},
		{"@midnight", sets{bits(0), bits(0), allDom, allMonth, allDow}},
		{"@hourly", sets{bits(0), allHour, allDom, allMonth, allDow}},
		{"@HOURLY", sets{bits(0), allHour, allDom, allMonth, allDow}},
	}
	for _, tc := range tests {
		e, err := Parse(tc.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.expr, err)
			continue
		}
		got := sets{e.minute, e.hour, e.dom, e.month, e.dow}
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.expr, got, tc.want)
		}
		if want := strings.Join(strings.Fields(tc.expr), " "); e.String() != want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.expr, e.String(), want)
		}
	}
}

func TestParseRestrictedDays(t *testing.T) {
	tests := []struct {
		expr           string
		domAll, dowAll bool
	}{
		{"* * * * *", true, true},
		{"* * ? * *", true, true},
		{"* * 1 * *", false, true},
		{"* * * * MON", true, false},
		{"* * 1 * MON", false, false},
		{"* * */1 * 0-7", true, true},
		{"* * 1-31 * 1-7", true, true},
		{"* * */2 * */2", false, false},
	}
	for _, tc := range tests {
		e, err := Parse(tc.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.expr, err)
		}
		if e.domAll != tc.domAll || e.dowAll != tc.dowAll {
			t.Errorf("Parse(%q): domAll=%v dowAll=%v, want %v %v", tc.expr, e.domAll, e.dowAll, tc.domAll, tc.dowAll)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		expr, field, problem string
	}{
		{"@reboot", "", "@reboot is not supported"},
		{"@REBOOT", "", "@reboot is not supported"},
		{"@every 5m", "", `unknown alias "@every"`},
		{"@daily *", "", "an alias stands alone"},
		{"", "", "expected 5 fields, got 0"},
		{"   ", "", "expected 5 fields, got 0"},
		{"* * * *", "", "expected 5 fields, got 4"},
		{"*", "", "expected 5 fields, got 1"},
		{"0 * * * * *", "", "seconds or year fields are not supported"},
		{"0 0 * * * * 2027", "", "seconds or year fields are not supported"},
		// L, W and # are operators only as whole tokens.
		{"* * L * *", FieldDayOfMonth, `the L operator is not supported ("L")`},
		{"* * l * *", FieldDayOfMonth, `the L operator is not supported ("l")`},
		{"* * LW * *", FieldDayOfMonth, `the LW operator is not supported ("LW")`},
		{"* * 15W * *", FieldDayOfMonth, `the W operator is not supported ("15W")`},
		{"* * L-3 * *", FieldDayOfMonth, `the L operator is not supported ("L")`},
		{"* * * * 5L", FieldDayOfWeek, `the L operator is not supported ("5L")`},
		{"* * * * L", FieldDayOfWeek, `the L operator is not supported ("L")`},
		{"* * * * 5#3", FieldDayOfWeek, `the # operator is not supported ("5#3")`},
		{"* * * * FRI#2", FieldDayOfWeek, `the # operator is not supported ("FRI#2")`},
		{"* * 1-5/L * *", FieldDayOfMonth, `the L operator is not supported ("L")`},
		// Names containing L or W are names, checked against the field.
		{"* * * * JUL", FieldDayOfWeek, `unknown name "JUL"`},
		{"* * * WED *", FieldMonth, `unknown name "WED"`},
		{"* * * JULY *", FieldMonth, `unknown name "JULY"`},
		{"* * * * MONDAY", FieldDayOfWeek, `unknown name "MONDAY"`},
		{"JAN * * * *", FieldMinute, `unknown name "JAN"`},
		{"* * * * W", FieldDayOfWeek, `unknown name "W"`},
		// Lists.
		{"1,,2 * * * *", FieldMinute, "empty list item"},
		{",1 * * * *", FieldMinute, "empty list item"},
		{"* 1, * * *", FieldHour, "empty list item"},
		// Ranges.
		{"30-10 * * * *", FieldMinute, `reversed range "30-10"`},
		{"* * * DEC-JAN *", FieldMonth, `reversed range "DEC-JAN"`},
		{"* * * * FRI-SUN", FieldDayOfWeek, `reversed range "FRI-SUN"`},
		{"1-2-3 * * * *", FieldMinute, `malformed range "1-2-3"`},
		{"-5 * * * *", FieldMinute, "missing value"},
		{"5- * * * *", FieldMinute, "missing value"},
		// Out of range.
		{"60 * * * *", FieldMinute, "value 60 out of range 0-59"},
		{"* 24 * * *", FieldHour, "value 24 out of range 0-23"},
		{"* * 0 * *", FieldDayOfMonth, "value 0 out of range 1-31"},
		{"* * 32 * *", FieldDayOfMonth, "value 32 out of range 1-31"},
		{"* * * 0 *", FieldMonth, "value 0 out of range 1-12"},
		{"* * * 13 *", FieldMonth, "value 13 out of range 1-12"},
		{"* * * * 8", FieldDayOfWeek, "value 8 out of range 0-7"},
		{"0-60 * * * *", FieldMinute, "value 60 out of range 0-59"},
		{"99999999999999999999 * * * *", FieldMinute, "value 99999999999999999999 out of range 0-59"},
		// Steps.
		{"*/0 * * * *", FieldMinute, "step 0 must be positive"},
		{"*/-1 * * * *", FieldMinute, "step -1 must be positive"},
		{"*/ * * * *", FieldMinute, `missing step in "*/"`},
		{"*/x * * * *", FieldMinute, `step "x" is not a number`},
		{"*/1/2 * * * *", FieldMinute, `step "1/2" is not a number`},
		// Question marks.
		{"* * ? * ?", FieldDayOfWeek, "? is allowed in day-of-month or day-of-week, not both"},
		{"? * * * *", FieldMinute, "? is only allowed in day-of-month or day-of-week"},
		{"* * * ? *", FieldMonth, "? is only allowed in day-of-month or day-of-week"},
		{"* * ?,1 * *", FieldDayOfMonth, "? must be the whole field"},
		{"* * * * ?/2", FieldDayOfWeek, "? must be the whole field"},
	}
	for _, tc := range tests {
		e, err := Parse(tc.expr)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want an error", tc.expr, e)
			continue
		}
		var ce *CronError
		if !errors.As(err, &ce) {
			t.Errorf("Parse(%q) error %T %v, want *CronError", tc.expr, err, err)
			continue
		}
		if ce.Expr != tc.expr || ce.Field != tc.field || ce.Problem != tc.problem {
			t.Errorf("Parse(%q) = {Expr:%q Field:%q Problem:%q}, want {Field:%q Problem:%q}",
				tc.expr, ce.Expr, ce.Field, ce.Problem, tc.field, tc.problem)
		}
	}
}

func TestCronErrorMessage(t *testing.T) {
	_, err := Parse("61 * * * *")
	if got, want := err.Error(), `invalid cron expression "61 * * * *": minute field: value 61 out of range 0-59`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	_, err = Parse("@reboot")
	if got, want := err.Error(), `invalid cron expression "@reboot": @reboot is not supported`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
