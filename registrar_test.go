package queues_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/execution"
)

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func listWorkers(t *testing.T, svc *queues.Service) []driver.WorkerInfo {
	t.Helper()
	ws, err := svc.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// A worker registers when it starts, shows its running count, refreshes
// its entry while idle, and removes it when it stops.
func TestWorkerRegistersRefreshesAndLeaves(t *testing.T) {
	reg := queues.NewRegistry()
	release := make(chan struct{})
	block := queues.MustRegister(reg, "block", func(ctx context.Context, _ empty) (empty, error) { return untilReleased(ctx, release) })
	svc := quietService(t, reg)
	w, err := svc.NewWorker(queues.WorkerConfig{ID: "reg-1", Queues: []string{"default", "other"}, MaxConcurrency: 2,
		HeartbeatInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	<-w.Ready()

	var first driver.WorkerInfo
	waitFor(t, 2*time.Second, "the worker's entry", func() bool {
		ws := listWorkers(t, svc)
		if len(ws) == 1 {
			first = ws[0]
		}
		return len(ws) == 1
	})
	host, _ := os.Hostname()
	if first.ID != "reg-1" || first.Host != host || first.PID != os.Getpid() || strings.Join(first.Queues, ",") != "default,other" ||
		first.ExecutionBackend != queues.ExecutionLocal || first.Concurrency != 2 || first.Running != 0 || first.Version != "devel" ||
		first.StartedAt.IsZero() {
		t.Errorf("entry = %+v", first)
	}
	// The entry lives three heartbeat intervals (plus jitter) past each refresh.
	if ttl := first.ExpiresAt.Sub(first.SeenAt); ttl < 60*time.Millisecond || ttl > 66*time.Millisecond {
		t.Errorf("entry ttl = %s, want 3 × 20ms × (1 + 0.1)", ttl)
	}

	// Idle: SeenAt moves on tick after tick.
	seen := first.SeenAt
	for range 3 {
		waitFor(t, 2*time.Second, "an idle refresh", func() bool {
			ws := listWorkers(t, svc)
			return len(ws) == 1 && ws[0].SeenAt.After(seen)
		})
		seen = listWorkers(t, svc)[0].SeenAt
	}

	if _, err := block.Enqueue(context.Background(), svc, empty{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "running 1 in the entry", func() bool {
		ws := listWorkers(t, svc)
		return len(ws) == 1 && ws[0].Running == 1
	})
	close(release)
	waitFor(t, 2*time.Second, "running 0 in the entry", func() bool {
		ws := listWorkers(t, svc)
		return len(ws) == 1 && ws[0].Running == 0
	})

	if _, err := w.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ws := listWorkers(t, svc); len(ws) != 0 {
		t.Errorf("entries after a clean stop: %+v", ws)
	}
}

// flakyRegistry is a memory store whose registry writes fail while broken is set.
type flakyRegistry struct {
	*memory.Backend
	broken atomic.Bool
	writes atomic.Int32
}

func (f *flakyRegistry) RegisterWorker(ctx context.Context, w driver.WorkerInfo, ttl time.Duration) error {
	f.writes.Add(1)
	if f.broken.Load() {
		return errors.New("registry unavailable")
	}
	return f.Backend.RegisterWorker(ctx, w, ttl)
}

// A worker whose refreshes stop landing disappears after the TTL; the
// worker keeps working, and the failure streak is logged once.
func TestWorkerEntryExpiresWhenRefreshesStop(t *testing.T) {
	reg := queues.NewRegistry()
	var ran atomic.Int32
	task := queues.MustRegister(reg, "count", func(ctx context.Context, _ empty) (empty, error) { ran.Add(1); return empty{}, nil })
	store := &flakyRegistry{Backend: memory.New(memory.Options{})}
	var logs lockedBuffer
	svc, err := queues.New(queues.Config{Backend: store, Registry: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	hb := 30 * time.Millisecond
	runWorker(t, svc, queues.WorkerConfig{ID: "reg-2", HeartbeatInterval: hb})
	waitFor(t, 2*time.Second, "the worker's entry", func() bool { return len(listWorkers(t, svc)) == 1 })

	store.broken.Store(true)
	brokenAt := time.Now()
	waitFor(t, 2*time.Second, "the entry to expire", func() bool { return len(listWorkers(t, svc)) == 0 })
	// Loose bound: a loaded machine may poll late, never early.
	if gone, ttl := time.Since(brokenAt), 3*hb*11/10; gone > ttl+10*hb {
		t.Errorf("the entry vanished %s after the refreshes stopped, want within about %s", gone, ttl)
	}
	// Several failed refreshes, one log line.
	w0 := store.writes.Load()
	waitFor(t, 2*time.Second, "more failed refreshes", func() bool { return store.writes.Load() >= w0+3 })
	if _, err := task.Enqueue(context.Background(), svc, empty{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the worker to keep working", func() bool { return ran.Load() == 1 })
	if n := strings.Count(logs.String(), "Queue worker registry write failed"); n != 1 {
		t.Errorf("registry failure logged %d times, want once per streak:\n%s", n, logs.String())
	}

	store.broken.Store(false)
	waitFor(t, 2*time.Second, "the entry to come back", func() bool { return len(listWorkers(t, svc)) == 1 })
	waitFor(t, 2*time.Second, "the recovery log", func() bool {
		return strings.Contains(logs.String(), "Queue worker registry write recovered")
	})
}

// noRegistryStore is a store without the registry capability.
type noRegistryStore struct{ driver.Backend }

// A store without the registry: Workers says ErrUnsupported, and workers run.
func TestWorkersUnsupported(t *testing.T) {
	reg := queues.NewRegistry()
	var ran atomic.Int32
	task := queues.MustRegister(reg, "count", func(ctx context.Context, _ empty) (empty, error) { ran.Add(1); return empty{}, nil })
	svc := quietService(t, reg, func(c *queues.Config) { c.Backend = noRegistryStore{memory.New(memory.Options{})} })
	runWorker(t, svc, queues.WorkerConfig{HeartbeatInterval: 10 * time.Millisecond})
	if _, err := svc.Workers(context.Background()); !errors.Is(err, queues.ErrUnsupported) {
		t.Fatalf("Workers on a store without a registry: %v", err)
	}
	if _, err := task.Enqueue(context.Background(), svc, empty{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the task to run", func() bool { return ran.Load() == 1 })
}

// Enqueue refuses an execution backend nothing serves, writing nothing,
// and accepts the built-in, configured and declared ones.
func TestEnqueueRefusesUnknownExecutionBackend(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "t", func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil })
	routed := queues.MustRegister(reg, "routed", func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil },
		queues.TaskOptions{ExecutionBackend: "nosuch"})
	svc := quietService(t, reg)
	ctx := context.Background()

	_, err := task.Enqueue(ctx, svc, empty{}, queues.EnqueueOptions{ExecutionBackend: "nosuch"})
	var ce *queues.ConfigError
	if !errors.Is(err, queues.ErrConfig) || !errors.As(err, &ce) || ce.Field != "ExecutionBackend" ||
		!strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "known: immediate, local") ||
		!strings.Contains(err.Error(), "ExternalExecutionBackends") {
		t.Fatalf("enqueue for an unknown execution backend: %v", err)
	}
	if _, err := routed.Enqueue(ctx, svc, empty{}); !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("a task routed to an unknown execution backend: %v", err)
	}
	var be *queues.BatchError
	if _, err := svc.EnqueueMany(ctx, []queues.EnqueueRequest{{Task: "t"}, {Task: "t", Options: queues.EnqueueOptions{ExecutionBackend: "nosuch"}}}); !errors.As(err, &be) || be.Index != 1 || !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("EnqueueMany with an unknown execution backend: %v", err)
	}
	if st, err := svc.Statistics(ctx, ""); err != nil || st.Total != 0 {
		t.Fatalf("refused enqueues wrote records: %+v %v", st, err)
	}
	for _, eb := range []string{"", queues.ExecutionLocal} {
		if _, err := task.Enqueue(ctx, svc, empty{}, queues.EnqueueOptions{ExecutionBackend: eb}); err != nil {
			t.Errorf("enqueue for %q: %v", eb, err)
		}
	}

	declared := quietService(t, reg, func(c *queues.Config) { c.ExternalExecutionBackends = []string{"nosuch"} })
	if _, err := routed.Enqueue(ctx, declared, empty{}); err != nil {
		t.Errorf("enqueue for a declared execution backend: %v", err)
	}
	configured := quietService(t, reg, func(c *queues.Config) { c.Executors = []execution.Transport{newFake("nosuch")} })
	if _, err := routed.Enqueue(ctx, configured, empty{}); err != nil {
		t.Errorf("enqueue for a configured executor: %v", err)
	}
	if _, err := queues.New(queues.Config{Backend: memory.New(memory.Options{}), ExternalExecutionBackends: []string{""}}); !errors.Is(err, queues.ErrConfig) {
		t.Errorf("an empty declared name: %v", err)
	}
}
