package sqlite

import (
	"context"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// dueOpenAt reports whether a returned record is pending/scheduled and due at now.
func dueOpenAt(r *queuestype.Record, now int64) bool {
	return isOpen(string(r.Status)) && (r.ScheduledAt.IsZero() || r.ScheduledAt.UnixMicro() <= now)
}

// refWrite runs a single fenced execution-ref write and wakes workers when
// wakeIfDue and the record is claimable now.
func (b *Backend) refWrite(ctx context.Context, op string, id uuid.UUID, wakeIfDue bool, query string, args func(now int64) []any) (*queuestype.Record, error) {
	var at int64
	rec, err := b.settleOne(ctx, op, id, query, func(now int64) []any {
		at = now
		return args(now)
	})
	if err == nil && wakeIfDue && dueOpenAt(rec, at) {
		b.wake()
	}
	return rec, err
}

// ReserveDispatch sets execution_ref to p.Marker and dispatch_until to
// p.Until on a pending/scheduled record that is due, unexpired and holds no
// ref, fenced on the optional generation. A record holding a dispatch_until is
// neither claimed, expired, listed as due nor listed as stale until the
// reservation is released or finalized; the marker's text is never read. A
// zero p.Until is refused with an error matching queuestype.ErrConfig.
func (b *Backend) ReserveDispatch(ctx context.Context, p driver.ReserveDispatchParams) (*queuestype.Record, error) {
	if err := driver.CheckReserve(p); err != nil {
		return nil, err
	}
	idText, marker, until := p.ID.String(), nullStr(p.Marker), micros(p.Until)
	var gen any
	if p.ExpectedRetryCount != nil {
		gen = *p.ExpectedRetryCount
	}
	return b.refWrite(ctx, "reserve dispatch", p.ID, false, `UPDATE OR FAIL queue_task SET execution_ref = ?2, dispatch_until = ?5
WHERE id = ?3 AND `+sqlOpen+` AND (scheduled_at IS NULL OR scheduled_at <= ?1) AND (expires_at IS NULL OR expires_at > ?1)
AND execution_ref IS NULL AND (?4 IS NULL OR retry_count = ?4) RETURNING `+recordColumns,
		func(now int64) []any { return []any{now, marker, idText, gen, until} })
}

// ReleaseDispatch clears execution_ref and dispatch_until when execution_ref
// equals p.Marker. A non-empty
// p.ExecutionBackend re-routes the record to that backend and profile. Workers
// are woken when the record is claimable again.
func (b *Backend) ReleaseDispatch(ctx context.Context, p driver.ReleaseDispatchParams) (*queuestype.Record, error) {
	idText := p.ID.String()
	return b.refWrite(ctx, "release dispatch", p.ID, true, `UPDATE OR FAIL queue_task SET execution_ref = NULL, dispatch_until = NULL,
execution_backend = CASE WHEN ?2 <> '' THEN ?2 ELSE execution_backend END,
execution_profile = CASE WHEN ?2 <> '' THEN ?3 ELSE execution_profile END
WHERE id = ?4 AND execution_ref IS NOT NULL AND execution_ref = CAST(?5 AS TEXT) RETURNING `+recordColumns,
		func(now int64) []any {
			return []any{now, p.ExecutionBackend, nullStr(p.ExecutionProfile), idText, p.Marker}
		})
}

// FinalizeDispatch replaces the reservation marker p.Marker with the
// provider's p.Ref and clears dispatch_until while the record is still
// pending or scheduled.
func (b *Backend) FinalizeDispatch(ctx context.Context, p driver.FinalizeDispatchParams) (*queuestype.Record, error) {
	idText := p.ID.String()
	return b.refWrite(ctx, "finalize dispatch", p.ID, false, `UPDATE OR FAIL queue_task SET execution_ref = ?2, dispatch_until = NULL
WHERE id = ?3 AND `+sqlOpen+` AND execution_ref IS NOT NULL AND execution_ref = CAST(?4 AS TEXT) RETURNING `+recordColumns,
		func(now int64) []any { return []any{now, nullStr(p.Ref), idText, p.Marker} })
}

// SetExecutionRef stores ref on a non-terminal record, whatever it held
// before, and clears any dispatch reservation (ref is an execution, never a
// reservation, whatever its text).
func (b *Backend) SetExecutionRef(ctx context.Context, id uuid.UUID, ref string) (*queuestype.Record, error) {
	idText := id.String()
	return b.refWrite(ctx, "set execution ref", id, false, `UPDATE OR FAIL queue_task SET execution_ref = ?2, dispatch_until = NULL
WHERE id = ?3 AND `+sqlNotTerminal+` RETURNING `+recordColumns,
		func(now int64) []any { return []any{now, nullStr(ref), idText} })
}

// ClearExecutionRef clears execution_ref (and any dispatch reservation) on a pending/scheduled record of
// generation gen that holds ref, and wakes workers when it is due.
func (b *Backend) ClearExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref string) (*queuestype.Record, error) {
	idText := id.String()
	return b.refWrite(ctx, "clear execution ref", id, true, `UPDATE OR FAIL queue_task SET execution_ref = NULL, dispatch_until = NULL
WHERE id = ?2 AND `+sqlOpen+` AND retry_count = ?3 AND execution_ref IS ?4 RETURNING `+recordColumns,
		func(now int64) []any { return []any{now, idText, gen, nullStr(ref)} })
}

// ReplaceExecutionRef swaps ref for newRef on a non-terminal record of
// generation gen that holds ref, and clears any dispatch reservation.
func (b *Backend) ReplaceExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref, newRef string) (*queuestype.Record, error) {
	idText := id.String()
	return b.refWrite(ctx, "replace execution ref", id, false, `UPDATE OR FAIL queue_task SET execution_ref = ?2, dispatch_until = NULL
WHERE id = ?3 AND `+sqlNotTerminal+` AND retry_count = ?4 AND execution_ref IS ?5 RETURNING `+recordColumns,
		func(now int64) []any { return []any{now, nullStr(newRef), idText, gen, nullStr(ref)} })
}

// SetExecutionBackend re-routes a pending/scheduled record to backend and
// profile, clears its execution_ref and any dispatch reservation, and wakes workers when it is due.
func (b *Backend) SetExecutionBackend(ctx context.Context, id uuid.UUID, backend, profile string) (*queuestype.Record, error) {
	idText := id.String()
	return b.refWrite(ctx, "set execution backend", id, true, `UPDATE OR FAIL queue_task SET execution_backend = ?2,
execution_profile = ?3, execution_ref = NULL, dispatch_until = NULL WHERE id = ?4 AND `+sqlOpen+` RETURNING `+recordColumns,
		func(now int64) []any { return []any{now, backend, nullStr(profile), idText} })
}
