package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// completeOp is one completion of Settle for the coalesced complete
// statement (see completeSQL): a completed transition fenced only on the
// generation and, optionally, the worker.
type completeOp struct {
	id      uuid.UUID
	gen     int
	result  []byte
	claimed *queuestype.Record // optional (Transition.Claimed)
	bare    bool               // Transition.NoRecord
	worker  pgtype.Text        // optional worker_id fence (Transition.WorkerID)
}

type touchOp struct {
	id    uuid.UUID
	gen   pgtype.Int4
	patch []byte
}

// flushComplete writes one coalesced batch of completions: one
// UPDATE … FROM unnest(ids, generations, results, workers) statement per
// round (a round holds each record once, in ID order), each row still
// fenced on status running and its own generation. The statement returns
// only the ids when no op wants its record, only the columns the claimed
// records do not know when every op carries its claimed record, and whole
// records otherwise. An op whose fence did not hold gets an error matching
// queuestype.ErrFenceLost (and queuestype.ErrTaskNotFound when the record
// does not exist).
func (b *Backend) flushComplete(ctx context.Context, ops []*op[completeOp, *queuestype.Record]) {
	for _, round := range rounds(ops, func(c completeOp) uuid.UUID { return c.id }) {
		ids, gens, results, workers := completeArgs(round)
		slim, bare := true, true
		for _, o := range round {
			slim = slim && o.in.claimed != nil && o.in.claimed.ID == o.in.id
			bare = bare && o.in.bare
		}
		var recs []*queuestype.Record
		var err error
		switch {
		case bare:
			// Nobody wants the records: only which rows the fence let through.
			err = queryPinned(ctx, b.pool, b.q.completeBare, []any{ids, gens, results, workers}, func(rows pgx.Rows) error {
				var id uuid.UUID
				if err := rows.Scan(&id); err != nil {
					return err
				}
				recs = append(recs, &queuestype.Record{ID: id})
				return nil
			})
		case slim:
			recs, err = b.completeSlim(ctx, round, ids, gens, results, workers)
		default:
			recs, err = recordsPinned(ctx, b.pool, b.q.complete, ids, gens, results, workers)
		}
		if err == nil {
			recs, err = rewriteLost(b, ctx, round, recs, func(c completeOp) uuid.UUID { return c.id },
				func(lost []*op[completeOp, *queuestype.Record]) (string, []any) {
					ids, gens, results, workers := completeArgs(lost)
					return b.q.complete, []any{ids, gens, results, workers}
				})
		}
		b.settleResults(ctx, "complete", round, recs, err, func(c completeOp) uuid.UUID { return c.id })
	}
}

// completeArgs is the unnest arrays of the complete statements for ops.
func completeArgs(ops []*op[completeOp, *queuestype.Record]) (ids [][16]byte, gens []int32, results [][]byte, workers []pgtype.Text) {
	ids, gens = make([][16]byte, len(ops)), make([]int32, len(ops))
	results, workers = make([][]byte, len(ops)), make([]pgtype.Text, len(ops))
	for i, o := range ops {
		ids[i], gens[i], results[i], workers[i] = [16]byte(o.in.id), int32(o.in.gen), o.in.result, o.in.worker
	}
	return ids, gens, results, workers
}

// rewriteLost completes a coalesced write done through byID for the ops of
// round it did not write (recs holds the records it wrote). The write looks
// each record up and locks it in a subquery, then updates the row version
// the lock returned, by ctid. When another transaction updated the record
// after the statement took its snapshot and before the lock was granted —
// a heartbeat touch, typically — the lock returns the new version, which
// the statement's snapshot cannot see: the update skips the record as if
// its fence had not held, although it may well hold. So the ops left out
// are written again by the same statement, sent in one round trip after a
// statement that locks their records (in ID order, like every batched
// write): the rewrite's snapshot then sees every committed change to them,
// and nothing can change them before it, so what it leaves out really lost
// its fence. It costs nothing while every op lands.
func rewriteLost[I any](b *Backend, ctx context.Context, round []*op[I, *queuestype.Record], recs []*queuestype.Record,
	id func(I) uuid.UUID, stmt func(lost []*op[I, *queuestype.Record]) (string, []any)) ([]*queuestype.Record, error) {
	if len(recs) == len(round) {
		return recs, nil
	}
	wrote := make(map[uuid.UUID]bool, len(recs))
	for _, r := range recs {
		wrote[r.ID] = true
	}
	var lost []*op[I, *queuestype.Record]
	var ids [][16]byte
	for _, o := range round {
		if k := id(o.in); !wrote[k] {
			lost = append(lost, o)
			ids = append(ids, [16]byte(k))
		}
	}
	if len(lost) == 0 {
		return recs, nil
	}
	sql, args := stmt(lost)
	err := queryPinnedAll(ctx, b.pool, pinnedStmt{sql: b.q.lockIDs, args: []any{ids}, each: ignoreRows},
		pinnedStmt{sql: sql, args: args, each: appendRecords(&recs)})
	return recs, err
}

// completeSlim is the complete statement returning only the columns that
// are not known from the claimed records (completed_at, and worker_id,
// execution_ref and metadata, which may have changed while the record ran);
// the rest of each returned record is its claimed record.
func (b *Backend) completeSlim(ctx context.Context, round []*op[completeOp, *queuestype.Record], ids [][16]byte, gens []int32, results [][]byte, workers []pgtype.Text) ([]*queuestype.Record, error) {
	byID := make(map[uuid.UUID]*op[completeOp, *queuestype.Record], len(round))
	for _, o := range round {
		byID[o.in.id] = o
	}
	out := make([]*queuestype.Record, 0, len(round))
	err := queryPinned(ctx, b.pool, b.q.completeSlim, []any{ids, gens, results, workers}, func(rows pgx.Rows) error {
		var id uuid.UUID
		var completedAt pgtype.Timestamptz
		var workerID, ref pgtype.Text
		var meta []byte
		if err := rows.Scan(&id, &completedAt, &workerID, &ref, &meta); err != nil {
			return err
		}
		o := byID[id]
		if o == nil {
			return fmt.Errorf("complete returned unexpected id %s", id)
		}
		md, err := decodeMetadata(meta)
		if err != nil {
			return fmt.Errorf("decode metadata of %s: %w", id, err)
		}
		r := *o.in.claimed
		r.Args = bytes.Clone(r.Args)
		r.Policy = clonePolicy(r.Policy)
		r.Status = queuestype.StatusCompleted
		r.CompletedAt = tsTime(completedAt)
		r.HeartbeatAt = time.Time{}
		r.Result = nil
		if o.in.result != nil {
			r.Result = json.RawMessage(bytes.Clone(o.in.result))
		}
		r.Error = ""
		r.WorkerID = workerID.String
		r.ExecutionRef = ref.String
		r.Metadata = md
		out = append(out, &r)
		return nil
	})
	return out, err
}

// settleResults hands each op of a coalesced write its record, or the error
// for a fence that did not hold (one existence query for all of them).
func settleResults[I any](b *Backend, ctx context.Context, op string, round []*op[I, *queuestype.Record], recs []*queuestype.Record, err error, id func(I) uuid.UUID) {
	if err != nil {
		err = b.wrap(op, err)
		for _, o := range round {
			o.err = err
		}
		return
	}
	byID := make(map[uuid.UUID]*queuestype.Record, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	var lost []uuid.UUID
	for _, o := range round {
		if r := byID[id(o.in)]; r != nil {
			o.out = r
		} else {
			lost = append(lost, id(o.in))
		}
	}
	if len(lost) == 0 {
		return
	}
	present := map[uuid.UUID]bool{}
	rows, qerr := b.pool.Query(ctx, `SELECT id FROM `+b.n.task+` WHERE id = ANY($1)`, lost)
	if qerr == nil {
		for rows.Next() {
			var x uuid.UUID
			if qerr = rows.Scan(&x); qerr != nil {
				break
			}
			present[x] = true
		}
		rows.Close()
		if qerr == nil {
			qerr = rows.Err()
		}
	}
	for _, o := range round {
		if o.out != nil {
			continue
		}
		k := id(o.in)
		switch {
		case qerr != nil:
			o.err = driver.FenceLost(op, k)
		case present[k]:
			o.err = driver.FenceLost(op, k)
		default:
			o.err = driver.MissingForWrite(op, k)
		}
	}
}

// settleResults is the method form used by the flushers.
func (b *Backend) settleResults(ctx context.Context, op string, round []*op[completeOp, *queuestype.Record], recs []*queuestype.Record, err error, id func(completeOp) uuid.UUID) {
	settleResults(b, ctx, op, round, recs, err, id)
}

// Cancel cancels a pending or scheduled record, or a running one when
// p.IncludeRunning, fenced on the optional generation. worker_id is kept so
// control hints can reach the owner. Any other state returns an error
// matching queuestype.ErrFenceLost.
func (b *Backend) Cancel(ctx context.Context, p driver.CancelParams) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var gen pgtype.Int4
	if p.ExpectedRetryCount != nil {
		gen = pgtype.Int4{Int32: int32(*p.ExpectedRetryCount), Valid: true}
	}
	rec, err := collectOne(b.pool.Query(ctx, b.q.cancel, p.ID, p.IncludeRunning, gen))
	if err != nil {
		return nil, b.wrap("cancel", err)
	}
	if rec == nil {
		return nil, b.guardFailed(ctx, "cancel", p.ID)
	}
	return rec, nil
}

// CancelMatching cancels, in one statement, every pending/scheduled record
// (and running, with f.IncludeRunning) that matches the filter and holds no
// execution_ref. TaskName and Queue match by equality when set; Args and
// Metadata match when each of their top-level keys is present with an equal
// JSON value (jsonb equality). The cancelled records are returned in claim
// order.
func (b *Backend) CancelMatching(ctx context.Context, f driver.CancelFilter) ([]*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var a sqlArgs
	where := []string{"x.execution_ref IS NULL"}
	if f.IncludeRunning {
		where = append(where, "x.status IN "+activeStatuses)
	} else {
		where = append(where, "x.status IN "+openStatuses)
	}
	if f.TaskName != "" {
		where = append(where, "x.task_name = "+a.add(f.TaskName))
	}
	if f.Queue != "" {
		where = append(where, "x.queue = "+a.add(f.Queue))
	}
	for _, m := range []struct {
		col    string
		filter map[string]any
	}{{"args", f.Args}, {"metadata", f.Metadata}} {
		keys := make([]string, 0, len(m.filter))
		for k := range m.filter {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, err := json.Marshal(m.filter[k])
			if err != nil {
				return nil, &queuestype.ConfigError{Field: "CancelFilter." + m.col, Problem: "value of " + k + " is not JSON: " + err.Error()}
			}
			where = append(where, "jsonb_typeof(x."+m.col+") = 'object' AND (x."+m.col+" -> "+a.add(k)+"::text) = "+a.add(string(v))+"::jsonb")
		}
	}
	t := b.n.task
	sql := `UPDATE ` + t + ` t SET status = 'cancelled', completed_at = now(), heartbeat_at = NULL
WHERE t.id IN (SELECT x.id FROM ` + t + ` x WHERE ` + strings.Join(where, " AND ") + ` FOR UPDATE)
RETURNING ` + cols("t")
	recs, err := collectRecords(b.pool.Query(ctx, sql, a...))
	if err != nil {
		return nil, b.wrap("cancel matching", err)
	}
	slices.SortFunc(recs, func(x, y *queuestype.Record) int {
		if driver.ClaimOrder(x, y) < 0 {
			return -1
		}
		return 1
	})
	if recs == nil {
		recs = []*queuestype.Record{}
	}
	return recs, nil
}

// TouchHeartbeats sets heartbeat_at=now() on each touched running record
// whose generation matches (a nil ExpectedRetryCount is unfenced) and merges
// the touch's MetadataPatch into its metadata, through the heartbeat pool
// when Options.HeartbeatPool is set. Touches of concurrent callers are
// coalesced into one UPDATE … FROM unnest(…) statement. Each touch's ID is
// reported in Touched or Missed; an ID touched with two generations appears
// in both.
func (b *Backend) TouchHeartbeats(ctx context.Context, touches []driver.HeartbeatTouch) (driver.HeartbeatResult, error) {
	var res driver.HeartbeatResult
	if none, err := driver.NoWork(ctx, len(touches)); none {
		return res, err
	}
	if err := driver.CheckHeartbeatLimits(touches); err != nil {
		return res, err
	}
	ins := make([]touchOp, len(touches))
	for i, t := range touches {
		ins[i].id = t.ID
		if t.ExpectedRetryCount != nil {
			ins[i].gen = pgtype.Int4{Int32: int32(*t.ExpectedRetryCount), Valid: true}
		}
		if len(t.MetadataPatch) > 0 {
			p, err := json.Marshal(t.MetadataPatch)
			if err != nil {
				return res, &queuestype.ConfigError{Field: "HeartbeatTouch.MetadataPatch", Problem: err.Error()}
			}
			ins[i].patch = p
		}
	}
	ops, err := b.toucher.doAll(ctx, ins)
	if err != nil {
		return res, err
	}
	for _, o := range ops {
		if o.err != nil {
			return driver.HeartbeatResult{}, o.err
		}
		if o.out {
			res.Touched = append(res.Touched, o.in.id)
		} else {
			res.Missed = append(res.Missed, o.in.id)
		}
	}
	return res, nil
}

func (b *Backend) flushTouch(ctx context.Context, ops []*op[touchOp, bool]) {
	for _, round := range rounds(ops, func(t touchOp) uuid.UUID { return t.id }) {
		n := len(round)
		ids, gens, patches := make([][16]byte, n), make([]pgtype.Int4, n), make([][]byte, n)
		for i, o := range round {
			ids[i], gens[i], patches[i] = [16]byte(o.in.id), o.in.gen, o.in.patch
		}
		err := queryPinned(ctx, b.hbPool, b.q.touch, []any{ids, gens, patches}, func(rows pgx.Rows) error {
			var ord int64
			if err := rows.Scan(&ord); err != nil {
				return err
			}
			if ord >= 1 && int(ord) <= n {
				round[ord-1].out = true
			}
			return nil
		})
		if err != nil {
			err = b.wrap("touch heartbeats", err)
			for _, o := range round {
				o.err, o.out = err, false
			}
		}
	}
}

// NullHeartbeats clears heartbeat_at of each fenced running record whose
// generation matches, so stale recovery takes it at once; one statement,
// through the heartbeat pool when set. Other records are left alone.
func (b *Backend) NullHeartbeats(ctx context.Context, fences []queuestype.Fence) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(fences) == 0 {
		return nil
	}
	// In ID order, like the batched writes (see rounds).
	fences = slices.Clone(fences)
	slices.SortFunc(fences, func(x, y queuestype.Fence) int { return bytes.Compare(x.ID[:], y.ID[:]) })
	ids, gens := make([][16]byte, len(fences)), make([]int32, len(fences))
	for i, f := range fences {
		ids[i], gens[i] = [16]byte(f.ID), int32(f.RetryCount)
	}
	_, err := b.hbPool.Exec(ctx, b.q.nullBeats, ids, gens)
	return b.wrap("null heartbeats", err)
}

// ExpireOverdue expires up to limit (≤ 0 means 100) pending/scheduled
// records holding no execution_ref whose expires_at ≤ now(), ordered by
// expires_at, created_at, and returns them.
func (b *Backend) ExpireOverdue(ctx context.Context, limit int) ([]*queuestype.Record, error) {
	limit, err := driver.CallLimit(ctx, limit, driver.DefaultExpireLimit)
	if err != nil {
		return nil, err
	}
	var recs []*queuestype.Record
	err = queryPinnedAll(ctx, b.pool, pinnedStmt{sql: sortOff, each: ignoreRows},
		pinnedStmt{sql: b.q.expire, args: []any{limit}, each: appendRecords(&recs)})
	if err != nil {
		return nil, b.wrap("expire overdue", err)
	}
	sortExpired(recs)
	return recs, nil
}

// CleanupTerminal deletes up to p.Limit (≤ 0 means 100) terminal records
// of the statuses p.Before names, each completed before its status's
// cutoff, oldest completed_at (then id) first, and returns how many it
// deleted. One statement deletes the batch; its rows are chosen with FOR
// UPDATE SKIP LOCKED, so a batch never waits on (or blocks) a row a claim
// or a settle holds, and two cleanups running at once take different
// rows. Identity reservations are never deleted.
func (b *Backend) CleanupTerminal(ctx context.Context, p driver.CleanupParams) (int, error) {
	cuts, limit, err := driver.CheckCleanup(ctx, p)
	if err != nil || len(cuts) == 0 {
		return 0, err
	}
	if len(p.ByTask) > 0 {
		return b.cleanupByTask(ctx, p, cuts, limit)
	}
	args := make([]any, 5)
	for _, c := range cuts {
		for i, s := range driver.TerminalStatuses {
			if s == c.Status {
				args[i] = c.Before.UTC()
			}
		}
	}
	args[4] = limit
	tag, err := b.pool.Exec(ctx, b.q.cleanup, args...)
	if err != nil {
		return 0, b.wrap("cleanup terminal", err)
	}
	return int(tag.RowsAffected()), nil
}

// cleanupByTask is CleanupTerminal with per-task cutoffs: the tasks
// p.ByTask lists match only their own cutoffs, every other task the
// defaults. It walks the same terminal index up to the latest cutoff; a
// record its own cutoff keeps is skipped, so the walk
// costs the kept records older than the latest cutoff plus the limit.
func (b *Backend) cleanupByTask(ctx context.Context, p driver.CleanupParams, cuts []driver.CleanupCutoff, limit int) (int, error) {
	args := make([]any, 10)
	var latest time.Time
	var tasks, statuses []string
	var befores []time.Time
	for _, c := range cuts {
		if c.Before.After(latest) {
			latest = c.Before
		}
		if c.Task != "" {
			tasks, statuses, befores = append(tasks, c.Task), append(statuses, string(c.Status)), append(befores, c.Before.UTC())
			continue
		}
		for i, s := range driver.TerminalStatuses {
			if s == c.Status {
				args[2+i] = c.Before.UTC()
			}
		}
	}
	args[0], args[1] = latest.UTC(), driver.CleanupOverridden(p)
	args[6], args[7], args[8], args[9] = tasks, statuses, befores, limit
	tag, err := b.pool.Exec(ctx, b.q.cleanupTask, args...)
	if err != nil {
		return 0, b.wrap("cleanup terminal", err)
	}
	return int(tag.RowsAffected()), nil
}
