package queues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/events"
)

// ExecutionBackend is where tasks run (SPEC §13). "local" and "immediate" are
// built in; external transports ("subprocess", "rabbitmq", "nats",
// "cloudrun") implement ExternalExecution and are configured in
// Config.Executors under their Name.
type ExecutionBackend interface {
	// Name is the value records carry in execution_backend.
	Name() string
}

// ExternalExecution is an execution backend that runs attempts outside the
// worker's process. Only the task ID crosses the transport: the remote side
// claims the record by ID (Service.ConsumeOne), so the store stays the single
// source of truth (SPEC §13.1, §13.4).
//
// A worker whose service's execution backend names an ExternalExecution is a
// dispatcher: it lists due records of that backend and calls Dispatch for
// each; records stay pending until the remote side claims them. Periodically,
// under a fleet lock, it calls Service.ReconcileExternal, which calls Repair
// and then Reconcile for every record still holding an execution ref.
//
// Implementations must be safe for concurrent use. The helpers of package
// execution/dispatch implement the shared protocol (reservation markers,
// fallback, ownership loss, probe application).
type ExternalExecution interface {
	ExecutionBackend
	// Open prepares the transport (connections, channels). Service.Start
	// calls it after the queue backend is open.
	Open(ctx context.Context) error
	// Close releases the transport. Service.Close calls it before closing
	// the queue backend.
	Close(ctx context.Context) error
	// Dispatch hands rec (a due pending record holding no execution ref) to
	// the transport. An error is also described by the outcome's status; a
	// *DispatchError tells whether the record's state is committed.
	Dispatch(ctx context.Context, s *Service, rec *Record) (DispatchOutcome, error)
	// Reconcile probes the execution rec.ExecutionRef names and applies the
	// result (normally through Service.ApplyProbe), returning the record as
	// it is afterwards. A probe error is returned with rec unchanged; the
	// caller treats the execution as still running.
	Reconcile(ctx context.Context, s *Service, rec *Record) (*Record, error)
	// Repair examines up to limit records the transport may have lost (for
	// brokers: pending records whose attempt ref is older than the
	// transport's stale bound) and re-dispatches them.
	Repair(ctx context.Context, s *Service, limit int) (RepairResult, error)
	// CancelExecution asks the provider to stop the execution rec holds. It
	// never returns an error: failures are reported as CancelRetryable.
	CancelExecution(ctx context.Context, rec *Record) CancelResult
}

// InFlighter is implemented by external transports that cap their own
// capacity (subprocess). A dispatcher counts InFlight toward its
// MaxConcurrency.
type InFlighter interface {
	// InFlight returns how many executions the transport is running now.
	InFlight() int
}

// CapacityLimiter is implemented by external transports with a hard limit
// of concurrent executions (subprocess: MaxProcesses). A dispatcher never
// dispatches more than MaxInFlight minus InFlight records at once.
type CapacityLimiter interface {
	// MaxInFlight returns the most executions the transport runs at once.
	MaxInFlight() int
}

// CancelStatus is the provider's answer to CancelExecution.
type CancelStatus string

// Cancel statuses (SPEC §13.1).
const (
	// CancelAccepted: the provider accepted the request; the durable cancel proceeds.
	CancelAccepted CancelStatus = "accepted"
	// CancelAlreadyCancelled: not found or already stopped; the durable cancel proceeds.
	CancelAlreadyCancelled CancelStatus = "already_cancelled"
	// CancelRetryable: refused or transient; the durable cancel is blocked and
	// Service.Cancel returns false.
	CancelRetryable CancelStatus = "retryable"
	// CancelUnsupported: the transport has no control plane (or cannot reach
	// this execution); the durable cancel proceeds.
	CancelUnsupported CancelStatus = "unsupported"
)

// CancelResult is the result of ExternalExecution.CancelExecution.
type CancelResult struct {
	Status CancelStatus
	// Detail explains the status (provider error text, "no such process", ...).
	Detail string
}

// DispatchStatus classifies a Dispatch call; the values are the
// queue.execution.status metric vocabulary (SPEC §13.3).
type DispatchStatus string

// Dispatch statuses.
const (
	// DispatchStatusDispatched: the execution was launched or published and
	// its ref is on the record.
	DispatchStatusDispatched DispatchStatus = "dispatched"
	// DispatchStatusFallback: the launch failed and the record was re-routed
	// to the fallback execution backend.
	DispatchStatusFallback DispatchStatus = "fallback"
	// DispatchStatusError: the dispatch failed; the record was released (or
	// will be, see DispatchError.Committed).
	DispatchStatusError DispatchStatus = "error"
	// DispatchStatusSkipped: nothing was done (the record was reserved or
	// changed by someone else, or the transport is at capacity).
	DispatchStatusSkipped DispatchStatus = "skipped"
	// DispatchStatusCancelled: the caller's ctx ended; the reservation was released.
	DispatchStatusCancelled DispatchStatus = "cancelled"
	// DispatchStatusOwnershipLost: the launch succeeded but the record changed
	// before the ref could be stored; the orphan execution was cancelled.
	DispatchStatusOwnershipLost DispatchStatus = "ownership_lost"
)

// DispatchOutcome reports one Dispatch call.
type DispatchOutcome struct {
	Status DispatchStatus
	// Ref is the execution ref stored on the record (dispatched), or the ref
	// of the orphan execution (ownership_lost).
	Ref string
	// FallbackBackend is the execution backend the record was re-routed to (fallback).
	FallbackBackend string
}

// RepairResult reports ExternalExecution.Repair.
type RepairResult struct {
	// Examined counts records looked at; it is charged to the reconcile budget.
	Examined int
	// Changed counts records re-dispatched or otherwise fixed.
	Changed int
}

// ReconcileResult reports Service.ReconcileExternal: the repair pass, then
// one count per outcome of the records listed by ListRunningExternal.
type ReconcileResult struct {
	// Repair sums the Repair results of every configured transport.
	Repair RepairResult
	// Examined counts the records listed by ListRunningExternal.
	Examined int
	// Running counts executions still running (probe errors included).
	Running int
	// Completed, Retried, Failed and Cancelled count records the probe
	// results settled: completed, requeued for a retry, failed terminally,
	// cancelled.
	Completed, Retried, Failed, Cancelled int
	// Released counts reservation markers past their deadline that were released.
	Released int
	// Expired counts records the expiry sweep after a release expired.
	Expired int
	// Errors counts probe errors (those executions are treated as running).
	Errors int
	// Skipped counts records of execution backends not configured in this
	// process, and records that changed under the reconciler.
	Skipped int
}

// ProbeStatus is what a transport learned about an execution (SPEC §13.3).
type ProbeStatus string

// Probe statuses.
const (
	ProbeRunning   ProbeStatus = "running"   // still running: nothing to do
	ProbeSucceeded ProbeStatus = "succeeded" // finished successfully: complete the record
	ProbeFailed    ProbeStatus = "failed"    // finished without success: retry or fail
	ProbeCancelled ProbeStatus = "cancelled" // cancelled at the provider: cancel the record
	ProbeNotFound  ProbeStatus = "not_found" // the provider does not know it: retry or fail
)

// Probe is the result of probing one execution.
type Probe struct {
	Status ProbeStatus
	// Result is stored on completion when the record has none; nil →
	// {"execution_ref": <ref>, "status": "succeeded"}.
	Result json.RawMessage
	// Detail is logged (exit code, provider state); it is not stored.
	Detail string
}

// DispatchMarkerLease is how long a dispatch reservation marker holds a
// record before reconciliation releases it.
const DispatchMarkerLease = 15 * time.Minute

// DispatchMarkerDeadline returns the deadline encoded in a reservation marker
// "__queues_dispatching__:<unix-deadline>:<uuid4>"; ok is false when ref is
// not a well-formed marker.
func DispatchMarkerDeadline(ref string) (deadline time.Time, ok bool) {
	rest, found := strings.CutPrefix(ref, driver.DispatchMarkerPrefix)
	if !found {
		return time.Time{}, false
	}
	secs, _, found := strings.Cut(rest, ":")
	if !found {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

// isBuiltinExecution reports whether name is one of the built-in backends.
func isBuiltinExecution(name string) bool {
	return name == ExecutionLocal || name == ExecutionImmediate
}

// Executor returns the configured external transport named name, or nil.
func (s *Service) Executor(name string) ExternalExecution { return s.executors[name] }

// ExecutionBackend returns the service's default execution backend name (the
// records its workers claim or dispatch).
func (s *Service) ExecutionBackend() string { return s.cfg.ExecutionBackend }

// Logger returns the service's logger, for transports and other extensions.
func (s *Service) Logger() *slog.Logger { return s.logger }

// PublishExecutionWarning publishes a system task.event warning about rec
// (level warning, no sequence) whose payload carries phase, e.g.
// "subprocess.dispatch_fallback" or "cloudrun.cancel_failed" (SPEC §14.2).
// Delivery errors are logged, never returned.
func (s *Service) PublishExecutionWarning(ctx context.Context, rec *Record, phase, message string, payload map[string]any) {
	p := make(map[string]any, len(payload)+1)
	for k, v := range payload {
		p[k] = v
	}
	p["phase"] = phase
	ev := recordEvent(events.TypeEvent, rec, rec.WorkerID)
	ev.Level = "warning"
	ev.Message = message
	ev.Payload = p
	if err := s.pub.publish(context.WithoutCancel(ctx), ev); err != nil {
		s.logger.Warn("Queue event delivery failed", "event_type", ev.Type, "task_id", rec.ID, "error", err)
	}
}

// ApplyProbe applies what a transport learned about the execution rec holds
// (SPEC §13.3), fenced on rec's generation (and, for failures, its execution
// ref), publishes the matching lifecycle event and returns the record as it
// is afterwards:
//
//   - running → nothing;
//   - succeeded → complete (running records only);
//   - cancelled → cancel, running included;
//   - failed or not found → Fail(Retry) with "external execution <ref>
//     failed|not found": the execution died, or never claimed, without
//     settling; the retry clears the ref so the record is dispatched again.
//
// A fence that no longer holds means someone else settled or re-dispatched
// the record: the current record is returned and nothing is written.
func (s *Service) ApplyProbe(ctx context.Context, rec *Record, p Probe) (*Record, error) {
	if rec.ExecutionRef == "" || driver.IsDispatchMarker(rec.ExecutionRef) || rec.IsTerminal() {
		return rec, nil
	}
	ctx = context.WithoutCancel(ctx)
	ref, gen := rec.ExecutionRef, rec.RetryCount
	var (
		out *Record
		err error
	)
	switch p.Status {
	case ProbeRunning, "":
		return rec, nil
	case ProbeSucceeded:
		result := p.Result
		if len(result) == 0 {
			result = rec.Result
		}
		if len(result) == 0 {
			result, _ = json.Marshal(map[string]any{"execution_ref": ref, "status": "succeeded"})
		}
		out, err = s.backend.Complete(ctx, driver.CompleteParams{ID: rec.ID, Result: result, ExpectedRetryCount: gen})
		if err == nil {
			s.lifecycle(ctx, events.TypeCompleted, out, rec.WorkerID, "", statusPayload(out), nil)
			s.logger.Info("Queue task completed by external reconcile", "task_id", out.ID, "task_name", out.TaskName,
				"queue", out.Queue, "execution_ref", ref, "detail", p.Detail)
		}
	case ProbeCancelled:
		out, err = s.backend.Cancel(ctx, driver.CancelParams{ID: rec.ID, IncludeRunning: true, ExpectedRetryCount: &gen})
		if err == nil {
			s.afterCancel(ctx, out, true, fmt.Sprintf("external execution %s cancelled", ref), rec.WorkerID, nil)
		}
	case ProbeFailed, ProbeNotFound:
		what := "failed"
		if p.Status == ProbeNotFound {
			what = "not found"
		}
		msg := fmt.Sprintf("external execution %s %s", ref, what)
		delay := rec.Policy.RetryBackoff.Delay(rec.AttemptsConsumed())
		out, err = s.backend.Fail(ctx, driver.FailParams{ID: rec.ID, Error: msg, Retry: true, ExpectedRetryCount: gen,
			ExpectedRef: &ref, RetryDelay: delay})
		if err == nil {
			s.publishFailedRecord(ctx, rec, out, rec.WorkerID, msg, delay, nil)
			s.logger.Debug("Queue external execution probe", "task_id", rec.ID, "execution_ref", ref, "detail", p.Detail)
		}
	default:
		return rec, fmt.Errorf("queues: unknown probe status %q", p.Status)
	}
	if errors.Is(err, ErrFenceLost) {
		cur, gerr := s.backend.GetTask(ctx, rec.ID)
		if gerr != nil {
			return rec, nil
		}
		return cur, nil
	}
	if err != nil {
		return rec, err
	}
	return out, nil
}

// ReconcileExternal runs one external reconcile pass (SPEC §13.3) bounded by
// limit (0 → 100): first Repair on every configured transport, then, with the
// remaining budget, every record ListRunningExternal returns: reservation
// markers past their deadline are released (and the expiry sweep runs
// afterwards); other refs are probed by their transport's Reconcile. Records
// whose execution backend is not configured in this process are skipped.
//
// Workers that dispatch to an external backend call it every
// ReconcileInterval under the fleet lock "<ns>:external_reconcile".
func (s *Service) ReconcileExternal(ctx context.Context, limit int) (ReconcileResult, error) {
	return s.reconcileExternal(ctx, limit, "")
}

func (s *Service) reconcileExternal(ctx context.Context, limit int, workerID string) (ReconcileResult, error) {
	if limit <= 0 {
		limit = 100
	}
	var res ReconcileResult
	var errs []error
	for _, ex := range s.execOrder {
		budget := limit - res.Repair.Examined
		if budget <= 0 {
			break
		}
		r, err := ex.Repair(ctx, s, budget)
		res.Repair.Examined += r.Examined
		res.Repair.Changed += r.Changed
		if err != nil {
			// One transport's repair failing must not stop the others, nor
			// the probes below.
			errs = append(errs, fmt.Errorf("repair %s: %w", ex.Name(), err))
		}
	}
	budget := limit - res.Repair.Examined
	if budget <= 0 || s.dispatch == nil {
		return res, errors.Join(errs...)
	}
	recs, err := s.dispatch.ListRunningExternal(ctx, budget)
	if err != nil {
		return res, errors.Join(append(errs, fmt.Errorf("list external executions: %w", err))...)
	}
	now := time.Now()
	for _, rec := range recs {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Examined++
		if driver.IsDispatchMarker(rec.ExecutionRef) {
			if s.releaseStaleMarker(ctx, rec, now) {
				res.Released++
			} else {
				res.Running++
			}
			continue
		}
		_, outcome := s.reconcileOne(ctx, rec)
		res.count(outcome)
	}
	if res.Released > 0 {
		n, err := s.expireOverdue(ctx, max(limit, res.Released), workerID)
		res.Expired = n
		if err != nil {
			errs = append(errs, fmt.Errorf("expiry sweep: %w", err))
		}
	}
	return res, errors.Join(errs...)
}

// reconcileOutcome classifies what a reconcile did to one record.
type reconcileOutcome int

const (
	outcomeRunning reconcileOutcome = iota
	outcomeCompleted
	outcomeRetried
	outcomeFailed
	outcomeCancelled
	outcomeError
	outcomeSkipped
)

func (r *ReconcileResult) count(o reconcileOutcome) {
	switch o {
	case outcomeRunning:
		r.Running++
	case outcomeCompleted:
		r.Completed++
	case outcomeRetried:
		r.Retried++
	case outcomeFailed:
		r.Failed++
	case outcomeCancelled:
		r.Cancelled++
	case outcomeError:
		r.Errors++
		r.Running++
	case outcomeSkipped:
		r.Skipped++
	}
}

// reconcileOne probes one record holding a provider ref through its transport.
func (s *Service) reconcileOne(ctx context.Context, rec *Record) (*Record, reconcileOutcome) {
	ex := s.executors[rec.ExecutionBackend]
	if ex == nil {
		return rec, outcomeSkipped
	}
	after, err := ex.Reconcile(ctx, s, rec)
	if err != nil {
		s.logger.Debug("Queue external execution probe failed; treating it as running", "task_id", rec.ID,
			"execution_backend", rec.ExecutionBackend, "execution_ref", rec.ExecutionRef, "error", err)
		return rec, outcomeError
	}
	return after, classifyReconcile(rec, after)
}

func classifyReconcile(before, after *Record) reconcileOutcome {
	if after == nil {
		return outcomeSkipped
	}
	switch after.Status {
	case StatusCompleted:
		if before.Status != StatusCompleted {
			return outcomeCompleted
		}
	case StatusFailed:
		return outcomeFailed
	case StatusCancelled:
		return outcomeCancelled
	case StatusExpired:
		return outcomeSkipped
	}
	if after.RetryCount != before.RetryCount {
		return outcomeRetried
	}
	if after.ExecutionRef != before.ExecutionRef || after.Status != before.Status {
		return outcomeSkipped
	}
	return outcomeRunning
}

// ReconcileExternalTask reconciles one record now, outside the periodic
// pass: when it holds a provider execution ref and is not terminal, its
// transport probes the execution and the result is applied (see ApplyProbe).
// Transports call it when they learn an execution ended (the subprocess
// transport, when a child exits). It returns the record as it is afterwards.
func (s *Service) ReconcileExternalTask(ctx context.Context, id uuid.UUID) (*Record, error) {
	rec, err := s.backend.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.IsTerminal() || rec.ExecutionRef == "" {
		return rec, nil
	}
	if driver.IsDispatchMarker(rec.ExecutionRef) {
		s.releaseStaleMarker(ctx, rec, time.Now())
		return s.backend.GetTask(ctx, id)
	}
	ex := s.executors[rec.ExecutionBackend]
	if ex == nil {
		return rec, fmt.Errorf("%w: execution backend %q is not configured in this process", ErrConfig, rec.ExecutionBackend)
	}
	return ex.Reconcile(ctx, s, rec)
}

// releaseStaleMarker releases a reservation marker whose deadline has passed
// (a dispatcher died between reserving and finalizing). It reports whether it
// released one.
func (s *Service) releaseStaleMarker(ctx context.Context, rec *Record, now time.Time) bool {
	deadline, ok := DispatchMarkerDeadline(rec.ExecutionRef)
	if ok && now.Before(deadline) {
		return false
	}
	_, err := s.dispatch.ReleaseDispatch(ctx, driver.ReleaseDispatchParams{ID: rec.ID, Marker: rec.ExecutionRef})
	if err != nil {
		if !errors.Is(err, ErrFenceLost) {
			s.logger.Warn("Queue dispatch reservation release failed", "task_id", rec.ID, "error", err)
		}
		return false
	}
	s.logger.Warn("Queue dispatch reservation expired; released", "task_id", rec.ID, "task_name", rec.TaskName,
		"execution_backend", rec.ExecutionBackend)
	return true
}

// cancelExternal asks the transport running rec to stop it before a durable
// cancel (SPEC §5.11 step 1). It reports whether the durable cancel may proceed.
func (s *Service) cancelExternal(ctx context.Context, rec *Record) bool {
	ex := s.executors[rec.ExecutionBackend]
	if ex == nil {
		s.logger.Warn("Queue cancel of an external execution whose backend is not configured here; the provider was not asked",
			"task_id", rec.ID, "execution_backend", rec.ExecutionBackend, "execution_ref", rec.ExecutionRef)
		return true
	}
	res := ex.CancelExecution(ctx, rec)
	switch res.Status {
	case CancelAccepted, CancelAlreadyCancelled, CancelUnsupported:
		s.logger.Debug("Queue remote execution cancellation", "task_id", rec.ID, "execution_ref", rec.ExecutionRef,
			"result", string(res.Status), "detail", res.Detail)
		return true
	}
	status := res.Status
	if status == "" {
		status = CancelRetryable
	}
	s.PublishExecutionWarning(ctx, rec, rec.ExecutionBackend+".cancel_failed", "Remote execution cancellation refused",
		map[string]any{"result": string(status), "error": res.Detail})
	s.logger.Warn("Remote execution cancellation refused", "task_id", rec.ID, "task_name", rec.TaskName,
		"execution_backend", rec.ExecutionBackend, "execution_ref", rec.ExecutionRef, "result", string(status), "detail", res.Detail)
	return false
}
