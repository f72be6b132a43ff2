package queuescli_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/internal/queuefacts"
	"github.com/queuesgo/queues/queuescli"
)

// sharedMemory is a memory store that passes for a shared one, so the
// commands that refuse process-local stores run against the registry the
// test's own worker writes.
type sharedMemory struct{ *memory.Backend }

func (s sharedMemory) Capabilities() driver.Capabilities {
	c := s.Backend.Capabilities()
	c.ProcessLocal = false
	return c
}

// noRegistry is a shared store without the registry capability.
type noRegistry struct{ driver.Backend }

func (s noRegistry) Capabilities() driver.Capabilities {
	c := s.Backend.Capabilities()
	c.ProcessLocal = false
	return c
}

// registryOnly is a shared store with the registry but without backlog counts.
type registryOnly struct{ sharedMemory }

// CountBacklog hides the memory store's: registryOnly does not count.
func (registryOnly) CountBacklog() {}

func useBackend(b driver.Backend) queuescli.Options {
	return queuescli.Options{Config: func(context.Context, driver.Backend) (queues.Config, error) {
		return queues.Config{Backend: b}, nil
	}}
}

// migratedSQLite returns the DSN of a new, migrated SQLite file.
func migratedSQLite(t *testing.T) string {
	t.Helper()
	db := "sqlite:" + filepath.Join(t.TempDir(), "app.db")
	if code, _, stderr := run(t, queuescli.Options{}, "migrate", "--backend", db); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	return db
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWorkersAndQueuesCommands(t *testing.T) {
	store := sharedMemory{memory.New(memory.Options{})}
	svc, err := queues.New(queues.Config{Backend: store, Registry: demoRegistry(t), ExternalExecutionBackends: []string{"subprocess"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(ctx) })
	w, err := svc.NewWorker(queues.WorkerConfig{ID: "w-cli", Queues: []string{"alpha"}, MaxConcurrency: 3, HeartbeatInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { _, _ = w.Stop(ctx, true) })
	<-w.Ready()
	// The commands open the --backend store first (it must exist), then
	// the Config hook hands them the test's store.
	db := migratedSQLite(t)
	opts := useBackend(store)
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, opts, append(args, "--backend", db)...)
	}
	var ws []driver.WorkerInfo
	waitFor(t, "worker listed", 5*time.Second, func() bool {
		code, out, stderr := cli("workers", "--json")
		if code != 0 {
			t.Fatalf("workers --json: exit %d: %s", code, stderr)
		}
		ws = nil
		if err := json.Unmarshal([]byte(out), &ws); err != nil {
			t.Fatalf("workers --json: %v: %q", err, out)
		}
		return len(ws) == 1
	})
	got := ws[0]
	if got.ID != "w-cli" || got.PID != os.Getpid() || strings.Join(got.Queues, ",") != "alpha" || got.ExecutionBackend != "local" ||
		got.Concurrency != 3 || got.Version == "" || got.StartedAt.IsZero() || !got.ExpiresAt.After(got.SeenAt) {
		t.Errorf("workers --json = %+v", got)
	}
	code, out, stderr := cli("workers")
	if code != 0 || !strings.Contains(out, "w-cli") || !strings.Contains(out, "0/3") || !strings.Contains(out, "alpha") {
		t.Errorf("workers: exit %d %q %s", code, out, stderr)
	}

	// A record for a transport nobody serves, and one on a queue the
	// worker does not work, are shown per queue.
	if _, err := svc.EnqueueRaw(ctx, "demo.noop", nil, queues.EnqueueOptions{Queue: "alpha", ExecutionBackend: "subprocess"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.EnqueueRaw(ctx, "demo.noop", nil, queues.EnqueueOptions{Queue: "beta"}); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = cli("queues", "--json")
	if code != 0 {
		t.Fatalf("queues --json: exit %d: %s", code, stderr)
	}
	var qs []queuefacts.Queue
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		t.Fatalf("queues --json: %v: %q", err, out)
	}
	if len(qs) != 2 || qs[0].Queue != "alpha" || qs[1].Queue != "beta" {
		t.Fatalf("queues --json = %s", out)
	}
	for _, q := range qs {
		if q.Unserved == nil || *q.Unserved != 1 || len(q.ExecutionBackends) != 1 || q.ExecutionBackends[0].Served == nil || *q.ExecutionBackends[0].Served {
			t.Errorf("queue %s: %s", q.Queue, out)
		}
	}
	code, out, _ = cli("queues")
	if code != 0 || !strings.Contains(out, `queue "alpha": 1 due records wait for an execution backend no live worker serves: "subprocess" (1)`) ||
		!strings.Contains(out, `queue "beta": 1 due records`) {
		t.Errorf("queues: exit %d %q", code, out)
	}

	// status prints the same note after its table; --json keeps its eight keys.
	code, out, _ = cli("status")
	if code != 0 || !strings.HasPrefix(out, "Status") || !strings.Contains(out, `queue "alpha": 1 due records`) || !strings.Contains(out, `queue "beta": 1 due records`) {
		t.Errorf("status: exit %d %q", code, out)
	}
	code, out, _ = cli("status", "--queue", "beta")
	if code != 0 || strings.Contains(out, `"alpha"`) || !strings.Contains(out, `queue "beta": 1 due records`) {
		t.Errorf("status --queue beta: exit %d %q", code, out)
	}
	code, out, _ = cli("status", "--json")
	if code != 0 || out != `{"pending":2,"scheduled":0,"running":0,"completed":0,"failed":0,"cancelled":0,"expired":0,"total":2}`+"\n" {
		t.Errorf("status --json: exit %d %q", code, out)
	}

	if _, err := w.Stop(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli("workers", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("workers --json after Stop: exit %d %q", code, out)
	}
	if code, out, _ = cli("workers"); code != 0 || out != "no live workers\n" {
		t.Errorf("workers after Stop: exit %d %q", code, out)
	}

	// status pays for no sample: without backlog counts it prints no note,
	// while queues samples the due records.
	sampled := useBackend(registryOnly{store})
	code, out, _ = run(t, sampled, "status", "--backend", db)
	if code != 0 || strings.Contains(out, "queue ") {
		t.Errorf("status without backlog counts: exit %d %q", code, out)
	}
	code, out, _ = run(t, sampled, "queues", "--backend", db)
	if code != 0 || !strings.Contains(out, `queue "alpha": at least 1 due records`) || !strings.Contains(out, "the first 100 due records were sampled") {
		t.Errorf("queues without backlog counts: exit %d %q", code, out)
	}

	// A store without the registry says so in one line.
	code, _, stderr = run(t, useBackend(noRegistry{memory.New(memory.Options{})}), "workers", "--backend", db)
	if line := oneErrorLine(t, stderr); code != 1 || !strings.Contains(line, "keeps no registry of workers") {
		t.Errorf("workers without a registry: exit %d %q", code, line)
	}
}

// The binary declares the transports it ships: enqueue accepts a record
// for subprocess and refuses a name nothing serves, in one line.
func TestEnqueueExecutionBackendNames(t *testing.T) {
	db := migratedSQLite(t)
	code, out, stderr := run(t, queuescli.Options{}, "enqueue", "demo.noop", "--execution-backend", "subprocess", "--backend", db)
	if code != 0 || !strings.HasPrefix(out, "enqueued ") {
		t.Fatalf("enqueue --execution-backend subprocess: exit %d %q %s", code, out, stderr)
	}
	code, out, stderr = run(t, queuescli.Options{}, "enqueue", "demo.noop", "--execution-backend", "nosuch", "--backend", db)
	line := oneErrorLine(t, stderr)
	if code != 1 || out != "" || !strings.Contains(line, `unknown execution backend "nosuch"`) || !strings.Contains(line, "subprocess") {
		t.Errorf("enqueue --execution-backend nosuch: exit %d %q %q", code, out, line)
	}
	code, out, _ = run(t, queuescli.Options{}, "status", "--json", "--backend", db)
	if code != 0 || !strings.Contains(out, `"total":1`) {
		t.Errorf("the refused record was written: %q", out)
	}
}
