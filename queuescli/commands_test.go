package queuescli_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queuescli"
)

// TestCommandsInProcess drives the tree in-process on a SQLite file, with a
// Config hook that adds middleware, as an application mounting the tree would.
func TestCommandsInProcess(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	var wrapped atomic.Int32
	opts := queuescli.Options{
		Config: func(ctx context.Context, b driver.Backend) (queues.Config, error) {
			return queues.Config{
				Middleware: []queues.Middleware{func(next queues.Handler) queues.Handler {
					return func(ctx context.Context, rec *queues.Record) (any, error) {
						wrapped.Add(1)
						return next(ctx, rec)
					}
				}},
			}, nil
		},
	}
	must := func(args ...string) string {
		t.Helper()
		code, out, stderr := run(t, opts, append(args, "--backend", db)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		return out
	}

	if out := must("migrate", "--status", "--json"); out != `{"applied":[],"applied_now":[],"pending":["0001_create_queue_tasks","0002_task_policy","0003_dispatch_until","0004_workers","0005_schedule_pauses","0006_snooze_errors","0007_tags"]}`+"\n" {
		t.Errorf("migrate --status on a fresh file: %q", out)
	}
	if out := must("migrate"); out != "applied  0001_create_queue_tasks\napplied  0002_task_policy\napplied  0003_dispatch_until\napplied  0004_workers\napplied  0005_schedule_pauses\napplied  0006_snooze_errors\napplied  0007_tags\n" {
		t.Errorf("migrate: %q", out)
	}
	if out := must("migrate", "--status"); out != "applied  0001_create_queue_tasks\napplied  0002_task_policy\napplied  0003_dispatch_until\napplied  0004_workers\napplied  0005_schedule_pauses\napplied  0006_snooze_errors\napplied  0007_tags\n" {
		t.Errorf("migrate --status: %q", out)
	}

	var rec queues.Record
	if err := json.Unmarshal([]byte(must("enqueue", "demo.echo", "--args", `{"k":"v"}`, "--json")), &rec); err != nil {
		t.Fatal(err)
	}
	must("run-task", "--task-id", rec.ID.String())
	if wrapped.Load() != 1 {
		t.Errorf("the Config hook's middleware ran %d times", wrapped.Load())
	}
	var got queues.Record
	if err := json.Unmarshal([]byte(must("get", rec.ID.String(), "--json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != queues.StatusCompleted || string(got.Result) != `{"k":"v"}` {
		t.Errorf("after run-task: %s %s", got.Status, got.Result)
	}
	if out := must("status", "--json"); out != `{"pending":0,"scheduled":0,"running":0,"completed":1,"failed":0,"cancelled":0,"expired":0,"total":1}`+"\n" {
		t.Errorf("status --json: %q", out)
	}
	// A terminal record cannot be cancelled.
	code, _, stderr := run(t, opts, "cancel", rec.ID.String(), "--backend", db)
	if code != 1 {
		t.Errorf("cancel completed: exit %d", code)
	}
	if line := oneErrorLine(t, stderr); !strings.Contains(line, "already completed") {
		t.Errorf("cancel completed: %q", line)
	}
	// A namespace flag reaches the service (an invalid one is refused).
	code, _, stderr = run(t, opts, "status", "--backend", db, "--namespace", "Bad-NS")
	if code != 1 {
		t.Errorf("bad namespace: exit %d", code)
	}
	oneErrorLine(t, stderr)
}

// TestBenchSQLiteTemp runs bench without --backend: a temporary SQLite file.
func TestBenchSQLiteTemp(t *testing.T) {
	t.Setenv(queuescli.EnvBackend, "")
	t.Setenv(queuescli.EnvDSN, "")
	code, stdout, stderr := run(t, queuescli.Options{}, "bench", "--jobs", "500", "--workers", "4", "--samples", "10", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkBenchJSON(t, stdout, "sqlite", 500)
	if !strings.Contains(stderr, "temporary SQLite file") {
		t.Errorf("stderr %q does not say where it writes", stderr)
	}
}
