package queues_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
)

type empty struct{}

func quietService(t testing.TB, reg *queues.Registry, mutate ...func(*queues.Config)) *queues.Service {
	t.Helper()
	cfg := queues.Config{Backend: memory.New(memory.Options{}), Registry: reg, Logger: slog.New(slog.DiscardHandler)}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := queues.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

func runWorker(t testing.TB, svc *queues.Service, cfg queues.WorkerConfig) *queues.Worker {
	t.Helper()
	w, err := svc.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	<-w.Ready()
	t.Cleanup(func() {
		_, _ = w.Stop(context.Background(), true)
		<-done
	})
	return w
}

// untilReleased blocks a test task until release closes (success) or its
// ctx ends (the cause as error).
func untilReleased(ctx context.Context, release <-chan struct{}) (empty, error) {
	select {
	case <-release:
		return empty{}, nil
	case <-ctx.Done():
		return empty{}, context.Cause(ctx)
	}
}

// enter counts one more running body in cur, raises peak to match, and
// returns the matching exit.
func enter(cur, peak *atomic.Int32) func() {
	n := cur.Add(1)
	for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
	}
	return func() { cur.Add(-1) }
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A worker with MaxConcurrency 50 runs 100,000 no-op tasks, each exactly once.
func TestWorkerRunsEveryTaskExactlyOnce(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	var runs sync.Map
	var total atomic.Int64
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "noop", func(ctx context.Context, a struct{ I int }) (empty, error) {
		c, _ := runs.LoadOrStore(a.I, new(atomic.Int32))
		c.(*atomic.Int32).Add(1)
		total.Add(1)
		return empty{}, nil
	})
	svc := quietService(t, reg)
	ctx := context.Background()
	for start := 0; start < n; start += 1000 {
		reqs := make([]queues.EnqueueRequest, 0, 1000)
		for i := start; i < start+1000 && i < n; i++ {
			reqs = append(reqs, task.Request(struct{ I int }{i}))
		}
		if _, err := svc.EnqueueMany(ctx, reqs); err != nil {
			t.Fatal(err)
		}
	}
	runWorker(t, svc, queues.WorkerConfig{MaxConcurrency: 50, BatchSize: 50})
	waitFor(t, 3*time.Minute, "every task completed", func() bool {
		st, err := svc.Statistics(ctx, "")
		return err == nil && st.Completed == n
	})
	if got := total.Load(); got != int64(n) {
		t.Fatalf("%d executions for %d tasks", got, n)
	}
	for i := 0; i < n; i++ {
		c, ok := runs.Load(i)
		if !ok || c.(*atomic.Int32).Load() != 1 {
			t.Fatalf("task %d ran %v times", i, c)
		}
	}
	st, _ := svc.Statistics(ctx, "")
	if st.Total != n || st.Running != 0 || st.Pending != 0 || st.Failed != 0 {
		t.Fatalf("statistics %+v", st)
	}
}

// MaxConcurrency and QueueConcurrency cap in-flight attempts, and the caps are reached.
func TestWorkerConcurrencyCaps(t *testing.T) {
	var cur, peak, peakA, curA atomic.Int32
	release := make(chan struct{})
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "hold", func(ctx context.Context, a struct{ Q string }) (empty, error) {
		defer enter(&cur, &peak)()
		if a.Q == "a" {
			defer enter(&curA, &peakA)()
		}
		<-release
		return empty{}, nil
	})
	svc := quietService(t, reg)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		for _, q := range []string{"a", "b"} {
			if _, err := task.Enqueue(ctx, svc, struct{ Q string }{q}, queues.EnqueueOptions{Queue: q}); err != nil {
				t.Fatal(err)
			}
		}
	}
	w := runWorker(t, svc, queues.WorkerConfig{MaxConcurrency: 3, BatchSize: 10, QueueConcurrency: map[string]int{"a": 1}, PollInterval: 5 * time.Millisecond})
	waitFor(t, 10*time.Second, "three attempts in flight", func() bool { return cur.Load() == 3 })
	// Give the worker a chance to over-claim if the caps were broken.
	for i := 0; i < 5; i++ {
		if _, err := w.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if w.InFlight() != 3 {
		t.Fatalf("in flight %d, want 3", w.InFlight())
	}
	close(release)
	waitFor(t, 10*time.Second, "all completed", func() bool {
		st, _ := svc.Statistics(ctx, "")
		return st.Completed == 20
	})
	if peak.Load() != 3 || peakA.Load() != 1 {
		t.Fatalf("peak %d (want 3), peak in queue a %d (want 1)", peak.Load(), peakA.Load())
	}
}

// A wakeup hint starts a new record long before the poll interval would.
func TestWakeupHintBeatsPolling(t *testing.T) {
	started := make(chan time.Time, 1)
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "ping", func(ctx context.Context, _ empty) (empty, error) {
		started <- time.Now()
		return empty{}, nil
	})
	svc := quietService(t, reg)
	runWorker(t, svc, queues.WorkerConfig{PollInterval: 20 * time.Second, PollBackoffMax: 20 * time.Second})
	time.Sleep(50 * time.Millisecond) // let the worker enter its long wait
	enq := time.Now()
	if _, err := task.Enqueue(context.Background(), svc, empty{}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-started:
		if d := at.Sub(enq); d > 2*time.Second {
			t.Fatalf("hint latency %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the hint did not wake the worker")
	}
}

// Without hints, the worker still finds work by polling, and the due-time clamp
// starts a scheduled record close to its due time despite a long backoff.
func TestPollingAndDueClamp(t *testing.T) {
	started := make(chan time.Time, 2)
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "later", func(ctx context.Context, _ empty) (empty, error) {
		started <- time.Now()
		return empty{}, nil
	})
	svc := quietService(t, reg)
	due := time.Now().Add(300 * time.Millisecond)
	if _, err := task.Enqueue(context.Background(), svc, empty{}, queues.EnqueueOptions{ScheduledAt: due}); err != nil {
		t.Fatal(err)
	}
	runWorker(t, svc, queues.WorkerConfig{PollInterval: 10 * time.Millisecond, PollBackoffMax: 20 * time.Second})
	select {
	case at := <-started:
		if at.Before(due) {
			t.Fatalf("ran %v before its due time", due.Sub(at))
		}
		if late := at.Sub(due); late > 2*time.Second {
			t.Fatalf("ran %v late; the due clamp did not shorten the wait", late)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("scheduled record never ran")
	}
}

// Run's ctx ending starts a graceful stop that lets running attempts finish.
func TestGracefulStopLetsAttemptsFinish(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "slow", func(ctx context.Context, _ empty) (empty, error) {
		started <- struct{}{}
		return untilReleased(ctx, release)
	})
	svc := quietService(t, reg)
	res, _ := task.Enqueue(context.Background(), svc, empty{})
	w, _ := svc.NewWorker(queues.WorkerConfig{GracefulShutdownTimeout: 10 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-started
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before the attempt finished", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("clean stop returned %v", err)
	}
	rec, _ := svc.GetTask(context.Background(), res.ID)
	if rec.Status != queues.StatusCompleted {
		t.Fatalf("status %s", rec.Status)
	}
}

// The in-app worker starts with the service and drains with Close.
func TestInAppWorker(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "greet", func(ctx context.Context, a struct{ Name string }) (string, error) {
		info, ok := queues.TaskInfoFromContext(ctx)
		if !ok || info.Name != "greet" || info.Attempt != 1 || info.WorkerID != "app-1" {
			return "", queues.NonRetryable(errorf("task info %+v", info))
		}
		return "hello " + a.Name, nil
	})
	svc := quietService(t, reg, func(c *queues.Config) {
		c.Worker = queues.WorkerConfig{Placement: queues.PlacementInApp, ID: "app-1", MaxConcurrency: 4}
	})
	if svc.InAppWorker() == nil {
		t.Fatal("no in-app worker")
	}
	res, err := task.Enqueue(context.Background(), svc, struct{ Name string }{"ada"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := res.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := res.Value(); err != nil || v != "hello ada" {
		t.Fatalf("value %q, %v", v, err)
	}
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if svc.InAppWorker() != nil {
		t.Fatal("in-app worker survives Close")
	}
}

// Wait returns ctx.Err() when ctx ends first and leaves the task alone; a
// deleted record yields ErrTaskNotFound.
func TestResultWait(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "idle", func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil })
	svc := quietService(t, reg)
	res, _ := task.Enqueue(context.Background(), svc, empty{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := res.Wait(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Wait = %v", err)
	}
	if rec, _ := svc.GetTask(context.Background(), res.ID); rec.Status != queues.StatusPending {
		t.Fatalf("status %s", rec.Status)
	}
	if ok, _ := svc.Cancel(context.Background(), res.ID, queues.CancelOptions{}); !ok {
		t.Fatal("cancel")
	}
	if _, err := svc.Backend().CleanupTerminal(context.Background(), driver.CleanupAll(time.Now().Add(time.Hour), 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Wait(context.Background()); !errorsIs(err, queues.ErrTaskNotFound) {
		t.Fatalf("Wait on deleted record = %v", err)
	}
}

// ListTasks pages newest first with filters.
func TestListTasks(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "list", func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil })
	svc := quietService(t, reg)
	ctx := context.Background()
	var ids []uuid.UUID
	for i := 0; i < 5; i++ {
		r, _ := task.Enqueue(ctx, svc, empty{})
		ids = append(ids, r.ID)
	}
	page, err := svc.ListTasks(ctx, queues.TaskFilter{Limit: 2, Status: queues.StatusPending})
	if err != nil || len(page.Items) != 2 || page.Items[0].ID != ids[4] || page.NextCursor == uuid.Nil {
		t.Fatalf("page 1 %+v %v", page, err)
	}
	page, _ = svc.ListTasks(ctx, queues.TaskFilter{Limit: 10, Cursor: page.NextCursor})
	if len(page.Items) != 3 || page.Items[2].ID != ids[0] {
		t.Fatalf("page 2 has %d items", len(page.Items))
	}
	if _, err := svc.ListTasks(ctx, queues.TaskFilter{Status: "bogus"}); !errorsIs(err, queues.ErrConfig) {
		t.Fatalf("bad status: %v", err)
	}
}

// EnqueueRaw stores the given JSON and EnqueueMany returns input order.
func TestEnqueueRawAndMany(t *testing.T) {
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "raw", func(ctx context.Context, a map[string]int) (empty, error) { return empty{}, nil })
	svc := quietService(t, reg)
	ctx := context.Background()
	r, err := svc.EnqueueRaw(ctx, "raw", json.RawMessage(`{"b":2,"a":1}`), queues.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Record().Args) != `{"b":2,"a":1}` {
		t.Fatalf("args %s", r.Record().Args)
	}
	many, err := svc.EnqueueMany(ctx, []queues.EnqueueRequest{
		{Task: "raw", RawArgs: json.RawMessage(`{"i":0}`)},
		{Task: "raw", Args: map[string]int{"i": 1}},
		{Task: "raw", RawArgs: json.RawMessage(`{"i":2}`)},
	})
	if err != nil || len(many) != 3 {
		t.Fatal(err)
	}
	for i, m := range many {
		var a map[string]int
		_ = json.Unmarshal(m.Record().Args, &a)
		if a["i"] != i {
			t.Fatalf("item %d has args %v", i, a)
		}
	}
}

// Prefetch holds claimed records beyond MaxConcurrency without running more
// bodies at once; a durably cancelled prefetched record never runs, and a
// forced stop settles the rest unrun (requeued with RequeueOnShutdown).
func TestWorkerPrefetch(t *testing.T) {
	var cur, peak atomic.Int32
	var ran sync.Map
	release := make(chan struct{})
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "hold", func(ctx context.Context, a struct{ I int }) (empty, error) {
		ran.Store(a.I, true)
		defer enter(&cur, &peak)()
		return untilReleased(ctx, release)
	})
	svc := quietService(t, reg)
	ctx := context.Background()
	var ids []uuid.UUID
	for i := 0; i < 8; i++ {
		res, err := task.Enqueue(ctx, svc, struct{ I int }{i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	if _, err := svc.NewWorker(queues.WorkerConfig{Prefetch: -1}); err == nil {
		t.Fatal("negative Prefetch accepted")
	}
	w := runWorker(t, svc, queues.WorkerConfig{MaxConcurrency: 2, Prefetch: 3, BatchSize: 10,
		PollInterval: 5 * time.Millisecond, CancellationPollInterval: 10 * time.Millisecond})
	waitFor(t, 10*time.Second, "five records claimed, two running", func() bool {
		st, _ := svc.Statistics(ctx, "")
		return st.Running == 5 && cur.Load() == 2
	})
	if w.InFlight() != 5 {
		t.Fatalf("in flight %d, want 5 (2 running + 3 prefetched)", w.InFlight())
	}
	// Cancel one that is claimed (running in the store) but has not started.
	victim := -1
	for i, id := range ids {
		rec, err := svc.GetTask(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, started := ran.Load(i); rec.Status == queues.StatusRunning && !started {
			victim = i
			break
		}
	}
	if victim < 0 {
		t.Fatal("no prefetched record found")
	}
	if _, err := svc.Cancel(ctx, ids[victim], queues.CancelOptions{IncludeRunning: true}); err != nil {
		t.Fatal(err)
	}
	// The cancelled record leaves the worker unrun, and its slot in the
	// prefetch buffer takes the next record: five claimed again.
	waitFor(t, 10*time.Second, "the cancelled prefetched record replaced", func() bool {
		st, _ := svc.Statistics(ctx, "")
		return st.Cancelled == 1 && st.Running == 5 && w.InFlight() == 5
	})
	close(release)
	waitFor(t, 10*time.Second, "the others completed", func() bool {
		st, _ := svc.Statistics(ctx, "")
		return st.Completed == 7 && st.Cancelled == 1
	})
	if _, ok := ran.Load(victim); ok {
		t.Fatal("the cancelled prefetched record ran")
	}
	if peak.Load() != 2 {
		t.Fatalf("peak %d running bodies, want 2", peak.Load())
	}
}

// A forced stop settles prefetched records without running them.
func TestWorkerPrefetchForcedStop(t *testing.T) {
	var started atomic.Int32
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "block", func(ctx context.Context, _ empty) (empty, error) {
		started.Add(1)
		<-ctx.Done()
		return empty{}, context.Cause(ctx)
	})
	svc := quietService(t, reg)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if _, err := task.Enqueue(ctx, svc, empty{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := svc.NewWorker(queues.WorkerConfig{MaxConcurrency: 1, Prefetch: 3, BatchSize: 10, RequeueOnShutdown: true,
		PollInterval: 5 * time.Millisecond, FinalCancelTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, 10*time.Second, "four claimed, one running", func() bool {
		st, _ := svc.Statistics(ctx, "")
		return st.Running == 4 && started.Load() == 1
	})
	if _, err := w.Stop(ctx, true); err != nil {
		t.Fatal(err)
	}
	<-done
	st, _ := svc.Statistics(ctx, "")
	if st.Pending != 4 || st.Running != 0 {
		t.Fatalf("after a forced stop: %+v, want all four requeued", st)
	}
	if started.Load() != 1 {
		t.Fatalf("%d bodies started, want 1 (prefetched records must not run)", started.Load())
	}
}

// gatedComplete holds every Settle call that writes a completion until gate
// closes.
type gatedComplete struct {
	driver.Backend
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedComplete) Settle(ctx context.Context, ts []driver.Transition) ([]driver.SettleResult, error) {
	for _, t := range ts {
		if t.To == queues.StatusCompleted {
			select {
			case g.entered <- struct{}{}:
			default:
			}
			<-g.gate
			break
		}
	}
	return g.Backend.Settle(ctx, ts)
}

// With Prefetch, a body's slot frees when the body returns, not when its
// settle write does: the next prefetched record starts while the first
// record's completion is still being written.
func TestWorkerPrefetchFreesSlotBeforeSettle(t *testing.T) {
	gc := &gatedComplete{Backend: memory.New(memory.Options{}), entered: make(chan struct{}, 1), gate: make(chan struct{})}
	started := make(chan int, 2)
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "quick", func(ctx context.Context, a struct{ I int }) (empty, error) {
		started <- a.I
		return empty{}, nil
	})
	svc := quietService(t, reg, func(c *queues.Config) { c.Backend = gc })
	ctx := context.Background()
	for i := range 2 {
		if _, err := task.Enqueue(ctx, svc, struct{ I int }{i}); err != nil {
			t.Fatal(err)
		}
	}
	runWorker(t, svc, queues.WorkerConfig{MaxConcurrency: 1, Prefetch: 1, BatchSize: 2, PollInterval: 5 * time.Millisecond})
	select {
	case <-gc.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no completion write began")
	}
	deadline := time.After(10 * time.Second)
	for n := 0; n < 2; n++ {
		select {
		case <-started:
		case <-deadline:
			t.Fatalf("%d of 2 bodies started while the first completion write was held", n)
		}
	}
	close(gc.gate)
	waitFor(t, 10*time.Second, "both completed", func() bool {
		st, _ := svc.Statistics(ctx, "")
		return st.Completed == 2
	})
}
