package backendtest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// testTransitions covers Settle and ListStale: the store applies the
// outcome the engine decided, fenced, and decides nothing itself (no
// budget, no backoff, no policy).
func testTransitions(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"SettleCompleted", settleCompleted},
		{"SettleCompletedClaimedAndNoRecord", settleCompletedShortcuts},
		{"SettleRetry", settleRetry},
		{"SettleRetryDelaySchedules", settleRetryDelay},
		{"SettleRetryIgnoresBudget", settleRetryIgnoresBudget},
		{"SettleRetryPriority", settleRetryPriority},
		{"SettleInterrupted", settleInterrupted},
		{"SettleFailedIgnoresBudget", settleFailed},
		{"SettleCancelledRunning", settleCancelled},
		{"SettleFences", settleFences},
		{"SettleWorkerFence", settleWorkerFence},
		{"SettleExpectedRef", settleExpectedRef},
		{"SettleStaleFence", settleStaleFence},
		{"SettleBatchInInputOrder", settleBatch},
		{"SettleRetryClearsOwner", settleRetryClearsOwner},
		{"ListStaleOrderAndLimit", listStaleOrder},
		{"ListStaleSkipsFreshAndNotRunning", listStaleSkips},
		{"PolicyRoundTrip", policyRoundTrip},
	})
}

// settleOne applies one transition and returns its result; a call error fails the test.
func settleOne(t *testing.T, b driver.Backend, tr driver.Transition) driver.SettleResult {
	t.Helper()
	res, err := b.Settle(t.Context(), []driver.Transition{tr})
	if err != nil {
		t.Fatalf("Settle(%s → %s): call error %v", tr.ID, tr.To, err)
	}
	if len(res) != 1 {
		t.Fatalf("Settle(%s → %s): %d results, want 1", tr.ID, tr.To, len(res))
	}
	return res[0]
}

// settled applies one transition that must land and returns the record.
func settled(t *testing.T, b driver.Backend, tr driver.Transition) *queuestype.Record {
	t.Helper()
	r := settleOne(t, b, tr)
	if r.Err != nil {
		t.Fatalf("Settle(%s → %s): %v", tr.ID, tr.To, r.Err)
	}
	if r.Record == nil {
		t.Fatalf("Settle(%s → %s): no record returned", tr.ID, tr.To)
	}
	return r.Record
}

func wantSettleLost(t *testing.T, what string, r driver.SettleResult) {
	t.Helper()
	if !errors.Is(r.Err, queuestype.ErrFenceLost) && !errors.Is(r.Err, queuestype.ErrTaskNotFound) {
		t.Fatalf("%s: err = %v, want ErrFenceLost", what, r.Err)
	}
}

// To=Completed writes what Complete writes: result, completed_at, error and
// heartbeat cleared, worker_id and started_at kept.
func settleCompleted(t *testing.T, b driver.Backend) {
	first := running(t, b, item("settle.complete", retries(2)))
	retried := settled(t, b, driver.Transition{ID: first.ID, Generation: 0, To: queuestype.StatusPending, Error: "first attempt failed"})
	run := claimByID(t, b, retried.ID, workerB)
	before := time.Now()
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: 1, To: queuestype.StatusCompleted, Result: json.RawMessage(`{"rows":42,"ok":true}`)})
	after := time.Now()
	wantStatus(t, "completed", got, queuestype.StatusCompleted)
	wantJSON(t, "result", got.Result, json.RawMessage(`{"ok":true,"rows":42}`))
	wantString(t, "error", got.Error, "")
	wantString(t, "worker_id", got.WorkerID, workerB)
	wantBetween(t, "completed_at", got.CompletedAt, before, after)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantNear(t, "started_at kept", got.StartedAt, run.StartedAt, 0)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantStored(t, b, "completed record", got)

	again := settleOne(t, b, driver.Transition{ID: run.ID, Generation: 1, To: queuestype.StatusCompleted, Result: json.RawMessage(`2`)})
	wantSettleLost(t, "second Settle(completed)", again)
	wantJSON(t, "result after a lost settle", get(t, b, run.ID).Result, json.RawMessage(`{"ok":true,"rows":42}`))
}

// Claimed may shape the returned record, NoRecord may drop it; neither
// changes the write or its fence.
func settleCompletedShortcuts(t *testing.T, b driver.Backend) {
	run := running(t, b, item("settle.claimed"))
	gen := run.RetryCount
	hb, err := b.TouchHeartbeats(t.Context(), []driver.HeartbeatTouch{{ID: run.ID, ExpectedRetryCount: &gen,
		MetadataPatch: map[string]any{"progress": 0.5}}})
	wantNoErr(t, "TouchHeartbeats", err)
	wantInt(t, "touched", len(hb.Touched), 1)
	claimed := run.Clone()
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: gen, To: queuestype.StatusCompleted,
		Result: json.RawMessage(`{"n":1}`), Claimed: run})
	if got.Metadata["progress"] != 0.5 {
		t.Errorf("metadata patched while running: got %v, want progress 0.5", got.Metadata)
	}
	wantStored(t, b, "completed record", got)
	wantSameRecord(t, "Claimed left unmodified", run, claimed)

	bare := running(t, b, item("settle.bare"))
	r := settleOne(t, b, driver.Transition{ID: bare.ID, Generation: bare.RetryCount, To: queuestype.StatusCompleted,
		Result: json.RawMessage(`{"bare":true}`), Claimed: bare, NoRecord: true})
	wantNoErr(t, "Settle(NoRecord)", r.Err)
	if r.Record != nil {
		wantStored(t, b, "returned record", r.Record)
	}
	stored := get(t, b, bare.ID)
	wantStatus(t, "stored", stored, queuestype.StatusCompleted)
	wantJSON(t, "stored result", stored.Result, json.RawMessage(`{"bare":true}`))
	lost := settleOne(t, b, driver.Transition{ID: bare.ID, Generation: bare.RetryCount, To: queuestype.StatusCompleted, NoRecord: true})
	wantSettleLost(t, "second Settle(NoRecord)", lost)
}

// To=Pending with no delay: pending, retry_count+1, scheduled_at null,
// queued_at refreshed, owner fields cleared, error kept, priority kept.
func settleRetry(t *testing.T, b driver.Backend) {
	run := running(t, b, item("settle.retry", retries(2), priority(4)))
	before := time.Now()
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusPending, Error: "boom"})
	after := time.Now()
	wantStatus(t, "retried", got, queuestype.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantInt(t, "interruptions", got.Interruptions, 0)
	wantString(t, "error", got.Error, "boom")
	wantZeroTime(t, "scheduled_at", got.ScheduledAt)
	wantBetween(t, "queued_at", got.QueuedAt, before, after)
	wantZeroTime(t, "started_at", got.StartedAt)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantZeroTime(t, "completed_at", got.CompletedAt)
	wantString(t, "worker_id", got.WorkerID, "")
	wantInt(t, "priority", got.Priority, 4)
	wantNear(t, "created_at kept", got.CreatedAt, run.CreatedAt, 0)
	wantStored(t, b, "retried record", got)
	again := claimMany(t, b, driver.ClaimParams{Limit: 1, WorkerID: workerB})
	wantIDs(t, "claim after retry", again.Claimed, run.ID)
	wantInt(t, "claimed generation", again.Claimed[0].RetryCount, 1)
}

// To=Pending with a delay: scheduled at store now + delay, not claimable before.
func settleRetryDelay(t *testing.T, b driver.Backend) {
	run := running(t, b, item("settle.delay", retries(1)))
	const delay = 10 * time.Minute
	before := time.Now()
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusPending, Error: "later", Delay: delay})
	after := time.Now()
	wantStatus(t, "delayed retry", got, queuestype.StatusScheduled)
	wantBetween(t, "scheduled_at", got.ScheduledAt, before.Add(delay), after.Add(delay))
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantStored(t, b, "delayed retry", got)
	res := claimMany(t, b, driver.ClaimParams{Limit: 5, WorkerID: workerA, ExpireOverdue: true})
	wantInt(t, "claimed before the delay", len(res.Claimed), 0)
	if containsID(listPending(t, b), run.ID) {
		t.Fatal("ListPending lists a delayed retry")
	}
	byID, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: run.ID, WorkerID: workerA})
	wantNothingClaimed(t, "ClaimByID(delayed retry)", byID, err)
}

// The store does not check the retry budget: the engine decided.
func settleRetryIgnoresBudget(t *testing.T, b driver.Backend) {
	run := running(t, b, item("settle.nobudget")) // MaxRetries 0
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusPending, Error: "again"})
	wantStatus(t, "requeued without budget", got, queuestype.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantInt(t, "max_retries kept", got.MaxRetries, 0)
}

func settleRetryPriority(t *testing.T, b driver.Backend) {
	run := running(t, b, item("settle.priority", priority(900)))
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusPending, Error: "stale", Priority: ptr(10)})
	wantInt(t, "priority", got.Priority, 10)
	wantStored(t, b, "requeued record", got)
}

// Interrupted counts a shutdown interruption: interruptions+1 each time, so
// the attempts consumed stay where they were.
func settleInterrupted(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("settle.interrupt", retries(1)))
	for i := 1; i <= 3; i++ {
		run := claimByID(t, b, rec.ID, workerA)
		got := settled(t, b, driver.Transition{ID: run.ID, Generation: run.RetryCount, To: queuestype.StatusPending, Interrupted: true, WorkerID: workerA})
		wantStatus(t, "interrupted", got, queuestype.StatusPending)
		wantInt(t, "retry_count", got.RetryCount, i)
		wantInt(t, "interruptions", got.Interruptions, i)
		wantInt(t, "attempts consumed", got.AttemptsConsumed(), 0)
		wantStored(t, b, "interrupted record", got)
	}
	run := claimByID(t, b, rec.ID, workerA)
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: run.RetryCount, To: queuestype.StatusPending, Error: "real failure"})
	wantInt(t, "interruptions kept by a retry", got.Interruptions, 3)
	wantInt(t, "attempts consumed after a retry", got.AttemptsConsumed(), 1)
}

// To=Failed fails terminally whatever budget remains; worker_id is kept.
func settleFailed(t *testing.T, b driver.Backend) {
	run := running(t, b, item("settle.fail", retries(5)))
	before := time.Now()
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusFailed, Error: "fatal"})
	after := time.Now()
	wantStatus(t, "failed", got, queuestype.StatusFailed)
	wantString(t, "error", got.Error, "fatal")
	wantString(t, "worker_id", got.WorkerID, workerA)
	wantBetween(t, "completed_at", got.CompletedAt, before, after)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantInt(t, "retry_count", got.RetryCount, 0)
	wantStored(t, b, "failed record", got)
}

func settleCancelled(t *testing.T, b driver.Backend) {
	run := running(t, b, item("settle.cancel", retries(3)))
	before := time.Now()
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusCancelled})
	after := time.Now()
	wantStatus(t, "cancelled", got, queuestype.StatusCancelled)
	wantBetween(t, "completed_at", got.CompletedAt, before, after)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantStored(t, b, "cancelled record", got)
	lost := settleOne(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusCompleted})
	wantSettleLost(t, "complete after cancel", lost)

	// An empty Error keeps the error an earlier attempt left; a non-empty one replaces it.
	first := running(t, b, item("settle.cancel.keep", retries(2)))
	settled(t, b, driver.Transition{ID: first.ID, Generation: 0, To: queuestype.StatusPending, Error: "first attempt"})
	second := claimByID(t, b, first.ID, workerA)
	kept := settled(t, b, driver.Transition{ID: second.ID, Generation: 1, To: queuestype.StatusCancelled})
	wantString(t, "error kept by an empty cancel", kept.Error, "first attempt")
	third := running(t, b, item("settle.cancel.reason"))
	reason := settled(t, b, driver.Transition{ID: third.ID, Generation: 0, To: queuestype.StatusCancelled, Error: "stopped by the task"})
	wantString(t, "cancel reason", reason.Error, "stopped by the task")
	wantStored(t, b, "cancelled with a reason", reason)
}

// Every transition is fenced on status running and the generation.
func settleFences(t *testing.T, b driver.Backend) {
	pending := enqueueOne(t, b, item("settle.pending", retries(1)))
	for _, to := range []queuestype.Status{queuestype.StatusCompleted, queuestype.StatusFailed, queuestype.StatusPending, queuestype.StatusCancelled} {
		r := settleOne(t, b, driver.Transition{ID: pending.ID, Generation: 0, To: to, Error: "x"})
		wantSettleLost(t, "Settle(pending → "+string(to)+")", r)
	}
	got := get(t, b, pending.ID)
	wantStatus(t, "pending after lost settles", got, queuestype.StatusPending)
	wantInt(t, "retry_count after lost settles", got.RetryCount, 0)

	run := running(t, b, item("settle.gen", retries(1)))
	for _, to := range []queuestype.Status{queuestype.StatusCompleted, queuestype.StatusFailed, queuestype.StatusPending, queuestype.StatusCancelled} {
		r := settleOne(t, b, driver.Transition{ID: run.ID, Generation: 3, To: to, Error: "x"})
		wantSettleLost(t, "Settle(wrong generation → "+string(to)+")", r)
	}
	got = get(t, b, run.ID)
	wantStatus(t, "running after lost settles", got, queuestype.StatusRunning)
	wantString(t, "error after lost settles", got.Error, "")

	done := complete(t, b, run)
	for _, to := range []queuestype.Status{queuestype.StatusCompleted, queuestype.StatusFailed, queuestype.StatusPending, queuestype.StatusCancelled} {
		r := settleOne(t, b, driver.Transition{ID: run.ID, Generation: 0, To: to, Error: "late", Result: json.RawMessage(`2`)})
		wantSettleLost(t, "Settle(completed record → "+string(to)+")", r)
	}
	wantSameRecord(t, "completed record after late settles", get(t, b, run.ID), done)

	r := settleOne(t, b, driver.Transition{ID: uuid.New(), Generation: 0, To: queuestype.StatusFailed, Error: "x"})
	wantSettleLost(t, "Settle(missing)", r)
}

func settleWorkerFence(t *testing.T, b driver.Backend) {
	run := running(t, b, item("settle.worker", retries(2)))
	r := settleOne(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusPending, Interrupted: true, WorkerID: workerB})
	wantSettleLost(t, "Settle(other worker)", r)
	wantStatus(t, "running after a lost interrupt", get(t, b, run.ID), queuestype.StatusRunning)
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusPending, Interrupted: true, WorkerID: workerA})
	wantInt(t, "interruptions", got.Interruptions, 1)
}

// With ExpectedRef the record may also be pending holding that ref: an
// external execution that failed before claiming.
func settleExpectedRef(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("settle.ref", execution("cloudrun", ""), retries(2)))
	ref := newRef("cloudrun")
	setRef(t, b, rec.ID, ref)
	other := "cloudrun:other"
	r := settleOne(t, b, driver.Transition{ID: rec.ID, Generation: 0, To: queuestype.StatusFailed, Error: "x", ExpectedRef: &other})
	wantSettleLost(t, "Settle(wrong ref)", r)
	r = settleOne(t, b, driver.Transition{ID: rec.ID, Generation: 0, To: queuestype.StatusFailed, Error: "x"})
	wantSettleLost(t, "Settle(pending, no ref fence)", r)
	got := settled(t, b, driver.Transition{ID: rec.ID, Generation: 0, To: queuestype.StatusPending, Error: "exit 1", ExpectedRef: &ref})
	wantStatus(t, "requeued", got, queuestype.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantString(t, "execution_ref cleared", got.ExecutionRef, "")
	wantStored(t, b, "requeued external record", got)

	rec2 := enqueueOne(t, b, item("settle.ref.done", execution("cloudrun", "")))
	ref2 := newRef("cloudrun")
	setRef(t, b, rec2.ID, ref2)
	done := settled(t, b, driver.Transition{ID: rec2.ID, Generation: 0, To: queuestype.StatusCompleted, Result: json.RawMessage(`7`), ExpectedRef: &ref2})
	wantStatus(t, "completed", done, queuestype.StatusCompleted)
	wantJSON(t, "result", done.Result, json.RawMessage(`7`))
}

// StaleAfter re-checks staleness at the write: a heartbeat that landed
// after ListStale keeps the record with its live attempt.
func settleStaleFence(t *testing.T, b driver.Backend) {
	run := running(t, b, item("settle.stale", retries(2)))
	gen := run.RetryCount
	_, err := b.TouchHeartbeats(t.Context(), []driver.HeartbeatTouch{{ID: run.ID, ExpectedRetryCount: &gen}})
	wantNoErr(t, "TouchHeartbeats", err)
	r := settleOne(t, b, driver.Transition{ID: run.ID, Generation: gen, To: queuestype.StatusPending, Error: staleErrorText, StaleAfter: time.Hour})
	wantSettleLost(t, "Settle(fresh heartbeat, StaleAfter 1h)", r)
	wantStatus(t, "running after a lost stale settle", get(t, b, run.ID), queuestype.StatusRunning)

	wantNoErr(t, "NullHeartbeats", b.NullHeartbeats(t.Context(), []queuestype.Fence{{ID: run.ID, RetryCount: gen}}))
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: gen, To: queuestype.StatusPending, Error: staleErrorText, StaleAfter: time.Hour})
	wantStatus(t, "requeued after null heartbeat", got, queuestype.StatusPending)

	run2 := running(t, b, item("settle.stale.any"))
	_, err = b.TouchHeartbeats(t.Context(), []driver.HeartbeatTouch{{ID: run2.ID, ExpectedRetryCount: ptr(0)}})
	wantNoErr(t, "TouchHeartbeats", err)
	failed := settled(t, b, driver.Transition{ID: run2.ID, Generation: 0, To: queuestype.StatusFailed, Error: staleErrorText, StaleAfter: -1})
	wantStatus(t, "failed with StaleAfter < 0", failed, queuestype.StatusFailed)
}

const staleErrorText = "Task heartbeat stale"

// Many transitions in one call: results in input order; one lost fence
// leaves the others applied.
func settleBatch(t *testing.T, b driver.Backend) {
	var runs []*queuestype.Record
	for _, name := range []string{"batch.a", "batch.b", "batch.c", "batch.d", "batch.e"} {
		runs = append(runs, running(t, b, item(name, retries(1))))
	}
	ts := []driver.Transition{
		{ID: runs[0].ID, Generation: 0, To: queuestype.StatusCompleted, Result: json.RawMessage(`"a"`)},
		{ID: runs[1].ID, Generation: 0, To: queuestype.StatusPending, Error: "b"},
		{ID: runs[2].ID, Generation: 9, To: queuestype.StatusFailed, Error: "c"},
		{ID: runs[3].ID, Generation: 0, To: queuestype.StatusFailed, Error: "d"},
		{ID: runs[4].ID, Generation: 0, To: queuestype.StatusCancelled},
	}
	res, err := b.Settle(t.Context(), ts)
	wantNoErr(t, "Settle(batch)", err)
	wantInt(t, "results", len(res), len(ts))
	want := []queuestype.Status{queuestype.StatusCompleted, queuestype.StatusPending, "", queuestype.StatusFailed, queuestype.StatusCancelled}
	for i, r := range res {
		if want[i] == "" {
			wantSettleLost(t, "batch item 2 (wrong generation)", r)
			wantStatus(t, "batch item 2 stored", get(t, b, runs[i].ID), queuestype.StatusRunning)
			continue
		}
		if r.Err != nil {
			t.Fatalf("batch item %d: %v", i, r.Err)
		}
		wantIDs(t, "batch item", []*queuestype.Record{r.Record}, runs[i].ID)
		wantStatus(t, "batch item", r.Record, want[i])
		wantStored(t, b, "batch item", r.Record)
	}
	empty, err := b.Settle(t.Context(), nil)
	wantNoErr(t, "Settle(nil)", err)
	wantInt(t, "results of an empty call", len(empty), 0)
}

// A requeue clears worker_id and execution_ref; a terminal write keeps worker_id.
func settleRetryClearsOwner(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("settle.owner", execution("cloudrun", ""), retries(2)))
	setRef(t, b, rec.ID, newRef("cloudrun"))
	run := claimByID(t, b, rec.ID, workerA)
	if run.ExecutionRef == "" {
		t.Fatal("claimed record lost its execution_ref")
	}
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusPending, Error: "boom"})
	wantString(t, "worker_id after retry", got.WorkerID, "")
	wantString(t, "execution_ref after retry", got.ExecutionRef, "")
	wantZeroTime(t, "started_at after retry", got.StartedAt)
}

// ListStale: null heartbeats first, then oldest heartbeat; bounded by limit.
func listStaleOrder(t *testing.T, b driver.Backend) {
	a := running(t, b, item("stale.a"))
	c := running(t, b, item("stale.c"))
	n := running(t, b, item("stale.null"))
	wantNoErr(t, "NullHeartbeats", b.NullHeartbeats(t.Context(), []queuestype.Fence{{ID: n.ID, RetryCount: 0}}))
	// a's heartbeat is refreshed after c's claim: c is the older one.
	waitClockPast(c.HeartbeatAt)
	_, err := b.TouchHeartbeats(t.Context(), []driver.HeartbeatTouch{{ID: a.ID, ExpectedRetryCount: ptr(0)}})
	wantNoErr(t, "TouchHeartbeats", err)
	all, err := b.ListStale(t.Context(), -1, 10)
	wantNoErr(t, "ListStale(all)", err)
	wantIDs(t, "ListStale order", all, n.ID, c.ID, a.ID)
	for _, r := range all {
		wantStored(t, b, "listed stale record", r)
	}
	two, err := b.ListStale(t.Context(), -1, 2)
	wantNoErr(t, "ListStale(limit 2)", err)
	wantIDs(t, "ListStale(limit 2)", two, n.ID, c.ID)
}

func listStaleSkips(t *testing.T, b driver.Backend) {
	fresh := running(t, b, item("stale.fresh"))
	old := running(t, b, item("stale.old"))
	wantNoErr(t, "NullHeartbeats", b.NullHeartbeats(t.Context(), []queuestype.Fence{{ID: old.ID, RetryCount: 0}}))
	enqueue(t, b, item("stale.pending"), item("stale.scheduled", scheduledAt(at(time.Hour))))
	completed(t, b, item("stale.done"))
	got, err := b.ListStale(t.Context(), time.Hour, 10)
	wantNoErr(t, "ListStale(1h)", err)
	wantIDs(t, "ListStale(1h)", got, old.ID)
	got, err = b.ListStale(t.Context(), -1, 10)
	wantNoErr(t, "ListStale(all)", err)
	wantIDSet(t, "ListStale(all)", idsOf(got), old.ID, fresh.ID)
	none, err := b.ListStale(t.Context(), -1, 0)
	wantNoErr(t, "ListStale(limit 0)", err)
	wantInt(t, "ListStale(limit 0)", len(none), 0)
}

// The typed policy is stored as given and read back by every read path,
// unchanged by claims and settles; it never shows in metadata.
func policyRoundTrip(t *testing.T, b driver.Backend) {
	requeue := false
	pol := queuestype.Policy{
		Timeout:           1500 * time.Millisecond,
		RetryBackoff:      queuestype.RetryBackoff{InitialDelay: time.Second, Multiplier: 2, MaxDelay: time.Minute},
		NoStaleRequeue:    true,
		RequeueOnShutdown: &requeue,
		LogLevel:          "warning",
		LogSuccess:        true,
		Description:       "sends the email",
		CorrelationID:     "req-42",
		UniqueBy:          "arguments",
		UniqueVersion:     "v1",
		UniqueUntil:       "terminal",
	}
	p := item("policy.rt", retries(1), key(newKey("arguments")), metadata(map[string]any{"tenant": "t1"}))
	p.Policy = pol
	rec := enqueueOne(t, b, p)
	wantPolicy := func(what string, got *queuestype.Record) {
		t.Helper()
		gj, _ := json.Marshal(got.Policy)
		wj, _ := json.Marshal(pol)
		if string(gj) != string(wj) {
			t.Fatalf("%s: policy %s, want %s", what, gj, wj)
		}
		if len(got.Metadata) != 1 || got.Metadata["tenant"] != "t1" {
			t.Fatalf("%s: metadata %v, want only the caller's {tenant: t1}", what, got.Metadata)
		}
	}
	wantPolicy("Enqueue", rec)
	wantPolicy("GetTask", get(t, b, rec.ID))
	byKey, err := b.GetTaskByKey(t.Context(), p.Key)
	wantNoErr(t, "GetTaskByKey", err)
	wantPolicy("GetTaskByKey", byKey)
	wantPolicy("ListPending", listPending(t, b)[0])
	claimed := claimMany(t, b, driver.ClaimParams{Limit: 1, WorkerID: workerA})
	wantIDs(t, "claimed", claimed.Claimed, rec.ID)
	wantPolicy("ClaimMany", claimed.Claimed[0])
	retried := settled(t, b, driver.Transition{ID: rec.ID, Generation: 0, To: queuestype.StatusPending, Error: "x"})
	wantPolicy("Settle(retry)", retried)
	run := claimByID(t, b, rec.ID, workerA)
	wantPolicy("ClaimByID", run)
	done := settled(t, b, driver.Transition{ID: rec.ID, Generation: 1, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)})
	wantPolicy("Settle(completed)", done)

	plain := enqueueOne(t, b, item("policy.zero"))
	if !get(t, b, plain.ID).Policy.IsZero() {
		t.Fatalf("a record enqueued without policy reads back %+v", get(t, b, plain.ID).Policy)
	}
}

// waitClockPast returns once the local clock is a few milliseconds past ts,
// so the next store timestamp is strictly later than ts.
func waitClockPast(ts time.Time) {
	for time.Now().Before(ts.Add(3 * time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
}
