package queues_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/maintenance"
)

// recordingCleanup keeps the CleanupParams of every CleanupTerminal call.
type recordingCleanup struct {
	*memory.Backend
	mu    sync.Mutex
	calls []driver.CleanupParams
}

func (r *recordingCleanup) CleanupTerminal(ctx context.Context, p driver.CleanupParams) (int, error) {
	r.mu.Lock()
	r.calls = append(r.calls, p)
	r.mu.Unlock()
	return r.Backend.CleanupTerminal(ctx, p)
}

func noop(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil }

// The terminal phase passes the registry's Retention overrides as per-task
// cutoffs (zero = the fleet's for that status, negative = kept forever),
// and the records follow them: a shorter retention deletes a task's
// records earlier, a longer or forever one keeps them past the fleet's.
func TestMaintenanceTaskRetention(t *testing.T) {
	b := &recordingCleanup{Backend: memory.New(memory.Options{})}
	reg := queues.NewRegistry()
	for name, rt := range map[string]queues.Retention{
		"maint.completed": {Completed: -1},                // kept forever
		"maint.cancelled": {Cancelled: time.Hour},         // shorter than 24h
		"maint.failed":    {Failed: 48 * time.Hour},       // shorter than 7 days
		"maint.expired":   {Expired: 30 * 24 * time.Hour}, // longer than 7 days
		"maint.same":      {},                             // no override
	} {
		queues.MustRegister(reg, name, noop, queues.TaskOptions{Retention: &rt})
	}
	svc := quietService(t, reg, func(c *queues.Config) { c.Backend = b })
	ids := terminalSet(t, b.Backend)
	ctx := context.Background()
	base := time.Now()
	for _, c := range []struct {
		after time.Duration
		gone  []queues.Status
	}{
		{2 * time.Hour, []queues.Status{queues.StatusCancelled}},
		{25 * time.Hour, []queues.Status{queues.StatusCancelled}},
		{3 * 24 * time.Hour, []queues.Status{queues.StatusCancelled, queues.StatusFailed}},
		{8 * 24 * time.Hour, []queues.Status{queues.StatusCancelled, queues.StatusFailed}},
		{31 * 24 * time.Hour, []queues.Status{queues.StatusCancelled, queues.StatusFailed, queues.StatusExpired}},
	} {
		start := base.Add(c.after)
		b.mu.Lock()
		b.calls = nil
		b.mu.Unlock()
		if _, err := svc.RunMaintenance(ctx, maintenance.Options{Now: fixedClock(start),
			Phases: []maintenance.Phase{maintenance.Terminal}}); err != nil {
			t.Fatal(err)
		}
		for st, id := range ids {
			_, err := svc.GetTask(ctx, id)
			if gone := errors.Is(err, queues.ErrTaskNotFound); gone != contains(c.gone, st) {
				t.Fatalf("after %s: %s record gone = %v (err %v)", c.after, st, gone, err)
			}
		}
		b.mu.Lock()
		calls := b.calls
		b.mu.Unlock()
		if len(calls) == 0 {
			t.Fatalf("after %s: no CleanupTerminal call", c.after)
		}
		fleet := map[queues.Status]time.Time{
			queues.StatusCompleted: start.Add(-24 * time.Hour), queues.StatusCancelled: start.Add(-24 * time.Hour),
			queues.StatusFailed: start.Add(-7 * 24 * time.Hour), queues.StatusExpired: start.Add(-7 * 24 * time.Hour),
		}
		with := func(st queues.Status, at time.Time, keep bool) map[queues.Status]time.Time {
			m := maps.Clone(fleet)
			if keep {
				delete(m, st)
			} else {
				m[st] = at
			}
			return m
		}
		want := map[string]map[queues.Status]time.Time{
			"maint.completed": with(queues.StatusCompleted, time.Time{}, true),
			"maint.cancelled": with(queues.StatusCancelled, start.Add(-time.Hour), false),
			"maint.failed":    with(queues.StatusFailed, start.Add(-48*time.Hour), false),
			"maint.expired":   with(queues.StatusExpired, start.Add(-30*24*time.Hour), false),
		}
		got := calls[0]
		if !maps.Equal(got.Before, fleet) {
			t.Fatalf("after %s: Before = %v, want %v", c.after, got.Before, fleet)
		}
		if !maps.EqualFunc(got.ByTask, want, func(a, b map[queues.Status]time.Time) bool { return maps.Equal(a, b) }) {
			t.Fatalf("after %s: ByTask = %v, want %v", c.after, got.ByTask, want)
		}
	}
}

// With every fleet retention off, a task's own retention still runs the
// terminal phase for its records alone.
func TestMaintenanceTaskRetentionFleetOff(t *testing.T) {
	b := memory.New(memory.Options{})
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "maint.failed", noop, queues.TaskOptions{Retention: &queues.Retention{Failed: time.Hour}})
	svc := quietService(t, reg, func(c *queues.Config) {
		c.Backend = b
		c.Maintenance.CompletedRetention, c.Maintenance.CancelledRetention = -1, -1
		c.Maintenance.FailedRetention, c.Maintenance.ExpiredRetention = -1, -1
	})
	ids := terminalSet(t, b)
	ctx := context.Background()
	rep, err := svc.RunMaintenance(ctx, maintenance.Options{Now: fixedClock(time.Now().Add(2 * time.Hour)),
		Phases: []maintenance.Phase{maintenance.Terminal}})
	if err != nil {
		t.Fatal(err)
	}
	wantPhases(t, rep, phase(maintenance.Terminal, maintenance.StatusCompleted, 1, ""))
	if _, err := svc.GetTask(ctx, ids[queues.StatusFailed]); !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("failed record of a task with 1h retention after 2h: %v, want deleted", err)
	}
}
