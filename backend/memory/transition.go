package memory

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

var _ driver.Dispatcher = (*Backend)(nil)

// Settle applies the transitions in input order, all under one hold of the
// mutex, so the whole call is one atomic step: no claim, heartbeat or other
// write lands between two of its transitions. Each transition is fenced on
// its own; one whose fence does not hold changes nothing and reports an
// error matching queuestype.ErrFenceLost in its result (also matching
// queuestype.ErrTaskNotFound when the record does not exist). A To other
// than completed, failed, cancelled or pending is refused with an error
// matching queuestype.ErrConfig in its result.
//
// The fence: the record holds generation t.Generation and is running, or,
// with t.ExpectedRef, holds exactly that execution_ref and is running,
// pending or scheduled; with t.WorkerID its worker_id is that worker; with
// t.StaleAfter > 0 its heartbeat is null or older than now−t.StaleAfter,
// and with t.StaleAfter < 0 any heartbeat passes.
//
// The store decides nothing: whether an outcome is a retry, a terminal
// failure or a stale requeue, and how long a retry waits, is the caller's
// decision carried by the transition. A failed or pending write replaces
// the error history with t.Errors when it is not nil. The writes:
//   - completed: result = t.Result, error cleared, completed_at = now,
//     heartbeat_at cleared, worker_id kept;
//   - failed: error = t.Error, completed_at = now, heartbeat_at cleared,
//     worker_id kept;
//   - cancelled: Cancel's write (worker_id kept), with error = t.Error when
//     not empty;
//   - pending (a retry, a stale requeue or a shutdown interruption): a new
//     unowned generation, retry_count+1, error = t.Error, worker_id,
//     execution_ref, started_at and heartbeat_at cleared, queued_at = now,
//     interruptions+1 when t.Interrupted, snooze_count+1 when t.Snoozed,
//     priority = *t.Priority when set,
//     scheduled at now+t.Delay when positive and pending otherwise.
//
// Times come from the backend clock, read once per call.
// A record that becomes terminal wakes its WaitForCompletion callers; one
// wakeup hint is sent after the call when any requeued record is due.
func (b *Backend) Settle(ctx context.Context, ts []driver.Transition) ([]driver.SettleResult, error) {
	if empty, done, err := driver.NoItems[driver.SettleResult](ctx, len(ts)); done {
		return empty, err
	}
	ts = driver.FitSettleTexts(ts)
	out := make([]driver.SettleResult, len(ts))
	// Copy the results outside the lock: the stored record must not share
	// the caller's bytes.
	var small [8]json.RawMessage // no allocation for the common small call
	results := small[:0]
	if len(ts) > len(small) {
		results = make([]json.RawMessage, 0, len(ts))
	}
	results = results[:len(ts)]
	for i := range ts {
		if t := &ts[i]; t.To == queuestype.StatusCompleted && t.Result != nil {
			results[i] = append(json.RawMessage(nil), t.Result...)
		}
	}
	wake := false
	b.mu.Lock()
	now := b.now()
	for i := range ts {
		rec, due, err := b.settleLocked(&ts[i], results[i], now)
		out[i] = driver.SettleResult{Record: rec, Err: err}
		wake = wake || due
	}
	b.mu.Unlock()
	if wake {
		b.wake()
	}
	return out, nil
}

// settleLocked applies one transition with the mutex held. It returns the
// record after the write (nil with t.NoRecord), whether a requeued record is
// due now, and the per-transition error.
func (b *Backend) settleLocked(t *driver.Transition, result json.RawMessage, now time.Time) (*queuestype.Record, bool, error) {
	if err := driver.CheckTransition(t); err != nil {
		return nil, false, err
	}
	e := b.records[t.ID]
	if e == nil {
		return nil, false, driver.MissingForWrite("settle", t.ID)
	}
	if !settleFenceHolds(&e.rec, t, now) {
		return nil, false, driver.FenceLost("settle", t.ID)
	}
	r := &e.rec
	due := false
	switch t.To {
	case queuestype.StatusCompleted:
		b.completeEntry(e, result, now)
	case queuestype.StatusFailed:
		r.Error = t.Error
		if t.Errors != nil {
			r.Errors = driver.FitErrorHistory(t.Errors)
		}
		b.finishEntry(e, queuestype.StatusFailed, now)
	case queuestype.StatusCancelled:
		if t.Error != "" {
			r.Error = t.Error
		}
		b.finishEntry(e, queuestype.StatusCancelled, now)
	case queuestype.StatusPending:
		r.Error = t.Error
		if t.Interrupted {
			r.Interruptions++
		}
		if t.Snoozed {
			r.SnoozeCount++
		}
		if t.Errors != nil {
			r.Errors = driver.FitErrorHistory(t.Errors)
		}
		if t.Priority != nil {
			r.Priority = *t.Priority
		}
		due = b.requeueEntry(e, t.Delay, now)
	}
	if t.NoRecord {
		return nil, due, nil
	}
	return e.clone(), due, nil
}

// settleFenceHolds reports whether r still is what transition t was decided
// for, at now.
func settleFenceHolds(r *queuestype.Record, t *driver.Transition, now time.Time) bool {
	if r.RetryCount != t.Generation {
		return false
	}
	if t.ExpectedRef == nil {
		if r.Status != queuestype.StatusRunning {
			return false
		}
	} else if r.ExecutionRef != *t.ExpectedRef || !(r.Status == queuestype.StatusRunning || isOpen(r.Status)) {
		return false
	}
	if t.WorkerID != "" && r.WorkerID != t.WorkerID {
		return false
	}
	if t.StaleAfter > 0 && !r.HeartbeatAt.IsZero() && !r.HeartbeatAt.Before(now.Add(-t.StaleAfter)) {
		return false
	}
	return true
}

// ListStale lists up to limit (≤ 0 lists nothing) running records whose
// heartbeat is null or older than now−staleAfter (every running record when
// staleAfter < 0): null heartbeats first, by created_at then id, then the
// oldest heartbeat first, then id. Records holding a dispatch reservation
// marker are left out. It changes nothing; the caller decides each record's
// fate and applies it with Settle, fenced with StaleAfter.
func (b *Backend) ListStale(ctx context.Context, staleAfter time.Duration, limit int) ([]*queuestype.Record, error) {
	if empty, done, err := driver.NoItems[*queuestype.Record](ctx, limit); done {
		return empty, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cutoff := b.now().Add(-staleAfter)
	var cands []*entry
	for _, e := range b.running {
		r := &e.rec
		if !r.DispatchUntil.IsZero() {
			continue
		}
		if staleAfter < 0 || r.HeartbeatAt.IsZero() || r.HeartbeatAt.Before(cutoff) {
			cands = append(cands, e)
		}
	}
	slices.SortFunc(cands, func(x, y *entry) int { return driver.StaleOrder(&x.rec, &y.rec) })
	if len(cands) > limit {
		cands = cands[:limit]
	}
	out := make([]*queuestype.Record, len(cands))
	for i, e := range cands {
		out[i] = e.clone()
	}
	return out, nil
}
