package backendtest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// memoryPausesSchedules makes a memory store without driver.SchedulePauser
// fail the Schedules group instead of skipping it (the memory store
// implements the capability).
const memoryPausesSchedules = true

// firstPartyPausers names (by Backend.Name) the stores of this module that
// must keep schedule pauses: for them a missing driver.SchedulePauser fails
// the Schedules group instead of skipping it.
var firstPartyPausers = map[string]bool{
	"sqlite":   true,
	"postgres": true,
	"redis":    true,
	"memory":   memoryPausesSchedules,
}

// testSchedules covers the optional driver.SchedulePauser: the schedules
// paused fleet-wide.
func testSchedules(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"PauseAndList", schedulesPauseAndList},
		{"PauseAgainKeepsSince", schedulesPauseAgain},
		{"Resume", schedulesResume},
		{"UnicodeNamesInByteOrder", schedulesUnicode},
		{"InvalidNamesRefused", schedulesInvalid},
	})
}

// pauser returns b's SchedulePauser; a store that lacks it skips the case,
// unless it is one of this module's stores, which fails it.
func pauser(t *testing.T, b driver.Backend) driver.SchedulePauser {
	t.Helper()
	p, ok := b.(driver.SchedulePauser)
	if !ok && firstPartyPausers[b.Name()] {
		t.Fatalf("%s does not implement driver.SchedulePauser; every store of this module must", b.Name())
	}
	if !ok {
		t.Skipf("%s does not implement driver.SchedulePauser", b.Name())
	}
	return p
}

func pauseSchedule(t *testing.T, p driver.SchedulePauser, name string) {
	t.Helper()
	wantNoErr(t, fmt.Sprintf("PauseSchedule(%q)", name), p.PauseSchedule(t.Context(), name))
}

func pausedSchedules(t *testing.T, p driver.SchedulePauser) []driver.SchedulePause {
	t.Helper()
	ps, err := p.PausedSchedules(t.Context())
	wantNoErr(t, "PausedSchedules", err)
	if ps == nil {
		t.Errorf("PausedSchedules returned nil; want an empty, non-nil list when nothing is paused")
	}
	return ps
}

func pauseNames(ps []driver.SchedulePause) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// pauseOf returns the pause of name in ps.
func pauseOf(t *testing.T, ps []driver.SchedulePause, name string) driver.SchedulePause {
	t.Helper()
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("PausedSchedules = %q; %q is not listed", pauseNames(ps), name)
	return driver.SchedulePause{}
}

// Pauses are listed by name with Since stamped by the store's clock.
func schedulesPauseAndList(t *testing.T, b driver.Backend) {
	p := pauser(t, b)
	if ps := pausedSchedules(t, p); len(ps) != 0 {
		t.Fatalf("nothing paused, PausedSchedules = %q", pauseNames(ps))
	}
	pauseSchedule(t, p, "report:nightly")
	pauseSchedule(t, p, "cleanup")
	ps := pausedSchedules(t, p)
	if got := pauseNames(ps); !slices.Equal(got, []string{"cleanup", "report:nightly"}) {
		t.Fatalf("PausedSchedules = %q; want [cleanup report:nightly]", got)
	}
	for _, x := range ps {
		if d := time.Since(x.Since).Abs(); x.Since.IsZero() || d > clockTolerance {
			t.Errorf("%q Since = %v; want the store's now (within %s of %v)", x.Name, x.Since, clockTolerance, time.Now())
		}
		if x.Since.Location() != time.UTC {
			t.Errorf("%q Since = %v; want UTC", x.Name, x.Since)
		}
	}
}

// Pausing a paused schedule keeps the Since of the first pause, even once
// the store's clock has moved on.
func schedulesPauseAgain(t *testing.T, b driver.Backend) {
	p := pauser(t, b)
	pauseSchedule(t, p, "report")
	first := pauseOf(t, pausedSchedules(t, p), "report")
	// Wait until the store's clock is past the first Since, observed through
	// the Since of other pauses (the suite does not control that clock).
	n := 0
	eventually(t, "the store's clock to pass the first pause", func() bool {
		n++
		probe := fmt.Sprintf("probe-%03d", n)
		pauseSchedule(t, p, probe)
		return pauseOf(t, pausedSchedules(t, p), probe).Since.After(first.Since)
	})
	pauseSchedule(t, p, "report")
	again := pauseOf(t, pausedSchedules(t, p), "report")
	if !again.Since.Equal(first.Since) {
		t.Fatalf("pausing again moved Since from %v to %v; want it kept", first.Since, again.Since)
	}
	if got := len(pausedSchedules(t, p)); got != n+1 {
		t.Fatalf("PausedSchedules lists %d pauses; want %d (a second pause adds none)", got, n+1)
	}
}

// ResumeSchedule removes the pause and reports true, then false; a name
// never paused reports false; a resumed schedule pauses again with a new
// Since.
func schedulesResume(t *testing.T, b driver.Backend) {
	p := pauser(t, b)
	pauseSchedule(t, p, "a")
	pauseSchedule(t, p, "b")
	ok, err := p.ResumeSchedule(t.Context(), "a")
	wantNoErr(t, "ResumeSchedule(a)", err)
	if !ok {
		t.Fatal("ResumeSchedule(a) of a paused schedule = false; want true")
	}
	if got := pauseNames(pausedSchedules(t, p)); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("PausedSchedules after resuming a = %q; want [b]", got)
	}
	ok, err = p.ResumeSchedule(t.Context(), "a")
	wantNoErr(t, "ResumeSchedule(a) again", err)
	if ok {
		t.Fatal("ResumeSchedule(a) again = true; want false")
	}
	ok, err = p.ResumeSchedule(t.Context(), "never-paused")
	wantNoErr(t, "ResumeSchedule(never-paused)", err)
	if ok {
		t.Fatal("ResumeSchedule of a name never paused = true; want false")
	}
	pauseSchedule(t, p, "a")
	if got := pauseNames(pausedSchedules(t, p)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("PausedSchedules after pausing a again = %q; want [a b]", got)
	}
}

// Names in any script round-trip and list in byte order (upper case before
// lower case, ASCII before the rest), the same on every store whatever its
// collation.
func schedulesUnicode(t *testing.T, b driver.Backend) {
	p := pauser(t, b)
	names := []string{"wörk:ß", "工人:1", "Zebra", "apple", "émile", "task 😀:nightly", "Ärger", "a:b", "a"}
	for _, n := range names {
		pauseSchedule(t, p, n)
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if got := pauseNames(pausedSchedules(t, p)); !slices.Equal(got, want) {
		t.Fatalf("PausedSchedules = %q; want %q", got, want)
	}
	long := strings.Repeat("ü", driver.MaxScheduleName/2)
	pauseSchedule(t, p, long)
	pauseOf(t, pausedSchedules(t, p), long)
}

// Names the shared check refuses are refused by every method with a
// *queuestype.LimitError, and nothing is written.
func schedulesInvalid(t *testing.T, b driver.Backend) {
	p := pauser(t, b)
	bad := map[string]string{
		"empty":       "",
		"too long":    strings.Repeat("x", driver.MaxScheduleName+1),
		"NUL":         "report\x00",
		"invalid UTF": "report\xff",
		"newline":     "report\nnightly",
	}
	for what, name := range bad {
		var le *queuestype.LimitError
		if err := p.PauseSchedule(t.Context(), name); !errors.As(err, &le) {
			t.Errorf("%s: PauseSchedule = %v; want a *queuestype.LimitError", what, err)
		}
		if _, err := p.ResumeSchedule(t.Context(), name); !errors.As(err, &le) {
			t.Errorf("%s: ResumeSchedule = %v; want a *queuestype.LimitError", what, err)
		}
	}
	if ps := pausedSchedules(t, p); len(ps) != 0 {
		t.Fatalf("refused names are listed: %q", pauseNames(ps))
	}
}
