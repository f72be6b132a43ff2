//go:build unix

package subprocess_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/execution/subprocess"
)

type empty struct{}

// holdEnv is a service on the memory backend with a subprocess executor
// whose children are "hold" children: the test plays the part of the
// child's ConsumeOne on the parent's store (claiming the record by ID) and
// decides each child's exit code. Real processes are launched, waited on,
// probed and signalled.
type holdEnv struct {
	t    *testing.T
	dir  string
	b    *memory.Backend
	svc  *queues.Service
	exec *subprocess.Executor
	sink *events.MemorySink
	task *queues.Task[empty, empty]
}

func newHoldEnv(t *testing.T, opts subprocess.Options, mutate ...func(*queues.Config)) *holdEnv {
	t.Helper()
	e := &holdEnv{t: t, dir: t.TempDir(), b: memory.New(memory.Options{}), sink: events.NewMemorySink()}
	if opts.Binary == "" {
		opts.Binary = testBinary(t)
	}
	opts.Env = append(opts.Env, "SP_TEST_CHILD=hold", "SP_DIR="+e.dir, childGORACE())
	e.exec = subprocess.New(opts)
	e.svc = e.service(e.exec, mutate...)
	t.Cleanup(func() { e.stopChildren() })
	return e
}

// childGORACE keeps the parent's race detector options for children and
// drops the one-second sleep a -race binary takes at exit.
func childGORACE() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

func testBinary(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Skipf("cannot find the test binary to run as a child: %v", err)
	}
	return bin
}

// service builds and starts a service on e's backend with exec.
func (e *holdEnv) service(exec *subprocess.Executor, mutate ...func(*queues.Config)) *queues.Service {
	e.t.Helper()
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "sp.hold", func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil },
		queues.TaskOptions{ExecutionBackend: subprocess.Name})
	if e.task == nil {
		e.task = task
	}
	cfg := queues.Config{Backend: e.b, Registry: reg, Executors: []execution.Transport{exec},
		Logger: slog.New(slog.DiscardHandler), Events: &queues.EventsConfig{Sinks: []events.Sink{e.sink}}}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := queues.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := svc.Start(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

// stopChildren releases every child still holding (also those starting
// meanwhile) and waits for all of them.
func (e *holdEnv) stopChildren() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		entries, _ := os.ReadDir(e.dir)
		for _, en := range entries {
			if pid, ok := strings.CutSuffix(en.Name(), ".started"); ok {
				if _, err := os.Stat(filepath.Join(e.dir, pid+".exit")); err != nil {
					writeAtomic(e.t, filepath.Join(e.dir, pid+".exit"), "1")
				}
			}
		}
		wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := e.exec.Wait(wctx)
		wcancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			e.t.Errorf("children did not exit: %v", err)
			return
		}
	}
}

func (e *holdEnv) enqueue(opts ...queues.EnqueueOptions) *queues.Record {
	e.t.Helper()
	res, err := e.task.Enqueue(e.t.Context(), e.svc, empty{}, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.get(res.ID)
}

func (e *holdEnv) get(id uuid.UUID) *queues.Record {
	e.t.Helper()
	r, err := e.svc.GetTask(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// dispatch launches a child for rec and waits until it runs.
func (e *holdEnv) dispatch(rec *queues.Record) *queues.Record {
	e.t.Helper()
	out, err := e.exec.Dispatch(e.t.Context(), e.svc.ExecutionHost(), rec)
	if err != nil || out.Status != execution.DispatchStatusDispatched {
		e.t.Fatalf("Dispatch = %+v, %v", out, err)
	}
	e.waitFile(out.Ref, ".started")
	r := e.get(rec.ID)
	if r.ExecutionRef != out.Ref {
		e.t.Fatalf("record ref %q, outcome ref %q", r.ExecutionRef, out.Ref)
	}
	return r
}

// claim claims rec by ID, as the child's ConsumeOne would.
func (e *holdEnv) claim(rec *queues.Record) *queues.Record {
	e.t.Helper()
	res, err := e.b.ClaimByID(e.t.Context(), driver.ClaimByIDParams{ID: rec.ID, WorkerID: "child"})
	if err != nil || len(res.Claimed) != 1 {
		e.t.Fatalf("ClaimByID = %+v, %v", res, err)
	}
	return res.Claimed[0]
}

// exit makes the child holding rec's ref exit with code.
func (e *holdEnv) exit(rec *queues.Record, code int) {
	e.t.Helper()
	pid := strconv.Itoa(pidOf(e.t, rec.ExecutionRef))
	writeAtomic(e.t, filepath.Join(e.dir, pid+".exit"), strconv.Itoa(code))
}

// writeAtomic writes a file the polling child never sees half-written.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFile waits for the file <pid of ref><suffix> a child writes.
func (e *holdEnv) waitFile(ref, suffix string) {
	e.t.Helper()
	name := strconv.Itoa(pidOf(e.t, ref)) + suffix
	waitFor(e.t, 20*time.Second, name, func() bool {
		_, err := os.Stat(filepath.Join(e.dir, name))
		return err == nil
	})
}

func (e *holdEnv) waitRecord(id uuid.UUID, what string, cond func(r *queues.Record) bool) *queues.Record {
	e.t.Helper()
	var r *queues.Record
	waitFor(e.t, 20*time.Second, what, func() bool {
		r = e.get(id)
		return cond(r)
	})
	return r
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pidOf(t *testing.T, ref string) int {
	t.Helper()
	_, pid, _, err := subprocess.ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestParseRef(t *testing.T) {
	host, pid, start, err := subprocess.ParseRef("subprocess:web-1.example:4242:1700000000123")
	if err != nil || host != "web-1.example" || pid != 4242 || !start.Equal(time.UnixMilli(1700000000123)) {
		t.Fatalf("ParseRef = %q %d %s %v", host, pid, start, err)
	}
	for _, bad := range []string{"", "subprocess:", "subprocess:h:x:1", "subprocess:h:1:x", "subprocess::1:1",
		"cloudrun:h:1:1", "subprocess:h:0:1", "subprocess:1:1"} {
		if _, _, _, err := subprocess.ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) accepted", bad)
		}
	}
}

func TestOpenValidates(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]subprocess.Options{
		"missing binary":   {Binary: filepath.Join(dir, "nope")},
		"directory":        {Binary: dir},
		"not in PATH":      {Binary: "queues-no-such-binary-in-path"},
		"negative maximum": {MaxProcesses: -1},
	}
	for name, o := range cases {
		err := subprocess.New(o).Open(t.Context())
		if !errors.Is(err, queues.ErrConfig) {
			t.Errorf("%s: Open = %v, want ErrConfig", name, err)
		}
	}
	// Service.Start reports it and rolls back.
	svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{}),
		Executors: []execution.Transport{subprocess.New(subprocess.Options{Binary: filepath.Join(dir, "nope")})}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("Start = %v", err)
	}
	ex := subprocess.New(subprocess.Options{})
	if err := ex.Open(t.Context()); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if self, _ := os.Executable(); ex.Binary() != self || ex.MaxInFlight() < 1 || ex.Name() != "subprocess" {
		t.Fatalf("defaults: binary %q max %d", ex.Binary(), ex.MaxInFlight())
	}
}

// A child is launched with the ID-only protocol, tracked, and its exit is
// reconciled at once: 1 → retry, 0 → completed, 7 → cancelled.
func TestExitCodesReconcileAtOnce(t *testing.T) {
	e := newHoldEnv(t, subprocess.Options{})
	host, _ := os.Hostname()

	rec := e.dispatch(e.enqueue(queues.EnqueueOptions{Retries: queues.Ptr(1)}))
	gotHost, pid, start, err := subprocess.ParseRef(rec.ExecutionRef)
	if err != nil || gotHost != strings.ReplaceAll(host, ":", "_") || pid <= 0 || time.Since(start) > time.Minute {
		t.Fatalf("ref %q: %v", rec.ExecutionRef, err)
	}
	if e.exec.InFlight() != 1 {
		t.Fatalf("InFlight %d", e.exec.InFlight())
	}
	ref := rec.ExecutionRef
	e.claim(rec)
	e.exit(rec, 1)
	r := e.waitRecord(rec.ID, "retry after exit 1", func(r *queues.Record) bool { return r.Status == queues.StatusPending })
	if r.RetryCount != 1 || r.ExecutionRef != "" || r.Error != "external execution "+ref+" failed" {
		t.Fatalf("after exit 1: %+v", r)
	}
	waitFor(t, 5*time.Second, "slot freed", func() bool { return e.exec.InFlight() == 0 })

	// Exit 0 while the record is still running: the reconcile completes it.
	rec = e.dispatch(e.get(rec.ID))
	e.claim(rec)
	e.exit(rec, 0)
	r = e.waitRecord(rec.ID, "completed", func(r *queues.Record) bool { return r.Status == queues.StatusCompleted })
	var result map[string]any
	if err := json.Unmarshal(r.Result, &result); err != nil || result["execution_ref"] != rec.ExecutionRef {
		t.Fatalf("result %s", r.Result)
	}

	// Exit 7: cancelled.
	rec = e.dispatch(e.enqueue())
	e.claim(rec)
	e.exit(rec, 7)
	e.waitRecord(rec.ID, "cancelled", func(r *queues.Record) bool { return r.Status == queues.StatusCancelled })

	// A child that settled its own record (terminal) needs nothing.
	rec = e.dispatch(e.enqueue())
	claimed := e.claim(rec)
	res, err := e.b.Settle(t.Context(), []driver.Transition{{ID: rec.ID, Generation: claimed.RetryCount,
		To: queues.StatusCompleted, Result: json.RawMessage(`"own"`)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("settle results %+v", res)
	}
	e.exit(rec, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.exec.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if r := e.get(rec.ID); string(r.Result) != `"own"` {
		t.Fatalf("result overwritten: %s", r.Result)
	}
}

// A child killed with SIGKILL mid-attempt: the record does not stay running.
func TestKilledChildIsRetried(t *testing.T) {
	e := newHoldEnv(t, subprocess.Options{})
	rec := e.dispatch(e.enqueue(queues.EnqueueOptions{Retries: queues.Ptr(1)}))
	e.claim(rec)
	if err := syscall.Kill(pidOf(t, rec.ExecutionRef), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := e.waitRecord(rec.ID, "retry after SIGKILL", func(r *queues.Record) bool { return r.Status == queues.StatusPending })
	if r.RetryCount != 1 || !strings.HasSuffix(r.Error, " failed") {
		t.Fatalf("after kill: %+v", r)
	}
	// Without budget the next kill fails it.
	rec = e.dispatch(r)
	e.claim(rec)
	if err := syscall.Kill(pidOf(t, rec.ExecutionRef), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitRecord(rec.ID, "failed", func(r *queues.Record) bool { return r.Status == queues.StatusFailed })
}

// Cancel(IncludeRunning) of a running child: SIGTERM is accepted and the
// record is cancelled; the child's own exit afterwards changes nothing.
func TestCancelSendsSIGTERM(t *testing.T) {
	e := newHoldEnv(t, subprocess.Options{})
	rec := e.dispatch(e.enqueue())
	e.claim(rec)
	ok, err := e.svc.Cancel(t.Context(), rec.ID, queues.CancelOptions{IncludeRunning: true})
	if !ok || err != nil {
		t.Fatalf("Cancel = %v, %v", ok, err)
	}
	e.waitFile(rec.ExecutionRef, ".term")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.exec.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if r := e.get(rec.ID); r.Status != queues.StatusCancelled {
		t.Fatalf("status %s", r.Status)
	}
	// The process is gone: already_cancelled.
	if res := e.exec.CancelExecution(t.Context(), e.get(rec.ID)); res.Status != execution.CancelAlreadyCancelled {
		t.Fatalf("CancelExecution after exit = %+v", res)
	}

	// A provider-side cancel nobody follows with a durable cancel: after the
	// grace left for the canceller, the exit (7) is reconciled as cancelled.
	rec = e.dispatch(e.enqueue())
	e.claim(rec)
	if res := e.exec.CancelExecution(t.Context(), rec); res.Status != execution.CancelAccepted {
		t.Fatalf("CancelExecution = %+v", res)
	}
	e.waitRecord(rec.ID, "cancelled by the exit reconcile", func(r *queues.Record) bool { return r.Status == queues.StatusCancelled })
}

// After a dispatcher restart, refs it did not launch are probed by PID on
// this host; refs of other hosts are left alone.
func TestUntrackedRefs(t *testing.T) {
	e := newHoldEnv(t, subprocess.Options{})
	alive := e.dispatch(e.enqueue())
	e.claim(alive)
	dead := e.dispatch(e.enqueue(queues.EnqueueOptions{Retries: queues.Ptr(1)}))
	e.claim(dead)

	// A second service with a fresh executor: the "restarted" dispatcher.
	restarted := subprocess.New(subprocess.Options{Binary: testBinary(t)})
	svc2 := e.service(restarted)
	host := restarted.Host()

	// The restarted executor did not launch dead's child: it probes the PID.
	// While the child is stopped (alive, still the child), it is running.
	deadPID := pidOf(t, dead.ExecutionRef)
	if err := syscall.Kill(deadPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if r, err := svc2.ExecutionHost().ReconcileTask(t.Context(), dead.ID); err != nil || r.Status != queues.StatusRunning {
		t.Fatalf("live untracked child: %+v, %v", r, err)
	}
	// Killed, its own dispatcher (which waits on it) retries the record at once.
	_ = syscall.Kill(deadPID, syscall.SIGKILL)
	e.waitRecord(dead.ID, "dead child reconciled", func(r *queues.Record) bool { return r.Status == queues.StatusPending })

	// A ref naming a PID that no longer runs, on this host, that nobody
	// tracks: not found.
	orphan := e.enqueue()
	e.claim(orphan)
	orphan, err := e.b.SetExecutionRef(t.Context(), orphan.ID, dead.ExecutionRef)
	if err != nil {
		t.Fatal(err)
	}
	if res := restarted.CancelExecution(t.Context(), orphan); res.Status != execution.CancelAlreadyCancelled {
		t.Fatalf("cancel dead untracked = %+v", res)
	}
	r, err := svc2.ExecutionHost().ReconcileTask(t.Context(), orphan.ID)
	if err != nil || r.Status != queues.StatusFailed || r.Error != "external execution "+dead.ExecutionRef+" not found" {
		t.Fatalf("dead untracked ref: %+v, %v", r, err)
	}

	// A ref whose PID is another live process (this test process) is not
	// the child: its environment lacks the task ID → not found. Only Linux
	// can tell (/proc); elsewhere a live PID counts as running.
	if runtime.GOOS == "linux" {
		impostor := e.enqueue()
		e.claim(impostor)
		ref := fmt.Sprintf("subprocess:%s:%d:%d", host, os.Getpid(), time.Now().UnixMilli())
		if _, err := e.b.SetExecutionRef(t.Context(), impostor.ID, ref); err != nil {
			t.Fatal(err)
		}
		r, err := svc2.ExecutionHost().ReconcileTask(t.Context(), impostor.ID)
		if err != nil || r.Status != queues.StatusFailed || r.Error != "external execution "+ref+" not found" {
			t.Fatalf("impostor: %+v, %v", r, err)
		}
		imp2 := e.enqueue()
		e.claim(imp2)
		if _, err := e.b.SetExecutionRef(t.Context(), imp2.ID, ref); err != nil {
			t.Fatal(err)
		}
		// Never signal a process that is not the child.
		if res := restarted.CancelExecution(t.Context(), e.get(imp2.ID)); res.Status != execution.CancelAlreadyCancelled {
			t.Fatalf("cancel impostor = %+v", res)
		}
		if _, err := e.svc.Cancel(t.Context(), imp2.ID, queues.CancelOptions{IncludeRunning: true}); err != nil {
			t.Fatal(err)
		}
	}

	// Another host's ref: probe error, counted and treated as running.
	foreign := e.enqueue()
	e.claim(foreign)
	if _, err := e.b.SetExecutionRef(t.Context(), foreign.ID, "subprocess:elsewhere:1:1"); err != nil {
		t.Fatal(err)
	}
	res, err := svc2.ExecutionHost().Reconcile(t.Context(), 10)
	if err != nil || res.Errors != 1 || res.Running != 2 || res.Examined != 2 {
		t.Fatalf("Reconcile = %+v, %v", res, err)
	}
	if r := e.get(foreign.ID); r.Status != queues.StatusRunning {
		t.Fatalf("foreign ref touched: %s", r.Status)
	}
	if res := restarted.CancelExecution(t.Context(), e.get(foreign.ID)); res.Status != execution.CancelUnsupported {
		t.Fatalf("cancel foreign = %+v", res)
	}

	// The restarted executor cancels the live untracked child with SIGTERM.
	if res := restarted.CancelExecution(t.Context(), e.get(alive.ID)); res.Status != execution.CancelAccepted {
		t.Fatalf("cancel untracked = %+v", res)
	}
	e.waitFile(alive.ExecutionRef, ".term")
}

// A dispatcher worker never runs more than MaxProcesses children.
func TestMaxProcesses(t *testing.T) {
	e := newHoldEnv(t, subprocess.Options{MaxProcesses: 1}, func(c *queues.Config) { c.ExecutionBackend = subprocess.Name })
	a, b := e.enqueue(), e.enqueue()
	w, err := e.svc.NewWorker(queues.WorkerConfig{MaxConcurrency: 4, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	t.Cleanup(func() { _, _ = w.Stop(context.Background(), true); <-done })
	first := e.waitRecord(a.ID, "first dispatch", func(r *queues.Record) bool { return strings.HasPrefix(r.ExecutionRef, "subprocess:") })
	time.Sleep(100 * time.Millisecond)
	if r := e.get(b.ID); r.ExecutionRef != "" {
		t.Fatalf("second record dispatched beyond MaxProcesses: %q", r.ExecutionRef)
	}
	if e.exec.InFlight() != 1 {
		t.Fatalf("InFlight %d", e.exec.InFlight())
	}
	e.waitFile(first.ExecutionRef, ".started")
	e.claim(first)
	e.exit(first, 0)
	e.waitRecord(b.ID, "second dispatch once the first child exited", func(r *queues.Record) bool {
		return strings.HasPrefix(r.ExecutionRef, "subprocess:")
	})
}

// A launch failure publishes the dispatch_fallback warning and re-routes to
// the fallback backend when one is configured.
func TestLaunchFailure(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "child")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newHoldEnv(t, subprocess.Options{Binary: bin, FallbackExecutionBackend: queues.ExecutionLocal})
	if err := os.Remove(bin); err != nil { // opened fine; now the launch fails
		t.Fatal(err)
	}
	rec := e.enqueue()
	out, err := e.exec.Dispatch(t.Context(), e.svc.ExecutionHost(), rec)
	if err != nil || out.Status != execution.DispatchStatusFallback {
		t.Fatalf("Dispatch = %+v, %v", out, err)
	}
	if r := e.get(rec.ID); r.ExecutionBackend != queues.ExecutionLocal || r.ExecutionRef != "" {
		t.Fatalf("not re-routed: %+v", r)
	}
	var phases []any
	for _, ev := range e.sink.Events() {
		if ev.Type == events.TypeEvent {
			phases = append(phases, ev.Payload["phase"])
		}
	}
	if len(phases) != 1 || phases[0] != "subprocess.dispatch_fallback" {
		t.Fatalf("warnings %v", phases)
	}
	if e.exec.InFlight() != 0 {
		t.Fatalf("slot leaked: InFlight %d", e.exec.InFlight())
	}
	// Closed executors dispatch nothing.
	_ = e.exec.Close(t.Context())
	out, err = e.exec.Dispatch(t.Context(), e.svc.ExecutionHost(), e.enqueue())
	if out.Status != execution.DispatchStatusSkipped || !errors.Is(err, queues.ErrClosed) {
		t.Fatalf("Dispatch after Close = %+v, %v", out, err)
	}
}
