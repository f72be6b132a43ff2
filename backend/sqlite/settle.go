package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

const (
	sqlComplete = `UPDATE OR FAIL queue_task SET status = 'completed', completed_at = ?, heartbeat_at = NULL, result = ?, error = NULL
WHERE id = ? AND status = 'running' AND retry_count = ? RETURNING ` + recordColumns

	// sqlRequeue starts a new, unowned generation: ?1 status, ?2 error,
	// ?3 priority, ?4 now, ?5 scheduled_at; fenced on ?6 id, ?7 status, ?8 generation.
	sqlRequeue = `UPDATE OR FAIL queue_task SET status = ?1, error = ?2, priority = ?3, retry_count = retry_count + 1,
queued_at = ?4, scheduled_at = ?5, started_at = NULL, heartbeat_at = NULL, completed_at = NULL, worker_id = NULL, execution_ref = NULL
WHERE id = ?6 AND status = CAST(?7 AS TEXT) AND retry_count = ?8 RETURNING ` + recordColumns

	// sqlFinish makes a record terminal: ?1 status, ?2 error, ?3 now; fenced
	// on ?4 id, ?5 status, ?6 generation. worker_id is kept.
	sqlFinish = `UPDATE OR FAIL queue_task SET status = ?1, error = ?2, completed_at = ?3, heartbeat_at = NULL
WHERE id = ?4 AND status = CAST(?5 AS TEXT) AND retry_count = ?6 RETURNING ` + recordColumns

	sqlCancel = `UPDATE OR FAIL queue_task SET status = 'cancelled', completed_at = ?1, heartbeat_at = NULL
WHERE id = ?2 AND (` + sqlOpen + ` OR (?3 AND status = 'running')) AND (?4 IS NULL OR retry_count = ?4)
RETURNING ` + recordColumns

	sqlInterrupt = `UPDATE OR FAIL queue_task SET status = 'pending', retry_count = retry_count + 1, interruptions = interruptions + 1,
queued_at = ?1, scheduled_at = NULL, started_at = NULL, heartbeat_at = NULL, completed_at = NULL, execution_ref = NULL, worker_id = NULL
WHERE id = ?2 AND status = 'running' AND retry_count = ?3 AND worker_id IS ?4 RETURNING ` + recordColumns
)

// settleOne runs a single fenced write that returns the record; a write that
// matched nothing yields ErrFenceLost (also matching ErrTaskNotFound when
// the ID does not exist).
func (b *Backend) settleOne(ctx context.Context, op string, id uuid.UUID, query string, args func(now int64) []any) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	var (
		out     rawRec
		ok      bool
		missing bool
	)
	idText := id.String()
	err = w.do(ctx, false, func(tx *wtx) error {
		tx.forget(idText)
		var err error
		out, ok, err = tx.record(query, args(micros(b.now()))...)
		if err != nil || ok {
			return err
		}
		exists, err := tx.exists(idText)
		missing = !exists
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		if missing {
			return nil, missingForWrite(op, id)
		}
		return nil, fenceLost(op, id)
	}
	return out.record()
}

// sqlCompleteKnown is Complete for a record this process claimed: no
// RETURNING (reading a whole record back costs more than the write), with a
// guard that the columns a running record can still change (execution_ref,
// metadata) hold what the claim returned, so the record rebuilt from the
// claim is exactly the stored one.
const sqlCompleteKnown = `UPDATE OR FAIL queue_task SET status = 'completed', completed_at = ?6, heartbeat_at = NULL, result = ?7, error = NULL
WHERE rowid = ?1 AND id = ?2 AND status = 'running' AND retry_count = ?3 AND execution_ref IS ?4 AND metadata = ?5`

// completeKnown completes a record this process claimed, at generation gen,
// at now (µs) with result (a string or nil): the write goes by rowid and the
// record is rebuilt from the claim instead of being read back
// (sqlCompleteKnown). A non-empty worker must be the claim's worker_id (it
// cannot change while the generation runs). done is false when there is no
// matching cached claim or the guarded write matched nothing; the caller
// then writes through its own statement, which decides the fence.
func completeKnown(tx *wtx, idText string, gen int64, worker string, result any, now int64) (out rawRec, done bool, err error) {
	c, found := tx.w.claimed[idText]
	if !found {
		return out, false, nil
	}
	delete(tx.w.claimed, idText)
	if c.RetryCount != gen || (worker != "" && c.Worker.String != worker) {
		return out, false, nil
	}
	n, err := tx.exec(sqlCompleteKnown, c.RowID, idText, gen, c.Ref, c.Metadata, now, result)
	if err != nil || n != 1 {
		return out, false, err
	}
	out = *c
	out.Status = string(queuestype.StatusCompleted)
	out.CompletedAt = sql.NullInt64{Int64: now, Valid: true}
	out.HeartbeatAt = sql.NullInt64{}
	out.Result = sql.NullString{}
	if r, isStr := result.(string); isStr {
		out.Result = sql.NullString{String: r, Valid: true}
	}
	out.Error = sql.NullString{}
	return out, true, nil
}

// Complete settles the running generation p.ExpectedRetryCount as completed
// with p.Result; the error is cleared and worker_id kept. Any other state
// returns an error matching queuestype.ErrFenceLost.
func (b *Backend) Complete(ctx context.Context, p driver.CompleteParams) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	idText, result := p.ID.String(), nullJSON(p.Result)
	gen := int64(p.ExpectedRetryCount)
	var (
		out     rawRec
		ok      bool
		missing bool
	)
	err = w.do(ctx, false, func(tx *wtx) error {
		now := micros(b.now())
		var err error
		if out, ok, err = completeKnown(tx, idText, gen, "", result, now); err != nil || ok {
			return err
		}
		out, ok, err = tx.record(sqlComplete, now, result, idText, gen)
		if err != nil || ok {
			return err
		}
		exists, err := tx.exists(idText)
		missing = !exists
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		if missing {
			return nil, missingForWrite("complete", p.ID)
		}
		return nil, fenceLost("complete", p.ID)
	}
	return out.record()
}

// Cancel cancels a pending or scheduled record, or a running one when
// p.IncludeRunning, fenced on the optional generation. worker_id is kept so
// control hints can reach the owner. Any other state returns an error
// matching queuestype.ErrFenceLost.
func (b *Backend) Cancel(ctx context.Context, p driver.CancelParams) (*queuestype.Record, error) {
	idText := p.ID.String()
	var gen any
	if p.ExpectedRetryCount != nil {
		gen = *p.ExpectedRetryCount
	}
	return b.settleOne(ctx, "cancel", p.ID, sqlCancel, func(now int64) []any {
		return []any{now, idText, p.IncludeRunning, gen}
	})
}

// Interrupt requeues the running generation p.ExpectedRetryCount owned by
// p.WorkerID after a shutdown: status pending, retry_count+1,
// interruptions+1, queued_at=now, scheduled_at, started_at,
// heartbeat_at, completed_at, execution_ref and worker_id cleared, priority
// kept. Workers are woken. Any other state returns an error matching
// queuestype.ErrFenceLost.
func (b *Backend) Interrupt(ctx context.Context, p driver.InterruptParams) (*queuestype.Record, error) {
	idText, worker := p.ID.String(), nullStr(p.WorkerID)
	rec, err := b.settleOne(ctx, "interrupt", p.ID, sqlInterrupt, func(now int64) []any {
		return []any{now, idText, p.ExpectedRetryCount, worker}
	})
	if err == nil {
		b.wake()
	}
	return rec, err
}

// Fail records a failed attempt. The guard is status running with generation
// p.ExpectedRetryCount; with p.ExpectedRef it is instead execution_ref equal to
// *p.ExpectedRef, that generation, and status pending, scheduled or running.
// With p.Retry and budget left (driver.RetryAllowed) the record is requeued
// (scheduled after p.RetryDelay when positive, else pending, waking workers);
// otherwise it fails terminally. The error text is stored either way.
func (b *Backend) Fail(ctx context.Context, p driver.FailParams) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	idText := p.ID.String()
	var (
		out           rawRec
		missing, lost bool
		wake          bool
	)
	err = w.do(ctx, false, func(tx *wtx) error {
		missing, lost, wake = false, false, false
		tx.forget(idText)
		r, ok, err := tx.record(sqlSelectByID, idText)
		if err != nil {
			return err
		}
		if !ok {
			missing = true
			return nil
		}
		guard := r.RetryCount == int64(p.ExpectedRetryCount)
		if p.ExpectedRef == nil {
			guard = guard && r.Status == string(queuestype.StatusRunning)
		} else {
			guard = guard && r.Ref.String == *p.ExpectedRef && (isOpen(r.Status) || r.Status == string(queuestype.StatusRunning))
		}
		if !guard {
			lost = true
			return nil
		}
		rec, err := r.record()
		if err != nil {
			return err
		}
		now := b.now()
		var q string
		var args []any
		if p.Retry && driver.RetryAllowed(rec) {
			status, sched := requeueTarget(now, p.RetryDelay)
			wake = status == queuestype.StatusPending
			q, args = sqlRequeue, []any{string(status), p.Error, r.Priority, micros(now), sched, idText, r.Status, r.RetryCount}
		} else {
			q, args = sqlFinish, []any{string(queuestype.StatusFailed), p.Error, micros(now), idText, r.Status, r.RetryCount}
		}
		out, ok, err = tx.record(q, args...)
		if err == nil && !ok {
			lost = true // cannot happen inside the transaction; be safe
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case missing:
		return nil, missingForWrite("fail", p.ID)
	case lost:
		return nil, fenceLost("fail", p.ID)
	}
	if wake {
		b.wake()
	}
	return out.record()
}

// requeueTarget is the status and scheduled_at of a requeue at now after delay.
func requeueTarget(now time.Time, delay time.Duration) (queuestype.Status, any) {
	if delay > 0 {
		return queuestype.StatusScheduled, micros(now.Add(delay))
	}
	return queuestype.StatusPending, nil
}

// CancelMatching cancels every pending/scheduled record (and running, with
// f.IncludeRunning) that matches the filter and holds no execution_ref.
// TaskName and Queue match by equality when set; Args and Metadata match when
// each of their top-level keys is present in the record with an equal JSON
// value. The cancelled records are returned in claim order.
func (b *Backend) CancelMatching(ctx context.Context, f driver.CancelFilter) ([]*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	argsFilter := queuestype.NormalizeMetadata(f.Args)
	metaFilter := queuestype.NormalizeMetadata(f.Metadata)
	var ps params
	q := `SELECT ` + recordColumns + ` FROM queue_task WHERE (` + sqlOpen + ` OR (` + ps.add(f.IncludeRunning) +
		` AND status = 'running')) AND execution_ref IS NULL`
	if f.TaskName != "" {
		q += ` AND task_name = ` + ps.add(f.TaskName)
	}
	if f.Queue != "" {
		q += ` AND queue = ` + ps.add(f.Queue)
	}
	var out []rawRec
	err = w.do(ctx, false, func(tx *wtx) error {
		out = out[:0]
		cands, err := tx.records(nil, q, ps.args...)
		if err != nil {
			return err
		}
		var hits []rawRec
		for i := range cands {
			if matches(&cands[i], argsFilter, metaFilter) {
				hits = append(hits, cands[i])
			}
		}
		slices.SortFunc(hits, func(x, y rawRec) int {
			if claimLess(&x, &y) {
				return -1
			}
			return 1
		})
		now := micros(b.now())
		for i := range hits {
			h := &hits[i]
			tx.forget(h.ID)
			r, ok, err := tx.record(sqlFinish, string(queuestype.StatusCancelled), h.Error, now, h.ID, h.Status, h.RetryCount)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return decodeAll(out)
}

// matches applies the args and metadata subset filters of CancelMatching.
func matches(r *rawRec, argsFilter, metaFilter map[string]any) bool {
	if len(metaFilter) > 0 {
		md, err := decodeMetadata(r.Metadata)
		if err != nil || !subsetMatch(metaFilter, md) {
			return false
		}
	}
	if len(argsFilter) > 0 {
		var args map[string]any
		if !r.Args.Valid || json.Unmarshal([]byte(r.Args.String), &args) != nil || !subsetMatch(argsFilter, args) {
			return false
		}
	}
	return true
}

// subsetMatch reports whether every key of filter is in m with an equal JSON value.
func subsetMatch(filter, m map[string]any) bool {
	for k, want := range filter {
		got, ok := m[k]
		if !ok || !jsonEqual(want, got) {
			return false
		}
	}
	return true
}

// TouchHeartbeats sets heartbeat_at=now on each touched running record whose
// generation matches (a nil ExpectedRetryCount is unfenced) and merges the
// touch's MetadataPatch into its metadata (top-level keys replaced). Each
// touch's ID is reported in Touched or Missed; an ID touched twice may appear
// in both. All touches of a call are written in one transaction.
func (b *Backend) TouchHeartbeats(ctx context.Context, touches []driver.HeartbeatTouch) (driver.HeartbeatResult, error) {
	var res driver.HeartbeatResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if len(touches) == 0 {
		return res, nil
	}
	w, _, err := b.handles()
	if err != nil {
		return res, err
	}
	type prepared struct {
		query   string
		args    []any // ?1 is now
		idText  string
		gen     any
		patch   map[string]any
		goMerge bool // a patch key SQLite's JSON path syntax cannot quote
	}
	preps := make([]prepared, len(touches))
	for i, t := range touches {
		pr := &preps[i]
		pr.idText = t.ID.String()
		if t.ExpectedRetryCount != nil {
			pr.gen = *t.ExpectedRetryCount
		}
		var ps params
		ps.add(nil)
		set := "heartbeat_at = ?1"
		if len(t.MetadataPatch) > 0 {
			pr.patch = queuestype.NormalizeMetadata(t.MetadataPatch)
			keys := make([]string, 0, len(pr.patch))
			for k := range pr.patch {
				keys = append(keys, k)
				pr.goMerge = pr.goMerge || strings.ContainsRune(k, '"')
			}
			slices.Sort(keys)
			var pairs []string
			for _, k := range keys {
				v, err := json.Marshal(pr.patch[k])
				if err != nil {
					return res, err
				}
				pairs = append(pairs, ps.add(`$."`+k+`"`)+", json("+ps.add(string(v))+")")
			}
			set += ", metadata = json_set(metadata, " + strings.Join(pairs, ", ") + ")"
		}
		if pr.goMerge {
			continue
		}
		idp := ps.add(pr.idText)
		genp := ps.add(pr.gen)
		pr.query = "UPDATE OR FAIL queue_task SET " + set + " WHERE id = " + idp + " AND status = 'running' AND (" + genp + " IS NULL OR retry_count = " + genp + ")"
		pr.args = ps.args
	}
	touched := make([]bool, len(touches))
	err = w.do(ctx, false, func(tx *wtx) error {
		now := micros(b.now())
		for i := range preps {
			pr := &preps[i]
			if pr.patch != nil {
				tx.forget(pr.idText) // its metadata changes
			}
			if pr.goMerge {
				ok, err := touchMerged(tx, pr.idText, pr.gen, pr.patch, now)
				if err != nil {
					return err
				}
				touched[i] = ok
				continue
			}
			pr.args[0] = now
			n, err := tx.exec(pr.query, pr.args...)
			if err != nil {
				return err
			}
			touched[i] = n > 0
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for i, t := range touches {
		if touched[i] {
			res.Touched = append(res.Touched, t.ID)
		} else {
			res.Missed = append(res.Missed, t.ID)
		}
	}
	return res, nil
}

// touchMerged touches one record whose patch has a key SQLite's JSON path
// syntax cannot express: the metadata is merged in Go.
func touchMerged(tx *wtx, id string, gen any, patch map[string]any, now int64) (bool, error) {
	var meta string
	ok, err := tx.queryRow(`SELECT metadata FROM queue_task WHERE id = ?1 AND status = 'running' AND (?2 IS NULL OR retry_count = ?2)`,
		[]any{id, gen}, &meta)
	if err != nil || !ok {
		return false, err
	}
	md, err := decodeMetadata(meta)
	if err != nil {
		return false, err
	}
	for k, v := range patch {
		md[k] = v
	}
	text, err := encodeMetadata(md)
	if err != nil {
		return false, err
	}
	n, err := tx.exec(`UPDATE OR FAIL queue_task SET heartbeat_at = ?1, metadata = ?2 WHERE id = ?3 AND status = 'running'`, now, text, id)
	return n > 0, err
}

// NullHeartbeats clears heartbeat_at of each fenced running record whose
// generation matches, so stale recovery takes it at once. Other records are
// left alone.
func (b *Backend) NullHeartbeats(ctx context.Context, fences []queuestype.Fence) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(fences) == 0 {
		return nil
	}
	w, _, err := b.handles()
	if err != nil {
		return err
	}
	return w.do(ctx, false, func(tx *wtx) error {
		for _, f := range fences {
			if _, err := tx.exec(`UPDATE OR FAIL queue_task SET heartbeat_at = NULL WHERE id = ? AND status = 'running' AND retry_count = ?`,
				f.ID.String(), f.RetryCount); err != nil {
				return err
			}
		}
		return nil
	})
}

// RecoverStale handles up to p.Limit (≤ 0 means 100) running records whose
// heartbeat is missing or older than now−p.StaleAfter (negative: every
// running record), oldest coalesce(heartbeat_at, created_at) first, in one
// transaction. driver.StaleRequeueDecision picks per record: requeue (a new
// generation like a retry, with the error kept or driver.StaleError, and
// priority mapped through p.Priority) or fail with driver.StaleError (also
// listed in HandlerNeeded when requeue_on_stale is false). Skipped is always
// 0: the whole sweep is one atomic step.
func (b *Backend) RecoverStale(ctx context.Context, p driver.StaleParams) (driver.StaleRecovery, error) {
	var res driver.StaleRecovery
	if err := ctx.Err(); err != nil {
		return res, err
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	w, _, err := b.handles()
	if err != nil {
		return res, err
	}
	const q = `SELECT ` + recordColumns + ` FROM queue_task
WHERE status = 'running' AND (?1 OR heartbeat_at IS NULL OR heartbeat_at < CAST(?2 AS INTEGER))
ORDER BY coalesce(heartbeat_at, created_at), id LIMIT CAST(?3 AS INTEGER)`
	var (
		failed        []rawRec
		handlerNeeded []uuid.UUID
		requeued      int
		wake          bool
	)
	err = w.do(ctx, false, func(tx *wtx) error {
		failed, handlerNeeded, requeued, wake = failed[:0], handlerNeeded[:0], 0, false
		now := b.now()
		cands, err := tx.records(nil, q, p.StaleAfter < 0, micros(now.Add(-p.StaleAfter)), limit)
		if err != nil {
			return err
		}
		for i := range cands {
			c := &cands[i]
			tx.forget(c.ID)
			rec, err := c.record()
			if err != nil {
				return err
			}
			requeue, handler, delay := driver.StaleRequeueDecision(rec)
			if requeue {
				errText := rec.Error
				if errText == "" {
					errText = driver.StaleError
				}
				prio := rec.Priority
				if p.Priority != nil {
					prio = p.Priority(prio)
				}
				status, sched := requeueTarget(now, delay)
				_, ok, err := tx.record(sqlRequeue, string(status), errText, prio, micros(now), sched, c.ID, c.Status, c.RetryCount)
				if err != nil {
					return err
				}
				if ok {
					requeued++
					wake = wake || status == queuestype.StatusPending
				}
				continue
			}
			r, ok, err := tx.record(sqlFinish, string(queuestype.StatusFailed), driver.StaleError, micros(now), c.ID, c.Status, c.RetryCount)
			if err != nil {
				return err
			}
			if ok {
				failed = append(failed, r)
				if handler {
					handlerNeeded = append(handlerNeeded, rec.ID)
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	res.Requeued = requeued
	res.HandlerNeeded = handlerNeeded
	if len(failed) > 0 {
		if res.Failed, err = decodeAll(failed); err != nil {
			return res, err
		}
	}
	if wake {
		b.wake()
	}
	return res, nil
}

// CleanupTerminal deletes up to limit (≤ 0 means 100) terminal records whose
// completed_at is before before, oldest completed_at (then id) first, and
// returns how many it deleted. Identity reservations are never deleted.
func (b *Backend) CleanupTerminal(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		limit = 100
	}
	w, _, err := b.handles()
	if err != nil {
		return 0, err
	}
	var n int64
	err = w.do(ctx, false, func(tx *wtx) error {
		var err error
		n, err = tx.exec(`DELETE FROM queue_task WHERE id IN (SELECT id FROM queue_task
WHERE `+sqlTerminal+` AND completed_at < CAST(?1 AS INTEGER) ORDER BY completed_at, id LIMIT CAST(?2 AS INTEGER))`, ceilMicros(before), limit)
		return err
	})
	return int(n), err
}
