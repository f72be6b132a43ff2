package backendtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// testHeartbeats covers TouchHeartbeats, NullHeartbeats and stale recovery
// (the engine's pass over ListStale and Settle).
func testHeartbeats(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"NullHeartbeatsClears", nullHeartbeatsClears},
		{"StaleRequeuesRetryable", staleRequeuesRetryable},
		{"StaleFailurePolicy", staleFailurePolicy},
		{"StaleRequeueSetsStaleErrorWhenEmpty", staleErrorWhenEmpty},
		{"TouchNothing", touchNothing},
		{"TouchMixedGenerations", touchMixedGenerations},
		{"TouchUnfencedAndNonRunning", touchUnfencedAndNonRunning},
		{"StaleOldGenerationFenced", staleOldGenerationFenced},
		{"StaleRecoveryBounded", staleBounded},
		{"StalePriorityPolicy", stalePriorityPolicy},
		{"StaleBackoffDelay", staleBackoffDelay},
		{"StaleAfterSparesFreshHeartbeats", staleAfterSparesFresh},
		{"StaleOrderNullHeartbeatFirst", staleOrderNullFirst},
		{"StaleIgnoresNonRunning", staleIgnoresNonRunning},
	})
}

// NullHeartbeats clears heartbeat_at of the fenced running record only.
func nullHeartbeatsClears(t *testing.T, b driver.Backend) {
	a := running(t, b, item("null.a"))
	other := running(t, b, item("null.other"))
	wantNoErr(t, "NullHeartbeats", b.NullHeartbeats(t.Context(), []queuestype.Fence{{ID: a.ID, RetryCount: 0}}))
	got := get(t, b, a.ID)
	wantStatus(t, "nulled record", got, queues.StatusRunning)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantString(t, "worker_id", got.WorkerID, workerA)
	wantNear(t, "started_at kept", got.StartedAt, a.StartedAt, 0)
	wantNear(t, "other heartbeat_at", get(t, b, other.ID).HeartbeatAt, other.HeartbeatAt, 0)
	wantNoErr(t, "NullHeartbeats(nothing)", b.NullHeartbeats(t.Context(), nil))
}

// With everything stale, a retryable record (one earlier
// failure) → pending, retry_count 2, priority kept, previous error kept.
func staleRequeuesRetryable(t *testing.T, b driver.Backend) {
	first := running(t, b, item("stale.retryable", retries(3), priority(4)))
	failRetry(t, b, first, "first failure")
	run := claimByID(t, b, first.ID, workerB)
	before := time.Now()
	res := recoverAll(t, b, 100)
	after := time.Now()
	wantInt(t, "requeued", res.Requeued, 1)
	wantInt(t, "failed", len(res.Failed), 0)
	wantInt(t, "handler needed", len(res.HandlerNeeded), 0)
	got := get(t, b, run.ID)
	wantStatus(t, "requeued", got, queues.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 2)
	wantInt(t, "priority", got.Priority, 4)
	wantString(t, "error", got.Error, "first failure")
	wantString(t, "worker_id", got.WorkerID, "")
	wantZeroTime(t, "started_at", got.StartedAt)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantZeroTime(t, "scheduled_at", got.ScheduledAt)
	wantBetween(t, "queued_at", got.QueuedAt, before, after)
}

// A record with no retries → failed; a record with
// requeue_on_stale=false → failed and handler_needed; totals requeued 1,
// failed 2, handler_needed 1.
func staleFailurePolicy(t *testing.T, b driver.Backend) {
	retryable := running(t, b, item("stale.retry", retries(1)))
	noRetries := running(t, b, item("stale.noretries"))
	noRequeue := running(t, b, item("stale.norequeue", retries(3), noStaleRequeue()))
	before := time.Now()
	res := recoverAll(t, b, 100)
	after := time.Now()
	wantInt(t, "requeued", res.Requeued, 1)
	wantIDSet(t, "failed", idsOf(res.Failed), noRetries.ID, noRequeue.ID)
	wantIDSet(t, "handler needed", res.HandlerNeeded, noRequeue.ID)
	wantInt(t, "skipped", res.Skipped, 0)
	for _, r := range res.Failed {
		wantStatus(t, "returned failed record", r, queues.StatusFailed)
		wantString(t, "returned failed error", r.Error, driver.StaleError)
		got := get(t, b, r.ID)
		wantStatus(t, "stale failed", got, queues.StatusFailed)
		wantString(t, "error", got.Error, driver.StaleError)
		wantBetween(t, "completed_at", got.CompletedAt, before, after)
		wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
		wantString(t, "worker_id kept on the terminal write", got.WorkerID, workerA)
	}
	got := get(t, b, retryable.ID)
	wantStatus(t, "retryable", got, queues.StatusPending)
	wantInt(t, "retryable retry_count", got.RetryCount, 1)
}

// Error kept, or "Task heartbeat stale" if empty.
func staleErrorWhenEmpty(t *testing.T, b driver.Backend) {
	run := running(t, b, item("stale.noerror", retries(1)))
	recoverAll(t, b, 10)
	got := get(t, b, run.ID)
	wantStatus(t, "requeued", got, queues.StatusPending)
	wantString(t, "error", got.Error, driver.StaleError)
}

// TouchHeartbeats with no touches → empty result.
func touchNothing(t *testing.T, b driver.Backend) {
	running(t, b, item("touch.none"))
	for _, touches := range [][]driver.HeartbeatTouch{nil, {}} {
		res, err := b.TouchHeartbeats(t.Context(), touches)
		wantNoErr(t, "TouchHeartbeats(empty)", err)
		if len(res.Touched) != 0 || len(res.Missed) != 0 {
			t.Fatalf("TouchHeartbeats(empty) = %+v, want empty", res)
		}
	}
}

// A touch batch with a stale and a current generation for
// the same ID reports it both touched and missed; the patch merges into metadata.
func touchMixedGenerations(t *testing.T, b driver.Backend) {
	first := running(t, b, item("touch.mixed", retries(2), metadata(map[string]any{"existing": "kept"})))
	failRetry(t, b, first, "boom")
	run := claimByID(t, b, first.ID, workerB)
	res, err := b.TouchHeartbeats(t.Context(), []driver.HeartbeatTouch{
		{ID: run.ID, ExpectedRetryCount: ptr(0), MetadataPatch: map[string]any{queuestype.MetaProgressDetail: "stale generation"}},
		{ID: run.ID, ExpectedRetryCount: ptr(1), MetadataPatch: map[string]any{queuestype.MetaProgressDetail: "row 5"}},
	})
	wantNoErr(t, "TouchHeartbeats", err)
	wantIDSet(t, "touched", res.Touched, run.ID)
	wantIDSet(t, "missed", res.Missed, run.ID)
	got := get(t, b, run.ID)
	wantJSON(t, "metadata", got.Metadata, map[string]any{"existing": "kept", "progress_detail": "row 5"})
	wantNotBefore(t, "heartbeat_at", got.HeartbeatAt, run.HeartbeatAt)
	wantStatus(t, "touched record", got, queues.StatusRunning)
	wantInt(t, "retry_count", got.RetryCount, 1)
}

// A touch refreshes
// heartbeat_at of a running record; touches of non-running or missing records miss.
func touchUnfencedAndNonRunning(t *testing.T, b driver.Backend) {
	run := running(t, b, item("touch.run"))
	pending := enqueueOne(t, b, item("touch.pending"))
	done := completed(t, b, item("touch.done"))
	missing := uuid.New()
	before := time.Now()
	res, err := b.TouchHeartbeats(t.Context(), []driver.HeartbeatTouch{
		{ID: run.ID},
		{ID: pending.ID},
		{ID: done.ID, ExpectedRetryCount: ptr(0)},
		{ID: missing, ExpectedRetryCount: ptr(0)},
	})
	after := time.Now()
	wantNoErr(t, "TouchHeartbeats", err)
	wantIDSet(t, "touched", res.Touched, run.ID)
	wantIDSet(t, "missed", res.Missed, pending.ID, done.ID, missing)
	got := get(t, b, run.ID)
	wantBetween(t, "heartbeat_at", got.HeartbeatAt, before, after)
	wantNotBefore(t, "heartbeat_at", got.HeartbeatAt, run.HeartbeatAt)
	wantZeroTime(t, "pending heartbeat_at", get(t, b, pending.ID).HeartbeatAt)
	wantZeroTime(t, "completed heartbeat_at", get(t, b, done.ID).HeartbeatAt)
}

// After a stale requeue and re-claim, the old generation's
// complete/fail/cancel → ErrFenceLost, and its NullHeartbeats does not clear
// the new heartbeat.
func staleOldGenerationFenced(t *testing.T, b driver.Backend) {
	old := running(t, b, item("stale.old", retries(2)))
	wantInt(t, "requeued", recoverAll(t, b, 10).Requeued, 1)
	cur := claimByID(t, b, old.ID, workerB)
	wantInt(t, "new generation", cur.RetryCount, 1)

	_, err := settleCall(t, b, driver.Transition{ID: old.ID, Generation: 0, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)})
	wantFenceLost(t, "Settle(completed, old generation)", err)
	_, err = settleCall(t, b, driver.Transition{ID: old.ID, Generation: 0, To: queuestype.StatusPending, Error: "late"})
	wantFenceLost(t, "Settle(retry, old generation)", err)
	_, err = b.Cancel(t.Context(), driver.CancelParams{ID: old.ID, IncludeRunning: true, ExpectedRetryCount: ptr(0)})
	wantFenceLost(t, "Cancel(old generation)", err)
	if err := b.NullHeartbeats(t.Context(), []queuestype.Fence{{ID: old.ID, RetryCount: 0}}); err != nil && !errors.Is(err, queues.ErrFenceLost) {
		t.Fatalf("NullHeartbeats(old generation): %v", err)
	}
	got := get(t, b, old.ID)
	wantStatus(t, "record", got, queues.StatusRunning)
	wantString(t, "worker_id", got.WorkerID, workerB)
	wantNear(t, "heartbeat_at of the new generation", got.HeartbeatAt, cur.HeartbeatAt, 0)
	wantString(t, "error", got.Error, driver.StaleError)

	wantNoErr(t, "NullHeartbeats(current generation)", b.NullHeartbeats(t.Context(), []queuestype.Fence{{ID: old.ID, RetryCount: 1}}))
	wantZeroTime(t, "heartbeat_at after the current null", get(t, b, old.ID).HeartbeatAt)
	complete(t, b, cur)
}

// Bounded recovery: 4 stale, limit 2 → 2, 2, 0; each requeued once.
func staleBounded(t *testing.T, b driver.Backend) {
	var recs []*queues.Record
	for range 4 {
		recs = append(recs, running(t, b, item("stale.bounded", retries(1))))
	}
	for i, want := range []int{2, 2, 0} {
		res := recoverAll(t, b, 2)
		if res.Requeued != want || len(res.Failed) != 0 {
			t.Fatalf("RecoverStale pass %d: requeued %d, failed %d; want %d, 0", i+1, res.Requeued, len(res.Failed), want)
		}
	}
	for _, r := range storedAll(t, b, recs) {
		wantStatus(t, "requeued", r, queues.StatusPending)
		wantInt(t, "retry_count", r.RetryCount, 1)
	}
}

// A nil priority policy keeps priority 9; a ceiling of 3 lowers it to 3.
func stalePriorityPolicy(t *testing.T, b driver.Backend) {
	kept := running(t, b, item("stale.prio.kept", retries(1), priority(9)))
	res := recoverAllMapped(t, b, 10, nil)
	wantInt(t, "requeued", res.Requeued, 1)
	wantInt(t, "priority with nil policy", get(t, b, kept.ID).Priority, 9)

	ceiling := func(old int) int { return min(old, 3) }
	high := running(t, b, item("stale.prio.high", retries(1), priority(9)))
	low := running(t, b, item("stale.prio.low", retries(1), priority(-2)))
	res = recoverAllMapped(t, b, 10, ceiling)
	wantInt(t, "requeued", res.Requeued, 2)
	wantInt(t, "priority under ceiling 3", get(t, b, high.ID).Priority, 3)
	wantInt(t, "low priority under ceiling 3", get(t, b, low.ID).Priority, -2)
	wantInt(t, "earlier record's priority", get(t, b, kept.ID).Priority, 9)
}

// A stale requeue with a retry_backoff uses attempts
// consumed for the delay (status scheduled).
func staleBackoffDelay(t *testing.T, b driver.Backend) {
	first := running(t, b, item("stale.backoff", retries(3), backoff(10*time.Minute, 2)))
	failRetry(t, b, first, "first failure")
	run := claimByID(t, b, first.ID, workerA)
	wantInt(t, "attempts consumed", run.AttemptsConsumed(), 1)
	const delay = 20 * time.Minute // 10m × 2^(one attempt consumed)
	before := time.Now()
	res := recoverAll(t, b, 10)
	after := time.Now()
	wantInt(t, "requeued", res.Requeued, 1)
	got := get(t, b, run.ID)
	wantStatus(t, "requeued with backoff", got, queues.StatusScheduled)
	wantBetween(t, "scheduled_at", got.ScheduledAt, before.Add(delay), after.Add(delay))
	wantInt(t, "retry_count", got.RetryCount, 2)
	claimed := claimMany(t, b, driver.ClaimParams{Limit: 5, WorkerID: workerB})
	wantInt(t, "claimed before the backoff", len(claimed.Claimed), 0)
}

// A fresh
// heartbeat is not stale; a nulled one is stale at once.
func staleAfterSparesFresh(t *testing.T, b driver.Backend) {
	fresh := running(t, b, item("stale.fresh", retries(1)))
	nulled := running(t, b, item("stale.nulled", retries(1)))
	wantNoErr(t, "NullHeartbeats", b.NullHeartbeats(t.Context(), []queuestype.Fence{{ID: nulled.ID, RetryCount: 0}}))
	res := recoverStale(t, b, time.Hour, 10, nil)
	wantInt(t, "requeued", res.Requeued, 1)
	wantStatus(t, "fresh record", get(t, b, fresh.ID), queues.StatusRunning)
	wantStatus(t, "nulled record", get(t, b, nulled.ID), queues.StatusPending)
}

// staleOrder is the stale candidate order: oldest heartbeat first, a null
// heartbeat counting as the record's created_at (as SQL coalesces it), then id.
func staleOrder(a, b *queues.Record) int {
	ta, tb := a.HeartbeatAt, b.HeartbeatAt
	if ta.IsZero() {
		ta = a.CreatedAt
	}
	if tb.IsZero() {
		tb = b.CreatedAt
	}
	if c := ta.Compare(tb); c != 0 {
		return c
	}
	return compareUUID(a.ID, b.ID)
}

// Candidates are ordered by oldest heartbeat (null first; SQL
// coalesces to created_at) then id. The nulled record is also the oldest
// created, so both readings agree; the other two are claimed in the reverse
// of their creation order, so heartbeat order differs from creation order.
func staleOrderNullFirst(t *testing.T, b driver.Backend) {
	nulled := enqueueOne(t, b, item("stale.order.nulled", retries(1)))
	late := enqueueOne(t, b, item("stale.order.late", retries(1)))
	early := enqueueOne(t, b, item("stale.order.early", retries(1)))
	recs := []*queues.Record{
		claimByID(t, b, early.ID, workerA),
		claimByID(t, b, late.ID, workerA),
		claimByID(t, b, nulled.ID, workerA),
	}
	wantNoErr(t, "NullHeartbeats", b.NullHeartbeats(t.Context(), []queuestype.Fence{{ID: nulled.ID, RetryCount: 0}}))
	want := sortedIDs(storedAll(t, b, recs), staleOrder)
	if want[0] != nulled.ID {
		t.Fatalf("set-up: the nulled record is not first in stale order (created_at %s)", nulled.CreatedAt)
	}
	for i, id := range want {
		res := recoverAll(t, b, 1)
		wantInt(t, fmt.Sprintf("pass %d requeued", i+1), res.Requeued, 1)
		wantStatus(t, fmt.Sprintf("pass %d: record %d in stale order", i+1, i+1), get(t, b, id), queues.StatusPending)
		for _, later := range want[i+1:] {
			wantStatus(t, fmt.Sprintf("pass %d: later record", i+1), get(t, b, later), queues.StatusRunning)
		}
	}
}

// Only running records are candidates.
func staleIgnoresNonRunning(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("stale.pending", retries(1)), item("stale.scheduled", retries(1), scheduledAt(at(time.Hour))))
	done := completed(t, b, item("stale.done", retries(1)))
	res := recoverAll(t, b, 10)
	if res.Requeued != 0 || len(res.Failed) != 0 || res.Skipped != 0 {
		t.Fatalf("RecoverStale without running records = %+v, want nothing", res)
	}
	wantSameRecord(t, "pending record", get(t, b, recs[0].ID), recs[0])
	wantSameRecord(t, "scheduled record", get(t, b, recs[1].ID), recs[1])
	wantSameRecord(t, "completed record", get(t, b, done.ID), done)
}
