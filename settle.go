package queues

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
)

// A settle write (complete, fail, cancel, interrupt) records the outcome of
// an attempt whose body has run: losing it to a store outage would turn
// finished work into a failure or a second run. So a write that fails is
// tried again, with capped exponential backoff, until it lands, the fence
// says another attempt owns the record, the store refuses the data, or the
// runner gives up (a worker's shutdown ran out of time).

const (
	// settleBackoffMin and settleBackoffMax bound the wait between tries.
	settleBackoffMin = 50 * time.Millisecond
	settleBackoffMax = 5 * time.Second
	// settleTryTimeout bounds each retried try, so a connection that hangs
	// instead of failing does not hold the loop. The first try runs on the
	// attempt's own context, as before.
	settleTryTimeout = 30 * time.Second
	// settleLogEvery is how many failed tries pass between two log lines
	// about the same write after the first.
	settleLogEvery = 10
)

// backoffDelay is the wait before try n+1 after n failed tries: 50 ms
// doubling up to 5 s, jittered down by up to half so that writers failed by
// one outage do not return in step.
func backoffDelay(n int) time.Duration {
	d := min(settleBackoffMin<<min(max(n-1, 0), 10), settleBackoffMax)
	return d/2 + rand.N(d/2+1)
}

// settleHooks are what the runner of an attempt does about a settle write
// that failed and is being retried.
type settleHooks struct {
	// abort, when it ends, stops the retries: the write is then abandoned
	// (nil: retry until the write lands).
	abort context.Context
	// retrying runs once the first try failed: the runner keeps the
	// record's heartbeat going while the write is retried.
	retrying func(a *attempt)
	// ended runs after a write that needed retries ends; written is false
	// when it was abandoned.
	ended func(a *attempt, written bool)
}

// settleWrite is one fenced write of an attempt's outcome.
type settleWrite struct {
	// phase names the write in logs and in task.claim_lost.
	phase string
	// write applies the outcome (normally one Backend.Settle call); it is
	// called again after a failure.
	write func(ctx context.Context) (*Record, error)
	// landed reports whether cur, the record read after a retry hit a lost
	// fence, already holds this write's outcome: an earlier try landed and
	// only its reply was lost.
	landed func(cur *Record) bool
}

// errSettleAbandoned reports a settle write the runner stopped retrying.
var errSettleAbandoned = errors.New("settle write abandoned")

// refusedError reports a settle write whose data the store refused
// (driver.ClassInvalidData): retrying the same write cannot help.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return "store refused the value: " + e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// isFenceAnswer reports a write the store answered by refusing the fence.
func isFenceAnswer(err error) bool {
	return errors.Is(err, ErrFenceLost) || errors.Is(err, ErrTaskNotFound)
}

// writeSettle runs w until its outcome is durable and returns the settled
// record (nil when the store returned none). An error matches ErrFenceLost
// or ErrTaskNotFound when another attempt owns the record, is a
// *refusedError when the store refused the data, or wraps
// errSettleAbandoned when the runner stopped the retries.
func (a *attempt) writeSettle(w settleWrite) (*Record, error) {
	ctx := context.WithoutCancel(a.ctx)
	rec, err := w.write(ctx)
	if err == nil {
		return rec, nil
	}
	return a.retrySettle(ctx, w, err)
}

func (a *attempt) retrySettle(ctx context.Context, w settleWrite, err error) (rec *Record, _ error) {
	s, h := a.svc, a.env.settle
	failed := 0
	abandoned := false
	defer func() {
		if failed > 0 && h.ended != nil {
			h.ended(a, !abandoned)
		}
	}()
	var abort <-chan struct{}
	if h.abort != nil {
		abort = h.abort.Done()
	}
	// try runs fn with the per-try timeout, cut short by the runner's abort.
	try := func(fn func(ctx context.Context) error) error {
		tctx, cancel := context.WithTimeout(ctx, settleTryTimeout)
		defer cancel()
		if h.abort != nil {
			defer context.AfterFunc(h.abort, cancel)()
		}
		return fn(tctx)
	}
	for {
		if isFenceAnswer(err) {
			if failed == 0 || w.landed == nil {
				return nil, err
			}
			// An earlier try may have landed with its reply lost: the
			// record says whether it holds this write's outcome.
			var cur *Record
			rerr := try(func(ctx context.Context) (e error) { cur, e = s.backend.GetTask(ctx, a.rec.ID); return e })
			switch {
			case rerr == nil && w.landed(cur):
				s.logger.Info("Queue task settle write had landed; its reply was lost", "task_id", a.rec.ID,
					"task_name", a.rec.TaskName, "phase", w.phase, "tries", failed+1)
				return cur, nil
			case rerr == nil, errors.Is(rerr, ErrTaskNotFound):
				return nil, err
			}
			err = rerr // the read failed: try again (the write will meet the fence again)
		}
		class := driver.Classify(s.backend, err)
		if class == driver.ClassInvalidData {
			return nil, &refusedError{err: err}
		}
		failed++
		s.noteStoreError(err)
		if failed == 1 && h.retrying != nil {
			h.retrying(a)
		}
		wait := backoffDelay(failed)
		if failed == 1 || failed%settleLogEvery == 0 {
			// A permanent or unrecognised error needs an operator: say so loudly.
			level := errorLevel(class)
			s.logger.Log(ctx, level, "Queue task settle write failed; retrying until it lands", "task_id", a.rec.ID,
				"task_name", a.rec.TaskName, "phase", w.phase, "tries", failed, "error_class", class.String(),
				"retry_in", wait, "error", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-abort:
			t.Stop()
			abandoned = true
			s.logger.Error("Queue task settle write abandoned", "task_id", a.rec.ID, "task_name", a.rec.TaskName,
				"phase", w.phase, "tries", failed, "error", err)
			return nil, errors.Join(errSettleAbandoned, err)
		}
		err = try(func(ctx context.Context) (e error) { rec, e = w.write(ctx); return e })
		if err == nil {
			s.logger.Info("Queue task settle write landed after retries", "task_id", a.rec.ID,
				"task_name", a.rec.TaskName, "phase", w.phase, "tries", failed+1)
			return rec, nil
		}
	}
}

// noteStoreError records a failed store call. Only a store that did not
// answer (a transient error) counts as away: it holds stale recovery back
// until the store has answered for one StaleAfter. A refused value or a
// transport's own failure says nothing about other workers' heartbeats.
func (s *Service) noteStoreError(err error) {
	if driver.Classify(s.backend, err) != driver.ClassTransient {
		return
	}
	s.storeErrAt.Store(time.Now().UnixNano())
	s.storeDown.Store(true)
}

// noteStoreAnswered records that a store call succeeded: the first success
// after a failure marks when the store came back.
func (s *Service) noteStoreAnswered() {
	if s.storeDown.Load() && s.storeDown.CompareAndSwap(true, false) {
		s.storeBackAt.Store(time.Now().UnixNano())
	}
}

// storeQuietSince returns when this process last saw the store fail or come
// back, whichever is later, and whether the store is answering now. Calls
// that failed back off, so the last failure may lie well before the store
// came back; what matters to stale recovery is how long it has answered.
func (s *Service) storeQuietSince() (since time.Time, answering bool) {
	at := max(s.storeErrAt.Load(), s.storeBackAt.Load())
	if at != 0 {
		since = time.Unix(0, at)
	}
	return since, !s.storeDown.Load()
}

// errorLevel is the log level of a failed store call of class c.
func errorLevel(c driver.ErrorClass) slog.Level {
	if c == driver.ClassTransient {
		return slog.LevelWarn
	}
	return slog.LevelError
}

// Landed predicates: each reports whether a record read back holds the
// outcome of one settle write of the claimed generation.

// landedCompleted: completed in the claimed generation.
func landedCompleted(claimed *Record) func(*Record) bool {
	gen := claimed.RetryCount
	return func(cur *Record) bool { return cur.Status == StatusCompleted && cur.RetryCount == gen }
}

// landedCancelled: cancelled in the claimed generation.
func landedCancelled(claimed *Record) func(*Record) bool {
	gen := claimed.RetryCount
	return func(cur *Record) bool { return cur.Status == StatusCancelled && cur.RetryCount == gen }
}

// landedFailed: failed terminally in the claimed generation holding msg,
// or (retry) requeued past the claimed generation. Only this attempt's
// retry, its own interruption or stale recovery start a new generation of
// a running record; the next attempt may already have run and replaced the
// error text by the time the record is read, so a record past the claimed
// generation counts as this write's unless it shows stale recovery's
// requeue or an interruption of that generation.
func landedFailed(claimed *Record, msg string, retry bool) func(*Record) bool {
	gen, interruptions := claimed.RetryCount, claimed.Interruptions
	return func(cur *Record) bool {
		switch {
		case cur.RetryCount == gen:
			return cur.Status == StatusFailed && cur.Error == msg
		case !retry:
			return false
		case cur.RetryCount == gen+1:
			return cur.Interruptions == interruptions && (cur.Error != driver.StaleError || msg == driver.StaleError)
		}
		return cur.RetryCount > gen+1
	}
}

// landedInterrupted: requeued past the claimed generation by an
// interruption (the next attempt may have run already).
func landedInterrupted(claimed *Record) func(*Record) bool {
	gen, interruptions := claimed.RetryCount, claimed.Interruptions
	return func(cur *Record) bool { return cur.RetryCount > gen && cur.Interruptions > interruptions }
}

// settleTransition is the write of one decided transition through
// Backend.Settle, in the form settleWrite takes.
func (s *Service) settleTransition(t driver.Transition) func(ctx context.Context) (*Record, error) {
	return func(ctx context.Context) (*Record, error) {
		res, err := s.backend.Settle(ctx, []driver.Transition{t})
		if err != nil {
			return nil, err
		}
		if len(res) != 1 {
			return nil, fmt.Errorf("settle: the %s store returned %d results for 1 transition", s.backend.Name(), len(res))
		}
		return res[0].Record, res[0].Err
	}
}

// landedTransition is the landed predicate of transition t of the claimed
// generation.
func landedTransition(claimed *Record, t driver.Transition) func(*Record) bool {
	switch {
	case t.To == StatusCompleted:
		return landedCompleted(claimed)
	case t.To == StatusCancelled:
		return landedCancelled(claimed)
	case t.To == StatusFailed:
		return landedFailed(claimed, t.Error, false)
	case t.Interrupted:
		return landedInterrupted(claimed)
	}
	return landedFailed(claimed, t.Error, true) // a retry
}

// Texts stored when the store refuses what an attempt produced. They never
// carry the store's own error text.
const (
	resultRefusedText = "result could not be stored: the store refused the value"
	errorRefusedText  = "task failed; its error text could not be stored"
)

// storableText is msg without the bytes stores commonly refuse in text (NUL,
// invalid UTF-8).
func storableText(msg string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(msg, "\x00", "\uFFFD"), "\uFFFD")
}
