package queues

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/queuesgo/queues/backend/memory"
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
