package queues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/queuestype"
)

// attemptEnv is what the runner (a worker, or inline immediate execution)
// decides for the attempts it starts.
type attemptEnv struct {
	workerID          string
	finalCancel       time.Duration
	requeueOnShutdown bool
	maxInterruptions  int
	// beforeSettle runs before any settle write (the worker unregisters the
	// attempt from heartbeats so a late touch cannot undo a null heartbeat).
	beforeSettle func(a *attempt)
	// settle is what the runner does about a settle write being retried.
	settle settleHooks
}

// newAttempt builds the attempt for a claimed record; its ctx derives from parent.
func (s *Service) newAttempt(parent context.Context, rec *Record, workerID string) *attempt {
	a := &attempt{svc: s, rec: rec, workerID: workerID, bodyDone: make(chan struct{})}
	ctx := context.WithValue(parent, attemptKey{}, a)
	if cid := rec.Policy.CorrelationID; cid != "" {
		ctx = WithCorrelationID(ctx, cid)
	}
	a.ctx, a.cancel = context.WithCancelCause(ctx)
	return a
}

type outcome struct {
	value any
	err   error
}

// runAttempt executes one claimed generation and settles it (SPEC §5.8). It
// returns once the record is settled; a.bodyDone closes when the task
// function has really returned, which may be later for an attempt that
// ignored cancellation.
func (s *Service) runAttempt(a *attempt, env attemptEnv) {
	defer a.cancel(nil)
	a.hooks = env.settle
	rec := a.rec
	e := s.registry.lookup(rec.TaskName)
	if e == nil || !e.hasFunc {
		close(a.bodyDone)
		if env.beforeSettle != nil {
			env.beforeSettle(a)
		}
		s.failUnknown(a)
		return
	}
	if a.unstarted {
		// A prefetched record cancelled or shut down while it waited for a
		// body slot: settle it without running.
		close(a.bodyDone)
		if env.beforeSettle != nil {
			env.beforeSettle(a)
		}
		s.settle(a, outcome{err: context.Cause(a.ctx)}, false, false, a.ctx, env)
		return
	}
	timeout := e.opts.Timeout
	if rec.Policy.Timeout > 0 {
		timeout = rec.Policy.Timeout
	}
	runCtx, cancelTimeout := a.ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		runCtx, cancelTimeout = context.WithTimeoutCause(a.ctx, timeout, &TimeoutError{After: timeout})
	}
	defer cancelTimeout()

	if s.pub.enabled { // skip building the payload when nobody listens (hot path)
		s.lifecycle(a.ctx, events.TypeStarted, rec, a.workerID, "", map[string]any{}, a.nextSeq())
	}

	inner := func(ctx context.Context, r *Record) (any, error) { return e.run(ctx, r.Args) }
	h := chain(inner, s.cfg.Middleware, e.opts.Middleware)
	// Middleware sees (and may keep or change) the record, so it gets a
	// copy; the bare task function reads only the arguments, which it
	// decodes into values of its own.
	arg := rec
	if len(s.cfg.Middleware) > 0 || len(e.opts.Middleware) > 0 {
		arg = rec.Clone()
	}
	if a.settled != nil {
		s.runBodyHere(a, env, h, arg, runCtx, cancelTimeout)
		return
	}
	results := make(chan outcome, 1)
	go func() {
		defer close(a.bodyDone)
		results <- s.callBody(a, h, runCtx, arg)
	}()

	var out outcome
	abandoned := false
	select {
	case out = <-results:
	case <-runCtx.Done():
		grace := time.NewTimer(env.finalCancel)
		select {
		case out = <-results:
		case <-grace.C:
			abandoned = true
			out.err = context.Cause(runCtx)
			s.logger.Warn("Queue task ignored cancellation", "task_id", rec.ID, "task_name", rec.TaskName, "cause", out.err)
		}
		grace.Stop()
	}
	timedOut := runCtx.Err() != nil
	cancelTimeout()
	if env.beforeSettle != nil {
		env.beforeSettle(a)
	}
	s.settle(a, out, timedOut, abandoned, runCtx, env)
}

// callBody runs the task chain, turning a panic into an error.
func (s *Service) callBody(a *attempt, h Handler, ctx context.Context, arg *Record) (out outcome) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("Queue task panicked", "task_id", a.rec.ID, "task_name", a.rec.TaskName, "panic", p, "stack", string(debug.Stack()))
			out = outcome{err: fmt.Errorf("panic: %v", p)}
		}
	}()
	v, err := h(ctx, arg)
	return outcome{value: v, err: err}
}

// runBodyHere is the worker's form of the body run: the task function runs
// on this goroutine (no second goroutine and channel per attempt), and a
// watcher started only if runCtx ends gives it FinalCancelTimeout to
// return; past that the watcher abandons it — settles the record and calls
// a.settled — while this goroutine stays in the body until it returns.
// Exactly one of the two settles.
func (s *Service) runBodyHere(a *attempt, env attemptEnv, h Handler, arg *Record, runCtx context.Context, cancelTimeout context.CancelFunc) {
	var settling atomic.Bool // won by whichever path settles
	finish := func(out outcome, abandoned bool) {
		timedOut := runCtx.Err() != nil
		cancelTimeout()
		if env.beforeSettle != nil {
			env.beforeSettle(a)
		}
		s.settle(a, out, timedOut, abandoned, runCtx, env)
		a.settled()
	}
	stop := context.AfterFunc(runCtx, func() {
		grace := time.NewTimer(env.finalCancel)
		defer grace.Stop()
		select {
		case <-a.bodyDone:
			return
		case <-grace.C:
		}
		if !settling.CompareAndSwap(false, true) {
			return
		}
		cause := context.Cause(runCtx)
		s.logger.Warn("Queue task ignored cancellation", "task_id", a.rec.ID, "task_name", a.rec.TaskName, "cause", cause)
		finish(outcome{err: cause}, true)
	})
	out := s.callBody(a, h, runCtx, arg)
	close(a.bodyDone)
	if a.bodyReturned != nil {
		a.bodyReturned()
	}
	stop()
	if settling.CompareAndSwap(false, true) {
		finish(out, false)
	}
}

// settle classifies the outcome and writes it, fenced on the attempt's generation.
func (s *Service) settle(a *attempt, out outcome, timedOut, abandoned bool, runCtx context.Context, env attemptEnv) {
	ctx := context.WithoutCancel(a.ctx)
	cause := context.Cause(a.ctx)
	switch {
	case errors.Is(cause, ErrCancelled), errors.Is(cause, ErrClaimLost):
		// Someone else owns the record's fate: the canceller wrote it, or
		// another attempt may already own the claim.
		return
	case out.err == nil && !abandoned:
		s.complete(ctx, a, out.value)
	case errors.Is(out.err, ErrCancelled):
		s.cancelSelf(ctx, a, out.err.Error())
	case errors.Is(cause, ErrShutdown):
		s.settleShutdown(ctx, a, abandoned, env)
	case timedOut && isTimeout(context.Cause(runCtx)):
		s.fail(ctx, a, context.Cause(runCtx), true)
	case errors.Is(out.err, ErrNonRetryable), errors.Is(out.err, ErrInvalidArgs):
		s.fail(ctx, a, out.err, false)
	default:
		s.fail(ctx, a, out.err, true)
	}
}

func isTimeout(err error) bool {
	var te *TimeoutError
	return errors.As(err, &te)
}

func (s *Service) complete(ctx context.Context, a *attempt, value any) {
	result, err := json.Marshal(value)
	if err != nil {
		s.fail(ctx, a, NonRetryable(fmt.Errorf("encode result: %w", err)), false)
		return
	}
	// Only a completed event needs the settled record; without events the
	// backend may skip returning it.
	done, err := s.writeSettle(a, settleWrite{phase: "complete",
		write: s.settleTransition(driver.Transition{ID: a.rec.ID, Generation: a.rec.RetryCount, To: StatusCompleted,
			Result: result, Claimed: a.rec, NoRecord: !s.pub.enabled}),
		landed: landedCompleted(a.rec)})
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			// The result is the problem, not the store: retrying cannot
			// store it. The record keeps a plain message, not the store's.
			s.logger.Error("Queue task result refused by the store", "task_id", a.rec.ID, "task_name", a.rec.TaskName, "error", err)
			s.fail(ctx, a, NonRetryable(errors.New(resultRefusedText)), false)
			return
		}
		s.settleError(ctx, a, "complete", err)
		return
	}
	if s.pub.enabled && done != nil {
		s.lifecycle(ctx, events.TypeCompleted, done, a.workerID, "", statusPayload(done), a.nextSeq())
	}
	// Logging options are fixed at enqueue: the claimed record has them.
	if a.rec.Policy.LogSuccess {
		level := slogLevel(a.rec.Policy.LogLevel)
		s.logger.Log(ctx, level, "Queue task completed", "task_id", a.rec.ID, "task_name", a.rec.TaskName,
			"queue", a.rec.Queue, "worker_id", a.workerID, "attempt", a.rec.RetryCount+1)
	}
}

func slogLevel(level string) slog.Level {
	switch level {
	case "debug":
		return slog.LevelDebug
	case "warning":
		return slog.LevelWarn
	case "error", "critical":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (s *Service) cancelSelf(ctx context.Context, a *attempt, reason string) {
	rec, err := s.writeSettle(a, settleWrite{phase: "cancel",
		write:  s.settleTransition(driver.Transition{ID: a.rec.ID, Generation: a.rec.RetryCount, To: StatusCancelled}),
		landed: landedCancelled(a.rec)})
	if err != nil {
		s.settleError(ctx, a, "cancel", err)
		return
	}
	s.afterCancel(ctx, rec, false, reason, a.workerID, a.nextSeq())
}

// errorText renders err for storage: sanitized, never empty.
func (s *Service) errorText(err error, rec *Record) string {
	var msg string
	if s.cfg.ErrorSanitizer != nil {
		msg = s.cfg.ErrorSanitizer(err, rec.Clone())
	} else if err != nil {
		msg = err.Error()
	}
	if msg == "" {
		msg = "task failed (empty error message)"
	}
	return msg
}

func (s *Service) fail(ctx context.Context, a *attempt, err error, retry bool) {
	tr, delay := decideFailure(a.rec, s.errorText(err, a.rec), retry)
	if a.inline {
		// Inline (immediate) execution runs the next attempt at once: the
		// computed delay is reported, not waited.
		tr.Delay = 0
	}
	rec, msg, ferr := s.writeFail(a, "fail", tr)
	if ferr != nil {
		s.settleError(ctx, a, "fail", ferr)
		return
	}
	s.publishFailed(ctx, a, rec, msg, delay)
}

// writeFail writes tr, the decided outcome of a failed attempt (a retry or
// a terminal failure), through writeSettle, and returns the record and the
// error text it stored: when the store refuses the text, a storable form of
// it, then a fixed text, is written instead.
func (s *Service) writeFail(a *attempt, phase string, tr driver.Transition) (*Record, string, error) {
	for refusals := 0; ; refusals++ {
		rec, err := s.writeSettle(a, settleWrite{phase: phase, write: s.settleTransition(tr), landed: landedTransition(a.rec, tr)})
		var refused *refusedError
		if err == nil || !errors.As(err, &refused) || tr.Error == errorRefusedText {
			return rec, tr.Error, err
		}
		s.logger.Error("Queue task error text refused by the store", "task_id", a.rec.ID, "task_name", a.rec.TaskName, "error", err)
		if next := storableText(tr.Error); refusals == 0 && next != tr.Error {
			tr.Error = next
		} else {
			tr.Error = errorRefusedText
		}
	}
}

func (s *Service) publishFailed(ctx context.Context, a *attempt, rec *Record, msg string, delay time.Duration) {
	s.publishFailedRecord(ctx, a.rec, rec, a.workerID, msg, delay, a.nextSeq())
}

// publishFailedRecord publishes task.failed and logs "Queue task failed" for
// rec, the record after a Fail write on prev (the failed generation).
func (s *Service) publishFailedRecord(ctx context.Context, prev, rec *Record, workerID, msg string, delay time.Duration, seq *int) {
	// A retry is a new generation (which another worker may have claimed
	// already when a lost reply made this a read-back record).
	willRetry := rec.RetryCount > prev.RetryCount || rec.Status == StatusPending || rec.Status == StatusScheduled
	payload := statusPayload(rec)
	payload["will_retry"] = willRetry
	if willRetry {
		payload["retry_delay"] = delay.Seconds()
		payload["retry_at"] = formatTime(rec.ScheduledAt)
	}
	// The event is about the attempt that ended, not the retry's.
	s.lifecycleAttempt(ctx, events.TypeFailed, rec, prev.RetryCount+1, workerID, msg, payload, seq)
	level := slog.LevelError
	if willRetry {
		level = slog.LevelWarn
	}
	s.logger.Log(ctx, level, "Queue task failed", "task_id", rec.ID, "task_name", rec.TaskName, "queue", rec.Queue,
		"worker_id", workerID, "attempt", prev.RetryCount+1, "will_retry", willRetry, "error", msg)
}

// settleError handles a settle write that did not land: a lost fence
// means another attempt owns the record now (publish task.claim_lost,
// change nothing); an abandoned write was logged by the retry loop and is
// left to stale recovery, as is data the store refused.
func (s *Service) settleError(ctx context.Context, a *attempt, phase string, err error) {
	if isFenceAnswer(err) {
		s.claimLost(ctx, a, phase)
		return
	}
	if errors.Is(err, errSettleAbandoned) {
		return
	}
	s.logger.Error("Queue task settle write failed", "task_id", a.rec.ID, "phase", phase, "error", err)
}

func (s *Service) claimLost(ctx context.Context, a *attempt, phase string) {
	payload := map[string]any{"phase": phase, "expected_retry_count": a.rec.RetryCount, "current_status": nil, "current_retry_count": nil}
	if cur, err := s.backend.GetTask(ctx, a.rec.ID); err == nil {
		payload["current_status"] = string(cur.Status)
		payload["current_retry_count"] = cur.RetryCount
	}
	var seq *int
	if phase != "heartbeat" {
		seq = a.nextSeq()
	}
	s.lifecycle(ctx, events.TypeClaimLost, a.rec, a.workerID, "Queue task ownership lost", payload, seq)
	s.logger.Warn("Queue task ownership lost", "task_id", a.rec.ID, "task_name", a.rec.TaskName, "phase", phase, "worker_id", a.workerID)
}

func (s *Service) failUnknown(a *attempt) { _ = s.failUnknownErr(a) }

// settleShutdown handles an attempt the shutdown ladder cancelled.
func (s *Service) settleShutdown(ctx context.Context, a *attempt, abandoned bool, env attemptEnv) {
	if a.inline {
		// Nothing else would ever run an immediate record: fail it terminally.
		msg := "inline execution interrupted: " + context.Cause(a.ctx).Error()
		if a.callerErr != nil {
			msg = "inline execution interrupted: " + a.callerErr.Error()
		}
		tr, _ := decideFailure(a.rec, msg, false)
		rec, msg, err := s.writeFail(a, "fail", tr)
		if err != nil {
			s.settleError(ctx, a, "fail", err)
			return
		}
		s.publishFailed(ctx, a, rec, msg, 0)
		return
	}
	requeue := env.requeueOnShutdown
	if v := a.rec.Policy.RequeueOnShutdown; v != nil {
		requeue = *v
	}
	if !requeue || abandoned {
		// Stale recovery takes a null heartbeat at once.
		if err := s.backend.NullHeartbeats(ctx, []queuestype.Fence{a.fence()}); err != nil {
			s.noteStoreError()
			s.logger.Error("Queue heartbeat clear after shutdown failed", "task_id", a.rec.ID, "error", err)
		}
		return
	}
	tr, exhausted := decideInterrupt(a.rec, a.workerID, env.maxInterruptions)
	if exhausted {
		rec, msg, err := s.writeFail(a, "fail", tr)
		if err != nil {
			s.settleError(ctx, a, "fail", err)
			return
		}
		s.logger.Error("Queue task exceeded its shutdown interruption budget", "task_id", rec.ID, "task_name", rec.TaskName)
		s.publishFailed(ctx, a, rec, msg, 0)
		return
	}
	// An interruption is no failure: the record keeps the error an earlier
	// attempt left.
	tr.Error = a.rec.Error
	rec, err := s.writeSettle(a, settleWrite{phase: "interrupt", write: s.settleTransition(tr), landed: landedInterrupted(a.rec)})
	if err != nil {
		s.settleError(ctx, a, "interrupt", err)
		return
	}
	payload := statusPayload(rec)
	payload["reason"] = "shutdown"
	s.lifecycleAttempt(ctx, events.TypeInterrupted, rec, a.rec.RetryCount+1, a.workerID, "", payload, a.nextSeq())
	s.logger.Info("Queue task interrupted", "task_id", rec.ID, "task_name", rec.TaskName, "worker_id", a.workerID)
}

// runImmediate executes a pending record inline (execution backend
// "immediate"), running retries at once until the record is terminal, and
// returns its final state. If the caller's ctx ends mid-attempt, the attempt
// is cancelled with ErrShutdown, the record fails terminally and the ctx
// error is returned.
func (s *Service) runImmediate(ctx context.Context, rec *Record) (*Record, error) {
	// A settle write is retried until it lands or the caller's ctx ends.
	env := attemptEnv{workerID: s.cfg.Worker.ID, finalCancel: s.cfg.Worker.FinalCancelTimeout, maxInterruptions: s.cfg.Worker.MaxInterruptions,
		settle: settleHooks{abort: ctx}}
	for {
		gen := rec.RetryCount
		res, err := s.backend.ClaimByID(ctx, driver.ClaimByIDParams{ID: rec.ID, WorkerID: env.workerID, ExpectedRetryCount: &gen})
		if err != nil {
			return rec, fmt.Errorf("immediate claim: %w", err)
		}
		s.publishExpired(ctx, res.Expired, env.workerID)
		if len(res.Claimed) == 0 {
			return s.backend.GetTask(ctx, rec.ID)
		}
		base, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		a := s.newAttempt(base, res.Claimed[0], env.workerID)
		a.inline = true
		stop := context.AfterFunc(ctx, func() {
			a.callerErr = ctx.Err()
			a.cancel(ErrShutdown)
		})
		s.runAttempt(a, env)
		stop()
		cancel(nil)
		if ctx.Err() != nil {
			rec, _ = s.backend.GetTask(context.WithoutCancel(ctx), rec.ID)
			return rec, ctx.Err()
		}
		if rec, err = s.backend.GetTask(ctx, rec.ID); err != nil {
			return nil, err
		}
		if rec.Status == StatusPending {
			continue
		}
		return rec, nil
	}
}
