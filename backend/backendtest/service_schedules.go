package backendtest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/queuestype"
)

// ScheduleRunFor is how long the shared-schedule case runs its three
// services: long enough for about ten occurrences of its one-second
// schedule (the case costs this much wall time per store).
var ScheduleRunFor = 10 * time.Second

func testSvcSchedules(t *testing.T, f Factory) {
	t.Run("ThreeServicesNeverDoubleFireNorSkip", func(t *testing.T) {
		t.Parallel()
		testScheduleShared(t, f)
	})
	t.Run("RemovePauseResumeTrigger", func(t *testing.T) {
		t.Parallel()
		testScheduleOperations(t, f)
	})
}

// occurrencesOf lists the records of task that are occurrences of the
// schedule named name (ended ones keep the name in their policy after
// their successor took the key), oldest first.
func occurrencesOf(t *testing.T, svc *queues.Service, task, name string) []*queues.Record {
	t.Helper()
	var out []*queues.Record
	f := queues.TaskFilter{TaskName: task, Limit: 500}
	for {
		page, err := svc.ListTasks(context.Background(), f)
		if err != nil {
			t.Fatalf("ListTasks: %v", err)
		}
		for _, r := range page.Items {
			if r.Policy.Schedule.Name == name {
				out = append(out, r)
			}
		}
		if page.NextCursor == uuid.Nil {
			break
		}
		f.Cursor = page.NextCursor
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// Three services share one store and declare the same one-second interval
// schedule: at no time are two occurrences active, completed occurrences
// never overlap, and each starts within interval + one poll interval (plus
// a small allowance for store round trips) of the previous one's end.
func testScheduleShared(t *testing.T, f Factory) {
	const (
		interval = time.Second
		poll     = 100 * time.Millisecond
		// slack covers the store round trips between the end, the
		// successor's write and the claim.
		slack = 300 * time.Millisecond
	)
	b := f.New(t)
	var mu sync.Mutex
	running := 0
	overlap := false
	register := func(r *queues.Registry) {
		queues.MustRegister(r, "sched.tick", func(ctx context.Context, _ noArgs) (none, error) {
			mu.Lock()
			running++
			overlap = overlap || running > 1
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
			return none{}, nil
		}, queues.TaskOptions{Schedule: &queues.Schedule{Interval: interval}})
	}
	envs := make([]*svcEnv, 3)
	for i := range envs {
		envs[i] = newSvcOn(t, b, register)
		envs[i].worker(queues.WorkerConfig{PollInterval: poll, PollBackoffMax: poll, MaxConcurrency: 2,
			ScheduleCheckInterval: 300 * time.Millisecond})
	}
	deadline := time.Now().Add(ScheduleRunFor)
	maxActive := 0
	for time.Now().Before(deadline) {
		active := 0
		for _, r := range occurrencesOf(t, envs[0].svc, "sched.tick", "sched.tick") {
			if !r.IsTerminal() {
				active++
			}
		}
		maxActive = max(maxActive, active)
		time.Sleep(20 * time.Millisecond)
	}
	if maxActive > 1 {
		t.Errorf("%d occurrences active at once", maxActive)
	}
	mu.Lock()
	if overlap {
		t.Errorf("two occurrences ran at once")
	}
	mu.Unlock()
	recs := occurrencesOf(t, envs[1].svc, "sched.tick", "sched.tick")
	var done []*queues.Record
	for _, r := range recs {
		switch {
		case r.Status == queues.StatusCompleted:
			done = append(done, r)
		case r.IsTerminal():
			t.Errorf("occurrence %s ended %s (%q)", r.ID, r.Status, r.Error)
		}
	}
	if want := int(ScheduleRunFor/(interval+poll+slack)) - 1; len(done) < want {
		t.Fatalf("%d occurrences completed in %v, want at least %d", len(done), ScheduleRunFor, want)
	}
	for i := 1; i < len(done); i++ {
		prev, cur := done[i-1], done[i]
		if cur.StartedAt.Before(prev.CompletedAt) {
			t.Errorf("occurrence %d started %v before the previous one ended %v", i, cur.StartedAt, prev.CompletedAt)
		}
		if gap := cur.StartedAt.Sub(prev.CompletedAt); gap < interval-10*time.Millisecond || gap > interval+poll+slack {
			t.Errorf("occurrence %d started %v after the previous one ended, want %v..%v", i, gap, interval, interval+poll+slack)
		}
	}
}

// Pause, trigger and resume from a second service; then a fourth service
// whose registry no longer declares the schedule cancels its pending
// occurrence at startup sync.
func testScheduleOperations(t *testing.T, f Factory) {
	ctx := context.Background()
	b := f.New(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	register := func(r *queues.Registry) {
		queues.MustRegister(r, "sched.job", func(ctx context.Context, _ noArgs) (none, error) {
			select {
			case <-release:
			case <-time.After(100 * time.Millisecond):
			}
			return none{}, nil
		}, queues.TaskOptions{Schedules: []queues.Schedule{{Name: "hourly", Interval: time.Hour}}})
	}
	const name = "sched.job:hourly"
	a := newSvcOn(t, b, register)
	a.worker(queues.WorkerConfig{})
	other := newSvcOn(t, b, register)
	recs := occurrencesOf(t, other.svc, "sched.job", name)
	if len(recs) != 1 || recs[0].Status != queues.StatusScheduled || recs[0].Key != "scheduled:"+name {
		t.Fatalf("after sync: %+v", recs)
	}
	first := recs[0]
	if d := time.Until(first.ScheduledAt); d < 59*time.Minute || d > time.Hour+time.Minute {
		t.Fatalf("first occurrence due in %v, want an interval", d)
	}

	_, pausable := b.(driver.SchedulePauser)
	if pausable {
		if err := other.svc.PauseSchedule(ctx, name); err != nil {
			t.Fatalf("PauseSchedule: %v", err)
		}
		if rec := a.waitStatus(first.ID, queues.StatusCancelled); rec.Status != queues.StatusCancelled {
			t.Fatalf("pending occurrence after pause: %s", rec.Status)
		}
		infos, err := a.svc.Schedules(ctx)
		if err != nil || len(infos) != 1 || !infos[0].Paused || infos[0].Active != nil {
			t.Fatalf("Schedules after pause: %+v %v", infos, err)
		}
	} else {
		t.Logf("%s cannot pause schedules: pause and resume not checked", b.Name())
	}

	// Trigger: an occurrence due now, run by a's worker.
	trig, err := other.svc.TriggerSchedule(ctx, name)
	if err != nil {
		t.Fatalf("TriggerSchedule: %v", err)
	}
	if trig.ScheduledAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("triggered occurrence due %v", trig.ScheduledAt)
	}
	a.waitStatus(trig.ID, queues.StatusCompleted)
	if pausable {
		if n := countActive(occurrencesOf(t, a.svc, "sched.job", name)); n != 0 {
			t.Fatalf("%d active occurrences of a paused schedule after its trigger", n)
		}
		if err := other.svc.ResumeSchedule(ctx, name); err != nil {
			t.Fatalf("ResumeSchedule: %v", err)
		}
	}
	var next *queues.Record
	if !svcEventually(10*time.Second, func() bool {
		for _, r := range occurrencesOf(t, a.svc, "sched.job", name) {
			if r.Status == queues.StatusScheduled {
				next = r
			}
		}
		return next != nil
	}) {
		t.Fatal("no occurrence after the trigger (and resume)")
	}
	if infos, err := other.svc.Schedules(ctx); err != nil || len(infos) != 1 || infos[0].Paused || infos[0].Active == nil ||
		infos[0].Active.ID != next.ID || infos[0].Last == nil || infos[0].Last.ID != trig.ID {
		t.Fatalf("Schedules after resume: %+v %v", infos, err)
	}
	if _, err := other.svc.TriggerSchedule(ctx, "sched.job:nope"); !errors.Is(err, queuestype.ErrScheduleNotFound) {
		t.Fatalf("trigger of an undeclared schedule: %v", err)
	}

	// A fourth service whose code no longer declares the schedule.
	removed := newSvcOn(t, b, func(r *queues.Registry) {
		queues.MustRegister(r, "sched.job", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
	})
	removed.worker(queues.WorkerConfig{})
	rec := removed.waitStatus(next.ID, queues.StatusCancelled)
	evs := removed.eventsOf(rec.ID, events.TypeCancelled)
	if len(evs) != 1 || evs[0].Message != "schedule removed" {
		t.Fatalf("cancel events of the removed schedule's occurrence: %+v", evs)
	}
}

func countActive(recs []*queues.Record) int {
	n := 0
	for _, r := range recs {
		if !r.IsTerminal() {
			n++
		}
	}
	return n
}
