package queues

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// Schedule makes a task recurring: the engine keeps exactly one active
// occurrence (a record keyed "scheduled:<task>", or
// "scheduled:<task>:<name>" for a named schedule) and enqueues the next one
// whenever an occurrence ends, however it ends. Give exactly one of
// Interval and Cron.
type Schedule struct {
	// Name tells several schedules of one task apart; "" is the task's
	// default schedule. It is a name of letters, digits, '.', '_' or '-'.
	Name string
	// Interval is the fixed delay from the end of one occurrence to the
	// start of the next (> 0).
	Interval time.Duration
	// Cron is a five-field cron expression (minute hour day-of-month month
	// day-of-week, or an alias such as @hourly), matched in Timezone.
	Cron string
	// Timezone is the IANA zone Cron is matched in: "" → "UTC".
	Timezone string
	// InitialDelay, when > 0, puts the first occurrence this long after
	// the schedule is first declared, instead of at the next slot.
	InitialDelay time.Duration
	// Jitter adds a uniformly random delay in [0, Jitter) to every
	// computed time.
	Jitter time.Duration
	// Args are the occurrences' arguments, marshalled to JSON (a
	// json.RawMessage is used as is) and checked against the task's
	// argument type at Register; nil → the zero arguments.
	Args any
}

// scheduleKeyPrefix starts the identity key of every occurrence.
const scheduleKeyPrefix = "scheduled:"

// schedEntry is a validated schedule of a registered task.
type schedEntry struct {
	task *taskEntry
	spec queuestype.ScheduleSpec
	key  string
	args json.RawMessage
	loc  *time.Location
	cron cronSchedule // nil for an interval schedule
}

// full is the schedule's name in operations and listings.
func (se *schedEntry) full() string { return se.spec.Name }

// compileSchedules validates a task's schedules (TaskOptions.Schedule and
// TaskOptions.Schedules) against the task e.
func compileSchedules(e *taskEntry) ([]*schedEntry, error) {
	var all []Schedule
	if e.opts.Schedule != nil {
		all = append(all, *e.opts.Schedule)
	}
	all = append(all, e.opts.Schedules...)
	if len(all) == 0 {
		return nil, nil
	}
	if e.opts.UniqueUntil == UniqueUntilForever {
		return nil, configErr("Schedule", "cannot be combined with UniqueUntil forever (each occurrence frees its key when it ends)")
	}
	if e.opts.ExecutionBackend == ExecutionImmediate {
		return nil, configErr("Schedule", "cannot run on the immediate execution backend (occurrences are due in the future)")
	}
	seen := map[string]bool{}
	out := make([]*schedEntry, 0, len(all))
	for _, sc := range all {
		se, err := compileSchedule(e, sc)
		if err != nil {
			return nil, err
		}
		if seen[sc.Name] {
			return nil, configErr("Schedule.Name", "%q is declared twice", sc.Name)
		}
		seen[sc.Name] = true
		out = append(out, se)
	}
	return out, nil
}

func compileSchedule(e *taskEntry, sc Schedule) (*schedEntry, error) {
	field := "Schedule"
	if sc.Name != "" {
		field = fmt.Sprintf("Schedules[%s]", sc.Name)
		if err := queuestype.CheckCharsetName("schedule name", sc.Name, queuestype.DefaultLimits().QueueNameBytes); err != nil {
			return nil, err
		}
	}
	if (sc.Interval != 0) == (sc.Cron != "") {
		return nil, configErr(field, "give exactly one of Interval and Cron")
	}
	if sc.Interval < 0 {
		return nil, configErr(field+".Interval", "must be positive")
	}
	if sc.InitialDelay < 0 {
		return nil, configErr(field+".InitialDelay", "must not be negative")
	}
	if sc.Jitter < 0 {
		return nil, configErr(field+".Jitter", "must not be negative")
	}
	tz := sc.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, configErr(field+".Timezone", "%q does not load: %v", tz, err)
	}
	se := &schedEntry{task: e, loc: loc}
	if sc.Cron != "" {
		if se.cron, err = parseCron(sc.Cron); err != nil {
			return nil, fmt.Errorf("%s.Cron: %w", field, err)
		}
	}
	raw := json.RawMessage("{}")
	if sc.Args != nil {
		if r, ok := sc.Args.(json.RawMessage); ok {
			raw = r
		} else if raw, err = json.Marshal(sc.Args); err != nil {
			return nil, configErr(field+".Args", "cannot be encoded: %v", err)
		}
		if !json.Valid(raw) {
			return nil, configErr(field+".Args", "is not valid JSON")
		}
	}
	if err := queuestype.CheckJSON("args", raw, queuestype.DefaultLimits().ArgsBytes); err != nil {
		return nil, err
	}
	if _, err := e.decode(raw); err != nil {
		return nil, configErr(field+".Args", "do not fit the task's argument type: %v", err)
	}
	se.args = raw
	full := e.name
	if sc.Name != "" {
		full += ":" + sc.Name
	}
	se.key = scheduleKeyPrefix + full
	if err := queuestype.CheckText("key", se.key, queuestype.DefaultLimits().KeyBytes); err != nil {
		return nil, err
	}
	if err := queuestype.CheckText("schedule", full, driver.MaxScheduleName); err != nil {
		return nil, err
	}
	se.spec = queuestype.ScheduleSpec{Name: full, TaskName: e.name, Interval: sc.Interval, Cron: sc.Cron,
		Timezone: tz, InitialDelay: sc.InitialDelay, Jitter: sc.Jitter}
	return se, nil
}

// slotAfter is the next slot strictly after base, before jitter: base +
// Interval, or the first matching local minute after base. ok is false
// when a cron expression matches nothing within the search bound.
func (se *schedEntry) slotAfter(base time.Time) (time.Time, bool) {
	if se.cron == nil {
		return base.Add(se.spec.Interval).UTC(), true
	}
	return se.cron.next(base, se.loc)
}

// firstRun is the time of a schedule's first occurrence (startup sync,
// resume): now + InitialDelay when set, else the next slot after now;
// jitter included.
func (se *schedEntry) firstRun(now time.Time) (time.Time, bool) {
	if se.spec.InitialDelay > 0 {
		return se.jitter(now.Add(se.spec.InitialDelay).UTC()), true
	}
	return se.nextFrom(now)
}

// nextFrom is the next slot after base with jitter: the successor of an
// occurrence that ended at base, or a repaired gap (base = now). A base
// long past gives an overdue time that runs once: there is no catch-up.
func (se *schedEntry) nextFrom(base time.Time) (time.Time, bool) {
	t, ok := se.slotAfter(base)
	if !ok {
		return time.Time{}, false
	}
	return se.jitter(t), true
}

func (se *schedEntry) jitter(t time.Time) time.Time {
	if se.spec.Jitter > 0 {
		t = t.Add(rand.N(se.spec.Jitter))
	}
	return t
}

// identical reports whether rec is an occurrence of exactly this
// declaration (same schedule and arguments), so startup sync keeps it.
func (se *schedEntry) identical(rec *Record) bool {
	if rec.Policy.Schedule != se.spec {
		return false
	}
	return sameJSON(rec.Args, se.args)
}

// sameJSON compares two JSON texts by value (stores may re-encode them).
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// schedules lists every declared schedule of r, ordered by name.
func (r *Registry) schedules() []*schedEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*schedEntry
	for _, e := range r.tasks {
		out = append(out, e.schedules...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Name < out[j].spec.Name })
	return out
}

// scheduleByKey returns the declared schedule holding key, or nil.
func (r *Registry) scheduleByKey(key string) *schedEntry {
	if !strings.HasPrefix(key, scheduleKeyPrefix) {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.schedKeys[key]
}

// scheduleByName returns the declared schedule named name ("<task>" or
// "<task>:<name>").
func (r *Registry) scheduleByName(name string) *schedEntry {
	return r.scheduleByKey(scheduleKeyPrefix + name)
}

// noRecurKey marks a context whose cancellations must not enqueue a
// successor: startup sync replacing or removing an occurrence, and the
// run-time operations that replace one themselves.
type noRecurKey struct{}

func withoutRecurrence(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRecurKey{}, true)
}
