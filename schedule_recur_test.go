package queues_test

import (
	"context"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
)

// recurWorker is a worker of svc that claims nothing of the schedule's
// queue and keeps no schedule (the keeper would hide a missing
// recurrence); expiry and stale recovery are set by the caller.
func recurWorker(t *testing.T, svc *queues.Service, qs []string, mutate func(*queues.WorkerConfig)) {
	t.Helper()
	cfg := queues.WorkerConfig{Queues: qs, PollInterval: 20 * time.Millisecond, ScheduleCheckInterval: -1,
		ExpiryCheckInterval: -1}
	if mutate != nil {
		mutate(&cfg)
	}
	runWorker(t, svc, cfg)
}

// onlyOccurrence waits for the single occurrence of key and returns it.
func onlyOccurrence(t *testing.T, svc *queues.Service, task, key string) *queues.Record {
	t.Helper()
	var rec *queues.Record
	waitFor(t, 5*time.Second, "the synced occurrence", func() bool {
		if recs := occurrences(t, svc, task, key); len(recs) == 1 {
			rec = recs[0]
		}
		return rec != nil
	})
	return rec
}

// wantSuccessor waits until the occurrence first ended with status want
// and checks that its successor, enqueued by the recurrence (the keeper is
// off), is due one interval after first's end.
func wantSuccessor(t *testing.T, svc *queues.Service, task, key string, first *queues.Record, want queues.Status, interval time.Duration) {
	t.Helper()
	var recs []*queues.Record
	waitFor(t, 5*time.Second, "the ended occurrence and its successor", func() bool {
		recs = occurrences(t, svc, task, key)
		return len(recs) == 2 && recs[0].IsTerminal()
	})
	if recs[0].ID != first.ID || recs[0].Status != want {
		t.Fatalf("first occurrence %s ended %s, want %s %s", recs[0].ID, recs[0].Status, first.ID, want)
	}
	next := recs[1]
	if next.Status != queues.StatusScheduled || !next.ScheduledAt.Equal(recs[0].CompletedAt.Add(interval)) {
		t.Fatalf("successor %s due %v, want scheduled at the end %v + %v", next.Status, next.ScheduledAt, recs[0].CompletedAt, interval)
	}
	if next.Key != key {
		t.Fatalf("successor key %q, want %q", next.Key, key)
	}
}

// An occurrence that expires before it runs is followed by the next one,
// whether the expiry sweeper or a claim expires it.
func TestScheduleRecursAfterExpiry(t *testing.T) {
	noop := func(context.Context, empty) (empty, error) { return empty{}, nil }
	opts := queues.TaskOptions{Queue: "sched-exp", ExpiresIn: 10 * time.Millisecond,
		Schedule: &queues.Schedule{Interval: time.Hour, InitialDelay: 5 * time.Millisecond}}

	t.Run("sweeper", func(t *testing.T) {
		reg := queues.NewRegistry()
		queues.MustRegister(reg, "exp", noop, opts)
		svc := quietService(t, reg)
		recurWorker(t, svc, []string{"elsewhere"}, func(c *queues.WorkerConfig) { c.ExpiryCheckInterval = 20 * time.Millisecond })
		first := onlyOccurrence(t, svc, "exp", "scheduled:exp")
		wantSuccessor(t, svc, "exp", "scheduled:exp", first, queues.StatusExpired, time.Hour)
	})

	t.Run("claim", func(t *testing.T) {
		store := memory.New(memory.Options{})
		reg := queues.NewRegistry()
		queues.MustRegister(reg, "exp", noop, opts)
		svc := quietService(t, reg, func(c *queues.Config) { c.Backend = store })
		// The first worker only syncs; once the occurrence is past its
		// expiry, a worker of its queue (no expiry sweeper) claims and so
		// expires it.
		recurWorker(t, svc, []string{"elsewhere"}, nil)
		first := onlyOccurrence(t, svc, "exp", "scheduled:exp")
		waitFor(t, 5*time.Second, "the occurrence's expiry", func() bool { return first.IsExpired(time.Now()) })
		if rec, err := svc.GetTask(context.Background(), first.ID); err != nil || rec.Status != queues.StatusScheduled {
			t.Fatalf("before the claim: %+v %v", rec, err)
		}
		recurWorker(t, svc, []string{"sched-exp"}, nil)
		wantSuccessor(t, svc, "exp", "scheduled:exp", first, queues.StatusExpired, time.Hour)
	})
}

// An occurrence failed by stale recovery (its worker died mid-run and the
// task does not requeue on stale) is followed by the next one.
func TestScheduleRecursAfterStaleFailure(t *testing.T) {
	ctx := context.Background()
	store := memory.New(memory.Options{})
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "st", func(context.Context, empty) (empty, error) { return empty{}, nil },
		queues.TaskOptions{Queue: "sched-stale", NoStaleRequeue: true,
			Schedule: &queues.Schedule{Interval: time.Hour, InitialDelay: 5 * time.Millisecond}})
	svc := quietService(t, reg, func(c *queues.Config) { c.Backend = store })
	// A worker of another queue syncs the schedule and runs stale recovery.
	recurWorker(t, svc, []string{"elsewhere"}, func(c *queues.WorkerConfig) {
		c.HeartbeatInterval = 50 * time.Millisecond
		c.StaleAfter = 200 * time.Millisecond
		c.StaleCheckInterval = 20 * time.Millisecond
	})
	first := onlyOccurrence(t, svc, "st", "scheduled:st")
	// A process that claims the occurrence and dies before its first
	// heartbeat.
	waitFor(t, 5*time.Second, "the occurrence's claim by a dying worker", func() bool {
		res, err := store.ClaimMany(ctx, driver.ClaimParams{Limit: 1, Queues: []string{"sched-stale"}, WorkerID: "dead"})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Claimed) == 1 && res.Claimed[0].ID == first.ID
	})
	wantSuccessor(t, svc, "st", "scheduled:st", first, queues.StatusFailed, time.Hour)
	if rec, _ := svc.GetTask(ctx, first.ID); rec.Error != driver.StaleError {
		t.Fatalf("failed occurrence error %q, want the stale error", rec.Error)
	}
}

// An occurrence cancelled by a bulk cancel is skipped, not the schedule.
func TestScheduleRecursAfterCancelMatching(t *testing.T) {
	ctx := context.Background()
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "bulk", func(context.Context, empty) (empty, error) { return empty{}, nil },
		queues.TaskOptions{Queue: "sched-bulk", Schedule: &queues.Schedule{Interval: time.Hour}})
	svc := quietService(t, reg)
	recurWorker(t, svc, []string{"elsewhere"}, nil)
	first := onlyOccurrence(t, svc, "bulk", "scheduled:bulk")
	sum, err := svc.CancelMatching(ctx, queues.CancelFilter{TaskName: "bulk"})
	if err != nil || len(sum.Cancelled) != 1 || sum.Cancelled[0] != first.ID {
		t.Fatalf("CancelMatching: %+v %v", sum, err)
	}
	wantSuccessor(t, svc, "bulk", "scheduled:bulk", first, queues.StatusCancelled, time.Hour)
}

// The active occurrence is found by its key however many records of its
// task share its status (more than a bounded scan of the newest ones
// would visit): listing, pause, resume and trigger all act on it.
func TestScheduleActiveOccurrenceFoundByKey(t *testing.T) {
	ctx := context.Background()
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "busy", func(context.Context, empty) (empty, error) { return empty{}, nil },
		queues.TaskOptions{Queue: "sched-busy", Schedule: &queues.Schedule{Interval: time.Hour}})
	svc := quietService(t, reg)
	recurWorker(t, svc, []string{"elsewhere"}, nil)
	first := onlyOccurrence(t, svc, "busy", "scheduled:busy")
	// 6,000 newer scheduled records of the same task bury the occurrence.
	later := time.Now().Add(2 * time.Hour)
	for range 6 {
		reqs := make([]queues.EnqueueRequest, 1000)
		for i := range reqs {
			reqs[i] = queues.EnqueueRequest{Task: "busy", Options: queues.EnqueueOptions{ScheduledAt: later}}
		}
		if _, err := svc.EnqueueMany(ctx, reqs); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := svc.Schedules(ctx)
	if err != nil || len(infos) != 1 || infos[0].Active == nil || infos[0].Active.ID != first.ID ||
		!infos[0].NextRun.Equal(first.ScheduledAt) {
		t.Fatalf("Schedules: %+v %v; want the active occurrence %s", infos, err, first.ID)
	}
	if err := svc.PauseSchedule(ctx, "busy"); err != nil {
		t.Fatal(err)
	}
	if rec, err := svc.GetTask(ctx, first.ID); err != nil || rec.Status != queues.StatusCancelled {
		t.Fatalf("occurrence after pause: %+v %v", rec, err)
	}
	if err := svc.ResumeSchedule(ctx, "busy"); err != nil {
		t.Fatal(err)
	}
	infos, err = svc.Schedules(ctx)
	if err != nil || infos[0].Active == nil || infos[0].Active.Status != queues.StatusScheduled {
		t.Fatalf("Schedules after resume: %+v %v", infos, err)
	}
	resumed := infos[0].Active
	trig, err := svc.TriggerSchedule(ctx, "busy")
	if err != nil || trig.ID == resumed.ID || !trig.IsDue(time.Now()) {
		t.Fatalf("trigger: %+v %v", trig, err)
	}
	if rec, err := svc.GetTask(ctx, resumed.ID); err != nil || rec.Status != queues.StatusCancelled {
		t.Fatalf("replaced occurrence after trigger: %+v %v", rec, err)
	}
	if infos, err = svc.Schedules(ctx); err != nil || infos[0].Active == nil || infos[0].Active.ID != trig.ID {
		t.Fatalf("Schedules after trigger: %+v %v", infos, err)
	}
}
