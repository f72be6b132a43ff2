package sqlite

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

var _ driver.Dispatcher = (*Backend)(nil)

// sqlSettleFence is the WHERE clause of every Settle write. Parameters:
// ?1 id, ?2 generation; ?3 the expected execution ref (NULL: none expected,
// the record must be running; otherwise the record, running, pending or
// scheduled, must hold exactly that ref, "" meaning none); ?4 the worker
// (NULL: any); ?5 the stale cut-off in µs (NULL: no stale fence; a heartbeat
// must be missing or older than it). The CASTs keep the statements compiled
// once (see sqlNow).
const sqlSettleFence = ` WHERE id = ?1 AND retry_count = ?2
AND (CASE WHEN ?3 IS NULL THEN status = 'running'
     ELSE coalesce(execution_ref, '') = CAST(?3 AS TEXT) AND (status = 'running' OR ` + sqlOpen + `) END)
AND (?4 IS NULL OR worker_id = CAST(?4 AS TEXT))
AND (?5 IS NULL OR heartbeat_at IS NULL OR heartbeat_at < CAST(?5 AS INTEGER))`

// The Settle writes, one per target status: a completion, a terminal
// failure, a cancellation of a running record, and a requeue (a retry, a
// shutdown interruption or a stale requeue). Their own parameters follow
// the fence's: ?6 is now (µs) in each.
const (
	// ?7 result.
	sqlSettleCompleted = `UPDATE OR FAIL queue_task SET status = 'completed', completed_at = ?6, heartbeat_at = NULL, dispatch_until = NULL, result = ?7, error = NULL` + sqlSettleFence
	// ?7 error, ?8 the error history (NULL keeps it). worker_id is kept.
	sqlSettleFailed = `UPDATE OR FAIL queue_task SET status = 'failed', completed_at = ?6, heartbeat_at = NULL, dispatch_until = NULL, error = ?7, errors = coalesce(?8, errors)` + sqlSettleFence
	// ?7 error (NULL keeps the stored one). worker_id is kept, so a
	// control hint can still reach the owner.
	sqlSettleCancelled = `UPDATE OR FAIL queue_task SET status = 'cancelled', completed_at = ?6, heartbeat_at = NULL, dispatch_until = NULL, error = coalesce(?7, error)` + sqlSettleFence
	// ?7 status (pending or scheduled), ?8 error, ?9 scheduled_at, ?10
	// priority (NULL keeps it), ?11 1 for a shutdown interruption, else 0,
	// ?12 1 for a snooze, else 0, ?13 the error history (NULL keeps it).
	sqlSettlePending = `UPDATE OR FAIL queue_task SET status = ?7, error = ?8, scheduled_at = ?9, priority = coalesce(?10, priority),
retry_count = retry_count + 1, interruptions = interruptions + ?11, snooze_count = snooze_count + ?12, errors = coalesce(?13, errors), queued_at = ?6,
started_at = NULL, heartbeat_at = NULL, completed_at = NULL, worker_id = NULL, execution_ref = NULL, dispatch_until = NULL` + sqlSettleFence
)

// settleReturning is the RETURNING clause added when the caller wants the
// settled record.
const settleReturning = ` RETURNING ` + recordColumns

// settleStep is one Transition prepared outside the writer.
type settleStep struct {
	idx    int // position in the call's input
	idText string
	query  string // without RETURNING; "" when the transition is refused
	ret    bool   // append RETURNING: the caller wants the record
	args   []any  // ?1..?n; ?5 (stale) and ?6 (now) and ?9 (due) are filled in the writer
	stale  time.Duration
	delay  time.Duration
	status queuestype.Status // the status the write sets
	// fast: the completion may go through the claim cache (completeKnown).
	fast   bool
	gen    int64
	worker string
	result any
}

// Settle applies the transitions the engine decided, in one writer
// transaction (one group commit with the other writes waiting), and returns
// one result per transition in input order. Records are written in ID order.
// Each write is one UPDATE fenced on the record's generation and status (or,
// with ExpectedRef, on the execution ref and any status but terminal), on
// worker_id when WorkerID is set, and on a still-stale heartbeat when
// StaleAfter is set (by the store's clock at the write). A transition whose
// fence does not hold changes nothing and reports an error matching
// queuestype.ErrFenceLost (also matching queuestype.ErrTaskNotFound when the
// record does not exist); a target status other than completed, failed,
// cancelled or pending is refused with an error matching
// queuestype.ErrConfig. The writes:
//
//   - completed: result = Result, completed_at = now, error and
//     heartbeat_at cleared, worker_id kept (a record this process claimed
//     is completed by rowid and rebuilt from its claim, without reading it
//     back: see completeKnown);
//   - failed: error = Error, completed_at = now, heartbeat_at cleared,
//     worker_id kept;
//   - cancelled: as Cancel of a running record, storing Error when it is
//     not empty;
//   - pending: as a retry — retry_count+1, error = Error, worker_id,
//     execution_ref, dispatch_until, started_at and heartbeat_at cleared, queued_at = now,
//     scheduled at now+Delay (status scheduled) when Delay > 0, else
//     pending; interruptions+1 when Interrupted; snooze_count+1 when
//     Snoozed; priority replaced when Priority is set.
//
// A failed or pending write replaces the error history with Errors when
// it is not nil.
//
// Workers are woken once when a transition made a record claimable now.
// With NoRecord a successful result has no record.
func (b *Backend) Settle(ctx context.Context, ts []driver.Transition) ([]driver.SettleResult, error) {
	if empty, done, err := driver.NoItems[driver.SettleResult](ctx, len(ts)); done {
		return empty, err
	}
	ts = driver.FitSettleTexts(ts)
	res := make([]driver.SettleResult, len(ts))
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	steps := make([]settleStep, len(ts))
	for i := range ts {
		steps[i] = prepareSettle(i, &ts[i])
	}
	// ID order, as every write that touches several records: a fixed order
	// keeps a batch free of lock-order surprises should writes ever
	// interleave (SQLite's single write lock rules that out today).
	slices.SortStableFunc(steps, func(x, y settleStep) int { return strings.Compare(x.idText, y.idText) })

	type outcome struct {
		rec     rawRec
		have    bool // rec holds the record
		ok      bool
		missing bool
	}
	outs := make([]outcome, len(steps))
	var wake bool
	err = w.do(ctx, false, func(tx *wtx) error {
		wake = false
		nowT := b.now()
		now := micros(nowT)
		for i := range steps {
			s := &steps[i]
			o := &outs[i]
			*o = outcome{}
			if s.query == "" {
				continue
			}
			if s.fast {
				rec, done, err := completeKnown(tx, s.idText, s.gen, s.worker, s.result, now)
				if err != nil {
					return err
				}
				if done {
					o.rec, o.have, o.ok = rec, true, true
					continue
				}
			} else {
				tx.forget(s.idText)
			}
			s.args[4] = nil
			if s.stale < 0 {
				s.args[4] = int64(math.MaxInt64) // every heartbeat is older
			} else if s.stale > 0 {
				s.args[4] = micros(nowT.Add(-s.stale))
			}
			s.args[5] = now
			if s.status == queuestype.StatusScheduled {
				s.args[8] = micros(nowT.Add(s.delay))
			}
			if s.ret {
				rec, ok, err := tx.record(s.query+settleReturning, s.args...)
				if err != nil {
					return err
				}
				o.rec, o.have, o.ok = rec, ok, ok
			} else {
				n, err := tx.exec(s.query, s.args...)
				if err != nil {
					return err
				}
				o.ok = n > 0
			}
			if !o.ok {
				exists, err := tx.exists(s.idText)
				if err != nil {
					return err
				}
				o.missing = !exists
				continue
			}
			if s.status == queuestype.StatusPending {
				wake = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range steps {
		s, o := &steps[i], &outs[i]
		r := &res[s.idx]
		t := &ts[s.idx]
		switch {
		case s.query == "":
			r.Err = driver.CheckTransition(t)
		case o.missing:
			r.Err = driver.MissingForWrite("settle", t.ID)
		case !o.ok:
			r.Err = driver.FenceLost("settle", t.ID)
		case t.NoRecord:
		case o.have:
			if r.Record, err = o.rec.record(); err != nil {
				r.Err = err
			}
		}
	}
	if wake {
		b.wake()
	}
	return res, nil
}

// prepareSettle builds the write of transition t (input position i). The
// fence parameters ?5 and ?6 (stale cut-off, now) and a scheduled_at
// depending on now are filled in by the writer.
func prepareSettle(i int, t *driver.Transition) settleStep {
	s := settleStep{idx: i, idText: t.ID.String(), ret: !t.NoRecord, stale: t.StaleAfter, gen: int64(t.Generation), worker: t.WorkerID}
	var ref any
	if t.ExpectedRef != nil {
		ref = *t.ExpectedRef
	}
	s.args = []any{s.idText, s.gen, ref, nullStr(t.WorkerID), nil, nil}
	if driver.CheckTransition(t) != nil {
		return s // no query: the transition is refused
	}
	var history any // NULL keeps the stored history
	if h, err := driver.EncodeErrorHistory(t.Errors); err != nil {
		return s // cannot happen: the history is plain data
	} else if h != "" {
		history = h
	}
	switch t.To {
	case queuestype.StatusCompleted:
		s.query, s.status = sqlSettleCompleted, queuestype.StatusCompleted
		s.result = nullJSON(t.Result)
		s.args = append(s.args, s.result)
		// The claim cache knows the generation, status and worker of a
		// record this process claimed, not its heartbeat or a ref fence.
		s.fast = t.ExpectedRef == nil && t.StaleAfter == 0
	case queuestype.StatusFailed:
		s.query, s.status = sqlSettleFailed, queuestype.StatusFailed
		s.args = append(s.args, nullStr(t.Error), history)
	case queuestype.StatusCancelled:
		s.query, s.status = sqlSettleCancelled, queuestype.StatusCancelled
		s.args = append(s.args, nullStr(t.Error))
	case queuestype.StatusPending:
		s.query, s.status, s.delay = sqlSettlePending, queuestype.StatusPending, t.Delay
		if t.Delay > 0 {
			s.status = queuestype.StatusScheduled
		}
		var prio any
		if t.Priority != nil {
			prio = *t.Priority
		}
		interrupted, snoozed := 0, 0
		if t.Interrupted {
			interrupted = 1
		}
		if t.Snoozed {
			snoozed = 1
		}
		s.args = append(s.args, string(s.status), nullStr(t.Error), nil, prio, interrupted, snoozed, history)
	}
	return s
}

// ListStale lists up to limit (≤ 0 lists nothing) running records whose
// heartbeat is missing or older than now−staleAfter by the store's clock
// (staleAfter < 0: every running record), missing heartbeats first, then
// oldest heartbeat first, then by ID. Records holding a dispatch reservation
// are left out. It reads through the reader pool and changes nothing.
func (b *Backend) ListStale(ctx context.Context, staleAfter time.Duration, limit int) ([]*queuestype.Record, error) {
	if empty, done, err := driver.NoItems[*queuestype.Record](ctx, limit); done {
		return empty, err
	}
	cut := int64(math.MaxInt64) // every heartbeat is older
	if staleAfter >= 0 {
		cut = micros(b.now().Add(-staleAfter))
	}
	return b.readRecords(ctx, sqlListStale, cut, limit)
}

// sqlStaleOrder is the key of the stale index (see migration 0002): a null
// heartbeat is the smallest integer, so it sorts before every real time.
const sqlStaleOrder = `CAST(coalesce(heartbeat_at, -9223372036854775808) AS INTEGER)`

// sqlListStale reads the stale index in order, one range up to the cut-off:
// ?1 the cut-off (µs), ?2 the limit.
const sqlListStale = `SELECT ` + recordColumns + ` FROM queue_task
WHERE status = 'running' AND ` + sqlStaleOrder + ` < CAST(?1 AS INTEGER) AND ` + sqlUnreserved + `
ORDER BY ` + sqlStaleOrder + `, id LIMIT CAST(?2 AS INTEGER)`
