package queues_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/internal/cron"
	"github.com/queuesgo/queues/queuestype"
)

type schedArgs struct {
	N int `json:"n"`
}

func TestScheduleDeclarationIsValidated(t *testing.T) {
	noop := func(context.Context, schedArgs) (empty, error) { return empty{}, nil }
	cases := map[string]queues.TaskOptions{
		"neither":           {Schedule: &queues.Schedule{}},
		"both":              {Schedule: &queues.Schedule{Interval: time.Second, Cron: "* * * * *"}},
		"negative":          {Schedule: &queues.Schedule{Interval: -time.Second}},
		"initial delay":     {Schedule: &queues.Schedule{Interval: time.Second, InitialDelay: -1}},
		"jitter":            {Schedule: &queues.Schedule{Interval: time.Second, Jitter: -1}},
		"timezone":          {Schedule: &queues.Schedule{Interval: time.Second, Timezone: "Mars/Olympus"}},
		"duplicate name":    {Schedules: []queues.Schedule{{Name: "a", Interval: time.Second}, {Name: "a", Interval: time.Minute}}},
		"duplicate unnamed": {Schedule: &queues.Schedule{Interval: time.Second}, Schedules: []queues.Schedule{{Interval: time.Minute}}},
		"bad name":          {Schedules: []queues.Schedule{{Name: "a b", Interval: time.Second}}},
		"bad args":          {Schedule: &queues.Schedule{Interval: time.Second, Args: json.RawMessage(`{"n":"x"}`)}},
		"forever":           {UniqueBy: queues.UniqueByTask, UniqueUntil: queues.UniqueUntilForever, Schedule: &queues.Schedule{Interval: time.Second}},
		"bad cron":          {Schedule: &queues.Schedule{Cron: "0 0 * * * *"}},
		"immediate":         {ExecutionBackend: queues.ExecutionImmediate, Schedule: &queues.Schedule{Interval: time.Second}},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := queues.Register(queues.NewRegistry(), "t", noop, opts)
			if !errors.Is(err, queues.ErrConfig) {
				t.Fatalf("Register: %v, want a configuration error", err)
			}
		})
	}
	_, err := queues.Register(queues.NewRegistry(), "t", noop, queues.TaskOptions{Schedule: &queues.Schedule{Cron: "@reboot"}})
	var ce *cron.CronError
	if !errors.As(err, &ce) || !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("@reboot: %v, want a *cron.CronError matching ErrConfig", err)
	}
	reg := queues.NewRegistry()
	if _, err := queues.Register(reg, "a:b", noop, queues.TaskOptions{Schedule: &queues.Schedule{Interval: time.Second}}); err != nil {
		t.Fatal(err)
	}
	_, err = queues.Register(reg, "a", noop, queues.TaskOptions{Schedules: []queues.Schedule{{Name: "b", Interval: time.Second}}})
	if !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("colliding keys: %v", err)
	}
	if _, err := queues.Register(reg, "ok", noop, queues.TaskOptions{Schedule: &queues.Schedule{Interval: time.Second, Timezone: "Europe/Berlin",
		Args: schedArgs{N: 1}}, Schedules: []queues.Schedule{{Name: "two", Cron: "*/5 9-17 ? JAN-JUN/2 MON-FRI", Args: map[string]int{"n": 2}}}}); err != nil {
		t.Fatal(err)
	}
}

// occurrences lists the occurrences of task's schedule named key without
// its "scheduled:" prefix, oldest first (an ended occurrence gives its key
// to its successor and keeps the schedule's name in its policy).
func occurrences(t *testing.T, svc *queues.Service, task, key string) []*queues.Record {
	t.Helper()
	page, err := svc.ListTasks(context.Background(), queues.TaskFilter{TaskName: task, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*queues.Record
	for i := len(page.Items) - 1; i >= 0; i-- {
		if "scheduled:"+page.Items[i].Policy.Schedule.Name == key {
			out = append(out, page.Items[i])
		}
	}
	return out
}

func activeCount(recs []*queues.Record) int {
	n := 0
	for _, r := range recs {
		if !r.IsTerminal() {
			n++
		}
	}
	return n
}

// An interval schedule recurs after every outcome (completed, failed,
// cancelled), each occurrence due one interval after the previous one's
// end, with one active occurrence at a time; two named schedules of one
// task run with their own arguments and keys.
func TestScheduleRecursAfterEveryOutcome(t *testing.T) {
	ctx := context.Background()
	reg := queues.NewRegistry()
	var calls atomic.Int32
	queues.MustRegister(reg, "tick", func(ctx context.Context, a schedArgs) (empty, error) {
		n := calls.Add(1)
		if a.N == 1 && n%2 == 0 {
			return empty{}, queues.NonRetryable(errors.New("boom"))
		}
		return empty{}, nil
	}, queues.TaskOptions{Schedule: &queues.Schedule{Interval: 150 * time.Millisecond, Args: schedArgs{N: 1}},
		Schedules: []queues.Schedule{{Name: "slow", Interval: time.Hour, Args: schedArgs{N: 2}}}})
	svc := quietService(t, reg, func(c *queues.Config) {
		c.Worker.Placement = queues.PlacementInApp
		c.Worker.PollInterval = 20 * time.Millisecond
	})
	waitFor(t, 10*time.Second, "four ended occurrences", func() bool {
		recs := occurrences(t, svc, "tick", "scheduled:tick")
		return len(recs)-activeCount(recs) >= 4
	})
	recs := occurrences(t, svc, "tick", "scheduled:tick")
	var statuses []queues.Status
	for i, r := range recs {
		if r.IsTerminal() {
			statuses = append(statuses, r.Status)
		}
		if i > 0 && recs[i-1].IsTerminal() {
			want := recs[i-1].CompletedAt.Add(150 * time.Millisecond)
			if !r.ScheduledAt.Equal(want) {
				t.Errorf("occurrence %d due %v, want previous end + interval %v", i, r.ScheduledAt, want)
			}
		}
		if string(r.Args) != `{"n":1}` || r.Policy.Schedule.Name != "tick" || r.Policy.Schedule.Interval != 150*time.Millisecond {
			t.Errorf("occurrence %d: args %s policy %+v", i, r.Args, r.Policy.Schedule)
		}
	}
	if activeCount(recs) > 1 {
		t.Fatalf("%d active occurrences", activeCount(recs))
	}
	var failed bool
	for _, s := range statuses {
		failed = failed || s == queues.StatusFailed
	}
	if !failed {
		t.Fatalf("statuses %v: want a failed occurrence followed by a successor", statuses)
	}
	slow := occurrences(t, svc, "tick", "scheduled:tick:slow")
	if len(slow) != 1 || slow[0].Status != queues.StatusScheduled || string(slow[0].Args) != `{"n":2}` {
		t.Fatalf("named schedule occurrences %+v", slow)
	}
	// Cancelling an occurrence skips it, not the schedule.
	if ok, err := svc.Cancel(ctx, slow[0].ID, queues.CancelOptions{}); !ok || err != nil {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	slow = occurrences(t, svc, "tick", "scheduled:tick:slow")
	if len(slow) != 2 || slow[1].Status != queues.StatusScheduled {
		t.Fatalf("after cancel: %+v", slow)
	}
}

// Startup sync keeps an identical occurrence, replaces one of an older
// declaration, and cancels the pending occurrence of a removed schedule
// without enqueueing a successor.
func TestScheduleSyncKeepsReplacesAndRemoves(t *testing.T) {
	ctx := context.Background()
	store := memory.New(memory.Options{})
	start := func(reg *queues.Registry) *queues.Service {
		svc := quietService(t, reg, func(c *queues.Config) { c.Backend = store })
		w, err := svc.NewWorker(queues.WorkerConfig{Queues: []string{"nothing-here"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		<-w.Ready()
		cancel()
		<-done
		return svc
	}
	noop := func(context.Context, empty) (empty, error) { return empty{}, nil }
	reg1 := queues.NewRegistry()
	queues.MustRegister(reg1, "job", noop, queues.TaskOptions{Schedule: &queues.Schedule{Interval: time.Hour}})
	queues.MustRegister(reg1, "gone", noop, queues.TaskOptions{Schedule: &queues.Schedule{Interval: time.Hour}})
	svc := start(reg1)
	first := occurrences(t, svc, "job", "scheduled:job")
	if len(first) != 1 || first[0].Status != queues.StatusScheduled {
		t.Fatalf("first sync: %+v", first)
	}
	start(reg1)
	if again := occurrences(t, svc, "job", "scheduled:job"); len(again) != 1 || again[0].ID != first[0].ID {
		t.Fatalf("identical declaration not kept: %+v", again)
	}
	reg2 := queues.NewRegistry()
	queues.MustRegister(reg2, "job", noop, queues.TaskOptions{Schedule: &queues.Schedule{Interval: 2 * time.Hour}})
	queues.MustRegister(reg2, "gone", noop)
	start(reg2)
	recs := occurrences(t, svc, "job", "scheduled:job")
	if len(recs) != 2 || recs[0].Status != queues.StatusCancelled || recs[1].Status != queues.StatusScheduled ||
		recs[1].Policy.Schedule.Interval != 2*time.Hour {
		t.Fatalf("changed declaration: %+v", recs)
	}
	gone := occurrences(t, svc, "gone", "scheduled:gone")
	if len(gone) != 1 || gone[0].Status != queues.StatusCancelled {
		t.Fatalf("removed schedule: %+v", gone)
	}
}

// Pause cancels the pending occurrence and stops recurrence durably;
// trigger makes an occurrence due now; resume enqueues the next one;
// Schedules reports all of it.
func TestSchedulePauseResumeTrigger(t *testing.T) {
	ctx := context.Background()
	store := memory.New(memory.Options{})
	reg := queues.NewRegistry()
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	queues.MustRegister(reg, "job", func(ctx context.Context, _ empty) (empty, error) {
		started <- struct{}{}
		return untilReleased(ctx, release)
	}, queues.TaskOptions{Schedule: &queues.Schedule{Interval: time.Hour}})
	svc := quietService(t, reg, func(c *queues.Config) { c.Backend = store })
	other := quietService(t, reg, func(c *queues.Config) { c.Backend = store })
	if err := svc.PauseSchedule(ctx, "nope"); !errors.Is(err, queuestype.ErrScheduleNotFound) {
		t.Fatalf("pause unknown: %v", err)
	}
	runWorker(t, svc, queues.WorkerConfig{PollInterval: 20 * time.Millisecond})
	infos, err := other.Schedules(ctx)
	if err != nil || len(infos) != 1 || infos[0].Active == nil || infos[0].NextRun.IsZero() || infos[0].Paused {
		t.Fatalf("Schedules: %+v %v", infos, err)
	}
	pending := infos[0].Active
	if err := other.PauseSchedule(ctx, "job"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := svc.GetTask(ctx, pending.ID); rec.Status != queues.StatusCancelled || rec.Error != "" {
		t.Fatalf("pending occurrence after pause: %+v", rec)
	}
	infos, _ = svc.Schedules(ctx)
	if !infos[0].Paused || infos[0].PausedSince.IsZero() || infos[0].Active != nil || infos[0].Last == nil {
		t.Fatalf("paused listing: %+v", infos[0])
	}
	// A trigger while paused runs once, with no successor.
	rec, err := other.TriggerSchedule(ctx, "job")
	if err != nil || !rec.IsDue(time.Now()) {
		t.Fatalf("trigger: %+v %v", rec, err)
	}
	<-started
	if _, err := other.TriggerSchedule(ctx, "job"); !errors.Is(err, queuestype.ErrScheduleRunning) {
		t.Fatalf("trigger while running: %v", err)
	}
	release <- struct{}{}
	waitFor(t, 5*time.Second, "the triggered occurrence to complete", func() bool {
		r, err := svc.GetTask(ctx, rec.ID)
		return err == nil && r.Status == queues.StatusCompleted
	})
	if n := activeCount(occurrences(t, svc, "job", "scheduled:job")); n != 0 {
		t.Fatalf("%d active occurrences of a paused schedule", n)
	}
	if err := other.ResumeSchedule(ctx, "job"); err != nil {
		t.Fatal(err)
	}
	infos, _ = svc.Schedules(ctx)
	if infos[0].Paused || infos[0].Active == nil || infos[0].Last == nil || infos[0].Last.ID != rec.ID {
		t.Fatalf("resumed listing: %+v", infos[0])
	}
	if d := time.Until(infos[0].NextRun); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("next run in %v, want an interval from now", d)
	}
	b, err := json.Marshal(infos[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["interval"] != 3600.0 || m["name"] != "job" || m["active"] == nil {
		t.Fatalf("JSON %s %v", b, err)
	}
	close(release)
}

// The keeper repairs a gap: a schedule whose occurrence ended in a
// process that does not declare it gets its next occurrence.
func TestScheduleKeeperRepairsGaps(t *testing.T) {
	ctx := context.Background()
	store := memory.New(memory.Options{})
	noop := func(context.Context, empty) (empty, error) { return empty{}, nil }
	bare := queues.NewRegistry()
	queues.MustRegister(bare, "job", noop)
	producer := quietService(t, bare, func(c *queues.Config) { c.Backend = store })
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "job", noop, queues.TaskOptions{Schedule: &queues.Schedule{Interval: time.Hour}})
	svc := quietService(t, reg, func(c *queues.Config) { c.Backend = store })
	runWorker(t, svc, queues.WorkerConfig{Queues: []string{"none"}, ScheduleCheckInterval: 50 * time.Millisecond})
	var first *queues.Record
	waitFor(t, 5*time.Second, "the synced occurrence", func() bool {
		recs := occurrences(t, svc, "job", "scheduled:job")
		if len(recs) == 1 {
			first = recs[0]
		}
		return first != nil
	})
	// The producer's registry declares no schedule: cancelling there
	// enqueues no successor; the keeper does.
	if ok, err := producer.Cancel(ctx, first.ID, queues.CancelOptions{}); !ok || err != nil {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	waitFor(t, 5*time.Second, "the keeper's repair", func() bool {
		recs := occurrences(t, svc, "job", "scheduled:job")
		return len(recs) == 2 && recs[1].Status == queues.StatusScheduled
	})
}

// Without a SchedulePauser the store cannot pause.
func TestSchedulePauseNeedsAPauser(t *testing.T) {
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "job", func(context.Context, empty) (empty, error) { return empty{}, nil },
		queues.TaskOptions{Schedule: &queues.Schedule{Interval: time.Hour}})
	svc := quietService(t, reg, func(c *queues.Config) { c.Backend = noPauser{memory.New(memory.Options{})} })
	if err := svc.PauseSchedule(context.Background(), "job"); !errors.Is(err, queuestype.ErrSchedulePauseUnsupported) {
		t.Fatalf("pause: %v", err)
	}
}

type noPauser struct{ driver.Backend }

func (n noPauser) ListTasks(ctx context.Context, f driver.TaskFilter) (driver.TaskPage, error) {
	return n.Backend.(driver.Inspector).ListTasks(ctx, f)
}

func (n noPauser) QueueStatistics(ctx context.Context) (map[string]queuestype.Statistics, error) {
	return n.Backend.(driver.Inspector).QueueStatistics(ctx)
}
