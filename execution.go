package queues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/queuestype"
)

// host is the execution.Host the service hands to its transports.
type host struct{ s *Service }

// ExecutionHost returns the service as an external execution transport sees
// it (package execution): the store, the one-shot consumer ConsumeOne and
// the operations that apply what a transport learned. The engine passes the
// same value to every transport call; transports' tests and processes that
// consume a record by ID (`queues run-task`) take it from here.
func (s *Service) ExecutionHost() execution.Host { return s.host }

// The host's methods forward to the service; execution.Host documents them.

func (h *host) Backend() driver.Backend { return h.s.backend }
func (h *host) Logger() *slog.Logger    { return h.s.logger }
func (h *host) GetTask(ctx context.Context, id uuid.UUID) (*Record, error) {
	return h.s.backend.GetTask(ctx, id)
}
func (h *host) ConsumeOne(ctx context.Context, id uuid.UUID, opts execution.ConsumeOptions) (execution.ExitCode, error) {
	return h.s.consumeOne(ctx, id, opts)
}
func (h *host) ApplyProbe(ctx context.Context, rec *Record, p execution.Probe) (*Record, error) {
	return h.s.applyProbe(ctx, rec, p)
}
func (h *host) PublishWarning(ctx context.Context, rec *Record, phase, message string, payload map[string]any) {
	h.s.publishExecutionWarning(ctx, rec, phase, message, payload)
}
func (h *host) ReconcileTask(ctx context.Context, id uuid.UUID) (*Record, error) {
	return h.s.reconcileExternalTask(ctx, id)
}
func (h *host) Reconcile(ctx context.Context, limit int) (execution.ReconcileResult, error) {
	return h.s.reconcileExternal(ctx, limit, "")
}

// isBuiltinExecution reports whether name is one of the built-in backends.
func isBuiltinExecution(name string) bool {
	return name == ExecutionLocal || name == ExecutionImmediate
}

// publishExecutionWarning implements execution.Host.PublishWarning.
func (s *Service) publishExecutionWarning(ctx context.Context, rec *Record, phase, message string, payload map[string]any) {
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

// applyProbe implements execution.Host.ApplyProbe.
func (s *Service) applyProbe(ctx context.Context, rec *Record, p execution.Probe) (*Record, error) {
	if rec.ExecutionRef == "" || !rec.DispatchUntil.IsZero() || rec.IsTerminal() {
		return rec, nil
	}
	ctx = context.WithoutCancel(ctx)
	ref, gen := rec.ExecutionRef, rec.RetryCount
	var (
		out *Record
		err error
	)
	switch p.Status {
	case execution.ProbeRunning, "":
		return rec, nil
	case execution.ProbeSucceeded:
		result := p.Result
		if len(result) == 0 {
			result = rec.Result
		}
		if len(result) == 0 {
			result, _ = json.Marshal(map[string]any{"execution_ref": ref, "status": "succeeded"})
		}
		if lerr := queuestype.CheckJSON("result", result, s.cfg.Limits.ResultBytes); lerr != nil {
			// A result over the limit fails the record terminally, as an
			// attempt's would.
			msg := queuestype.FitErrorText(lerr.Error(), s.cfg.Limits.ErrorTextBytes)
			tr, _ := decideFailure(rec, failure{text: msg, at: time.Now(), workerID: rec.WorkerID})
			tr.ExpectedRef = &ref
			out, err = s.settleTransition(tr)(ctx)
			if err == nil {
				s.publishFailedRecord(ctx, rec, out, rec.WorkerID, msg, 0, false, nil)
			}
			break
		}
		out, err = s.settleTransition(driver.Transition{ID: rec.ID, Generation: gen, To: StatusCompleted, Result: result,
			ExpectedRef: &ref})(ctx)
		if err == nil {
			s.lifecycle(ctx, events.TypeCompleted, out, rec.WorkerID, "", statusPayload(out), nil)
			s.logger.Info("Queue task completed by external reconcile", "task_id", out.ID, "task_name", out.TaskName,
				"queue", out.Queue, "execution_ref", ref, "detail", p.Detail)
		}
	case execution.ProbeCancelled:
		out, err = s.settleTransition(driver.Transition{ID: rec.ID, Generation: gen, To: StatusCancelled, ExpectedRef: &ref})(ctx)
		if err == nil {
			s.afterCancel(ctx, out, true, fmt.Sprintf("external execution %s cancelled", ref), rec.WorkerID, nil)
		}
	case execution.ProbeFailed, execution.ProbeNotFound:
		what := "failed"
		if p.Status == execution.ProbeNotFound {
			what = "not found"
		}
		msg := fmt.Sprintf("external execution %s %s", ref, what)
		tr, delay := decideFailure(rec, failure{text: msg, retryable: true, at: time.Now(), workerID: rec.WorkerID})
		tr.ExpectedRef = &ref
		out, err = s.settleTransition(tr)(ctx)
		if err == nil {
			s.publishFailedRecord(ctx, rec, out, rec.WorkerID, msg, delay, false, nil)
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

// reconcileExternal implements execution.Host.Reconcile; workerID names
// the worker in the events it publishes ("" for a call through the host).
func (s *Service) reconcileExternal(ctx context.Context, limit int, workerID string) (execution.ReconcileResult, error) {
	if limit <= 0 {
		limit = 100
	}
	var res execution.ReconcileResult
	var errs []error
	for _, ex := range s.execOrder {
		budget := limit - res.Repair.Examined
		if budget <= 0 {
			break
		}
		r, err := ex.Repair(ctx, s.host, budget)
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
		if !rec.DispatchUntil.IsZero() {
			if s.releaseStaleMarker(ctx, rec, now) {
				res.Released++
			} else {
				res.Running++
			}
			continue
		}
		_, outcome := s.reconcileOne(ctx, rec)
		countOutcome(&res, outcome)
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

// countOutcome adds o to r.
func countOutcome(r *execution.ReconcileResult, o reconcileOutcome) {
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
	after, err := ex.Reconcile(ctx, s.host, rec)
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

// reconcileExternalTask implements execution.Host.ReconcileTask.
func (s *Service) reconcileExternalTask(ctx context.Context, id uuid.UUID) (*Record, error) {
	rec, err := s.backend.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.IsTerminal() || rec.ExecutionRef == "" {
		return rec, nil
	}
	if !rec.DispatchUntil.IsZero() {
		s.releaseStaleMarker(ctx, rec, time.Now())
		return s.backend.GetTask(ctx, id)
	}
	ex := s.executors[rec.ExecutionBackend]
	if ex == nil {
		return rec, fmt.Errorf("%w: execution backend %q is not configured in this process", ErrConfig, rec.ExecutionBackend)
	}
	return ex.Reconcile(ctx, s.host, rec)
}

// releaseStaleMarker releases a reservation marker whose deadline has passed
// (a dispatcher died between reserving and finalizing). It reports whether it
// released one.
func (s *Service) releaseStaleMarker(ctx context.Context, rec *Record, now time.Time) bool {
	if now.Before(rec.DispatchUntil) {
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
// cancel. It reports whether the durable cancel may proceed.
func (s *Service) cancelExternal(ctx context.Context, rec *Record) bool {
	ex := s.executors[rec.ExecutionBackend]
	if ex == nil {
		s.logger.Warn("Queue cancel of an external execution whose backend is not configured here; the provider was not asked",
			"task_id", rec.ID, "execution_backend", rec.ExecutionBackend, "execution_ref", rec.ExecutionRef)
		return true
	}
	res := ex.CancelExecution(ctx, rec)
	switch res.Status {
	case execution.CancelAccepted, execution.CancelAlreadyCancelled, execution.CancelUnsupported:
		s.logger.Debug("Queue remote execution cancellation", "task_id", rec.ID, "execution_ref", rec.ExecutionRef,
			"result", string(res.Status), "detail", res.Detail)
		return true
	}
	status := res.Status
	if status == "" {
		status = execution.CancelRetryable
	}
	s.publishExecutionWarning(ctx, rec, rec.ExecutionBackend+".cancel_failed", "Remote execution cancellation refused",
		map[string]any{"result": string(status), "error": res.Detail})
	s.logger.Warn("Remote execution cancellation refused", "task_id", rec.ID, "task_name", rec.TaskName,
		"execution_backend", rec.ExecutionBackend, "execution_ref", rec.ExecutionRef, "result", string(status), "detail", res.Detail)
	return false
}
