//go:build unix

package subprocess_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/execution/subprocess"
)

// e2eEnv is a dispatcher on a SQLite file whose children run
// `<test binary> run-task --task-id <id>` → ConsumeOne on the same file.
type e2eEnv struct {
	t     *testing.T
	svc   *queues.Service
	exec  *subprocess.Executor
	tasks e2eTasks
}

func newE2E(t *testing.T) *e2eEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "queues.db")
	b, err := openStore(t.Context(), path)
	if err != nil {
		t.Fatalf("open SQLite store: %v", err)
	}
	reg, tasks := e2eRegistry()
	ex := subprocess.New(subprocess.Options{Binary: testBinary(t), MaxProcesses: 4,
		Env: []string{"SP_TEST_CHILD=consume", "SP_DB=" + path, childGORACE()}})
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, ExecutionBackend: subprocess.Name,
		Executors: []execution.Transport{ex}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	e := &e2eEnv{t: t, svc: svc, exec: ex, tasks: tasks}
	w, err := svc.NewWorker(queues.WorkerConfig{ID: "dispatcher", MaxConcurrency: 4, BatchSize: 4,
		PollInterval: 20 * time.Millisecond, PollBackoffMax: 200 * time.Millisecond, ReconcileInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	<-w.Ready()
	t.Cleanup(func() {
		_, _ = w.Stop(context.Background(), true)
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := ex.Wait(ctx); err != nil {
			t.Errorf("children still running: %v", err)
		}
		_ = svc.Close(context.Background())
	})
	return e
}

func (e *e2eEnv) wait(id uuid.UUID, what string, cond func(r *queues.Record) bool) *queues.Record {
	e.t.Helper()
	var r *queues.Record
	waitFor(e.t, 30*time.Second, what, func() bool {
		var err error
		r, err = e.svc.GetTask(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		return cond(r)
	})
	return r
}

func TestE2ECompletes(t *testing.T) {
	e := newE2E(t)
	var ids []uuid.UUID
	for range 3 {
		res, err := e.tasks.ok.Enqueue(t.Context(), e.svc, empty{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	for _, id := range ids {
		r := e.wait(id, "completed", func(r *queues.Record) bool { return r.IsTerminal() })
		if r.Status != queues.StatusCompleted {
			t.Fatalf("status %s error %q", r.Status, r.Error)
		}
		pid := pidOf(t, r.ExecutionRef)
		if want := fmt.Sprintf(`"ok from %d"`, pid); string(r.Result) != want {
			t.Fatalf("result %s, want %s (the child named by the ref ran it)", r.Result, want)
		}
		if r.WorkerID != fmt.Sprintf("worker-%d", pid) {
			t.Fatalf("worker_id %q", r.WorkerID)
		}
	}
}

func TestE2ERetriesThenFails(t *testing.T) {
	e := newE2E(t)
	res, err := e.tasks.fail.Enqueue(t.Context(), e.svc, empty{}, queues.EnqueueOptions{Retries: queues.Ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	r := e.wait(res.ID, "failed", func(r *queues.Record) bool { return r.IsTerminal() })
	if r.Status != queues.StatusFailed || r.RetryCount != 2 || r.Error != "boom" {
		t.Fatalf("record %s retry_count %d error %q", r.Status, r.RetryCount, r.Error)
	}
}

// A child killed with SIGKILL mid-attempt: the exit reconcile fails the
// record (no retries left); nothing stays running.
func TestE2EKilledChild(t *testing.T) {
	e := newE2E(t)
	res, err := e.tasks.sleep.Enqueue(t.Context(), e.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	r := e.wait(res.ID, "running", func(r *queues.Record) bool { return r.Status == queues.StatusRunning })
	ref := r.ExecutionRef
	if err := syscall.Kill(pidOf(t, ref), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r = e.wait(res.ID, "failed", func(r *queues.Record) bool { return r.IsTerminal() })
	if r.Status != queues.StatusFailed || r.Error != "external execution "+ref+" failed" {
		t.Fatalf("record %s error %q", r.Status, r.Error)
	}
}

// Cancel(IncludeRunning) of a running child: SIGTERM accepted, record cancelled.
func TestE2ECancelRunning(t *testing.T) {
	e := newE2E(t)
	res, err := e.tasks.sleep.Enqueue(t.Context(), e.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(res.ID, "running", func(r *queues.Record) bool { return r.Status == queues.StatusRunning })
	ok, err := e.svc.Cancel(t.Context(), res.ID, queues.CancelOptions{IncludeRunning: true, Reason: "stop"})
	if !ok || err != nil {
		t.Fatalf("Cancel = %v, %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := e.exec.Wait(ctx); err != nil {
		t.Fatalf("the child did not stop: %v", err)
	}
	r := e.wait(res.ID, "cancelled", func(r *queues.Record) bool { return r.IsTerminal() })
	if r.Status != queues.StatusCancelled {
		t.Fatalf("status %s", r.Status)
	}
}
