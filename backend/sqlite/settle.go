package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

const (
	// sqlFinish makes a record terminal (CancelMatching): ?1 status, ?2
	// error, ?3 now; fenced on ?4 id, ?5 status, ?6 generation. worker_id
	// is kept.
	sqlFinish = `UPDATE OR FAIL queue_task SET status = ?1, error = ?2, completed_at = ?3, heartbeat_at = NULL, dispatch_until = NULL
WHERE id = ?4 AND status = CAST(?5 AS TEXT) AND retry_count = ?6 RETURNING ` + recordColumns

	sqlCancel = `UPDATE OR FAIL queue_task SET status = 'cancelled', completed_at = ?1, heartbeat_at = NULL, dispatch_until = NULL
WHERE id = ?2 AND (` + sqlOpen + ` OR (?3 AND status = 'running')) AND (?4 IS NULL OR retry_count = ?4)
RETURNING ` + recordColumns
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
			return nil, driver.MissingForWrite(op, id)
		}
		return nil, driver.FenceLost(op, id)
	}
	return out.record()
}

// sqlCompleteKnown is the completed write of Settle (sqlSettleCompleted) for
// a record this process claimed: it goes by rowid, has no
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
// matching cached claim or the guarded write matched nothing; Settle then
// writes through sqlSettleCompleted, which decides the fence.
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
		if err != nil || !driver.SubsetMatch(metaFilter, md) {
			return false
		}
	}
	if len(argsFilter) > 0 {
		var args map[string]any
		if !r.Args.Valid || json.Unmarshal([]byte(r.Args.String), &args) != nil || !driver.SubsetMatch(argsFilter, args) {
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
	if none, err := driver.NoWork(ctx, len(touches)); none {
		return res, err
	}
	if err := driver.CheckHeartbeatLimits(touches); err != nil {
		return res, err
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

// CleanupTerminal deletes up to p.Limit (≤ 0 means 100) terminal records
// of the statuses p.Before names, each completed before its status's
// cutoff, oldest completed_at (then id) first, and returns how many it
// deleted. The statement walks the
// (completed_at, id) index up to the latest cutoff, skipping records of a
// status kept longer. Identity reservations are never deleted.
func (b *Backend) CleanupTerminal(ctx context.Context, p driver.CleanupParams) (int, error) {
	cuts, limit, err := driver.CheckCleanup(ctx, p)
	if err != nil || len(cuts) == 0 {
		return 0, err
	}
	w, _, err := b.handles()
	if err != nil {
		return 0, err
	}
	// The batch goes through the single writer in chunks, each its own
	// write request: a claim queued meanwhile waits for one chunk, not for
	// the whole batch.
	total := 0
	for total < limit {
		k := min(cleanupChunk, limit-total)
		query, args := sqlCleanup, []any(nil)
		if len(p.ByTask) > 0 {
			query, args = cleanupByTaskSQL(p, cuts, k)
		} else {
			args = cleanupArgs(cuts, k)
		}
		var n int64
		err = w.do(ctx, false, func(tx *wtx) error {
			var err error
			n, err = tx.exec(query, args...)
			return err
		})
		total += int(n)
		if err != nil || int(n) < k {
			return total, err
		}
	}
	return total, nil
}

// cleanupByTaskSQL is sqlCleanup with per-task cutoffs: the tasks
// p.ByTask lists match only their own cutoffs, every other task the
// defaults. It walks the same (completed_at, id) index up to the latest
// cutoff; a record its own cutoff keeps is skipped, so the
// walk costs the kept records older than the latest cutoff plus the limit.
func cleanupByTaskSQL(p driver.CleanupParams, cuts []driver.CleanupCutoff, limit int) (string, []any) {
	var latest int64
	var args []any
	var q strings.Builder
	q.WriteString(`DELETE FROM queue_task WHERE id IN (SELECT id FROM queue_task WHERE ` + sqlTerminal + ` AND completed_at < CAST(? AS INTEGER) AND (0`)
	args = append(args, nil) // the latest cutoff, set below
	// pred appends "(status = ? AND completed_at < ?) OR ..." for task's cutoffs.
	pred := func(task string) {
		q.WriteString(`(0`)
		for _, c := range cuts {
			if c.Task == task {
				us := ceilMicros(c.Before)
				latest = max(latest, us)
				q.WriteString(` OR (status = ? AND completed_at < ?)`)
				args = append(args, string(c.Status), us)
			}
		}
		q.WriteString(`)`)
	}
	tasks := driver.CleanupOverridden(p)
	q.WriteString(` OR (task_name NOT IN (`)
	for i, task := range tasks {
		if i > 0 {
			q.WriteString(`, `)
		}
		q.WriteString(`?`)
		args = append(args, task)
	}
	q.WriteString(`) AND `)
	pred("")
	q.WriteString(`)`)
	for _, task := range tasks {
		q.WriteString(` OR (task_name = ? AND `)
		args = append(args, task)
		pred(task)
		q.WriteString(`)`)
	}
	q.WriteString(`) ORDER BY completed_at, id LIMIT CAST(? AS INTEGER))`)
	args[0] = latest
	args = append(args, limit)
	return q.String(), args
}

// cleanupChunk bounds the records one write request of CleanupTerminal
// deletes (about a millisecond of the writer).
const cleanupChunk = 100

// sqlCleanup deletes one bounded batch of expired terminal records. ?1..?4
// are the cutoffs (µs) of completed, failed, cancelled and expired records
// (NULL keeps the status), ?5 the latest of them, ?6 the limit.
const sqlCleanup = `DELETE FROM queue_task WHERE id IN (` + sqlCleanupSelect + `)`

const sqlCleanupSelect = `SELECT id FROM queue_task WHERE ` + sqlTerminal + ` AND completed_at < CAST(?5 AS INTEGER)
AND ((status = 'completed' AND completed_at < ?1) OR (status = 'failed' AND completed_at < ?2)
  OR (status = 'cancelled' AND completed_at < ?3) OR (status = 'expired' AND completed_at < ?4))
ORDER BY completed_at, id LIMIT CAST(?6 AS INTEGER)`

// cleanupArgs binds sqlCleanup's arguments.
func cleanupArgs(cuts []driver.CleanupCutoff, limit int) []any {
	args := make([]any, 6)
	var latest int64
	for _, c := range cuts {
		us := ceilMicros(c.Before)
		for i, s := range driver.TerminalStatuses {
			if s == c.Status {
				args[i] = us
			}
		}
		latest = max(latest, us)
	}
	args[4], args[5] = latest, limit
	return args
}
