package queues

import (
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// The engine decides every outcome of a claimed record here, in Go, from
// the record as it was claimed; stores only apply the fenced transition.
// Nothing below reads the store or the clock.

// decideFailure is the transition for an attempt that failed with errText:
// a retry after the task's backoff while budget remains and the error is
// retryable, else a terminal failure. The delay is returned apart from the
// transition so inline execution can report it without waiting it.
func decideFailure(rec *Record, errText string, retryable bool) (tr driver.Transition, delay time.Duration) {
	tr = driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queuestype.StatusFailed, Error: errText}
	if retryable && rec.AttemptsConsumed() < rec.MaxRetries {
		delay = rec.Policy.RetryBackoff.Delay(rec.AttemptsConsumed())
		tr.To, tr.Delay = queuestype.StatusPending, delay
	}
	return tr, delay
}

// decideStale is the transition for a running record whose heartbeat went
// stale: a requeue (after the backoff, at the mapped priority) when the
// task allows stale requeues and budget remains, else a terminal failure.
// handlerNeeded reports a failure the task chose (NoStaleRequeue), which
// its OnStaleFailure hook handles. The transition re-checks staleness at
// the write, so a heartbeat landing in between keeps the live attempt.
func decideStale(rec *Record, staleAfter time.Duration, priority func(int) int) (tr driver.Transition, handlerNeeded bool) {
	tr = driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queuestype.StatusFailed, Error: driver.StaleError,
		StaleAfter: staleAfter}
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
func decideInterrupt(rec *Record, workerID string, maxInterruptions int) (tr driver.Transition, exhausted bool) {
	if rec.Interruptions >= maxInterruptions {
		tr, _ = decideFailure(rec, interruptedText, true)
		tr.Delay = 0
		return tr, true
	}
	return driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queuestype.StatusPending, Interrupted: true,
		WorkerID: workerID}, false
}
