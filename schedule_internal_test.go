package queues

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
)

func mustSched(t *testing.T, sc Schedule) *schedEntry {
	t.Helper()
	reg := NewRegistry()
	task, err := Register(reg, "t", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil },
		TaskOptions{Schedule: &sc})
	if err != nil {
		t.Fatal(err)
	}
	return task.entry.schedules[0]
}

// The next-occurrence rules for an interval schedule: the first run is
// now + InitialDelay when set, else now + Interval; after an end it is
// end + Interval; jitter adds U(0, Jitter) to every computed time.
func TestNextOccurrenceInterval(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	se := mustSched(t, Schedule{Interval: time.Minute})
	if got, _ := se.firstRun(now); !got.Equal(now.Add(time.Minute)) {
		t.Errorf("first run %v", got)
	}
	if got, _ := se.nextFrom(now.Add(5 * time.Second)); !got.Equal(now.Add(65 * time.Second)) {
		t.Errorf("after end %v", got)
	}
	se = mustSched(t, Schedule{Interval: time.Minute, InitialDelay: 5 * time.Second})
	if got, _ := se.firstRun(now); !got.Equal(now.Add(5 * time.Second)) {
		t.Errorf("first run with InitialDelay %v", got)
	}
	if got, _ := se.nextFrom(now); !got.Equal(now.Add(time.Minute)) {
		t.Errorf("InitialDelay applies to the first run only: %v", got)
	}
	se = mustSched(t, Schedule{Interval: time.Minute, Jitter: 10 * time.Second})
	seen := map[bool]bool{}
	for range 200 {
		got, _ := se.nextFrom(now)
		d := got.Sub(now.Add(time.Minute))
		if d < 0 || d >= 10*time.Second {
			t.Fatalf("jitter %v outside [0, 10s)", d)
		}
		seen[d > 5*time.Second] = true
	}
	if len(seen) != 2 {
		t.Errorf("jitter is not spread: %v", seen)
	}
}

// No catch-up: an occurrence that ended long ago (the system was down)
// has one overdue successor, which runs once; the one after it is
// computed from that run's end.
func TestScheduleNoCatchUp(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	reg := NewRegistry()
	MustRegister(reg, "t", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil },
		TaskOptions{Schedule: &Schedule{Interval: time.Minute}})
	store := memory.New(memory.Options{Now: now})
	svc, err := New(Config{Backend: store, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	svc.clock = now
	if _, err := svc.syncSchedules(ctx); err != nil {
		t.Fatal(err)
	}
	// A day of downtime later, the worker comes back.
	clock = clock.Add(24 * time.Hour)
	w, err := svc.NewWorker(WorkerConfig{ID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.RunOnce(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RunOnce: %d %v, want the one overdue occurrence", n, err)
	}
	waitInternal(t, func() bool {
		page, _ := svc.ListTasks(ctx, TaskFilter{TaskName: "t"})
		return len(page.Items) == 2
	})
	page, _ := svc.ListTasks(ctx, TaskFilter{TaskName: "t"})
	next := page.Items[0]
	if next.Status != StatusScheduled || !next.ScheduledAt.Equal(clock.Add(time.Minute)) {
		t.Fatalf("successor %s due %v, want one interval after the overdue run's end %v", next.Status, next.ScheduledAt, clock)
	}
	if n, _ := w.RunOnce(ctx); n != 0 {
		t.Fatalf("claimed %d more: a catch-up", n)
	}
}

func waitInternal(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A cron schedule in Europe/Berlin across both DST changes of 2026, with
// the engine's and the store's clocks driven by the test, on the memory
// and SQLite stores: the local 02:30 that the spring change skips is
// skipped (the next run is the day after), and the 02:30 the autumn change
// repeats runs once, at its first occurrence.
func TestCronAcrossDST(t *testing.T) {
	stores := map[string]func(now func() time.Time) driver.Backend{
		"memory": func(now func() time.Time) driver.Backend { return memory.New(memory.Options{Now: now}) },
		"sqlite": func(now func() time.Time) driver.Backend {
			b, err := sqlite.Open(filepath.Join(t.TempDir(), "q.db"), sqlite.Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			testCronAcrossDST(t, open)
		})
	}
}

func testCronAcrossDST(t *testing.T, open func(now func() time.Time) driver.Backend) {
	ctx := context.Background()
	var mu sync.Mutex
	clock := time.Date(2026, 3, 28, 1, 35, 0, 0, time.UTC) // 02:35 CET
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	set := func(t time.Time) { mu.Lock(); clock = t; mu.Unlock() }
	reg := NewRegistry()
	MustRegister(reg, "nightly", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil },
		TaskOptions{Schedule: &Schedule{Cron: "30 2 * * *", Timezone: "Europe/Berlin"}})
	svc, err := New(Config{Backend: open(now), Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	svc.clock = now
	w, err := svc.NewWorker(WorkerConfig{ID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	pending := func() *Record {
		t.Helper()
		var rec *Record
		waitInternal(t, func() bool {
			for _, st := range []Status{StatusScheduled, StatusPending} {
				page, err := svc.ListTasks(ctx, TaskFilter{TaskName: "nightly", Status: st})
				if err == nil && len(page.Items) == 1 {
					rec = page.Items[0]
				}
			}
			return rec != nil
		})
		return rec
	}
	runDue := func(want time.Time) {
		t.Helper()
		rec := pending()
		if !rec.ScheduledAt.Equal(want) {
			t.Fatalf("occurrence due %v, want %v", rec.ScheduledAt, want)
		}
		set(want)
		if n, err := w.RunOnce(ctx); err != nil || n != 1 {
			t.Fatalf("RunOnce at %v: %d %v", want, n, err)
		}
		waitInternal(t, func() bool {
			r, err := svc.GetTask(ctx, rec.ID)
			return err == nil && r.Status == StatusCompleted
		})
	}
	if _, err := svc.syncSchedules(ctx); err != nil {
		t.Fatal(err)
	}
	// 2026-03-29 02:30 does not exist in Berlin: the next run is
	// 2026-03-30 02:30 CEST.
	runDue(time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC))
	runDue(time.Date(2026, 3, 31, 0, 30, 0, 0, time.UTC))
	// Autumn: cancel the pending occurrence at 2026-10-25 00:00 UTC
	// (02:00 CEST); its successor is the first 02:30, still CEST.
	set(time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC))
	if ok, err := svc.Cancel(ctx, pending().ID, CancelOptions{}); !ok || err != nil {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	runDue(time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC))
	// 02:30 CET (01:30 UTC) the same day is the repeated wall time: not
	// run again; the next run is 2026-10-26 02:30 CET.
	runDue(time.Date(2026, 10, 26, 1, 30, 0, 0, time.UTC))
	if rec := pending(); !rec.ScheduledAt.Equal(time.Date(2026, 10, 27, 1, 30, 0, 0, time.UTC)) {
		t.Fatalf("then due %v", rec.ScheduledAt)
	}
}

// An occurrence enqueued while a pause is being written is cancelled by
// the enqueuer once it sees the pause (PauseSchedule may have looked for
// the active occurrence before it existed).
func TestOccurrenceEnqueuedDuringPauseIsCancelled(t *testing.T) {
	ctx := context.Background()
	reg := NewRegistry()
	MustRegister(reg, "t", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil },
		TaskOptions{Schedule: &Schedule{Interval: time.Hour}})
	store := memory.New(memory.Options{})
	svc, err := New(Config{Backend: store, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PauseSchedule(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	se := reg.scheduleByName("t")
	rec, _, err := svc.enqueueUnpaused(ctx, se, time.Now().Add(time.Hour))
	if err != nil || rec != nil {
		t.Fatalf("enqueueUnpaused: %v %v, want nothing left", rec, err)
	}
	page, _ := svc.ListTasks(ctx, TaskFilter{TaskName: "t"})
	if len(page.Items) != 1 || page.Items[0].Status != StatusCancelled {
		t.Fatalf("records %+v", page.Items)
	}
}
