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

// attempt is one claimed generation of a record being executed. It owns
// the attempt's whole life once a runner (a worker, the one-shot consumer
// of an external execution, or inline immediate execution) has claimed the
// record: run runs the middleware chain and the task body under the task's
// timeout, then decides the outcome and settles it, fenced on the claimed
// generation (settle.go holds the retry loop of its settle writes).
type attempt struct {
	svc      *Service
	rec      *Record
	workerID string
	ctx      context.Context // carries the attempt; cancelled with a cause
	cancel   context.CancelCauseFunc
	seq      atomic.Int64
	beat     atomic.Pointer[string]
	bodyDone chan struct{} // closed when the task function has really returned
	// env is what the runner decided for this attempt (set by run).
	env attemptEnv
	// inline marks immediate execution inside Enqueue; callerErr is the
	// caller's ctx error when it ended the attempt.
	inline    bool
	callerErr error
	// settled, when set (worker attempts), is called once the record is
	// settled; the task body then runs on the attempt's own goroutine.
	settled func()
	// unstarted marks a prefetched attempt whose ctx ended before it got
	// a body slot: it is settled without running.
	unstarted bool
	// bodyReturned, when set (a worker with Prefetch), frees the attempt's
	// body slot; it runs once the task function has returned, before the
	// settle write, so the next body need not wait for that round trip.
	// It is idempotent, and never runs for an abandoned body, which keeps
	// its slot.
	bodyReturned func()
	// settledCh, when set (worker attempts), closes once the record is
	// settled; retryingSettle is true while its settle write is retried.
	settledCh      chan struct{}
	retryingSettle atomic.Bool
	// retryAfter: the failure being written retries at the delay the
	// handler named (RetryAfter); events and logs say so.
	retryAfter bool
}

// attemptEnv is what the runner (a worker, the one-shot consumer, or inline
// immediate execution) decides for the attempts it starts.
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

func (a *attempt) fence() queuestype.Fence {
	return queuestype.Fence{ID: a.rec.ID, RetryCount: a.rec.RetryCount}
}

func (a *attempt) nextSeq() *int {
	n := int(a.seq.Add(1))
	return &n
}

// beforeSettle runs the runner's hook before the attempt's first settle write.
func (a *attempt) beforeSettle() {
	if a.env.beforeSettle != nil {
		a.env.beforeSettle(a)
	}
}

type outcome struct {
	value any
	err   error
}

// run executes the attempt's generation under env and settles it. It
// returns once the record is settled; a.bodyDone closes when the task
// function has really returned, which may be later for an attempt that
// ignored cancellation.
func (a *attempt) run(env attemptEnv) {
	defer a.cancel(nil)
	a.env = env
	s, rec := a.svc, a.rec
	e := s.registry.lookup(rec.TaskName)
	if e == nil || !e.hasFunc {
		close(a.bodyDone)
		a.beforeSettle()
		_ = a.failUnknown()
		return
	}
	if a.unstarted {
		// A prefetched record cancelled or shut down while it waited for a
		// body slot: settle it without running.
		close(a.bodyDone)
		a.beforeSettle()
		a.settle(outcome{err: context.Cause(a.ctx)}, false, false, a.ctx)
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
		a.runBodyHere(h, arg, runCtx, cancelTimeout)
		return
	}
	results := make(chan outcome, 1)
	go func() {
		defer close(a.bodyDone)
		results <- a.callBody(h, runCtx, arg)
	}()

	var out outcome
	abandoned := false
	select {
	case out = <-results:
	case <-runCtx.Done():
		grace := time.NewTimer(a.env.finalCancel)
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
	a.beforeSettle()
	a.settle(out, timedOut, abandoned, runCtx)
}

// callBody runs the task chain, turning a panic into an error.
func (a *attempt) callBody(h Handler, ctx context.Context, arg *Record) (out outcome) {
	defer func() {
		if p := recover(); p != nil {
			stack := string(debug.Stack())
			a.svc.logger.Error("Queue task panicked", "task_id", a.rec.ID, "task_name", a.rec.TaskName, "panic", p, "stack", stack)
			out = outcome{err: &panicError{v: p, stack: stack}}
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
func (a *attempt) runBodyHere(h Handler, arg *Record, runCtx context.Context, cancelTimeout context.CancelFunc) {
	var settling atomic.Bool // won by whichever path settles
	finish := func(out outcome, abandoned bool) {
		timedOut := runCtx.Err() != nil
		cancelTimeout()
		a.beforeSettle()
		a.settle(out, timedOut, abandoned, runCtx)
		a.settled()
	}
	stop := context.AfterFunc(runCtx, func() {
		grace := time.NewTimer(a.env.finalCancel)
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
		a.svc.logger.Warn("Queue task ignored cancellation", "task_id", a.rec.ID, "task_name", a.rec.TaskName, "cause", cause)
		finish(outcome{err: cause}, true)
	})
	out := a.callBody(h, runCtx, arg)
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
func (a *attempt) settle(out outcome, timedOut, abandoned bool, runCtx context.Context) {
	ctx := context.WithoutCancel(a.ctx)
	cause := context.Cause(a.ctx)
	switch {
	case errors.Is(cause, ErrCancelled), errors.Is(cause, ErrClaimLost):
		// Someone else owns the record's fate: the canceller wrote it, or
		// another attempt may already own the claim.
		return
	case out.err == nil && !abandoned:
		a.complete(ctx, out.value)
	case errors.Is(out.err, ErrCancelled):
		a.cancelSelf(ctx, out.err.Error())
	case isSnooze(out.err) && !abandoned:
		a.snooze(ctx, out.err)
	case errors.Is(cause, ErrShutdown):
		a.settleShutdown(ctx, abandoned)
	case timedOut && isTimeout(context.Cause(runCtx)):
		a.fail(ctx, context.Cause(runCtx), true)
	case errors.Is(out.err, ErrNonRetryable), errors.Is(out.err, ErrInvalidArgs):
		a.fail(ctx, out.err, false)
	default:
		a.fail(ctx, out.err, true)
	}
}

func isTimeout(err error) bool {
	var te *TimeoutError
	return errors.As(err, &te)
}

func (a *attempt) complete(ctx context.Context, value any) {
	s := a.svc
	result, err := json.Marshal(value)
	if err != nil {
		a.fail(ctx, NonRetryable(fmt.Errorf("encode result: %w", err)), false)
		return
	}
	if err := queuestype.CheckJSON("result", result, s.cfg.Limits.ResultBytes); err != nil {
		// A retry would produce the same value: fail terminally, storing
		// the limit's text.
		a.fail(ctx, NonRetryable(err), false)
		return
	}
	// Only a completed event and a schedule's next occurrence (due from
	// completed_at) need the settled record; else the backend may skip
	// returning it.
	needRecord := s.pub.enabled || !a.rec.Policy.Schedule.IsZero()
	done, err := a.writeSettle(settleWrite{phase: "complete",
		write: s.settleTransition(driver.Transition{ID: a.rec.ID, Generation: a.rec.RetryCount, To: StatusCompleted,
			Result: result, Claimed: a.rec, NoRecord: !needRecord}),
		landed: landedCompleted(a.rec)})
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			// The result is the problem, not the store: retrying cannot
			// store it. The record keeps a plain message, not the store's.
			s.logger.Error("Queue task result refused by the store", "task_id", a.rec.ID, "task_name", a.rec.TaskName, "error", err)
			a.fail(ctx, NonRetryable(errors.New(resultRefusedText)), false)
			return
		}
		a.settleError(ctx, "complete", err)
		return
	}
	if needRecord && done != nil {
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

func (a *attempt) cancelSelf(ctx context.Context, reason string) {
	s := a.svc
	rec, err := a.writeSettle(settleWrite{phase: "cancel",
		write:  s.settleTransition(driver.Transition{ID: a.rec.ID, Generation: a.rec.RetryCount, To: StatusCancelled}),
		landed: landedCancelled(a.rec)})
	if err != nil {
		a.settleError(ctx, "cancel", err)
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

func (a *attempt) fail(ctx context.Context, err error, retry bool) {
	f := failure{text: a.svc.errorText(err, a.rec), retryable: retry, err: err, at: time.Now(), workerID: a.workerID}
	if e := a.svc.registry.lookup(a.rec.TaskName); e != nil {
		f.retryDelay = e.opts.RetryDelay
	}
	tr, delay := decideFailure(a.rec, f)
	if _, ok := errors.AsType[*retryAfterError](err); ok && tr.To == StatusPending {
		a.retryAfter = true
	}
	if a.inline {
		// Inline (immediate) execution runs the next attempt at once: the
		// computed delay is reported, not waited.
		tr.Delay = 0
	}
	a.failWith(ctx, "fail", tr, delay)
}

// failWith writes tr, a decided failure (a retry or a terminal failure),
// and publishes task.failed; delay is the retry delay the event reports.
func (a *attempt) failWith(ctx context.Context, phase string, tr driver.Transition, delay time.Duration) (*Record, error) {
	rec, msg, err := a.writeFail(phase, tr)
	if err != nil {
		a.settleError(ctx, phase, err)
		return nil, err
	}
	a.svc.publishFailedRecord(ctx, a.rec, rec, a.workerID, msg, delay, a.retryAfter, a.nextSeq())
	return rec, nil
}

// writeFail writes tr, the decided outcome of a failed attempt (a retry or
// a terminal failure), through writeSettle, and returns the record and the
// error text it stored: when the store refuses the text, a storable form of
// it, then a fixed text, is written instead.
func (a *attempt) writeFail(phase string, tr driver.Transition) (*Record, string, error) {
	s := a.svc
	tr.Error = queuestype.FitErrorText(tr.Error, s.cfg.Limits.ErrorTextBytes)
	for refusals := 0; ; refusals++ {
		if n := len(tr.Errors); n > 0 {
			// The history holds the text the record stores.
			tr.Errors[n-1].Error = tr.Error
		}
		rec, err := a.writeSettle(settleWrite{phase: phase, write: s.settleTransition(tr), landed: landedTransition(a.rec, tr)})
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

// publishFailedRecord publishes task.failed and logs "Queue task failed" for
// rec, the record after a Fail write on prev (the failed generation).
// retryAfter says the handler named the retry's delay (RetryAfter).
func (s *Service) publishFailedRecord(ctx context.Context, prev, rec *Record, workerID, msg string, delay time.Duration, retryAfter bool, seq *int) {
	// A retry is a new generation (which another worker may have claimed
	// already when a lost reply made this a read-back record).
	willRetry := rec.RetryCount > prev.RetryCount || rec.Status == StatusPending || rec.Status == StatusScheduled
	payload := statusPayload(rec)
	payload["will_retry"] = willRetry
	if willRetry {
		payload["retry_delay"] = delay.Seconds()
		payload["retry_at"] = formatTime(rec.ScheduledAt)
		payload["retry_after"] = retryAfter
	}
	// The event is about the attempt that ended, not the retry's.
	s.lifecycleAttempt(ctx, events.TypeFailed, rec, prev.RetryCount+1, workerID, msg, payload, seq)
	level := slog.LevelError
	if willRetry {
		level = slog.LevelWarn
	}
	s.logger.Log(ctx, level, "Queue task failed", "task_id", rec.ID, "task_name", rec.TaskName, "queue", rec.Queue,
		"worker_id", workerID, "attempt", prev.RetryCount+1, "will_retry", willRetry, "retry_after", retryAfter, "error", msg)
}

// settleError handles a settle write that did not land: a lost fence
// means another attempt owns the record now (publish task.claim_lost,
// change nothing); an abandoned write was logged by the retry loop and is
// left to stale recovery, as is data the store refused.
func (a *attempt) settleError(ctx context.Context, phase string, err error) {
	if isFenceAnswer(err) {
		a.claimLost(ctx, phase)
		return
	}
	if errors.Is(err, errSettleAbandoned) {
		return
	}
	a.svc.logger.Error("Queue task settle write failed", "task_id", a.rec.ID, "phase", phase, "error", err)
}

// claimLost publishes task.claim_lost: phase's write (or heartbeat) found
// the record no longer held by this attempt's generation.
func (a *attempt) claimLost(ctx context.Context, phase string) {
	s := a.svc
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

// failUnknown fails the record as an unknown task (no function registered
// here) and reports the write error.
func (a *attempt) failUnknown() error {
	ctx := context.WithoutCancel(a.ctx)
	tr, _ := decideFailure(a.rec, failure{text: (&UnknownTaskError{Name: a.rec.TaskName}).Error(), at: time.Now(), workerID: a.workerID})
	_, err := a.failWith(ctx, "unknown_task", tr, 0)
	return err
}

// settleShutdown handles an attempt the shutdown ladder cancelled.
func (a *attempt) settleShutdown(ctx context.Context, abandoned bool) {
	s := a.svc
	if a.inline {
		// Nothing else would ever run an immediate record: fail it terminally.
		msg := "inline execution interrupted: " + context.Cause(a.ctx).Error()
		if a.callerErr != nil {
			msg = "inline execution interrupted: " + a.callerErr.Error()
		}
		tr, _ := decideFailure(a.rec, failure{text: msg, at: time.Now(), workerID: a.workerID})
		_, _ = a.failWith(ctx, "fail", tr, 0)
		return
	}
	requeue := a.env.requeueOnShutdown
	if v := a.rec.Policy.RequeueOnShutdown; v != nil {
		requeue = *v
	}
	if !requeue || abandoned {
		// Stale recovery takes a null heartbeat at once.
		if err := s.backend.NullHeartbeats(ctx, []queuestype.Fence{a.fence()}); err != nil {
			s.noteStoreError(err)
			s.logger.Error("Queue heartbeat clear after shutdown failed", "task_id", a.rec.ID, "error", err)
		}
		return
	}
	tr, exhausted := decideInterrupt(a.rec, a.workerID, a.env.maxInterruptions, time.Now())
	if exhausted {
		s.logger.Error("Queue task exceeded its shutdown interruption budget", "task_id", a.rec.ID, "task_name", a.rec.TaskName)
		_, _ = a.failWith(ctx, "fail", tr, 0)
		return
	}
	// An interruption is no failure: the record keeps the error an earlier
	// attempt left.
	tr.Error = a.rec.Error
	rec, err := a.writeSettle(settleWrite{phase: "interrupt", write: s.settleTransition(tr), landed: landedInterrupted(a.rec)})
	if err != nil {
		a.settleError(ctx, "interrupt", err)
		return
	}
	payload := statusPayload(rec)
	payload["reason"] = "shutdown"
	s.lifecycleAttempt(ctx, events.TypeInterrupted, rec, a.rec.RetryCount+1, a.workerID, "", payload, a.nextSeq())
	s.logger.Info("Queue task interrupted", "task_id", rec.ID, "task_name", rec.TaskName, "worker_id", a.workerID)
}
