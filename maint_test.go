package queues_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/maintenance"
)

// terminalSet makes one record in each terminal status on b (through the
// store, so its clock stamps completed_at) and returns their IDs by status.
func terminalSet(t *testing.T, b driver.Backend) map[queues.Status]uuid.UUID {
	t.Helper()
	ctx := context.Background()
	enq := func(p driver.EnqueueParams) uuid.UUID {
		t.Helper()
		p.Args, p.Queue, p.ExecutionBackend = json.RawMessage(`{}`), "default", "local"
		out, err := b.Enqueue(ctx, []driver.EnqueueParams{p})
		if err != nil || out[0].Err != nil {
			t.Fatalf("Enqueue: %v %+v", err, out)
		}
		return out[0].Record.ID
	}
	settle := func(to queues.Status) uuid.UUID {
		t.Helper()
		id := enq(driver.EnqueueParams{TaskName: "maint." + string(to)})
		if _, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: id, WorkerID: "w"}); err != nil {
			t.Fatal(err)
		}
		res, err := b.Settle(ctx, []driver.Transition{{ID: id, To: to, Error: "x"}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("Settle %s: %v %+v", to, err, res)
		}
		return id
	}
	out := map[queues.Status]uuid.UUID{
		queues.StatusCompleted: settle(queues.StatusCompleted),
		queues.StatusFailed:    settle(queues.StatusFailed),
	}
	out[queues.StatusCancelled] = enq(driver.EnqueueParams{TaskName: "maint.cancelled"})
	if _, err := b.Cancel(ctx, driver.CancelParams{ID: out[queues.StatusCancelled]}); err != nil {
		t.Fatal(err)
	}
	out[queues.StatusExpired] = enq(driver.EnqueueParams{TaskName: "maint.expired", ExpiresAt: time.Now().Add(-48 * time.Hour)})
	if got, err := b.ExpireOverdue(ctx, 10); err != nil || len(got) != 1 {
		t.Fatalf("ExpireOverdue: %v %d", err, len(got))
	}
	return out
}

func maintService(t *testing.T, b driver.Backend, mutate ...func(*queues.Config)) *queues.Service {
	t.Helper()
	return quietService(t, queues.NewRegistry(), append([]func(*queues.Config){func(c *queues.Config) { c.Backend = b }}, mutate...)...)
}

// fixedClock returns a clock that stands still at at.
func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

func wantPhases(t *testing.T, rep maintenance.Report, want ...maintenance.PhaseReport) {
	t.Helper()
	if len(rep.Phases) != len(want) {
		t.Fatalf("phases = %+v, want %+v", rep.Phases, want)
	}
	for i, p := range rep.Phases {
		p.Duration = 0
		if p != want[i] {
			t.Fatalf("phase %d = %+v, want %+v (report %+v)", i, p, want[i], rep)
		}
	}
}

func phase(p maintenance.Phase, s maintenance.Status, changed int, e string) maintenance.PhaseReport {
	return maintenance.PhaseReport{Phase: p, Status: s, Changed: changed, Error: e}
}

// With no configuration, completed and cancelled records go 24 hours after
// they ended and failed and expired ones after 7 days; the events phase is
// skipped (no event history), and so are external and stale (not
// configured).
func TestMaintenanceDefaultRetention(t *testing.T) {
	b := memory.New(memory.Options{})
	svc := maintService(t, b)
	ids := terminalSet(t, b)
	ctx := context.Background()
	for _, c := range []struct {
		after   time.Duration
		deleted int
		gone    []queues.Status
	}{
		{23 * time.Hour, 0, nil},
		{25 * time.Hour, 2, []queues.Status{queues.StatusCompleted, queues.StatusCancelled}},
		{6 * 24 * time.Hour, 0, []queues.Status{queues.StatusCompleted, queues.StatusCancelled}},
		{8 * 24 * time.Hour, 2, []queues.Status{queues.StatusCompleted, queues.StatusCancelled, queues.StatusFailed, queues.StatusExpired}},
	} {
		rep, err := svc.RunMaintenance(ctx, maintenance.Options{Now: fixedClock(time.Now().Add(c.after))})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Outcome != maintenance.OutcomeCompleted || !rep.Acquired {
			t.Fatalf("after %s: report %+v", c.after, rep)
		}
		wantPhases(t, rep,
			phase(maintenance.External, maintenance.StatusSkipped, 0, ""),
			phase(maintenance.Stale, maintenance.StatusSkipped, 0, ""),
			phase(maintenance.Terminal, maintenance.StatusCompleted, c.deleted, ""),
			phase(maintenance.Events, maintenance.StatusSkipped, 0, ""))
		for st, id := range ids {
			_, err := svc.GetTask(ctx, id)
			if gone := errors.Is(err, queues.ErrTaskNotFound); gone != contains(c.gone, st) {
				t.Fatalf("after %s: %s record gone = %v (err %v)", c.after, st, gone, err)
			}
		}
	}
}

func contains(xs []queues.Status, x queues.Status) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// Retention is set per status; a negative one keeps the status forever,
// and all negative turns the terminal phase off.
func TestMaintenanceRetentionPerStatus(t *testing.T) {
	b := memory.New(memory.Options{})
	svc := maintService(t, b, func(c *queues.Config) {
		c.Maintenance.CompletedRetention = -1
		c.Maintenance.FailedRetention = time.Hour
	})
	ids := terminalSet(t, b)
	ctx := context.Background()
	rep, err := svc.RunMaintenance(ctx, maintenance.Options{Now: fixedClock(time.Now().Add(365 * 24 * time.Hour)),
		Phases: []maintenance.Phase{maintenance.Terminal}})
	if err != nil {
		t.Fatal(err)
	}
	wantPhases(t, rep, phase(maintenance.Terminal, maintenance.StatusCompleted, 3, ""))
	if _, err := svc.GetTask(ctx, ids[queues.StatusCompleted]); err != nil {
		t.Fatalf("completed record kept forever: %v", err)
	}

	off := maintService(t, b, func(c *queues.Config) {
		c.Maintenance.CompletedRetention, c.Maintenance.CancelledRetention = -1, -1
		c.Maintenance.FailedRetention, c.Maintenance.ExpiredRetention = -1, -1
	})
	rep, err = off.RunMaintenance(ctx, maintenance.Options{Phases: []maintenance.Phase{maintenance.Terminal, maintenance.Events}})
	if err != nil {
		t.Fatal(err)
	}
	wantPhases(t, rep, phase(maintenance.Terminal, maintenance.StatusSkipped, 0, ""), phase(maintenance.Events, maintenance.StatusSkipped, 0, ""))
	if rep.Outcome != maintenance.OutcomeCompleted {
		t.Fatalf("nothing enabled: outcome %s, want completed", rep.Outcome)
	}
}

// The terminal phase deletes in batches of TerminalLimit until nothing is
// left, within the budget.
func TestMaintenanceTerminalBatches(t *testing.T) {
	b := memory.New(memory.Options{})
	var batches atomic.Int32
	counting := &countingCleanup{Backend: b, calls: &batches}
	svc := maintService(t, counting, func(c *queues.Config) { c.Maintenance.TerminalLimit = 2 })
	for range 5 {
		terminalSet(t, b)
	}
	rep, err := svc.RunMaintenance(context.Background(), maintenance.Options{Now: fixedClock(time.Now().Add(8 * 24 * time.Hour)),
		Phases: []maintenance.Phase{maintenance.Terminal}})
	if err != nil {
		t.Fatal(err)
	}
	wantPhases(t, rep, phase(maintenance.Terminal, maintenance.StatusCompleted, 20, ""))
	if n := batches.Load(); n != 11 {
		t.Fatalf("CleanupTerminal calls = %d, want 11 (ten full batches of 2, one empty)", n)
	}
}

type countingCleanup struct {
	*memory.Backend
	calls *atomic.Int32
	err   error
}

func (c *countingCleanup) CleanupTerminal(ctx context.Context, p driver.CleanupParams) (int, error) {
	c.calls.Add(1)
	if c.err != nil {
		return 0, c.err
	}
	return c.Backend.CleanupTerminal(ctx, p)
}

func (c *countingCleanup) ListStale(ctx context.Context, after time.Duration, limit int) ([]*queues.Record, error) {
	if c.err != nil {
		return nil, c.err
	}
	return c.Backend.ListStale(ctx, after, limit)
}

// A held lock makes a run already_running with every selected phase
// skipped; the lock name follows the namespace; a run releases its lock.
func TestMaintenanceLock(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ ns, lock string }{{"", "queue-maintenance"}, {"my_app", "my-app-maintenance"}} {
		b := memory.New(memory.Options{})
		svc := maintService(t, b, func(cfg *queues.Config) { cfg.Namespace = c.ns })
		if ok, err := b.AcquireLock(ctx, c.lock, "other", time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLock(%s): %v %v", c.lock, ok, err)
		}
		rep, err := svc.RunMaintenance(ctx, maintenance.Options{Phases: []maintenance.Phase{maintenance.Events, maintenance.Stale}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Outcome != maintenance.OutcomeAlreadyRunning || rep.Acquired {
			t.Fatalf("namespace %q: %+v, want already_running", c.ns, rep)
		}
		wantPhases(t, rep, phase(maintenance.Stale, maintenance.StatusSkipped, 0, ""), phase(maintenance.Events, maintenance.StatusSkipped, 0, ""))
		if _, err := b.ReleaseLock(ctx, c.lock, "other"); err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // the first run released the lock
			rep, err = svc.RunMaintenance(ctx, maintenance.Options{})
			if err != nil || rep.Outcome != maintenance.OutcomeCompleted || !rep.Acquired {
				t.Fatalf("namespace %q run %d: %+v %v", c.ns, i, rep, err)
			}
		}
	}
}

// The budget is checked before each phase: once spent, every later
// enabled phase is partial (disabled ones stay skipped).
func TestMaintenanceBudgetPartial(t *testing.T) {
	b := memory.New(memory.Options{})
	svc := maintService(t, b, func(c *queues.Config) {
		c.Maintenance.StaleAfter = time.Minute
		c.Maintenance.TimeBudget = time.Second
	})
	var ticks atomic.Int64
	start := time.Now()
	// Each reading of the clock is a second later than the last.
	clock := func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Second) }
	rep, err := svc.RunMaintenance(context.Background(), maintenance.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != maintenance.OutcomePartial {
		t.Fatalf("outcome %s, want partial", rep.Outcome)
	}
	wantPhases(t, rep,
		phase(maintenance.External, maintenance.StatusSkipped, 0, ""),
		phase(maintenance.Stale, maintenance.StatusPartial, 0, ""),
		phase(maintenance.Terminal, maintenance.StatusPartial, 0, ""),
		phase(maintenance.Events, maintenance.StatusSkipped, 0, ""))
}

// A failing phase is failed with a stable kind, and the phases after it
// still run; the run's outcome is failed.
func TestMaintenancePhaseFailure(t *testing.T) {
	b := memory.New(memory.Options{})
	var calls atomic.Int32
	broken := &countingCleanup{Backend: b, calls: &calls, err: fmt.Errorf("read: %w", driver.ErrUnavailable)}
	svc := maintService(t, broken, func(c *queues.Config) { c.Maintenance.StaleAfter = time.Minute })
	rep, err := svc.RunMaintenance(context.Background(), maintenance.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != maintenance.OutcomeFailed {
		t.Fatalf("outcome %s, want failed", rep.Outcome)
	}
	wantPhases(t, rep,
		phase(maintenance.External, maintenance.StatusSkipped, 0, ""),
		phase(maintenance.Stale, maintenance.StatusFailed, 0, "maintenance_phase_failed:connect"),
		phase(maintenance.Terminal, maintenance.StatusFailed, 0, "maintenance_phase_failed:connect"),
		phase(maintenance.Events, maintenance.StatusSkipped, 0, ""))
	if calls.Load() != 1 {
		t.Fatalf("terminal phase calls = %d, want 1 (it ran after the stale phase failed)", calls.Load())
	}
	if _, err := svc.RunMaintenance(context.Background(), maintenance.Options{Phases: []maintenance.Phase{"vacuum"}}); !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("unknown phase: %v, want ErrConfig", err)
	}
}

// CoordinationTimeout must exceed TimeBudget; limits must not be negative.
func TestMaintenanceConfigRefused(t *testing.T) {
	for _, m := range []queues.MaintenanceConfig{
		{TimeBudget: time.Minute, CoordinationTimeout: time.Minute},
		{TimeBudget: -1},
		{TerminalLimit: -1},
	} {
		_, err := queues.New(queues.Config{Backend: memory.New(memory.Options{}), Maintenance: m})
		var ce *queues.ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("New(Maintenance %+v) = %v, want a *ConfigError", m, err)
		}
	}
}

// A worker runs maintenance without any configuration but its interval:
// records its store stamped as completed 25 hours ago are deleted, the
// failed one is kept.
func TestWorkerRunsMaintenance(t *testing.T) {
	var offset atomic.Int64
	offset.Store(int64(-25 * time.Hour))
	b := memory.New(memory.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	ids := terminalSet(t, b)
	offset.Store(0)
	ctx := context.Background()

	svc := maintService(t, b, func(c *queues.Config) {
		c.Maintenance.Interval = 20 * time.Millisecond
		c.Logger = slog.New(slog.DiscardHandler)
	})
	runWorker(t, svc, queues.WorkerConfig{ID: "on", PollInterval: 10 * time.Millisecond})
	waitFor(t, 10*time.Second, "the worker's maintenance to delete the completed and cancelled records", func() bool {
		st, err := svc.Statistics(ctx, "")
		return err == nil && st.Completed == 0 && st.Cancelled == 0
	})
	if _, err := svc.GetTask(ctx, ids[queues.StatusFailed]); err != nil {
		t.Fatalf("failed record (7 days) deleted after 25h: %v", err)
	}
}

// The stale phase is the workers' stale recovery: a running record whose
// heartbeat is older than StaleAfter is requeued.
func TestMaintenanceStalePhase(t *testing.T) {
	var offset atomic.Int64
	offset.Store(int64(-10 * time.Minute))
	b := memory.New(memory.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	ctx := context.Background()
	out, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "maint.stale", Args: json.RawMessage(`{}`), Queue: "default",
		ExecutionBackend: "local", MaxRetries: 3}})
	if err != nil {
		t.Fatal(err)
	}
	id := out[0].Record.ID
	if _, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: id, WorkerID: "gone"}); err != nil {
		t.Fatal(err)
	}
	offset.Store(0)
	svc := maintService(t, b, func(c *queues.Config) { c.Maintenance.StaleAfter = time.Minute })
	rep, err := svc.RunMaintenance(ctx, maintenance.Options{Phases: []maintenance.Phase{maintenance.Stale}})
	if err != nil {
		t.Fatal(err)
	}
	wantPhases(t, rep, phase(maintenance.Stale, maintenance.StatusCompleted, 1, ""))
	rec, err := svc.GetTask(ctx, id)
	if err != nil || rec.Status == queues.StatusRunning || rec.RetryCount != 1 {
		t.Fatalf("stale record after the phase: %+v %v", rec, err)
	}
}
