package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// maxClaimExpire bounds how many overdue records one ClaimMany expires.
const maxClaimExpire = 1000

// sqlExpiryCandidates selects overdue unreserved records (expiry index) with
// ?1 = now.
const sqlExpiryCandidates = sqlOpen + ` AND execution_ref IS NULL AND expires_at IS NOT NULL AND expires_at <= ` + sqlNow

// params builds numbered statement parameters.
type params struct{ args []any }

// add appends v and returns its placeholder.
func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return "?" + strconv.Itoa(len(p.args))
}

// limitParam adds a LIMIT value and returns its placeholder. The CAST keeps
// the statement compiled once: SQLite reads a bare LIMIT parameter while
// planning and then recompiles the statement on every new binding.
func limitParam(p *params, n int) string { return "CAST(" + p.add(n) + " AS INTEGER)" }

// claimPart is one index range of a claim: the open records of one queue, of
// every queue but some, or of every queue; at most limit of them.
type claimPart struct {
	queue  string   // "" with notIn/all
	notIn  []string // every queue except these (when all is false and queue is "")
	all    bool
	limit  int
	capped bool
}

// maxClaimQueues bounds the queues a claim spans with one index range each;
// beyond it the claim sorts the due records of the backend instead.
const maxClaimQueues = 64

// claimParts splits a claim of limit records into index ranges. With names
// (the queue filter, or every queue holding open records) it is one range
// per queue; capped queues take at most their cap, a cap of 0 or less
// removes the queue. Without names it is one range over every queue, or one
// per capped queue plus one for all the others.
func claimParts(limit int, names []string, caps map[string]int) []claimPart {
	var parts []claimPart
	if names != nil {
		seen := make(map[string]bool, len(names))
		for _, q := range names {
			if seen[q] {
				continue
			}
			seen[q] = true
			lim, capped := limit, false
			if c, ok := caps[q]; ok {
				if c <= 0 {
					continue
				}
				lim, capped = min(c, limit), true
			}
			parts = append(parts, claimPart{queue: q, limit: lim, capped: capped})
		}
		return parts
	}
	if len(caps) == 0 {
		return []claimPart{{all: true, limit: limit}}
	}
	capped := make([]string, 0, len(caps))
	for q := range caps {
		capped = append(capped, q)
	}
	slices.Sort(capped) // stable SQL text for the statement cache
	for _, q := range capped {
		if c := caps[q]; c > 0 {
			parts = append(parts, claimPart{queue: q, limit: min(c, limit), capped: true})
		}
	}
	return append(parts, claimPart{notIn: capped, limit: limit})
}

// sqlOpenQueues lists the queues holding open records of execution backend
// ?1 by skipping through the claim index (one seek per queue), at most
// maxClaimQueues+1 of them.
var sqlOpenQueues = `WITH RECURSIVE qs(q) AS (
  SELECT (SELECT queue FROM queue_task WHERE ` + sqlOpen + ` AND execution_backend = ?1 ORDER BY queue LIMIT 1)
  UNION ALL
  SELECT (SELECT queue FROM queue_task WHERE ` + sqlOpen + ` AND execution_backend = ?1 AND queue > qs.q ORDER BY queue LIMIT 1)
  FROM qs WHERE qs.q IS NOT NULL
) SELECT q FROM qs WHERE q IS NOT NULL LIMIT ` + strconv.Itoa(maxClaimQueues+1)

// claimQueues returns the queue names a claim or listing spans: the filter,
// or the queues holding open records of backend (read with list). nil means
// "every queue in one range" (no backend filter, or too many queues).
func claimQueues(filter []string, backend string, list func(query string, args ...any) ([]string, error)) ([]string, error) {
	if len(filter) > 0 {
		return filter, nil
	}
	if backend == "" {
		return nil, nil
	}
	names, err := list(sqlOpenQueues, backend)
	if err != nil || len(names) > maxClaimQueues {
		return nil, err
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// claimSelect returns the SELECT of the rowids to claim, in claim order, one
// index range per part. ?1 is now. nil parts select nothing.
func claimSelect(p *params, parts []claimPart, backend string, limit int) string {
	if len(parts) == 0 {
		return ""
	}
	var eb string
	if backend != "" {
		eb = " AND execution_backend = " + p.add(backend)
	}
	cond := func(pt claimPart) string {
		switch {
		case pt.all:
			return ""
		case pt.queue != "" || len(pt.notIn) == 0:
			return " AND queue = " + p.add(pt.queue)
		default:
			ph := make([]string, len(pt.notIn))
			for i, q := range pt.notIn {
				ph[i] = p.add(q)
			}
			return " AND queue NOT IN (" + strings.Join(ph, ", ") + ")"
		}
	}
	if len(parts) == 1 {
		pt := parts[0]
		return "SELECT rowid FROM queue_task WHERE " + sqlDue + eb + cond(pt) +
			" ORDER BY " + sqlClaimOrder + " LIMIT " + limitParam(p, min(pt.limit, limit))
	}
	var sb strings.Builder
	sb.WriteString("SELECT rid FROM (")
	for i, pt := range parts {
		if i > 0 {
			sb.WriteString(" UNION ALL ")
		}
		sb.WriteString("SELECT * FROM (SELECT rowid AS rid, id, priority, queued_at, created_at FROM queue_task WHERE ")
		sb.WriteString(sqlDue + eb + cond(pt))
		sb.WriteString(" ORDER BY " + sqlClaimOrder + " LIMIT " + limitParam(p, min(pt.limit, limit)) + ")")
	}
	sb.WriteString(") ORDER BY " + sqlClaimOrder + " LIMIT " + limitParam(p, limit))
	return sb.String()
}

// queueFilterJSON encodes a queue list for json_each.
func queueFilterJSON(qs []string) string {
	b, _ := json.Marshal(qs)
	return string(b)
}

// ClaimMany claims up to p.Limit due records in claim order (priority DESC,
// queued_at, created_at, id) inside one writer transaction (BEGIN
// IMMEDIATE, so no other process can interleave), honouring the queue and
// execution-backend filters and the per-queue caps of p.QueueLimits: it
// reads the due records and marks exactly those running, with worker_id,
// started_at and heartbeat_at set in the same UPDATE.
// With p.ExpireOverdue, overdue unreferenced records of the selected queues
// are expired first (up to 1000) and returned in Expired. Limit ≤ 0 returns
// an empty result.
func (b *Backend) ClaimMany(ctx context.Context, p driver.ClaimParams) (driver.ClaimResult, error) {
	var res driver.ClaimResult
	if none, err := driver.NoWork(ctx, p.Limit); none {
		return res, err
	}
	w, _, err := b.handles()
	if err != nil {
		return res, err
	}
	worker := nullStr(p.WorkerID)
	var expireSQL, probeSQL string
	var ep params
	if p.ExpireOverdue {
		ep.add(nil)
		var sb, filter strings.Builder
		filter.WriteString(sqlExpiryCandidates)
		// The unary + keeps the planner on the expiry index: the claim
		// indexes would match the equality but need a sort of every due row.
		if p.ExecutionBackend != "" {
			filter.WriteString(" AND +execution_backend = " + ep.add(p.ExecutionBackend))
		}
		if len(p.Queues) > 0 {
			filter.WriteString(" AND +queue IN (SELECT value FROM json_each(" + ep.add(queueFilterJSON(p.Queues)) + "))")
		}
		// The probe is cheap (one index seek, no RETURNING); the expiring
		// UPDATE runs only when there is something to expire.
		probeSQL = "SELECT 1 FROM queue_task WHERE " + filter.String() + " LIMIT 1"
		sb.WriteString("UPDATE OR FAIL queue_task SET status = 'expired', completed_at = ?1, heartbeat_at = NULL WHERE id IN (SELECT id FROM queue_task WHERE ")
		sb.WriteString(filter.String())
		sb.WriteString(" ORDER BY expires_at, created_at, id LIMIT " + strconv.Itoa(maxClaimExpire) + ") RETURNING " + recordColumns)
		expireSQL = sb.String()
	}

	var claimed, expired []rawRec
	err = w.do(ctx, false, func(tx *wtx) error {
		// A fresh slice per run: the claim cache points into it.
		claimed = make([]rawRec, 0, p.Limit)
		now := micros(b.now())
		expired = expired[:0]
		var err error
		if expireSQL != "" {
			ep.args[0] = now
			var one int
			found, err := tx.queryRow(probeSQL, ep.args, &one)
			if err != nil {
				return err
			}
			if found {
				if expired, err = tx.records(expired, expireSQL, ep.args...); err != nil {
					return err
				}
			}
		}
		names, err := claimQueues(p.Queues, p.ExecutionBackend, tx.strings)
		if err != nil {
			return err
		}
		// The claim reads the due records in claim order, then marks exactly
		// those rows running in one UPDATE. (UPDATE … RETURNING * measured
		// twice the cost per row: RETURNING runs as a trigger with a
		// statement journal and an ephemeral table.)
		var cp params
		cp.add(now)
		if sel := claimSelect(&cp, claimParts(p.Limit, names, p.QueueLimits), p.ExecutionBackend, p.Limit); sel != "" {
			claimSQL := "SELECT " + recordColumns + " FROM queue_task WHERE rowid IN (" + sel + ")"
			if claimed, err = tx.records(claimed, claimSQL, cp.args...); err != nil {
				return err
			}
			if len(claimed) == 0 {
				return nil
			}
			list := make([]byte, 0, 8*len(claimed)+2)
			list = append(list, '[')
			for i := range claimed {
				if i > 0 {
					list = append(list, ',')
				}
				list = strconv.AppendInt(list, claimed[i].RowID, 10)
			}
			list = append(list, ']')
			n, err := tx.exec(sqlMarkClaimed, now, worker, string(list))
			if err != nil {
				return err
			}
			if n != int64(len(claimed)) {
				return &stmtError{fmt.Errorf("sqlite: claim marked %d of %d records", n, len(claimed))}
			}
			for i := range claimed {
				c := &claimed[i]
				c.Status = string(queuestype.StatusRunning)
				c.Worker = sql.NullString{String: p.WorkerID, Valid: p.WorkerID != ""}
				c.StartedAt = sql.NullInt64{Int64: now, Valid: true}
				c.HeartbeatAt = c.StartedAt
			}
			sortClaimOrder(claimed) // before remember: the cache points into claimed
			tx.remember(claimed)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	slices.SortFunc(expired, expiryCompare)
	if res.Claimed, err = decodeAll(claimed); err != nil {
		return res, err
	}
	if len(expired) > 0 {
		if res.Expired, err = decodeAll(expired); err != nil {
			return res, err
		}
	}
	return res, nil
}

// expiryCompare orders by expires_at, created_at, id.
func expiryCompare(x, y rawRec) int {
	switch {
	case x.ExpiresAt.Int64 != y.ExpiresAt.Int64:
		return cmpInt(x.ExpiresAt.Int64, y.ExpiresAt.Int64)
	case x.CreatedAt != y.CreatedAt:
		return cmpInt(x.CreatedAt, y.CreatedAt)
	default:
		return strings.Compare(x.ID, y.ID)
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sqlMarkClaimed marks the rows a claim selected (?3, a JSON array of
// rowids) running for worker ?2 at ?1.
const sqlMarkClaimed = `UPDATE OR FAIL queue_task SET status = 'running', worker_id = ?2, started_at = ?1, heartbeat_at = ?1
WHERE rowid IN (SELECT value FROM json_each(?3)) AND ` + sqlOpen

const (
	sqlClaimOne = `UPDATE OR FAIL queue_task SET status = 'running', worker_id = ?, started_at = ?, heartbeat_at = ?
WHERE id = ? AND status = CAST(? AS TEXT) AND retry_count = ? RETURNING ` + recordColumns
	sqlExpireOne = `UPDATE OR FAIL queue_task SET status = 'expired', completed_at = ?, heartbeat_at = NULL
WHERE id = ? AND ` + sqlOpen + ` AND execution_ref IS NULL RETURNING ` + recordColumns
	sqlSelectByID = `SELECT ` + recordColumns + ` FROM queue_task WHERE id = ?`
)

// ClaimByID claims one record by ID. The record must be pending or scheduled,
// not reservation-marked, due, and match the optional generation and
// execution-ref fences (ExpectedRef "" means no ref). An overdue record with
// no execution_ref is expired instead and returned in Expired; a record
// holding a finalized ref is claimable after its deadline. A record that
// cannot be claimed yields an empty result; a missing ID yields
// queuestype.ErrTaskNotFound.
func (b *Backend) ClaimByID(ctx context.Context, p driver.ClaimByIDParams) (driver.ClaimResult, error) {
	var res driver.ClaimResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	w, _, err := b.handles()
	if err != nil {
		return res, err
	}
	id := p.ID.String()
	var (
		out     rawRec
		missing bool
		claimed bool
		expired bool
	)
	err = w.do(ctx, false, func(tx *wtx) error {
		missing, claimed, expired = false, false, false
		now := micros(b.now())
		r, ok, err := tx.record(sqlSelectByID, id)
		if err != nil {
			return err
		}
		if !ok {
			missing = true
			return nil
		}
		if !isOpen(r.Status) || r.reserved() {
			return nil
		}
		if p.ExpectedRetryCount != nil && int64(*p.ExpectedRetryCount) != r.RetryCount {
			return nil
		}
		if p.ExpectedRef != nil && *p.ExpectedRef != r.Ref.String {
			return nil
		}
		if r.expiredAt(now) && !r.Ref.Valid {
			x, ok, err := tx.record(sqlExpireOne, now, id)
			if err != nil || !ok {
				return err
			}
			out, expired = x, true
			return nil
		}
		if !r.dueAt(now) {
			return nil
		}
		x, ok, err := tx.record(sqlClaimOne, nullStr(p.WorkerID), now, now, id, r.Status, r.RetryCount)
		if err != nil || !ok {
			return err
		}
		out, claimed = x, true
		tx.remember([]rawRec{x})
		return nil
	})
	if err != nil {
		return res, err
	}
	if missing {
		return res, driver.NotFound(p.ID)
	}
	if claimed || expired {
		rec, err := out.record()
		if err != nil {
			return res, err
		}
		if claimed {
			res.Claimed = []*queuestype.Record{rec}
		} else {
			res.Expired = []*queuestype.Record{rec}
		}
	}
	return res, nil
}

// ExpireOverdue expires up to limit (≤ 0 means 100) pending/scheduled records
// holding no execution_ref whose expires_at ≤ now, ordered by expires_at,
// created_at, id, and returns them.
func (b *Backend) ExpireOverdue(ctx context.Context, limit int) ([]*queuestype.Record, error) {
	limit, err := driver.CallLimit(ctx, limit, driver.DefaultExpireLimit)
	if err != nil {
		return nil, err
	}
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	const q = `UPDATE OR FAIL queue_task SET status = 'expired', completed_at = ?1, heartbeat_at = NULL
WHERE id IN (SELECT id FROM queue_task WHERE ` + sqlExpiryCandidates + ` ORDER BY expires_at, created_at, id LIMIT CAST(?2 AS INTEGER))
RETURNING ` + recordColumns
	var rows []rawRec
	err = w.do(ctx, false, func(tx *wtx) error {
		var err error
		rows, err = tx.records(rows[:0], q, micros(b.now()), limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rows, expiryCompare)
	return decodeAll(rows)
}

// ListPending lists due, unexpired, not reservation-marked pending/scheduled
// records in claim order, with the queue and execution-backend filters.
// Limit ≤ 0 means 100. It reads through the reader pool and changes nothing.
func (b *Backend) ListPending(ctx context.Context, p driver.ListPendingParams) ([]*queuestype.Record, error) {
	limit, err := driver.CallLimit(ctx, p.Limit, driver.DefaultPendingLimit)
	if err != nil {
		return nil, err
	}
	names, err := claimQueues(p.Queues, p.ExecutionBackend, func(query string, args ...any) ([]string, error) {
		var out []string
		err := b.readRows(ctx, query, args, func(rows *sql.Rows) error {
			var q string
			if err := rows.Scan(&q); err != nil {
				return err
			}
			out = append(out, q)
			return nil
		})
		return out, err
	})
	if err != nil {
		return nil, err
	}
	var ps params
	ps.add(micros(b.now()))
	sel := claimSelect(&ps, claimParts(limit, names, nil), p.ExecutionBackend, limit)
	if sel == "" {
		return []*queuestype.Record{}, nil
	}
	recs, err := b.readRaw(ctx, "SELECT "+recordColumns+" FROM queue_task WHERE rowid IN ("+sel+")", ps.args...)
	if err != nil {
		return nil, err
	}
	sortClaimOrder(recs)
	return decodeAll(recs)
}

// sortClaimOrder sorts rows in claim order.
func sortClaimOrder(rows []rawRec) {
	slices.SortFunc(rows, func(x, y rawRec) int {
		if claimLess(&x, &y) {
			return -1
		}
		if claimLess(&y, &x) {
			return 1
		}
		return 0
	})
}

var _ driver.DueTimer = (*Backend)(nil)

// NextDue returns the earliest future scheduled_at among pending/scheduled,
// not reservation-marked records (of the given queues when non-empty); ok is
// false when there is none.
func (b *Backend) NextDue(ctx context.Context, queueNames []string) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	var ps params
	ps.add(micros(b.now()))
	q := "SELECT scheduled_at FROM queue_task WHERE " + sqlOpen + " AND scheduled_at IS NOT NULL AND scheduled_at > " + sqlNow + " AND " + sqlUnreserved
	if len(queueNames) > 0 {
		q += " AND queue IN (SELECT value FROM json_each(" + ps.add(queueFilterJSON(queueNames)) + "))"
	}
	q += " ORDER BY scheduled_at LIMIT 1"
	var v int64
	found, err := b.readRow(ctx, q, ps.args, &v)
	if err != nil || !found {
		return time.Time{}, false, err
	}
	return fromMicros(v), true, nil
}
