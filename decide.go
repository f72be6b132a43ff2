package queues

import (
	"errors"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// The engine decides every outcome of a claimed record here, in Go, from
// the record as it was claimed; stores only apply the fenced transition.
// Nothing below reads the store or the clock: the time an error history
// entry carries is given by the caller.

// failure is what the engine knows of a failed attempt.
type failure struct {
	// text is the error text to store; retryable is false when the error
	// or the caller rules out a retry.
	text      string
	retryable bool
	// err is the handler's error (nil for a failure the engine made up): a
	// RetryAfter in it sets the delay, and RetryDelay receives it.
	err error
	// at is when the attempt ended and workerID who ran it, for the error
	// history.
	at       time.Time
	workerID string
	// retryDelay is the task's TaskOptions.RetryDelay (nil: the backoff).
	retryDelay func(attempt int, err error) time.Duration
}

// decideFailure is the transition for a failed attempt: a retry while
// budget remains and the error is retryable, else a terminal failure.
// Either way the attempt joins the record's error history. The retry waits
// the RetryAfter delay the handler returned, else the task's RetryDelay,
// else the policy's backoff. The delay is returned apart from the
// transition so inline execution can report it without waiting it.
func decideFailure(rec *Record, f failure) (tr driver.Transition, delay time.Duration) {
	tr = driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queuestype.StatusFailed, Error: f.text,
		Errors: historyWith(rec, f.text, attemptTrace(f.err), f.at, f.workerID)}
	if f.retryable && rec.AttemptsConsumed() < rec.MaxRetries {
		delay = retryDelay(rec, f)
		tr.To, tr.Delay = queuestype.StatusPending, delay
	}
	return tr, delay
}

// retryDelay is how long the retry of failure f waits.
func retryDelay(rec *Record, f failure) time.Duration {
	if ra, ok := errors.AsType[*retryAfterError](f.err); ok {
		return ra.d
	}
	if f.retryDelay != nil && f.err != nil {
		// The attempt number given is this failure's among the attempts
		// that spent budget (1 for the first failure).
		return max(f.retryDelay(rec.AttemptsConsumed()+1, f.err), 0)
	}
	return rec.Policy.RetryBackoff.Delay(rec.AttemptsConsumed())
}

// historyWith is rec's error history with the failed attempt of rec's
// generation appended.
func historyWith(rec *Record, text, trace string, at time.Time, workerID string) []queuestype.AttemptError {
	return queuestype.AppendAttemptError(rec.Errors, queuestype.AttemptError{Attempt: rec.Attempt(), At: at,
		Error: text, Trace: trace, WorkerID: workerID})
}

// snoozeCapText is the error of an attempt that asked for a snooze past
// the task's MaxSnoozes.
const snoozeCapText = "snoozed too many times"

// decideSnooze is the transition for an attempt that returned Snooze(d): a
// new generation due after d that spends no retry budget (snooze_count+1)
// and keeps the last error and the history. ok is false when the record has
// used its maxSnoozes: the attempt is then an ordinary failure.
func decideSnooze(rec *Record, d time.Duration, maxSnoozes int) (tr driver.Transition, ok bool) {
	if rec.SnoozeCount >= maxSnoozes {
		return tr, false
	}
	return driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queuestype.StatusPending, Delay: d,
		Snoozed: true, Error: rec.Error}, true
}

// decideStale is the transition for a running record whose heartbeat went
// stale: a requeue (after the backoff, at the mapped priority) when the
// task allows stale requeues and budget remains, else a terminal failure.
// handlerNeeded reports a failure the task chose (NoStaleRequeue), which
// its OnStaleFailure hook handles. The transition re-checks staleness at
// the write, so a heartbeat landing in between keeps the live attempt.
func decideStale(rec *Record, staleAfter time.Duration, priority func(int) int, at time.Time) (tr driver.Transition, handlerNeeded bool) {
	tr = driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queuestype.StatusFailed, Error: driver.StaleError,
		StaleAfter: staleAfter, Errors: historyWith(rec, driver.StaleError, "", at, rec.WorkerID)}
	if rec.Policy.NoStaleRequeue {
		return tr, true
	}
	if rec.AttemptsConsumed() < rec.MaxRetries {
		tr.To, tr.Delay = queuestype.StatusPending, rec.Policy.RetryBackoff.Delay(rec.AttemptsConsumed())
		if rec.Error != "" {
			tr.Error = rec.Error // a requeue keeps the last attempt's error
		}
		if priority != nil {
			p := priority(rec.Priority)
			tr.Priority = &p
		}
	}
	return tr, false
}

// interruptedText is the error of a record that used up its shutdown
// interruptions.
const interruptedText = "Interrupted during shutdown"

// decideInterrupt is the transition for an attempt a worker shutdown
// stopped: a requeue that spends no retry budget (fenced on this worker)
// while the record has interruptions left, else it counts as a failed
// attempt (exhausted reports that case).
func decideInterrupt(rec *Record, workerID string, maxInterruptions int, at time.Time) (tr driver.Transition, exhausted bool) {
	if rec.Interruptions >= maxInterruptions {
		tr, _ = decideFailure(rec, failure{text: interruptedText, retryable: true, at: at, workerID: workerID})
		tr.Delay = 0
		return tr, true
	}
	return driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queuestype.StatusPending, Interrupted: true,
		WorkerID: workerID}, false
}
