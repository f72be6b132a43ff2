package queues

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/queuestype"
)

// AttemptError is one failed attempt in a record's error history
// (Record.Errors): attempt number, time, error text, bounded trace, worker.
type AttemptError = queuestype.AttemptError

// defaultMaxSnoozes is how many times a record may be snoozed when
// TaskOptions.MaxSnoozes is zero.
const defaultMaxSnoozes = 100

// snoozeError is the outcome Snooze returns.
type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return fmt.Sprintf("snoozed for %s", e.d) }

// Snooze, returned as a handler's error, puts the record back to scheduled
// after d without spending its retry budget: the next attempt is not a
// retry. A record snoozed more than TaskOptions.MaxSnoozes times fails the
// attempt as an ordinary failure instead. A negative d is taken as 0.
func Snooze(d time.Duration) error { return &snoozeError{d: max(d, 0)} }

// retryAfterError is the failure RetryAfter returns.
type retryAfterError struct {
	d   time.Duration
	err error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter, returned as a handler's error, fails the attempt with err and,
// when retry budget remains (and err is retryable), retries after d instead
// of the task's backoff — for a remote service that named when to come back
// (an HTTP 429 Retry-After). A nil err becomes a plain "retry after"
// error; a negative d is taken as 0.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = fmt.Errorf("retry after %s", max(d, 0))
	}
	return &retryAfterError{d: max(d, 0), err: err}
}

// panicError is the failure of a task body that panicked; it keeps the
// stack for the error history's trace.
type panicError struct {
	v     any
	stack string
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.v) }

// attemptTrace is the trace kept in the error history for err: the stack
// of a panic, else none.
func attemptTrace(err error) string {
	if p, ok := errors.AsType[*panicError](err); ok {
		return p.stack
	}
	return ""
}

// isSnooze reports whether a handler's error asks for a snooze.
func isSnooze(err error) bool {
	_, ok := errors.AsType[*snoozeError](err)
	return ok
}

// snooze settles an attempt whose handler returned Snooze: the record is
// requeued without spending retry budget, or, past the task's MaxSnoozes,
// the attempt fails as an ordinary failure.
func (a *attempt) snooze(ctx context.Context, err error) {
	s := a.svc
	sn, _ := errors.AsType[*snoozeError](err)
	maxSnoozes := defaultMaxSnoozes
	if e := s.registry.lookup(a.rec.TaskName); e != nil && e.opts.MaxSnoozes > 0 {
		maxSnoozes = e.opts.MaxSnoozes
	}
	tr, ok := decideSnooze(a.rec, sn.d, maxSnoozes)
	if !ok {
		s.logger.Warn("Queue task snoozed past its MaxSnoozes; the attempt fails", "task_id", a.rec.ID,
			"task_name", a.rec.TaskName, "snoozes", a.rec.SnoozeCount, "max_snoozes", maxSnoozes)
		a.fail(ctx, fmt.Errorf("%s (max %d)", snoozeCapText, maxSnoozes), true)
		return
	}
	rec, err := a.writeSettle(settleWrite{phase: "snooze", write: s.settleTransition(tr), landed: landedSnoozed(a.rec)})
	if err != nil {
		a.settleError(ctx, "snooze", err)
		return
	}
	payload := statusPayload(rec)
	payload["snoozed"] = true
	payload["snooze_delay"] = sn.d.Seconds()
	payload["retry_at"] = formatTime(rec.ScheduledAt)
	s.lifecycleAttempt(ctx, events.TypeSnoozed, rec, a.rec.RetryCount+1, a.workerID, "", payload, a.nextSeq())
	s.logger.Info("Queue task snoozed", "task_id", rec.ID, "task_name", rec.TaskName, "worker_id", a.workerID,
		"attempt", a.rec.RetryCount+1, "snoozed_for", sn.d, "snoozes", rec.SnoozeCount)
}

// landedSnoozed: requeued past the claimed generation by a snooze (the
// next attempt may have run already).
func landedSnoozed(claimed *Record) func(*Record) bool {
	gen, snoozes := claimed.RetryCount, claimed.SnoozeCount
	return func(cur *Record) bool { return cur.RetryCount > gen && cur.SnoozeCount > snoozes }
}
