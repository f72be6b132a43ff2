package queues_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/execution/dispatch"
)

// fakeExec is an in-process job-style transport: Dispatch goes through
// dispatch.RunJob, and in consume mode each "execution" is a goroutine that
// runs Host.ConsumeOne on the record ID (the ID-only protocol), then
// reconciles the record as soon as it exits, like the subprocess transport.
type fakeExec struct {
	name    string
	consume bool
	max     int // MaxInFlight; 0 = unlimited

	mu          sync.Mutex
	launchErr   error
	fallback    string
	probes      map[string]execution.Probe
	probeErrs   map[string]error
	exits       map[string]execution.ExitCode
	cancelRes   execution.CancelResult
	cancelCalls []uuid.UUID
	launched    []string
	orphans     []string
	repairs     []int
	repairSeen  int
	repairErr   error
	live        int
	openErr     error
	log         *[]string
	n           int
	wg          sync.WaitGroup
}

func newFake(name string) *fakeExec {
	return &fakeExec{name: name, probes: map[string]execution.Probe{}, probeErrs: map[string]error{},
		exits: map[string]execution.ExitCode{}, cancelRes: execution.CancelResult{Status: execution.CancelAccepted}}
}

func (f *fakeExec) Name() string { return f.name }

func (f *fakeExec) note(s string) {
	if f.log != nil {
		*f.log = append(*f.log, s)
	}
}

func (f *fakeExec) Open(context.Context) error {
	f.note("open " + f.name)
	return f.openErr
}

func (f *fakeExec) Close(context.Context) error {
	f.note("close " + f.name)
	return nil
}

func (f *fakeExec) InFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live
}

func (f *fakeExec) MaxInFlight() int {
	if f.max == 0 {
		return 1 << 30
	}
	return f.max
}

func (f *fakeExec) Dispatch(ctx context.Context, h execution.Host, rec *queues.Record) (execution.DispatchOutcome, error) {
	f.mu.Lock()
	if f.max > 0 && f.live >= f.max {
		f.mu.Unlock()
		return execution.DispatchOutcome{Status: execution.DispatchStatusSkipped}, nil
	}
	launchErr, fallback := f.launchErr, f.fallback
	f.mu.Unlock()
	settled := make(chan struct{})
	defer close(settled)
	return dispatch.RunJob(ctx, h, rec, f.name, func(context.Context) (string, error) {
		if launchErr != nil {
			return "", launchErr
		}
		f.mu.Lock()
		f.n++
		ref := fmt.Sprintf("%s:%d", f.name, f.n)
		f.launched = append(f.launched, ref)
		f.live++
		f.mu.Unlock()
		if !f.consume {
			return ref, nil
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			code, _ := h.ConsumeOne(context.Background(), rec.ID, execution.ConsumeOptions{WorkerID: "child-" + ref})
			f.mu.Lock()
			f.exits[ref] = code
			f.live--
			f.mu.Unlock()
			<-settled
			if _, err := h.ReconcileTask(context.Background(), rec.ID); err != nil {
				panic(err)
			}
		}()
		return ref, nil
	}, func(ref string) {
		f.mu.Lock()
		f.orphans = append(f.orphans, ref)
		f.mu.Unlock()
	}, dispatch.JobOptions{FallbackBackend: fallback})
}

func (f *fakeExec) Reconcile(ctx context.Context, h execution.Host, rec *queues.Record) (*queues.Record, error) {
	return dispatch.Reconcile(ctx, h, rec, func(_ context.Context, ref string) (execution.Probe, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := f.probeErrs[ref]; err != nil {
			return execution.Probe{}, err
		}
		if p, ok := f.probes[ref]; ok {
			return p, nil
		}
		if code, ok := f.exits[ref]; ok {
			switch code {
			case execution.ExitSuccess:
				return execution.Probe{Status: execution.ProbeSucceeded}, nil
			case execution.ExitCancelled:
				return execution.Probe{Status: execution.ProbeCancelled}, nil
			}
			return execution.Probe{Status: execution.ProbeFailed}, nil
		}
		return execution.Probe{Status: execution.ProbeRunning}, nil
	})
}

func (f *fakeExec) Repair(_ context.Context, _ execution.Host, limit int) (execution.RepairResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repairs = append(f.repairs, limit)
	return execution.RepairResult{Examined: min(f.repairSeen, limit)}, f.repairErr
}

func (f *fakeExec) CancelExecution(_ context.Context, rec *queues.Record) execution.CancelResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelCalls = append(f.cancelCalls, rec.ID)
	return f.cancelRes
}

func (f *fakeExec) set(fn func(f *fakeExec)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// extEnv is a service on the memory backend with the fake transport.
type extEnv struct {
	svc  *queues.Service
	b    *memory.Backend
	fake *fakeExec
	sink *events.MemorySink
	ok   *queues.Task[empty, string]
	fail *queues.Task[empty, empty]
	runs atomic.Int32
	max  atomic.Int32
	cur  atomic.Int32
}

func newExtEnv(t *testing.T, dispatcher bool, mutate ...func(*queues.Config)) *extEnv {
	t.Helper()
	e := &extEnv{b: memory.New(memory.Options{}), fake: newFake("fake"), sink: events.NewMemorySink()}
	reg := queues.NewRegistry()
	e.ok = queues.MustRegister(reg, "ext.ok", func(ctx context.Context, _ empty) (string, error) {
		e.runs.Add(1)
		n := e.cur.Add(1)
		defer e.cur.Add(-1)
		for {
			m := e.max.Load()
			if n <= m || e.max.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		return "done", nil
	}, queues.TaskOptions{ExecutionBackend: "fake"})
	e.fail = queues.MustRegister(reg, "ext.fail", func(ctx context.Context, _ empty) (empty, error) {
		e.runs.Add(1)
		return empty{}, errors.New("boom")
	}, queues.TaskOptions{ExecutionBackend: "fake", Retries: 2})
	cfg := queues.Config{Backend: e.b, Registry: reg, Logger: slog.New(slog.DiscardHandler),
		Executors: []execution.Transport{e.fake}, Events: &queues.EventsConfig{Sinks: []events.Sink{e.sink}}}
	if dispatcher {
		cfg.ExecutionBackend = "fake"
	}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := queues.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.fake.wg.Wait()
		_ = svc.Close(context.Background())
	})
	e.svc = svc
	return e
}

func (e *extEnv) get(t *testing.T, id uuid.UUID) *queues.Record {
	t.Helper()
	r, err := e.svc.GetTask(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *extEnv) waitStatus(t *testing.T, id uuid.UUID, want queues.Status) *queues.Record {
	t.Helper()
	var r *queues.Record
	waitFor(t, 10*time.Second, fmt.Sprintf("record %s %s", id, want), func() bool {
		r = e.get(t, id)
		return r.Status == want
	})
	return r
}

func (e *extEnv) eventsOf(id uuid.UUID, types ...string) []events.Event {
	var out []events.Event
	for _, ev := range e.sink.Events() {
		if ev.TaskID != id.String() {
			continue
		}
		for _, typ := range types {
			if ev.Type == typ {
				out = append(out, ev)
			}
		}
	}
	return out
}

// enqueueWithRef enqueues an ext.ok record and gives it ref, claimed (running)
// by "child" when running is true.
func (e *extEnv) enqueueWithRef(t *testing.T, ref string, running bool, opts ...queues.EnqueueOptions) *queues.Record {
	t.Helper()
	var o queues.EnqueueOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	res, err := e.ok.Enqueue(t.Context(), e.svc, empty{}, o)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.b.SetExecutionRef(t.Context(), res.ID, ref)
	if err != nil {
		t.Fatal(err)
	}
	if running {
		cr, err := e.b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: res.ID, WorkerID: "child"})
		if err != nil || len(cr.Claimed) != 1 {
			t.Fatalf("claim: %+v, %v", cr, err)
		}
		rec = cr.Claimed[0]
	}
	return rec
}

func TestExecutorsConfig(t *testing.T) {
	b := memory.New(memory.Options{})
	cases := []struct {
		name string
		cfg  queues.Config
		ok   bool
	}{
		{"unknown backend", queues.Config{ExecutionBackend: "subprocess"}, false},
		{"configured backend", queues.Config{ExecutionBackend: "fake", Executors: []execution.Transport{newFake("fake")}}, true},
		{"executors only", queues.Config{Executors: []execution.Transport{newFake("a"), newFake("b")}}, true},
		{"duplicate", queues.Config{Executors: []execution.Transport{newFake("a"), newFake("a")}}, false},
		{"builtin name", queues.Config{Executors: []execution.Transport{newFake("local")}}, false},
		{"empty name", queues.Config{Executors: []execution.Transport{newFake("")}}, false},
		{"name outside the charset", queues.Config{Executors: []execution.Transport{newFake("my transport")}}, false},
		{"nil", queues.Config{Executors: []execution.Transport{nil}}, false},
		{"negative reconcile interval", queues.Config{Worker: queues.WorkerConfig{ReconcileInterval: -1}}, false},
	}
	for _, c := range cases {
		c.cfg.Backend = b
		svc, err := queues.New(c.cfg)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, queues.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", c.name, err)
		}
		if c.ok && c.cfg.ExecutionBackend == "fake" {
			if w, err := svc.NewWorker(queues.WorkerConfig{}); err != nil || !w.Dispatcher() {
				t.Errorf("%s: executor not registered: %v", c.name, err)
			}
		}
	}
	svc, _ := queues.New(queues.Config{Backend: b})
	w, err := svc.NewWorker(queues.WorkerConfig{})
	if err != nil || w.Config().ReconcileInterval != 30*time.Second || w.Dispatcher() {
		t.Fatalf("defaults: %v %v %v", w.Config().ReconcileInterval, w.Dispatcher(), err)
	}
}

// logBackend records Open/Close of the queue backend in a shared log.
type logBackend struct {
	*memory.Backend
	log *[]string
}

func (l logBackend) Open(ctx context.Context) error {
	*l.log = append(*l.log, "open backend")
	return l.Backend.Open(ctx)
}

func (l logBackend) Close(ctx context.Context) error {
	*l.log = append(*l.log, "close backend")
	return l.Backend.Close(ctx)
}

func TestExecutorsLifecycle(t *testing.T) {
	var log []string
	a, b := newFake("a"), newFake("b")
	a.log, b.log = &log, &log
	svc, err := queues.New(queues.Config{Backend: logBackend{memory.New(memory.Options{}), &log},
		Executors: []execution.Transport{a, b}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := "open backend,open a,open b,close b,close a,close backend"
	if got := strings.Join(log, ","); got != want {
		t.Fatalf("order %s, want %s", got, want)
	}

	// A failing Open rolls back what started, in reverse.
	log = nil
	b.openErr = errors.New("no broker")
	svc, _ = queues.New(queues.Config{Backend: logBackend{memory.New(memory.Options{}), &log},
		Executors: []execution.Transport{a, b}, Logger: slog.New(slog.DiscardHandler)})
	if err := svc.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "no broker") {
		t.Fatalf("Start = %v", err)
	}
	want = "open backend,open a,open b,close a,close backend"
	if got := strings.Join(log, ","); got != want {
		t.Fatalf("rollback order %s, want %s", got, want)
	}
}

// A dispatcher worker sends due records through the transport; the in-process
// executions claim them by ID and complete them.
func TestDispatcherRunsTasks(t *testing.T) {
	e := newExtEnv(t, true)
	e.fake.consume = true
	e.fake.max = 2
	var ids []uuid.UUID
	for range 5 {
		res, err := e.ok.Enqueue(t.Context(), e.svc, empty{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	w := runWorker(t, e.svc, queues.WorkerConfig{MaxConcurrency: 4, BatchSize: 10, PollInterval: 10 * time.Millisecond})
	if !w.Dispatcher() {
		t.Fatal("worker is not a dispatcher")
	}
	for _, id := range ids {
		r := e.waitStatus(t, id, queues.StatusCompleted)
		if string(r.Result) != `"done"` || !strings.HasPrefix(r.ExecutionRef, "fake:") || !strings.HasPrefix(r.WorkerID, "child-fake:") {
			t.Fatalf("completed record %+v", r)
		}
	}
	if got := e.runs.Load(); got != 5 {
		t.Fatalf("ran %d times, want 5", got)
	}
	if got := e.max.Load(); got > 2 {
		t.Fatalf("%d executions at once, transport limit 2", got)
	}
	if len(e.fake.launched) != 5 {
		t.Fatalf("launched %v", e.fake.launched)
	}
}

// A failing task is re-dispatched after each retry (the requeue cleared its
// ref) until its budget is spent.
func TestDispatcherRetriesThenFails(t *testing.T) {
	e := newExtEnv(t, true)
	e.fake.consume = true
	res, err := e.fail.Enqueue(t.Context(), e.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	runWorker(t, e.svc, queues.WorkerConfig{PollInterval: 10 * time.Millisecond})
	r := e.waitStatus(t, res.ID, queues.StatusFailed)
	if r.RetryCount != 2 || r.Error != "boom" {
		t.Fatalf("failed record: retry_count %d error %q", r.RetryCount, r.Error)
	}
	e.fake.wg.Wait()
	if got := e.runs.Load(); got != 3 {
		t.Fatalf("ran %d times, want 3", got)
	}
	e.fake.mu.Lock()
	defer e.fake.mu.Unlock()
	if len(e.fake.launched) != 3 {
		t.Fatalf("launched %v, want 3 executions", e.fake.launched)
	}
}

// The dispatcher counts the transport's in-flight executions and honours its limit.
func TestDispatcherCapacity(t *testing.T) {
	e := newExtEnv(t, true)
	e.fake.max = 1
	for range 3 {
		if _, err := e.ok.Enqueue(t.Context(), e.svc, empty{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := e.svc.NewWorker(queues.WorkerConfig{MaxConcurrency: 5})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v; want 1 (transport limit)", n, err)
	}
	if n, err := w.RunOnce(t.Context()); n != 0 || err != nil {
		t.Fatalf("RunOnce at capacity = %d, %v", n, err)
	}
	e.fake.set(func(f *fakeExec) { f.max = 0 })
	w2, _ := e.svc.NewWorker(queues.WorkerConfig{MaxConcurrency: 2})
	// 1 execution in flight counts toward MaxConcurrency 2.
	if n, err := w2.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v; want 1 (MaxConcurrency minus in-flight)", n, err)
	}
	_, _ = w.Stop(t.Context(), true)
	_, _ = w2.Stop(t.Context(), true)
}

// Records with a ref (already dispatched) and expired records are not dispatched.
func TestDispatcherSkipsReferencedAndExpired(t *testing.T) {
	e := newExtEnv(t, true)
	for i := range 20 {
		e.enqueueWithRef(t, fmt.Sprintf("fake:other%d", i), false, queues.EnqueueOptions{Priority: queues.Ptr(5)})
	}
	w, err := e.svc.NewWorker(queues.WorkerConfig{MaxConcurrency: 1, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.RunOnce(t.Context()); n != 0 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	if len(e.fake.launched) != 0 {
		t.Fatalf("launched %v", e.fake.launched)
	}
	// A free record behind 20 dispatched ones (claim order) is still found.
	free, err := e.ok.Enqueue(t.Context(), e.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	if r := e.get(t, free.ID); r.ExecutionRef != "fake:1" {
		t.Fatalf("free record ref %q", r.ExecutionRef)
	}
	_, _ = w.Stop(t.Context(), true)
}

func TestDispatcherFallback(t *testing.T) {
	e := newExtEnv(t, true)
	e.fake.launchErr = errors.New("cannot launch")
	e.fake.fallback = queues.ExecutionLocal
	res, err := e.ok.Enqueue(t.Context(), e.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := e.svc.NewWorker(queues.WorkerConfig{})
	if n, err := w.RunOnce(t.Context()); n != 0 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	r := e.get(t, res.ID)
	if r.ExecutionBackend != queues.ExecutionLocal || r.ExecutionRef != "" || r.Status != queues.StatusPending {
		t.Fatalf("not re-routed: %+v", r)
	}
	if evs := e.eventsOf(res.ID, events.TypeEvent); len(evs) != 1 || evs[0].Payload["phase"] != "fake.dispatch_fallback" {
		t.Fatalf("events %+v", evs)
	}
	_, _ = w.Stop(t.Context(), true)
}

func TestReconcileProbeResults(t *testing.T) {
	e := newExtEnv(t, false)
	ctx := t.Context()
	retrying := queues.EnqueueOptions{Retries: queues.Ptr(1)}
	succeeded := e.enqueueWithRef(t, "fake:ok", true)
	failedRetry := e.enqueueWithRef(t, "fake:failed", true, retrying)
	failedFinal := e.enqueueWithRef(t, "fake:failed-final", true)
	notFound := e.enqueueWithRef(t, "fake:gone", false, retrying)
	cancelled := e.enqueueWithRef(t, "fake:cancelled", true)
	running := e.enqueueWithRef(t, "fake:running", true)
	probeErr := e.enqueueWithRef(t, "fake:err", true)
	foreign := e.enqueueWithRef(t, "other:1", false)
	if _, err := e.b.SetExecutionBackend(ctx, foreign.ID, "other", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.SetExecutionRef(ctx, foreign.ID, "other:1"); err != nil {
		t.Fatal(err)
	}
	e.fake.set(func(f *fakeExec) {
		f.probes["fake:ok"] = execution.Probe{Status: execution.ProbeSucceeded}
		f.probes["fake:failed"] = execution.Probe{Status: execution.ProbeFailed, Detail: "exit status 1"}
		f.probes["fake:failed-final"] = execution.Probe{Status: execution.ProbeFailed}
		f.probes["fake:gone"] = execution.Probe{Status: execution.ProbeNotFound}
		f.probes["fake:cancelled"] = execution.Probe{Status: execution.ProbeCancelled}
		f.probeErrs["fake:err"] = errors.New("provider unavailable")
		f.repairSeen = 1
	})
	res, err := e.svc.ExecutionHost().Reconcile(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	want := execution.ReconcileResult{Repair: execution.RepairResult{Examined: 1}, Examined: 8, Running: 2, Completed: 1,
		Retried: 2, Failed: 1, Cancelled: 1, Errors: 1, Skipped: 1}
	if res != want {
		t.Fatalf("result\n got %+v\nwant %+v", res, want)
	}
	if e.fake.repairs[0] != 50 {
		t.Fatalf("Repair limit %v", e.fake.repairs)
	}

	r := e.get(t, succeeded.ID)
	if r.Status != queues.StatusCompleted {
		t.Fatalf("succeeded: %s", r.Status)
	}
	var result map[string]any
	if err := json.Unmarshal(r.Result, &result); err != nil || result["execution_ref"] != "fake:ok" || result["status"] != "succeeded" {
		t.Fatalf("result %s", r.Result)
	}
	if evs := e.eventsOf(succeeded.ID, events.TypeCompleted); len(evs) != 1 {
		t.Fatalf("task.completed events %d", len(evs))
	}

	r = e.get(t, failedRetry.ID)
	if r.Status != queues.StatusPending || r.RetryCount != 1 || r.ExecutionRef != "" || r.WorkerID != "" ||
		r.Error != "external execution fake:failed failed" {
		t.Fatalf("failed with budget: %+v", r)
	}
	if evs := e.eventsOf(failedRetry.ID, events.TypeFailed); len(evs) != 1 || evs[0].Payload["will_retry"] != true {
		t.Fatalf("task.failed %+v", evs)
	}
	r = e.get(t, failedFinal.ID)
	if r.Status != queues.StatusFailed || r.Error != "external execution fake:failed-final failed" {
		t.Fatalf("failed without budget: %+v", r)
	}
	if evs := e.eventsOf(failedFinal.ID, events.TypeFailed); len(evs) != 1 || evs[0].Payload["will_retry"] != false {
		t.Fatalf("task.failed %+v", evs)
	}
	r = e.get(t, notFound.ID)
	if r.Status != queues.StatusPending || r.RetryCount != 1 || r.Error != "external execution fake:gone not found" {
		t.Fatalf("not found: %+v", r)
	}
	r = e.get(t, cancelled.ID)
	if r.Status != queues.StatusCancelled || len(e.eventsOf(cancelled.ID, events.TypeCancelled)) != 1 {
		t.Fatalf("cancelled: %+v", r)
	}
	for _, id := range []uuid.UUID{running.ID, probeErr.ID} {
		if r := e.get(t, id); r.Status != queues.StatusRunning || r.ExecutionRef == "" {
			t.Fatalf("running record changed: %+v", r)
		}
	}
	if r := e.get(t, foreign.ID); r.Status != queues.StatusPending || r.ExecutionRef != "other:1" {
		t.Fatalf("foreign record changed: %+v", r)
	}

	// The budget bounds the pass: repair examined 1, so limit 2 lists 1 record.
	res, err = e.svc.ExecutionHost().Reconcile(ctx, 2)
	if err != nil || res.Examined != 1 || res.Repair.Examined != 1 {
		t.Fatalf("bounded pass %+v, %v", res, err)
	}
}

// A reservation marker past its deadline is released, then the expiry sweep
// runs; a fresh marker is left alone.
func TestReconcileReleasesStaleMarkers(t *testing.T) {
	e := newExtEnv(t, false)
	ctx := t.Context()
	stale := fmt.Sprintf("%s%d:%s", dispatch.MarkerPrefix, time.Now().Add(-time.Minute).Unix(), uuid.NewString())
	expiring, err := e.ok.Enqueue(ctx, e.svc, empty{}, queues.EnqueueOptions{ExpiresIn: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	live, err := e.ok.Enqueue(ctx, e.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := e.ok.Enqueue(ctx, e.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uuid.UUID{expiring.ID, live.ID} {
		if _, err := e.b.ReserveDispatch(ctx, driver.ReserveDispatchParams{ID: id, Marker: stale, Until: markerUntil(t, stale)}); err != nil {
			t.Fatal(err)
		}
	}
	freshMarker := dispatch.NewMarker(time.Now(), 0)
	if _, err := e.b.ReserveDispatch(ctx, driver.ReserveDispatchParams{ID: fresh.ID, Marker: freshMarker, Until: markerUntil(t, freshMarker)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // expiring is now overdue; its marker protects it
	if r := e.get(t, expiring.ID); r.Status != queues.StatusPending {
		t.Fatalf("reserved record %s", r.Status)
	}
	res, err := e.svc.ExecutionHost().Reconcile(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if res.Released != 2 || res.Expired != 1 || res.Running != 1 || res.Examined != 3 {
		t.Fatalf("result %+v", res)
	}
	if r := e.get(t, expiring.ID); r.Status != queues.StatusExpired {
		t.Fatalf("overdue record %s", r.Status)
	}
	if r := e.get(t, live.ID); r.Status != queues.StatusPending || r.ExecutionRef != "" {
		t.Fatalf("released record %+v", r)
	}
	if r := e.get(t, fresh.ID); r.ExecutionRef != freshMarker {
		t.Fatalf("fresh marker touched: %q", r.ExecutionRef)
	}
	if len(e.eventsOf(expiring.ID, events.TypeExpired)) != 1 {
		t.Fatal("no task.expired")
	}
}

func TestCancelAsksProvider(t *testing.T) {
	e := newExtEnv(t, false)
	ctx := t.Context()

	// retryable blocks the durable cancel.
	rec := e.enqueueWithRef(t, "fake:1", true)
	e.fake.set(func(f *fakeExec) {
		f.cancelRes = execution.CancelResult{Status: execution.CancelRetryable, Detail: "quota exceeded"}
	})
	ok, err := e.svc.Cancel(ctx, rec.ID, queues.CancelOptions{IncludeRunning: true})
	if ok || err != nil {
		t.Fatalf("Cancel = %v, %v; want false, nil", ok, err)
	}
	if r := e.get(t, rec.ID); r.Status != queues.StatusRunning || r.ExecutionRef != "fake:1" {
		t.Fatalf("record touched: %+v", r)
	}
	evs := e.eventsOf(rec.ID, events.TypeEvent)
	if len(evs) != 1 || evs[0].Level != "warning" || evs[0].Payload["phase"] != "fake.cancel_failed" ||
		evs[0].Payload["result"] != "retryable" || evs[0].Payload["error"] != "quota exceeded" {
		t.Fatalf("warning %+v", evs)
	}
	if len(e.eventsOf(rec.ID, events.TypeCancelled)) != 0 {
		t.Fatal("task.cancelled published")
	}

	// accepted, already_cancelled and unsupported proceed.
	for i, st := range []execution.CancelStatus{execution.CancelAccepted, execution.CancelAlreadyCancelled, execution.CancelUnsupported} {
		e.fake.set(func(f *fakeExec) { f.cancelRes = execution.CancelResult{Status: st} })
		rec := e.enqueueWithRef(t, fmt.Sprintf("fake:p%d", i), i == 0)
		ok, err := e.svc.Cancel(ctx, rec.ID, queues.CancelOptions{IncludeRunning: true})
		if !ok || err != nil {
			t.Fatalf("%s: Cancel = %v, %v", st, ok, err)
		}
		if r := e.get(t, rec.ID); r.Status != queues.StatusCancelled {
			t.Fatalf("%s: status %s", st, r.Status)
		}
	}
	calls := len(e.fake.cancelCalls)

	// Not asked: a running record without IncludeRunning, a reservation
	// marker, a record without ref.
	run := e.enqueueWithRef(t, "fake:r", true)
	if ok, _ := e.svc.Cancel(ctx, run.ID, queues.CancelOptions{}); ok {
		t.Fatal("cancelled a running record without IncludeRunning")
	}
	res, _ := e.ok.Enqueue(ctx, e.svc, empty{})
	if _, err := e.b.ReserveDispatch(ctx, driver.ReserveDispatchParams{ID: res.ID, Marker: dispatch.NewMarker(time.Now(), 0), Until: time.Now().Add(dispatch.DefaultLease)}); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.svc.Cancel(ctx, res.ID, queues.CancelOptions{}); !ok || err != nil {
		t.Fatalf("Cancel reserved = %v, %v", ok, err)
	}
	if len(e.fake.cancelCalls) != calls {
		t.Fatalf("provider asked %d more times", len(e.fake.cancelCalls)-calls)
	}
	if ok, err := e.svc.Cancel(ctx, uuid.New(), queues.CancelOptions{}); ok || err != nil {
		t.Fatalf("Cancel missing = %v, %v", ok, err)
	}
}

// The worker loop reconciles periodically: an execution that vanished is
// retried and dispatched again.
func TestDispatcherPeriodicReconcile(t *testing.T) {
	e := newExtEnv(t, true)
	rec := e.enqueueWithRef(t, "fake:lost", true, queues.EnqueueOptions{Retries: queues.Ptr(1)})
	e.fake.set(func(f *fakeExec) { f.probes["fake:lost"] = execution.Probe{Status: execution.ProbeNotFound} })
	runWorker(t, e.svc, queues.WorkerConfig{PollInterval: 10 * time.Millisecond, ReconcileInterval: 20 * time.Millisecond})
	waitFor(t, 5*time.Second, "re-dispatch", func() bool {
		r := e.get(t, rec.ID)
		return r.RetryCount == 1 && strings.HasPrefix(r.ExecutionRef, "fake:") && r.ExecutionRef != "fake:lost"
	})
}

func TestReconcileTask(t *testing.T) {
	e := newExtEnv(t, false)
	rec := e.enqueueWithRef(t, "fake:x", true)
	e.fake.set(func(f *fakeExec) {
		f.probes["fake:x"] = execution.Probe{Status: execution.ProbeSucceeded, Result: json.RawMessage(`"remote"`)}
	})
	r, err := e.svc.ExecutionHost().ReconcileTask(t.Context(), rec.ID)
	if err != nil || r.Status != queues.StatusCompleted || string(r.Result) != `"remote"` {
		t.Fatalf("ReconcileTask = %+v, %v", r, err)
	}
	// Unknown backend → ErrConfig.
	other := e.enqueueWithRef(t, "zzz:1", false)
	if _, err := e.b.SetExecutionBackend(t.Context(), other.ID, "zzz", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.SetExecutionRef(t.Context(), other.ID, "zzz:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ExecutionHost().ReconcileTask(t.Context(), other.ID); !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("unknown backend: %v", err)
	}
}

// A failing Repair is reported but does not stop the probes.
func TestReconcileRepairErrorContinues(t *testing.T) {
	e := newExtEnv(t, false)
	rec := e.enqueueWithRef(t, "fake:x", true)
	e.fake.set(func(f *fakeExec) {
		f.repairErr = errors.New("broker down")
		f.probes["fake:x"] = execution.Probe{Status: execution.ProbeSucceeded}
	})
	res, err := e.svc.ExecutionHost().Reconcile(t.Context(), 10)
	if err == nil || !strings.Contains(err.Error(), "broker down") || res.Completed != 1 {
		t.Fatalf("Reconcile = %+v, %v", res, err)
	}
	if r := e.get(t, rec.ID); r.Status != queues.StatusCompleted {
		t.Fatalf("status %s", r.Status)
	}
}

// The periodic reconcile runs under the fleet lock "<ns>:external_reconcile".
func TestDispatcherReconcileFleetLock(t *testing.T) {
	e := newExtEnv(t, true)
	rec := e.enqueueWithRef(t, "fake:lost", true)
	e.fake.set(func(f *fakeExec) { f.probes["fake:lost"] = execution.Probe{Status: execution.ProbeNotFound} })
	if ok, err := e.b.AcquireLock(t.Context(), "queues:external_reconcile", "someone-else", time.Minute); !ok || err != nil {
		t.Fatalf("AcquireLock = %v, %v", ok, err)
	}
	runWorker(t, e.svc, queues.WorkerConfig{PollInterval: 10 * time.Millisecond, ReconcileInterval: 20 * time.Millisecond})
	time.Sleep(200 * time.Millisecond)
	if r := e.get(t, rec.ID); r.Status != queues.StatusRunning {
		t.Fatalf("reconciled without the lock: %s", r.Status)
	}
	if ok, err := e.b.ReleaseLock(t.Context(), "queues:external_reconcile", "someone-else"); !ok || err != nil {
		t.Fatalf("ReleaseLock = %v, %v", ok, err)
	}
	e.waitStatus(t, rec.ID, queues.StatusFailed)
}

// markerUntil is the reservation deadline a dispatch marker carries.
func markerUntil(t *testing.T, marker string) time.Time {
	t.Helper()
	until, ok := dispatch.MarkerDeadline(marker)
	if !ok {
		t.Fatalf("not a reservation marker: %q", marker)
	}
	return until
}
