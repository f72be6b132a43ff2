package queues_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/queuestype"
)

// Errors a store client returns when its server is down: a connect that is
// refused, and a reply lost to a reset connection.
var (
	errRefused   = &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	errReplyLost = &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
)

// refusedValueError is what a database answers to a value it cannot hold
// (PostgreSQL's 22P05 for a \u0000 in jsonb); the store classifies it.
type refusedValueError struct{}

func (refusedValueError) Error() string {
	return "ERROR: unsupported Unicode escape sequence (SQLSTATE 22P05)"
}

// flakyStore fronts a memory store and fails calls the way a store outage
// does: every call while down, the next n calls of one operation, or a call
// that lands but whose reply is lost. It refuses results and error texts
// holding refusedMark, as a database refuses a value it cannot hold.
type flakyStore struct {
	driver.Backend
	down atomic.Bool

	mu       sync.Mutex
	failNext map[string]int // operation → calls to fail before they reach the store
	loseNext map[string]int // operation → calls that land and then fail
	calls    map[string]int
	failed   map[string]int
	ok       []string // operations that succeeded, in order

	staleListed  map[uuid.UUID]int // record → times ListStale listed it
	staleSettled map[uuid.UUID]int // record → stale recovery transitions applied to it
}

func newFlaky() *flakyStore { return newFlakyOn(memory.New(memory.Options{})) }

// newFlakyOn fronts b (which may be another flaky store's inner store).
func newFlakyOn(b driver.Backend) *flakyStore {
	return &flakyStore{Backend: b, failNext: map[string]int{}, loseNext: map[string]int{},
		calls: map[string]int{}, failed: map[string]int{},
		staleListed: map[uuid.UUID]int{}, staleSettled: map[uuid.UUID]int{}}
}

// inner is the memory store itself: reads through it never fail.
func (f *flakyStore) inner() driver.Backend { return f.Backend }

func (f *flakyStore) ClassifyError(err error) driver.ErrorClass {
	if errors.As(err, new(refusedValueError)) {
		return driver.ClassInvalidData
	}
	return driver.ClassUnknown
}

func (f *flakyStore) set(fn func(f *flakyStore)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *flakyStore) count(op string) (calls, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op], f.failed[op]
}

// okSince returns the operations that succeeded from index i on.
func (f *flakyStore) okSince(i int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ok[min(i, len(f.ok)):]...)
}

func (f *flakyStore) okLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ok)
}

func flakyCall[T any](f *flakyStore, op string, fn func() (T, error)) (T, error) {
	var zero T
	f.mu.Lock()
	f.calls[op]++
	if f.down.Load() || f.failNext[op] > 0 {
		if f.failNext[op] > 0 {
			f.failNext[op]--
		}
		f.failed[op]++
		f.mu.Unlock()
		return zero, errRefused
	}
	f.mu.Unlock()
	v, err := fn()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		return zero, err
	}
	if f.loseNext[op] > 0 {
		f.loseNext[op]--
		f.failed[op]++
		return zero, errReplyLost
	}
	f.ok = append(f.ok, op)
	return v, nil
}

// settleOp names a Settle call by the outcome it writes, as the store's
// per-outcome operations used to be named: "complete", "fail" (a retry or a
// terminal failure), "cancel", "interrupt", and "stale_settle" for the
// transitions of a stale recovery sweep.
func settleOp(ts []driver.Transition) string {
	for _, t := range ts {
		if t.StaleAfter != 0 {
			return "stale_settle"
		}
	}
	if len(ts) != 1 {
		return "settle"
	}
	switch t := ts[0]; {
	case t.To == queues.StatusCompleted:
		return "complete"
	case t.To == queues.StatusCancelled:
		return "cancel"
	case t.Interrupted:
		return "interrupt"
	}
	return "fail"
}

func (f *flakyStore) Settle(ctx context.Context, ts []driver.Transition) ([]driver.SettleResult, error) {
	return flakyCall(f, settleOp(ts), func() ([]driver.SettleResult, error) {
		for _, t := range ts {
			if bytes.Contains(t.Result, []byte(refusedMark)) || strings.Contains(t.Error, refusedMark) {
				return nil, refusedValueError{}
			}
		}
		res, err := f.Backend.Settle(ctx, ts)
		if err == nil && settleOp(ts) == "stale_settle" {
			f.mu.Lock()
			for i, r := range res {
				if r.Err == nil && i < len(ts) {
					f.staleSettled[ts[i].ID]++
				}
			}
			f.mu.Unlock()
		}
		return res, err
	})
}

func (f *flakyStore) Cancel(ctx context.Context, p driver.CancelParams) (*queues.Record, error) {
	return flakyCall(f, "cancel", func() (*queues.Record, error) { return f.Backend.Cancel(ctx, p) })
}

func (f *flakyStore) TouchHeartbeats(ctx context.Context, ts []driver.HeartbeatTouch) (driver.HeartbeatResult, error) {
	return flakyCall(f, "heartbeat", func() (driver.HeartbeatResult, error) { return f.Backend.TouchHeartbeats(ctx, ts) })
}

func (f *flakyStore) NullHeartbeats(ctx context.Context, fences []queuestype.Fence) error {
	_, err := flakyCall(f, "null_heartbeats", func() (struct{}, error) { return struct{}{}, f.Backend.NullHeartbeats(ctx, fences) })
	return err
}

func (f *flakyStore) ClaimMany(ctx context.Context, p driver.ClaimParams) (driver.ClaimResult, error) {
	return flakyCall(f, "claim", func() (driver.ClaimResult, error) { return f.Backend.ClaimMany(ctx, p) })
}

func (f *flakyStore) GetTask(ctx context.Context, id uuid.UUID) (*queues.Record, error) {
	return flakyCall(f, "get", func() (*queues.Record, error) { return f.Backend.GetTask(ctx, id) })
}

func (f *flakyStore) GetTasks(ctx context.Context, ids []uuid.UUID) ([]*queues.Record, error) {
	return flakyCall(f, "get_many", func() ([]*queues.Record, error) { return f.Backend.GetTasks(ctx, ids) })
}

// ListStale is one stale recovery sweep's read ("list_stale"); the records
// it lists are remembered.
func (f *flakyStore) ListStale(ctx context.Context, staleAfter time.Duration, limit int) ([]*queues.Record, error) {
	return flakyCall(f, "list_stale", func() ([]*queues.Record, error) {
		recs, err := f.Backend.ListStale(ctx, staleAfter, limit)
		if err == nil {
			f.mu.Lock()
			for _, r := range recs {
				f.staleListed[r.ID]++
			}
			f.mu.Unlock()
		}
		return recs, err
	})
}

// stale returns how often id was listed by ListStale and how often a stale
// recovery transition of it was applied.
func (f *flakyStore) stale(id uuid.UUID) (listed, settled int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.staleListed[id], f.staleSettled[id]
}

func (f *flakyStore) ExpireOverdue(ctx context.Context, limit int) ([]*queues.Record, error) {
	return flakyCall(f, "expire", func() ([]*queues.Record, error) { return f.Backend.ExpireOverdue(ctx, limit) })
}

// logCapture keeps every log record.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, r.Clone())
	c.mu.Unlock()
	return nil
}

// find returns the attributes of the first record with msg.
func (c *logCapture) find(msg string) (map[string]any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.recs {
		if r.Message == msg {
			attrs := map[string]any{}
			r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.Any(); return true })
			return attrs, true
		}
	}
	return nil, false
}

// flakyEnv is a service (with events and captured logs) on a flaky store.
type flakyEnv struct {
	store *flakyStore
	svc   *queues.Service
	sink  *events.MemorySink
	logs  *logCapture
}

func newFlakyEnv(t *testing.T, store *flakyStore, reg *queues.Registry) *flakyEnv {
	t.Helper()
	e := &flakyEnv{store: store, sink: events.NewMemorySink(), logs: &logCapture{}}
	svc, err := queues.New(queues.Config{Backend: store, Registry: reg, Logger: slog.New(e.logs),
		Events: &queues.EventsConfig{Sinks: []events.Sink{e.sink}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	e.svc = svc
	return e
}

// get reads the record from the memory store behind the flaky one.
func (e *flakyEnv) get(t testing.TB, id uuid.UUID) *queues.Record {
	t.Helper()
	rec, err := e.store.inner().GetTask(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func (e *flakyEnv) waitStatus(t testing.TB, id uuid.UUID, want queues.Status) *queues.Record {
	t.Helper()
	var rec *queues.Record
	waitFor(t, 15*time.Second, "record "+id.String()+" "+string(want), func() bool {
		rec = e.get(t, id)
		return rec.Status == want
	})
	return rec
}

func (e *flakyEnv) eventsOf(id uuid.UUID, typ string) []events.Event {
	var out []events.Event
	for _, ev := range e.sink.Events() {
		if ev.TaskID == id.String() && ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// wantEvents requires exactly n events of typ about id, each for attempt.
func (e *flakyEnv) wantEvents(t *testing.T, id uuid.UUID, typ string, n, attempt int) []events.Event {
	t.Helper()
	evs := e.eventsOf(id, typ)
	if len(evs) != n {
		t.Fatalf("%d %s events for %s, want %d", len(evs), typ, id, n)
	}
	for _, ev := range evs {
		if ev.Attempt == nil || *ev.Attempt != attempt {
			t.Fatalf("%s for %s: attempt %v, want %d", typ, id, ev.Attempt, attempt)
		}
	}
	return evs
}

func (e *flakyEnv) worker(t *testing.T, cfg queues.WorkerConfig) *queues.Worker {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Millisecond
	}
	if cfg.PollBackoffMax == 0 {
		cfg.PollBackoffMax = 20 * time.Millisecond
	}
	return runWorker(t, e.svc, cfg)
}

// Settle writes that fail transiently are retried until they land: the
// record gets its outcome once, with one event each, and no claim loss.
func TestSettleWritesRetriedUntilTheyLand(t *testing.T) {
	store := newFlaky()
	store.set(func(f *flakyStore) { f.failNext["complete"], f.failNext["fail"] = 3, 3 })
	var okRuns, flakyRuns atomic.Int32
	reg := queues.NewRegistry()
	ok := queues.MustRegister(reg, "s.ok", func(ctx context.Context, _ empty) (string, error) {
		okRuns.Add(1)
		return "done", nil
	})
	flaky := queues.MustRegister(reg, "s.flaky", func(ctx context.Context, _ empty) (empty, error) {
		if flakyRuns.Add(1) == 1 {
			return empty{}, errors.New("first attempt fails")
		}
		return empty{}, nil
	}, queues.TaskOptions{Retries: 1})
	env := newFlakyEnv(t, store, reg)
	ctx := context.Background()
	r1, err := ok.Enqueue(ctx, env.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := flaky.Enqueue(ctx, env.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	env.worker(t, queues.WorkerConfig{MaxConcurrency: 2, HeartbeatInterval: 20 * time.Millisecond})
	rec := env.waitStatus(t, r1.ID, queues.StatusCompleted)
	if string(rec.Result) != `"done"` || rec.RetryCount != 0 {
		t.Fatalf("completed record %+v", rec)
	}
	rec = env.waitStatus(t, r2.ID, queues.StatusCompleted)
	if rec.RetryCount != 1 {
		t.Fatalf("flaky record retry_count %d, want 1", rec.RetryCount)
	}
	if okRuns.Load() != 1 || flakyRuns.Load() != 2 {
		t.Fatalf("runs: ok %d (want 1), flaky %d (want 2)", okRuns.Load(), flakyRuns.Load())
	}
	if calls, failed := store.count("complete"); calls != 5 || failed != 3 {
		t.Fatalf("complete calls %d failed %d, want 5 and 3", calls, failed)
	}
	if calls, failed := store.count("fail"); calls != 4 || failed != 3 {
		t.Fatalf("fail calls %d failed %d, want 4 and 3", calls, failed)
	}
	waitFor(t, 5*time.Second, "completed events", func() bool {
		return len(env.eventsOf(r1.ID, events.TypeCompleted)) == 1 && len(env.eventsOf(r2.ID, events.TypeCompleted)) == 1
	})
	env.wantEvents(t, r1.ID, events.TypeCompleted, 1, 1)
	failed := env.wantEvents(t, r2.ID, events.TypeFailed, 1, 1)
	if failed[0].Payload["will_retry"] != true {
		t.Fatalf("task.failed payload %v", failed[0].Payload)
	}
	env.wantEvents(t, r2.ID, events.TypeCompleted, 1, 2)
	for _, id := range []uuid.UUID{r1.ID, r2.ID} {
		if n := len(env.eventsOf(id, events.TypeClaimLost)); n != 0 {
			t.Fatalf("%d task.claim_lost events for %s", n, id)
		}
	}
	if _, found := env.logs.find("Queue task settle write landed after retries"); !found {
		t.Fatal("no log line for the write that landed after retries")
	}
}

// A write that landed but whose reply was lost is recognised when the retry
// meets the fence: the outcome counts once, its events are published, and
// no claim loss is reported. Covers complete, a failure with a retry, and
// a shutdown interruption.
func TestSettleLostReplyCountsOnce(t *testing.T) {
	store := newFlaky()
	store.set(func(f *flakyStore) { f.loseNext["complete"], f.loseNext["fail"], f.loseNext["interrupt"] = 1, 1, 1 })
	var okRuns, flakyRuns atomic.Int32
	blockStarted := make(chan struct{}, 1)
	reg := queues.NewRegistry()
	ok := queues.MustRegister(reg, "l.ok", func(ctx context.Context, _ empty) (empty, error) {
		okRuns.Add(1)
		return empty{}, nil
	})
	flaky := queues.MustRegister(reg, "l.flaky", func(ctx context.Context, _ empty) (empty, error) {
		if flakyRuns.Add(1) == 1 {
			return empty{}, errors.New("boom")
		}
		return empty{}, nil
	}, queues.TaskOptions{Retries: 1})
	block := queues.MustRegister(reg, "l.block", func(ctx context.Context, _ empty) (empty, error) {
		blockStarted <- struct{}{}
		<-ctx.Done()
		return empty{}, context.Cause(ctx)
	}, queues.TaskOptions{Queue: "blocking"})
	env := newFlakyEnv(t, store, reg)
	ctx := context.Background()
	r1, _ := ok.Enqueue(ctx, env.svc, empty{})
	r2, _ := flaky.Enqueue(ctx, env.svc, empty{})
	w := env.worker(t, queues.WorkerConfig{MaxConcurrency: 2, Queues: []string{queues.DefaultQueue}})
	env.waitStatus(t, r1.ID, queues.StatusCompleted)
	rec := env.waitStatus(t, r2.ID, queues.StatusCompleted)
	if rec.RetryCount != 1 || okRuns.Load() != 1 || flakyRuns.Load() != 2 {
		t.Fatalf("retry_count %d, runs ok %d flaky %d", rec.RetryCount, okRuns.Load(), flakyRuns.Load())
	}
	waitFor(t, 5*time.Second, "events", func() bool {
		return len(env.eventsOf(r1.ID, events.TypeCompleted)) == 1 && len(env.eventsOf(r2.ID, events.TypeCompleted)) == 1
	})
	if _, err := w.Stop(ctx, false); err != nil {
		t.Fatal(err)
	}

	// The interruption: a running attempt requeued by a shutdown.
	r3, _ := block.Enqueue(ctx, env.svc, empty{})
	w2, err := env.svc.NewWorker(queues.WorkerConfig{Queues: []string{"blocking"}, RequeueOnShutdown: true,
		GracefulShutdownTimeout: time.Millisecond, FinalCancelTimeout: time.Second, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w2.Run(ctx) }()
	<-blockStarted
	if _, err := w2.Stop(ctx, false); err != nil {
		t.Fatal(err)
	}
	<-done
	rec = env.get(t, r3.ID)
	if rec.Status != queues.StatusPending || rec.RetryCount != 1 || rec.Interruptions != 1 {
		t.Fatalf("interrupted record %+v", rec)
	}

	// One lost reply each, then one retry that met the fence; the flaky
	// task's second attempt completed at the first try.
	for what, n := range map[string]int{"complete": 3, "fail": 2, "interrupt": 2} {
		if calls, failed := store.count(what); calls != n || failed != 1 {
			t.Fatalf("%s calls %d failed %d, want %d and 1", what, calls, failed, n)
		}
	}
	env.wantEvents(t, r1.ID, events.TypeCompleted, 1, 1)
	f := env.wantEvents(t, r2.ID, events.TypeFailed, 1, 1)
	if f[0].Payload["will_retry"] != true || f[0].Message != "boom" {
		t.Fatalf("task.failed %+v", f[0])
	}
	env.wantEvents(t, r2.ID, events.TypeCompleted, 1, 2)
	env.wantEvents(t, r3.ID, events.TypeInterrupted, 1, 1)
	for _, id := range []uuid.UUID{r1.ID, r2.ID, r3.ID} {
		if n := len(env.eventsOf(id, events.TypeClaimLost)); n != 0 {
			t.Fatalf("%d task.claim_lost events for %s", n, id)
		}
	}
	if _, found := env.logs.find("Queue task settle write had landed; its reply was lost"); !found {
		t.Fatal("no log line for the lost reply")
	}
}

// refusedMark in a result or an error text makes flakyStore refuse it.
const refusedMark = "refuse-me"

// A result the store refuses fails the attempt at once, terminally (the
// same value would be refused again), with a plain message that does not
// carry the store's error text; an error text the store refuses is stored
// in a form it accepts, then as a fixed text. A result or error text with
// a NUL never reaches the store: the engine refuses the result with its
// limit error and stores the text with U+FFFD in place of the NUL.
func TestRefusedDataFailsTheAttempt(t *testing.T) {
	store := newFlaky()
	var runs atomic.Int32
	reg := queues.NewRegistry()
	refused := queues.MustRegister(reg, "r.refused", func(ctx context.Context, _ empty) (string, error) {
		runs.Add(1)
		return refusedMark, nil
	}, queues.TaskOptions{Retries: 3})
	nulErr := queues.MustRegister(reg, "r.nulerr", func(ctx context.Context, _ empty) (empty, error) {
		return empty{}, queues.NonRetryable(errors.New("bad\x00byte"))
	})
	refusedErr := queues.MustRegister(reg, "r.refusederr", func(ctx context.Context, _ empty) (empty, error) {
		return empty{}, queues.NonRetryable(errors.New(refusedMark))
	})
	env := newFlakyEnv(t, store, reg)
	ctx := context.Background()
	r1, _ := refused.Enqueue(ctx, env.svc, empty{})
	r2, _ := nulErr.Enqueue(ctx, env.svc, empty{})
	r3, _ := refusedErr.Enqueue(ctx, env.svc, empty{})
	env.worker(t, queues.WorkerConfig{MaxConcurrency: 3})
	rec := env.waitStatus(t, r1.ID, queues.StatusFailed)
	if rec.Error != "result could not be stored: the store refused the value" || rec.RetryCount != 0 {
		t.Fatalf("refused result: error %q retry_count %d", rec.Error, rec.RetryCount)
	}
	if strings.Contains(rec.Error, "SQLSTATE") || runs.Load() != 1 {
		t.Fatalf("error %q, runs %d", rec.Error, runs.Load())
	}
	if calls, _ := store.count("complete"); calls != 1 {
		t.Fatalf("the refused complete was tried %d times", calls)
	}
	rec = env.waitStatus(t, r2.ID, queues.StatusFailed)
	if rec.Error != "bad\uFFFDbyte" {
		t.Fatalf("error text with a NUL stored as %q", rec.Error)
	}
	rec = env.waitStatus(t, r3.ID, queues.StatusFailed)
	if rec.Error != "task failed; its error text could not be stored" {
		t.Fatalf("refused error text stored as %q", rec.Error)
	}
	waitFor(t, 5*time.Second, "task.failed", func() bool { return len(env.eventsOf(r1.ID, events.TypeFailed)) == 1 })
	if ev := env.eventsOf(r1.ID, events.TypeFailed)[0]; ev.Payload["will_retry"] != false {
		t.Fatalf("task.failed payload %v", ev.Payload)
	}
}

// A store outage does not make a live attempt stale: the sweeping worker
// waits one StaleAfter after its own last store error before it recovers
// anything, and the attempt's worker heartbeats as soon as the store is
// back. Two services share one store, each behind its own outage switch;
// the sweeper gets the store back first.
func TestOutageDoesNotMakeLiveAttemptStale(t *testing.T) {
	const staleAfter = 800 * time.Millisecond
	storeA := newFlaky()
	storeB := newFlakyOn(storeA.inner())
	var runs atomic.Int32
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	register := func(r *queues.Registry) *queues.Task[empty, empty] {
		return queues.MustRegister(r, "o.live", func(ctx context.Context, _ empty) (empty, error) {
			runs.Add(1)
			started <- struct{}{}
			return untilReleased(ctx, release)
		}, queues.TaskOptions{Retries: 3})
	}
	regA, regB := queues.NewRegistry(), queues.NewRegistry()
	task := register(regA)
	register(regB)
	envA := newFlakyEnv(t, storeA, regA)
	envB := newFlakyEnv(t, storeB, regB)
	res, err := task.Enqueue(context.Background(), envA.svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	envA.worker(t, queues.WorkerConfig{ID: "runner", HeartbeatInterval: 30 * time.Millisecond, StaleAfter: -1})
	<-started
	// The sweeper works another queue: it only recovers.
	envB.worker(t, queues.WorkerConfig{ID: "sweeper", Queues: []string{"elsewhere"}, StaleAfter: staleAfter,
		StaleCheckInterval: 10 * time.Millisecond})

	storeA.down.Store(true)
	storeB.down.Store(true)
	waitFor(t, 15*time.Second, "the heartbeat to age past StaleAfter", func() bool {
		_, failedB := storeB.count("claim")
		return failedB > 0 && time.Since(envA.get(t, res.ID).HeartbeatAt) > staleAfter+200*time.Millisecond
	})
	calls, failed := storeB.count("claim")
	storeB.down.Store(false)
	waitFor(t, 5*time.Second, "the sweeper to reach the store again", func() bool {
		c, f := storeB.count("claim")
		return c-f > calls-failed
	})
	storeA.down.Store(false)
	waitFor(t, 5*time.Second, "the runner's heartbeat", func() bool {
		return time.Since(envA.get(t, res.ID).HeartbeatAt) < staleAfter/2
	})
	// A sweep is a ListStale read, then a Settle of what it listed: a
	// sweep that did not list the live attempt cannot recover it.
	sweeps, sweepsFailed := storeB.count("list_stale")
	waitFor(t, 10*time.Second, "a stale sweep after the outage", func() bool {
		calls, failed := storeB.count("list_stale")
		return calls-failed > sweeps-sweepsFailed
	})
	if listed, settled := storeB.stale(res.ID); listed != 0 || settled != 0 {
		t.Fatalf("the sweeper listed the live attempt as stale %d times and recovered it %d times", listed, settled)
	}
	if rec := envA.get(t, res.ID); rec.Status != queues.StatusRunning || rec.RetryCount != 0 || rec.WorkerID != "runner" {
		t.Fatalf("the live attempt's record was recovered: %+v", rec)
	}
	close(release)
	rec := envA.waitStatus(t, res.ID, queues.StatusCompleted)
	if rec.RetryCount != 0 || runs.Load() != 1 {
		t.Fatalf("retry_count %d runs %d", rec.RetryCount, runs.Load())
	}
	if n := len(envA.eventsOf(res.ID, events.TypeClaimLost)); n != 0 {
		t.Fatalf("%d task.claim_lost events", n)
	}
}

// A worker that met a store error heartbeats its running records before it
// claims anything once the store answers again.
func TestWorkerHeartbeatsFirstAfterOutage(t *testing.T) {
	store := newFlaky()
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "h.live", func(ctx context.Context, _ empty) (empty, error) {
		started <- struct{}{}
		return untilReleased(ctx, release)
	})
	env := newFlakyEnv(t, store, reg)
	res, _ := task.Enqueue(context.Background(), env.svc, empty{})
	// The heartbeat timer never fires during the test: only the catch-up writes one.
	env.worker(t, queues.WorkerConfig{HeartbeatInterval: time.Hour, MaxConcurrency: 2})
	<-started
	store.down.Store(true)
	// The worker meets the outage, then tries to heartbeat.
	waitFor(t, 5*time.Second, "a failed heartbeat", func() bool {
		_, f := store.count("heartbeat")
		return f > 1
	})
	from := store.okLen()
	store.down.Store(false)
	waitFor(t, 5*time.Second, "a claim after the outage", func() bool {
		for _, op := range store.okSince(from) {
			if op == "claim" {
				return true
			}
		}
		return false
	})
	if ops := store.okSince(from); ops[0] != "heartbeat" {
		t.Fatalf("first calls after the outage: %v, want a heartbeat first", ops)
	}
	if rec := env.get(t, res.ID); rec.HeartbeatAt.IsZero() {
		t.Fatal("no heartbeat written")
	}
	close(release)
	env.waitStatus(t, res.ID, queues.StatusCompleted)
}

// While a settle write is retried the record keeps its heartbeat; a stop
// waits for it within the drain timeout, then abandons it and logs how many
// records (and which) it could not write.
func TestShutdownReportsUnwrittenSettles(t *testing.T) {
	store := newFlaky()
	store.set(func(f *flakyStore) { f.failNext["complete"] = 1 << 30 })
	var returned sync.Map
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "u.done", func(ctx context.Context, a struct{ I int }) (empty, error) {
		returned.Store(a.I, time.Now())
		return empty{}, nil
	})
	env := newFlakyEnv(t, store, reg)
	ctx := context.Background()
	var ids []uuid.UUID
	for i := 0; i < 2; i++ {
		r, err := task.Enqueue(ctx, env.svc, struct{ I int }{i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	w := env.worker(t, queues.WorkerConfig{MaxConcurrency: 2, HeartbeatInterval: 20 * time.Millisecond,
		GracefulShutdownTimeout: 300 * time.Millisecond, FinalCancelTimeout: 10 * time.Millisecond})
	waitFor(t, 5*time.Second, "both complete writes to fail", func() bool {
		_, failed := store.count("complete")
		return failed >= 2
	})
	// Both bodies returned; the records stay running and keep being heartbeated.
	var last time.Time
	returned.Range(func(_, v any) bool {
		if at := v.(time.Time); at.After(last) {
			last = at
		}
		return true
	})
	waitFor(t, 5*time.Second, "heartbeats after the bodies returned", func() bool {
		for _, id := range ids {
			if rec := env.get(t, id); rec.Status != queues.StatusRunning || !rec.HeartbeatAt.After(last.Add(50*time.Millisecond)) {
				return false
			}
		}
		return true
	})
	begin := time.Now()
	if _, err := w.Stop(ctx, false); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 300*time.Millisecond || d > 8*time.Second {
		t.Fatalf("stop took %s", d)
	}
	attrs, found := env.logs.find("Queue worker stopped with settle writes it could not write; stale recovery will take the records")
	if !found {
		t.Fatal("no log line for the unwritten settle writes")
	}
	if attrs["unwritten"] != int64(2) {
		t.Fatalf("unwritten = %v (%T)", attrs["unwritten"], attrs["unwritten"])
	}
	logged, _ := attrs["task_ids"].([]string)
	for _, id := range ids {
		if !strings.Contains(strings.Join(logged, ","), id.String()) {
			t.Fatalf("task_ids %v lack %s", logged, id)
		}
	}
}
