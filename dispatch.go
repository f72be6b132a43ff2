package queues

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/execution"
)

// dispatcher is the claim side of a worker whose service runs records on
// an external execution backend: instead of claiming records and running
// them here, each cycle lists the due records of that backend and hands
// each one that holds no execution ref to the transport, up to the
// capacity MaxConcurrency and the transport leave. The execution claims
// its record by ID when it starts (ConsumeOne), so the store's fences keep
// one execution in charge. What the transport runs is reconciled by a
// sweeper of its own (reconcileSweeper), not by the dispatch cycle.
type dispatcher struct {
	svc  *Service
	exec execution.Transport
	cfg  WorkerConfig
	// stop closes when the worker starts shutting down: a cycle in
	// progress dispatches no further record.
	stop <-chan struct{}
	// atCapacity is set when the last cycle found no free capacity (the
	// transport's own executions fill it); the worker's wait is then
	// bounded by PollInterval because freed capacity sends no hint.
	atCapacity atomic.Bool
}

// newDispatcher returns the dispatcher of a worker on svc, or nil when the
// service's execution backend is not an external transport.
func newDispatcher(svc *Service, cfg WorkerConfig, stop <-chan struct{}) *dispatcher {
	exec := svc.executors[svc.cfg.ExecutionBackend]
	if exec == nil {
		return nil
	}
	return &dispatcher{svc: svc, exec: exec, cfg: cfg, stop: stop}
}

// backend is the name of the execution backend the dispatcher serves.
func (d *dispatcher) backend() string { return d.exec.Name() }

func (d *dispatcher) stopping() bool {
	select {
	case <-d.stop:
		return true
	default:
		return false
	}
}

// dispatchOnce is one poll cycle of a dispatcher: it lists up to the free
// capacity of due records of the execution backend and dispatches each one
// that holds no execution ref and is not expired. It returns how many were
// dispatched. A failed dispatch is logged (the transport publishes its own
// warnings) and does not fail the cycle.
func (d *dispatcher) dispatchOnce(ctx context.Context) (int, error) {
	available := d.capacity()
	if available <= 0 {
		d.atCapacity.Store(true)
		return 0, nil
	}
	d.atCapacity.Store(false)
	recs, err := d.listDispatchable(ctx, available)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rec := range recs {
		if ctx.Err() != nil || d.stopping() {
			break
		}
		out, err := d.exec.Dispatch(ctx, d.svc.host, rec)
		switch {
		case out.Status == execution.DispatchStatusDispatched:
			n++
			d.svc.logger.Debug("Queue task dispatched", "worker_id", d.cfg.ID, "task_id", rec.ID, "task_name", rec.TaskName,
				"execution_backend", d.backend(), "execution_ref", out.Ref)
		case err != nil:
			d.svc.logger.Warn("Queue task dispatch failed", "worker_id", d.cfg.ID, "task_id", rec.ID, "task_name", rec.TaskName,
				"execution_backend", d.backend(), "dispatch_status", string(out.Status), "error", err)
		}
		if out.Status == execution.DispatchStatusSkipped && d.capacity() <= 0 {
			d.atCapacity.Store(true)
			break
		}
	}
	return n, nil
}

// maxDispatchScan bounds how many pending records one dispatch cycle reads
// to find records without an execution ref.
const maxDispatchScan = 1000

// listDispatchable lists up to limit due records of the execution backend
// that hold no execution ref and are not expired, in claim order.
// ListPending also returns records already dispatched (holding a finalized
// ref, waiting for their execution to claim them), so the window grows
// until it holds limit dispatchable records, the store has no more, or
// maxDispatchScan records were read.
func (d *dispatcher) listDispatchable(ctx context.Context, limit int) ([]*Record, error) {
	window := limit
	if f, ok := d.exec.(execution.InFlighter); ok {
		window += f.InFlight() // launched executions that have not claimed yet
	}
	window = min(window, max(maxDispatchScan, limit))
	for {
		recs, err := d.svc.backend.ListPending(ctx, driver.ListPendingParams{Limit: window, Queues: d.cfg.Queues, ExecutionBackend: d.backend()})
		if err != nil {
			return nil, fmt.Errorf("list pending: %w", err)
		}
		now := time.Now()
		out := make([]*Record, 0, limit)
		for _, rec := range recs {
			if rec.ExecutionRef == "" && !rec.IsExpired(now) {
				out = append(out, rec)
				if len(out) == limit {
					return out, nil
				}
			}
		}
		if len(recs) < window || window >= maxDispatchScan {
			return out, nil
		}
		window = min(window*4, maxDispatchScan)
	}
}

// capacity is how many records the dispatcher may dispatch now: BatchSize,
// bounded by MaxConcurrency minus the transport's in-flight executions
// (InFlighter) and by the transport's own limit (CapacityLimiter). A
// dispatching worker runs no attempt of its own, so only the transport's
// executions count.
func (d *dispatcher) capacity() int {
	inFlight := 0
	if f, ok := d.exec.(execution.InFlighter); ok {
		inFlight = f.InFlight()
	}
	available := min(d.cfg.BatchSize, d.cfg.MaxConcurrency-inFlight)
	if l, ok := d.exec.(execution.CapacityLimiter); ok {
		available = min(available, l.MaxInFlight()-inFlight)
	}
	return available
}

// reconcileSweeper is the dispatcher's periodic duty: probe the executions
// of records running elsewhere, release stale dispatch reservations and
// repair what the transports report (Service.reconcileExternal).
func (d *dispatcher) reconcileSweeper() *sweeper {
	return &sweeper{name: "external_reconcile", interval: d.cfg.ReconcileInterval,
		sweep: func(ctx context.Context) (int, error) {
			res, err := d.svc.reconcileExternal(ctx, d.cfg.BatchSize, d.cfg.ID)
			return res.Completed + res.Retried + res.Failed + res.Cancelled + res.Released + res.Expired + res.Repair.Changed, err
		}}
}
