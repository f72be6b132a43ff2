// Package queuestest helps applications test their own tasks: a started
// service on the in-memory store, closed when the test ends, that either runs
// each record inline as it is enqueued or keeps records until the test
// drains them; assertions on what was enqueued; running one attempt through
// the real engine; and a clock for the store that a test moves forward.
//
// Everything goes through the public API of package queues, so a handler
// runs exactly as in production: with the configured middleware, the task's
// timeout and the decoding of its arguments.
//
//	func TestWelcomeEmail(t *testing.T) {
//		svc := queuestest.NewService(t, app.Registry())
//		handler := app.SignupHandler(svc)
//		handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/signup?email=ada@example.com", nil))
//		queuestest.RequireEnqueued(t, svc, "email.welcome", map[string]any{"to": "ada@example.com"})
//		ran := queuestest.Drain(t, svc)
//		// ran[0].Status == queues.StatusCompleted
//	}
package queuestest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
)

// Options configure NewService. The zero value keeps records until Drain,
// on the wall clock, with logs discarded.
type Options struct {
	// Immediate runs every record inline inside Enqueue (the "immediate"
	// execution backend), retries without delay included, so a test reads
	// the outcome as soon as Enqueue returns. The engine refuses a record
	// due in the future (RunAfter, ScheduledAt) on this backend.
	Immediate bool
	// Clock, when set, is the store's clock (see Clock).
	Clock *Clock
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// MaxDrainAttempts bounds the attempts of one Drain, so tasks that
	// enqueue each other forever fail the test instead of hanging it:
	// 0 → 10000.
	MaxDrainAttempts int
	// Config, when set, adjusts the configuration before the service is
	// created (middleware, limits, error sanitizer, events ...). Backend,
	// Registry, the execution backend and the worker placement (no in-app
	// worker) are set by NewService.
	Config func(cfg *queues.Config)
}

// harness is what NewService keeps about a service for Drain.
type harness struct {
	mu          sync.Mutex
	started     []uuid.UUID // attempts started since the last reset, in order
	worker      *queues.Worker
	maxAttempts int
}

// harnesses maps the services made by NewService to their harness; an
// entry lives until its test's cleanup.
var harnesses sync.Map // *queues.Service → *harness

// NewService returns a started service on a new memory store with reg's
// tasks, closed when the test ends. Nothing runs in the background: records
// wait until Drain runs them, or, with Options.Immediate, run inline inside
// Enqueue. Only the first opts is read. A setup failure fails the test.
func NewService(t testing.TB, reg *queues.Registry, opts ...Options) *queues.Service {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	mo := memory.Options{}
	if o.Clock != nil {
		mo.Now = o.Clock.Now
	}
	h := &harness{maxAttempts: o.MaxDrainAttempts}
	if h.maxAttempts <= 0 {
		h.maxAttempts = defaultMaxDrainAttempts
	}
	cfg := queues.Config{Logger: o.Logger}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	cfg.Backend, cfg.Registry = memory.New(mo), reg
	cfg.ExecutionBackend = ""
	if o.Immediate {
		cfg.ExecutionBackend = queues.ExecutionImmediate
	}
	// The recorder is outermost so Drain sees every attempt, whatever the
	// application's middleware decides.
	cfg.Middleware = append([]queues.Middleware{h.record}, cfg.Middleware...)
	// No in-app worker: the test decides when records run.
	cfg.Worker.Placement = queues.PlacementExternal
	svc, err := queues.New(cfg)
	if err != nil {
		t.Fatalf("queuestest: new service: %v", err)
		return nil
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("queuestest: start service: %v", err)
		return nil
	}
	harnesses.Store(svc, h)
	t.Cleanup(func() {
		harnesses.Delete(svc)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.mu.Lock()
		w := h.worker
		h.mu.Unlock()
		if w != nil {
			if _, err := w.Stop(ctx, true); err != nil {
				t.Errorf("queuestest: stop drain worker: %v", err)
			}
		}
		if err := svc.Close(ctx); err != nil {
			t.Errorf("queuestest: close service: %v", err)
		}
	})
	return svc
}

func (h *harness) record(next queues.Handler) queues.Handler {
	return func(ctx context.Context, rec *queues.Record) (any, error) {
		h.mu.Lock()
		h.started = append(h.started, rec.ID)
		h.mu.Unlock()
		return next(ctx, rec)
	}
}

// defaultMaxDrainAttempts is Options.MaxDrainAttempts when unset.
const defaultMaxDrainAttempts = 10000

// Drain runs every due record of svc (a service made by NewService) one at a
// time in claim order (priority, then enqueue order) until none is due,
// including the records the drained tasks enqueue and the retries that are
// due at once. It returns the records that had an attempt, as they are after
// the drain, in the order of their first attempt. A record scheduled for
// later (RunAfter, a retry backoff) stays scheduled: advance a Clock to run
// it. Drain waits for nothing but the attempts it starts.
func Drain(t testing.TB, svc *queues.Service) []*queues.Record {
	t.Helper()
	h := lookup(t, svc, "Drain")
	if h == nil {
		return nil
	}
	ctx := context.Background()
	h.mu.Lock()
	if h.worker == nil {
		w, err := svc.NewWorker(queues.WorkerConfig{ID: "queuestest-drain", MaxConcurrency: 1, BatchSize: 1, ExpiryCheckInterval: -1})
		if err != nil {
			h.mu.Unlock()
			t.Fatalf("queuestest: Drain: new worker: %v", err)
			return nil
		}
		h.worker = w
	}
	w := h.worker
	h.started = h.started[:0]
	h.mu.Unlock()
	for {
		n, err := w.RunOnce(ctx)
		if err != nil {
			t.Fatalf("queuestest: Drain: %v", err)
			return nil
		}
		if err := w.Wait(ctx); err != nil {
			t.Fatalf("queuestest: Drain: wait: %v", err)
			return nil
		}
		if n == 0 {
			break
		}
		h.mu.Lock()
		total := len(h.started)
		h.mu.Unlock()
		if total > h.maxAttempts {
			t.Fatalf("queuestest: Drain: more than %d attempts; do the tasks enqueue each other forever?", h.maxAttempts)
			return nil
		}
	}
	h.mu.Lock()
	ids := dedupe(h.started)
	h.started = h.started[:0]
	h.mu.Unlock()
	out := make([]*queues.Record, 0, len(ids))
	for _, id := range ids {
		rec, err := svc.GetTask(ctx, id)
		if err != nil {
			t.Fatalf("queuestest: Drain: read %s: %v", id, err)
			return nil
		}
		out = append(out, rec)
	}
	return out
}

func lookup(t testing.TB, svc *queues.Service, fn string) *harness {
	t.Helper()
	v, ok := harnesses.Load(svc)
	if !ok {
		t.Fatalf("queuestest: %s needs a running service made by queuestest.NewService", fn)
		return nil
	}
	return v.(*harness)
}

func dedupe(ids []uuid.UUID) []uuid.UUID {
	seen := make(map[uuid.UUID]bool, len(ids))
	out := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// RunOne enqueues taskName with args (any value that encodes to the task's
// JSON arguments) on svc and runs exactly one attempt inline through the
// engine — middleware, the task's timeout and the decoding of args
// included — without a worker loop. Unless opts set Retries, the record
// is enqueued with no retries, so the attempt's outcome is the record's.
//
// It returns the record after the attempt (nil when the enqueue was
// refused) and nil when it completed; otherwise the error the enqueue
// returned (errors.Is(err, queues.ErrInvalidArgs), queues.ErrUnknownTask,
// ...) or a *queues.TaskError with the status the attempt left and the
// stored error text. It fails the test when the enqueue returned an
// existing record holding the task's key instead of running one.
func RunOne(t testing.TB, svc *queues.Service, taskName string, args any, opts ...queues.EnqueueOptions) (*queues.Record, error) {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("queuestest: RunOne: encode args: %w: %w", queues.ErrInvalidArgs, err)
	}
	var o queues.EnqueueOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.ExecutionBackend = queues.ExecutionImmediate
	if o.Retries == nil {
		o.Retries = queues.Ptr(0)
	}
	ctx := context.Background()
	res, err := svc.EnqueueRaw(ctx, taskName, raw, o)
	if err != nil {
		var rec *queues.Record
		if res != nil {
			rec = res.Record()
		}
		return rec, err
	}
	if res.Deduplicated {
		t.Fatalf("queuestest: RunOne: enqueue of %s returned the existing record %s holding its key; nothing ran", taskName, res.ID)
		return res.Record(), errors.New("queuestest: RunOne: deduplicated")
	}
	rec := res.Record()
	if _, err := res.Value(); err != nil {
		return rec, err
	}
	return rec, nil
}
