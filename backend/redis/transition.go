package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

var _ driver.Dispatcher = (*Backend)(nil)

// Settle applies transitions the engine decided and returns one result per
// transition, in input order. Each is fenced on its own: the record holds
// generation t.Generation and is running, or, with t.ExpectedRef, holds
// exactly that execution_ref and is running, pending or scheduled; with
// t.WorkerID its worker_id is that worker; with t.StaleAfter > 0 its
// heartbeat is null or older than Redis time − t.StaleAfter (any heartbeat
// when negative). A transition whose fence does not hold changes nothing
// and reports an error matching queuestype.ErrFenceLost in its result (also
// matching queuestype.ErrTaskNotFound when the record does not exist); a To
// other than completed, failed, cancelled or pending is refused with an
// error matching queuestype.ErrConfig. The call's error is for the call as
// a whole (Redis unreachable, ctx ended): some transitions may have been
// applied then.
//
// The store decides nothing: it writes what the transition says, with every
// time from Redis. Completed sets the result and completed_at and clears
// heartbeat_at and the error; failed sets error = t.Error and completed_at
// and clears heartbeat_at; cancelled is Cancel's write, with error =
// t.Error when not empty; all three keep worker_id. Pending
// (a retry, a stale requeue or a shutdown interruption) starts a new
// generation: retry_count+1, error = t.Error, worker_id, execution_ref,
// started_at and heartbeat_at cleared, interruptions+1 when t.Interrupted,
// snooze_count+1 when t.Snoozed, priority = *t.Priority when set, scheduled at Redis time + t.Delay when
// positive, else pending. Failed and pending replace the error history
// (the errors field) with t.Errors when it is not nil. A requeued due record wakes workers; a record
// that turns terminal is announced on the completions channel.
//
// Completions fenced only on generation (and worker) that carry the claimed
// record or NoRecord take the hot path: they are coalesced, with the hot
// completions of every concurrent Settle, into calls of the lean complete
// script (luaComplete). The other transitions of the call go together into
// one call of the ops script; the two run side by side, and a record named
// more than once in a call goes to the ops script every time, so its
// transitions apply in input order. Each script is atomic on the server and takes no lock, so a Settle
// cannot deadlock with concurrent heartbeat writes.
func (b *Backend) Settle(ctx context.Context, ts []driver.Transition) ([]driver.SettleResult, error) {
	if empty, done, err := driver.NoItems[driver.SettleResult](ctx, len(ts)); done {
		return empty, err
	}
	ts = driver.FitSettleTexts(ts)
	out := make([]driver.SettleResult, len(ts))
	var (
		hot    []*completeReq
		hotIdx []int
		ob     opBuilder
		opIdx  []int
	)
	// The two scripts run side by side, so a record named twice in one
	// call goes to the ops script every time, which applies its
	// transitions in input order.
	var repeated map[uuid.UUID]bool
	if len(ts) > 1 {
		seen := make(map[uuid.UUID]bool, len(ts))
		for i := range ts {
			if seen[ts[i].ID] {
				if repeated == nil {
					repeated = map[uuid.UUID]bool{}
				}
				repeated[ts[i].ID] = true
			}
			seen[ts[i].ID] = true
		}
	}
	for i := range ts {
		t := &ts[i]
		if err := driver.CheckTransition(t); err != nil {
			out[i].Err = err
			continue
		}
		gen := strconv.Itoa(t.Generation)
		if t.To == queuestype.StatusCompleted && t.ExpectedRef == nil && t.StaleAfter == 0 {
			if (t.NoRecord || (t.Claimed != nil && t.Claimed.ID == t.ID)) && !repeated[t.ID] {
				// A nil and an empty result are both stored as "" (null).
				hot = append(hot, &completeReq{id: t.ID.String(), gen: gen, result: string(t.Result), worker: t.WorkerID})
				hotIdx = append(hotIdx, i)
				continue
			}
			if t.WorkerID == "" {
				if t.NoRecord {
					ob.add("complete", t.ID, gen, flag(t.Result != nil), string(t.Result))
				} else {
					ob.addRec("complete", t.ID, gen, flag(t.Result != nil), string(t.Result))
				}
				opIdx = append(opIdx, i)
				continue
			}
		}
		hasRef, ref := optStr(t.ExpectedRef)
		stale := ""
		switch {
		case t.StaleAfter < 0:
			stale = "-1"
		case t.StaleAfter > 0:
			stale = strconv.FormatInt(t.StaleAfter.Microseconds(), 10)
		}
		hasPrio, prio := optInt(t.Priority)
		history, _ := driver.EncodeErrorHistory(t.Errors) // plain data: cannot fail
		a := []any{gen, string(t.To), hasRef, ref, t.WorkerID, stale, flag(t.Result != nil), string(t.Result), t.Error,
			strconv.FormatInt(delayMicros(t.Delay), 10), flag(t.Interrupted), hasPrio, prio,
			flag(t.Snoozed), flag(t.Errors != nil), history}
		if t.NoRecord {
			ob.add("settle", t.ID, a...)
		} else {
			ob.addRec("settle", t.ID, a...)
		}
		opIdx = append(opIdx, i)
	}

	// Queue the hot completions first, so their calls are in flight while
	// the ops script runs.
	var wait func() error
	if len(hot) > 0 {
		wait = submitAll(ctx, &b.completes.coalescer, hot)
	}
	var opErr error
	var req *opReq
	var replies []any
	if len(opIdx) > 0 {
		req = ob.req()
		replies, opErr = b.batch.do(ctx, req)
	}
	var hotErr error
	if wait != nil {
		hotErr = wait()
	}
	if opErr != nil {
		return out, opErr
	}
	if hotErr != nil {
		return out, hotErr
	}

	for j, r := range hot {
		i := hotIdx[j]
		out[i].Record, out[i].Err = b.settledHot(r, &ts[i])
	}
	for j, i := range opIdx {
		t := &ts[i]
		rep, err := parseReply(replies[j])
		if err != nil {
			return out, err
		}
		switch rep.code {
		case "K":
			if !t.NoRecord {
				rec, err := b.record(req, j, rep)
				if err != nil {
					return out, err
				}
				out[i].Record = rec
			}
		case "M":
			out[i].Err = driver.MissingForWrite("settle", t.ID)
		default:
			out[i].Err = driver.FenceLost("settle", t.ID)
		}
	}
	return out, nil
}

// settledHot decodes a hot-path completion of t: the fence error, or the
// record built from t.Claimed and what the write changed (nil with
// t.NoRecord).
func (b *Backend) settledHot(r *completeReq, t *driver.Transition) (*queuestype.Record, error) {
	ref, overlays, err := completeReply(r.rep, t.ID)
	if err != nil || t.NoRecord {
		return nil, err
	}
	return completedFrom(t.Claimed.Clone(), t.Result, r.now, ref, overlays)
}

// delayMicros is a retry delay in whole microseconds, rounded up so a
// positive delay always schedules the record.
func delayMicros(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// ListStale lists up to limit (≤ 0 lists nothing) running records whose
// heartbeat is null or older than Redis time − staleAfter (every running
// record when staleAfter < 0): null heartbeats first, by created_at then
// id, then the oldest heartbeat first, then id. Records holding a dispatch
// reservation marker are left out. It changes nothing: the caller decides
// each record's fate and applies it with Settle, fenced with StaleAfter.
func (b *Backend) ListStale(ctx context.Context, staleAfter time.Duration, limit int) ([]*queuestype.Record, error) {
	if empty, done, err := driver.NoItems[*queuestype.Record](ctx, limit); done {
		return empty, err
	}
	staleUS := staleAfter.Microseconds()
	if staleAfter < 0 {
		staleUS = -1
	}
	v, err := b.run(ctx, scriptStale, strconv.FormatInt(staleUS, 10), limit).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: list stale: %w", err)
	}
	return decodeRecords(v)
}

// completedFrom turns rec, the record as its attempt claimed it, into the
// completed record a hot-path completion wrote: the result, completed_at
// now (Redis µs), the execution ref and metadata overlays the script read.
func completedFrom(rec *queuestype.Record, result json.RawMessage, now, ref string, overlays []any) (*queuestype.Record, error) {
	rec.Status = queuestype.StatusCompleted
	rec.Error = ""
	rec.HeartbeatAt = time.Time{}
	rec.Result = nil
	if len(result) > 0 {
		rec.Result = append(json.RawMessage(nil), result...)
	}
	if err := setField(rec, "completed_at", now); err != nil {
		return nil, err
	}
	rec.ExecutionRef = ref
	for i := 0; i+1 < len(overlays); i += 2 {
		k, _ := overlays[i].(string)
		v, _ := overlays[i+1].(string)
		if err := setField(rec, k, v); err != nil {
			return nil, err
		}
	}
	return rec, nil
}
