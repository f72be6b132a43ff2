package postgres

import (
	"context"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// write runs one guarded single-record UPDATE … RETURNING. No row means the
// guard did not hold (queuestype.ErrFenceLost, plus queuestype.ErrTaskNotFound for
// a missing ID). With wakeDue, workers are woken when the returned record
// is pending/scheduled and due.
func (b *Backend) write(ctx context.Context, op string, id uuid.UUID, wakeDue bool, sql string, args ...any) (*queuestype.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, err := collectOne(b.pool.Query(ctx, sql, args...))
	if err != nil {
		return nil, b.wrap(op, err)
	}
	if rec == nil {
		return nil, b.guardFailed(ctx, op, id)
	}
	if wakeDue && (rec.Status == queuestype.StatusPending || rec.Status == queuestype.StatusScheduled) &&
		rec.ExecutionRef == "" && rec.IsDue(time.Now()) {
		b.notify(ctx)
	}
	return rec, nil
}

// ReserveDispatch sets execution_ref to p.Marker (an opaque fencing token)
// and dispatch_until to p.Until on a pending/scheduled record that is due,
// unexpired and holds no ref, fenced on the optional generation. The
// reservation is dispatch_until: while it is set the record is neither
// claimed, expired, listed as due nor listed as stale.
func (b *Backend) ReserveDispatch(ctx context.Context, p driver.ReserveDispatchParams) (*queuestype.Record, error) {
	if err := driver.CheckReserve(p); err != nil {
		return nil, err
	}
	var gen pgtype.Int4
	if p.ExpectedRetryCount != nil {
		gen = pgtype.Int4{Int32: int32(*p.ExpectedRetryCount), Valid: true}
	}
	return b.write(ctx, "reserve dispatch", p.ID, false, `UPDATE `+b.n.task+` t SET execution_ref = $2, dispatch_until = $4
WHERE t.id = $1 AND t.status IN `+openStatuses+` AND (t.scheduled_at IS NULL OR t.scheduled_at <= now())
  AND (t.expires_at IS NULL OR t.expires_at > now()) AND t.execution_ref IS NULL
  AND ($3::int IS NULL OR t.retry_count = $3)
RETURNING `+cols("t"), p.ID, p.Marker, gen, ts(p.Until))
}

// ReleaseDispatch clears execution_ref and dispatch_until when execution_ref
// equals p.Marker. A non-empty
// p.ExecutionBackend re-routes the record to that backend and profile.
// Workers are woken when the record is claimable again.
func (b *Backend) ReleaseDispatch(ctx context.Context, p driver.ReleaseDispatchParams) (*queuestype.Record, error) {
	return b.write(ctx, "release dispatch", p.ID, true, `UPDATE `+b.n.task+` t SET execution_ref = NULL, dispatch_until = NULL,
    execution_backend = CASE WHEN $3 <> '' THEN $3 ELSE t.execution_backend END,
    execution_profile = CASE WHEN $3 <> '' THEN nullif($4, '') ELSE t.execution_profile END
WHERE t.id = $1 AND t.execution_ref = $2
RETURNING `+cols("t"), p.ID, p.Marker, p.ExecutionBackend, p.ExecutionProfile)
}

// FinalizeDispatch replaces the reservation marker p.Marker with the
// provider's p.Ref and clears dispatch_until while the record is still
// pending or scheduled.
func (b *Backend) FinalizeDispatch(ctx context.Context, p driver.FinalizeDispatchParams) (*queuestype.Record, error) {
	return b.write(ctx, "finalize dispatch", p.ID, false, `UPDATE `+b.n.task+` t SET execution_ref = nullif($3, ''), dispatch_until = NULL
WHERE t.id = $1 AND t.status IN `+openStatuses+` AND t.execution_ref = $2
RETURNING `+cols("t"), p.ID, p.Marker, p.Ref)
}

// SetExecutionRef stores ref on a non-terminal record, whatever it held
// before; the ref is an execution, never a reservation, so dispatch_until is
// cleared.
func (b *Backend) SetExecutionRef(ctx context.Context, id uuid.UUID, ref string) (*queuestype.Record, error) {
	return b.write(ctx, "set execution ref", id, false, `UPDATE `+b.n.task+` t SET execution_ref = nullif($2, ''), dispatch_until = NULL
WHERE t.id = $1 AND t.status IN `+activeStatuses+`
RETURNING `+cols("t"), id, ref)
}

// ClearExecutionRef clears execution_ref (and dispatch_until) on a pending/scheduled record of
// generation gen that holds ref, and wakes workers when it is due.
func (b *Backend) ClearExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref string) (*queuestype.Record, error) {
	return b.write(ctx, "clear execution ref", id, true, `UPDATE `+b.n.task+` t SET execution_ref = NULL, dispatch_until = NULL
WHERE t.id = $1 AND t.status IN `+openStatuses+` AND t.retry_count = $2 AND coalesce(t.execution_ref, '') = $3
RETURNING `+cols("t"), id, gen, ref)
}

// ReplaceExecutionRef swaps ref for newRef on a non-terminal record of
// generation gen that holds ref; a reservation the old ref held ends
// (dispatch_until is cleared).
func (b *Backend) ReplaceExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref, newRef string) (*queuestype.Record, error) {
	return b.write(ctx, "replace execution ref", id, false, `UPDATE `+b.n.task+` t SET execution_ref = nullif($4, ''), dispatch_until = NULL
WHERE t.id = $1 AND t.status IN `+activeStatuses+` AND t.retry_count = $2 AND coalesce(t.execution_ref, '') = $3
RETURNING `+cols("t"), id, gen, ref, newRef)
}

// SetExecutionBackend re-routes a pending/scheduled record to backend and
// profile, clears its execution_ref and dispatch_until, and wakes workers when it is due.
func (b *Backend) SetExecutionBackend(ctx context.Context, id uuid.UUID, backend, profile string) (*queuestype.Record, error) {
	return b.write(ctx, "set execution backend", id, true, `UPDATE `+b.n.task+` t SET execution_backend = $2,
    execution_profile = nullif($3, ''), execution_ref = NULL, dispatch_until = NULL
WHERE t.id = $1 AND t.status IN `+openStatuses+`
RETURNING `+cols("t"), id, backend, profile)
}

// ListRunningExternal lists up to limit non-terminal records holding an
// execution_ref, ordered by coalesce(started_at, created_at), then id.
// limit ≤ 0 returns nothing.
func (b *Backend) ListRunningExternal(ctx context.Context, limit int) ([]*queuestype.Record, error) {
	if empty, done, err := driver.NoItems[*queuestype.Record](ctx, limit); done {
		return empty, err
	}
	recs, err := collectRecords(b.pool.Query(ctx, b.q.listExternal, limit))
	if err != nil {
		return nil, b.wrap("list running external", err)
	}
	if recs == nil {
		recs = []*queuestype.Record{}
	}
	return recs, nil
}
