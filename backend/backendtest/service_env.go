package backendtest

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
)

// svcEnv is one service on a fresh backend, with an event sink.
type svcEnv struct {
	t    *testing.T
	b    driver.Backend
	svc  *queues.Service
	reg  *queues.Registry
	sink *events.MemorySink
}

type svcOption func(*queues.Config)

// newSvc builds and starts a service on a fresh backend. register runs before
// the service is created so tasks can be registered.
func newSvc(t *testing.T, f Factory, register func(r *queues.Registry), opts ...svcOption) *svcEnv {
	t.Helper()
	return newSvcOn(t, f.New(t), register, opts...)
}

func newSvcOn(t *testing.T, b driver.Backend, register func(r *queues.Registry), opts ...svcOption) *svcEnv {
	t.Helper()
	reg := queues.NewRegistry()
	if register != nil {
		register(reg)
	}
	sink := events.NewMemorySink()
	cfg := queues.Config{Backend: b, Registry: reg, Events: &queues.EventsConfig{Sinks: []events.Sink{sink}},
		Logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := queues.New(cfg)
	if err != nil {
		t.Fatalf("queues.New: %v", err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return &svcEnv{t: t, b: b, svc: svc, reg: reg, sink: sink}
}

// worker starts a worker running in the background; it is stopped (forced) at cleanup.
func (e *svcEnv) worker(cfg queues.WorkerConfig) *queues.Worker {
	e.t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	if cfg.PollBackoffMax == 0 {
		cfg.PollBackoffMax = 50 * time.Millisecond
	}
	if cfg.FinalCancelTimeout == 0 {
		cfg.FinalCancelTimeout = time.Second
	}
	w, err := e.svc.NewWorker(cfg)
	if err != nil {
		e.t.Fatalf("NewWorker: %v", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(context.Background()) }()
	select {
	case <-w.Ready():
	case <-time.After(5 * time.Second):
		e.t.Fatal("worker did not become ready")
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = w.Stop(ctx, true)
		<-done
	})
	return w
}

// waitStatus waits until the record reaches one of the statuses.
func (e *svcEnv) waitStatus(id uuid.UUID, want ...queues.Status) *queues.Record {
	e.t.Helper()
	var last *queues.Record
	ok := svcEventually(10*time.Second, func() bool {
		rec, err := e.svc.GetTask(context.Background(), id)
		if err != nil {
			return false
		}
		last = rec
		for _, s := range want {
			if rec.Status == s {
				return true
			}
		}
		return false
	})
	if !ok {
		if last != nil {
			e.t.Fatalf("record %s: status %s (error %q), want one of %v", id, last.Status, last.Error, want)
		}
		e.t.Fatalf("record %s never readable", id)
	}
	return last
}

// waitEvents waits until the sink holds events whose types for task id
// satisfy pred, and returns those types.
func (e *svcEnv) waitEvents(id uuid.UUID, pred func(types []string) bool) []string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var types []string
	err := e.sink.WaitFor(ctx, func(evs []events.Event) bool {
		types = eventTypes(evs, id)
		return pred(types)
	})
	if err != nil {
		e.t.Fatalf("events for %s: %v (have %v)", id, err, types)
	}
	return types
}

func eventTypes(evs []events.Event, id uuid.UUID) []string {
	var out []string
	for _, ev := range evs {
		if ev.TaskID == id.String() {
			out = append(out, ev.Type)
		}
	}
	return out
}

func (e *svcEnv) eventsOf(id uuid.UUID, typ string) []events.Event {
	var out []events.Event
	for _, ev := range e.sink.Events() {
		if ev.TaskID == id.String() && ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func hasType(types []string, typ string) bool {
	for _, x := range types {
		if x == typ {
			return true
		}
	}
	return false
}

func countType(types []string, typ string) int {
	n := 0
	for _, x := range types {
		if x == typ {
			n++
		}
	}
	return n
}

// eventually polls cond every 5ms until it holds or the deadline passes.
func svcEventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type noArgs struct{}
type none struct{}

// takeClaimAway requeues the running records as another process's stale
// recovery would (a new generation, owner cleared), whatever their
// heartbeat. It retries until a record is requeued (for up to 10 s).
func takeClaimAway(b driver.Backend) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := requeueRunning(b)
		if err == nil && n > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stale requeue never took the claim away (last error: %v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// requeueRunning lists up to 10 running records and requeues each with a
// stale-recovery transition that accepts any heartbeat; it returns how many
// were requeued.
func requeueRunning(b driver.Backend) (int, error) {
	ctx := context.Background()
	recs, err := b.ListStale(ctx, -1, 10)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	ts := make([]driver.Transition, len(recs))
	for i, r := range recs {
		ts[i] = driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queuestype.StatusPending,
			Error: driver.StaleError, StaleAfter: -1}
	}
	res, err := b.Settle(ctx, ts)
	n := 0
	for _, r := range res {
		if r.Err == nil {
			n++
		}
	}
	return n, err
}
