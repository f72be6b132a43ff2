package backendtest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// testSettling covers Complete, Fail, Cancel, CancelMatching and Interrupt
// (SPEC §20.24–26, §20.63, §20.65, §3.1–3.3).
func testSettling(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"CompleteSettles", completeSettles},
		{"CompleteFences", completeFences},
		{"CompleteWithClaimedMatchesStored", completeWithClaimed},
		{"CompleteNoRecordStillFenced", completeNoRecord},
		{"FailRetryRequeues", failRetryRequeues},
		{"FailRetryDelaySchedules", failRetryDelaySchedules},
		{"FailWithoutBudgetKeepsWorker", failWithoutBudget},
		{"FailRetryFalseFailsWithBudget", failRetryFalse},
		{"FailFences", failFences},
		{"RequeueClearsOwnerTerminalKeepsIt", requeueClearsOwner},
		{"CancelRunningFences", cancelRunningFences},
		{"CancelPendingAndScheduled", cancelPendingAndScheduled},
		{"CancelMatching", cancelMatching},
		{"CancelMatchingQueueAndTask", cancelMatchingQueueAndTask},
		{"CancelMatchingValueEquality", cancelMatchingValueEquality},
		{"InterruptFencesAndEffects", interruptFencesAndEffects},
		{"InterruptionsAccumulate", interruptionsAccumulate},
		{"InterruptionSpendsNoStaleBudget", interruptionSpendsNoStaleBudget},
		{"InterruptionSpendsNoFailBudget", interruptionSpendsNoFailBudget},
		{"InterruptionBackoffUsesAttemptsConsumed", interruptionBackoff},
	})
}

// SPEC §3.1 (Complete row): Complete sets completed_at and result, clears
// heartbeat_at and a previous attempt's error, keeps worker_id.
func completeSettles(t *testing.T, b driver.Backend) {
	first := running(t, b, item("complete.me", retries(2)))
	retried := failRetry(t, b, first, "first attempt failed")
	run := claimByID(t, b, retried.ID, workerB)
	wantString(t, "error carried into the retry", run.Error, "first attempt failed")
	before := time.Now()
	got, err := b.Complete(t.Context(), driver.CompleteParams{ID: run.ID, ExpectedRetryCount: 1, Result: json.RawMessage(`{"rows":42,"ok":true}`)})
	after := time.Now()
	wantNoErr(t, "Complete", err)
	wantStatus(t, "completed", got, queues.StatusCompleted)
	wantJSON(t, "result", got.Result, json.RawMessage(`{"ok":true,"rows":42}`))
	wantString(t, "error", got.Error, "")
	wantString(t, "worker_id", got.WorkerID, workerB)
	wantBetween(t, "completed_at", got.CompletedAt, before, after)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantNear(t, "started_at kept", got.StartedAt, run.StartedAt, 0)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantStored(t, b, "completed record", got)
}

// CompleteParams.Claimed lets a backend build the returned record from the
// claimed one: it must still equal the stored record, including metadata a
// heartbeat patched and the worker while the record ran.
func completeWithClaimed(t *testing.T, b driver.Backend) {
	run := running(t, b, item("complete.claimed", retries(1)))
	gen := run.RetryCount
	hb, err := b.TouchHeartbeats(t.Context(), []driver.HeartbeatTouch{{ID: run.ID, ExpectedRetryCount: &gen,
		MetadataPatch: map[string]any{"progress": 0.5}}})
	wantNoErr(t, "TouchHeartbeats", err)
	wantInt(t, "touched", len(hb.Touched), 1)
	claimed := run.Clone()
	got, err := b.Complete(t.Context(), driver.CompleteParams{ID: run.ID, ExpectedRetryCount: gen,
		Result: json.RawMessage(`{"n":1}`), Claimed: run})
	wantNoErr(t, "Complete", err)
	wantStatus(t, "completed", got, queues.StatusCompleted)
	wantJSON(t, "result", got.Result, json.RawMessage(`{"n":1}`))
	if got.Metadata["progress"] != 0.5 {
		t.Errorf("metadata patched while running: got %v, want progress 0.5", got.Metadata)
	}
	wantStored(t, b, "completed record", got)
	wantSameRecord(t, "Claimed left unmodified", run, claimed)

	_, err = b.Complete(t.Context(), driver.CompleteParams{ID: run.ID, ExpectedRetryCount: gen, Claimed: run})
	wantFenceLost(t, "second Complete with Claimed", err)
}

// CompleteParams.NoRecord may drop the returned record, never the write or
// its fence.
func completeNoRecord(t *testing.T, b driver.Backend) {
	run := running(t, b, item("complete.bare"))
	got, err := b.Complete(t.Context(), driver.CompleteParams{ID: run.ID, ExpectedRetryCount: run.RetryCount,
		Result: json.RawMessage(`{"bare":true}`), Claimed: run, NoRecord: true})
	wantNoErr(t, "Complete(NoRecord)", err)
	if got != nil {
		wantStored(t, b, "returned record", got)
	}
	stored := get(t, b, run.ID)
	wantStatus(t, "stored", stored, queues.StatusCompleted)
	wantJSON(t, "stored result", stored.Result, json.RawMessage(`{"bare":true}`))
	wantZeroTime(t, "heartbeat_at", stored.HeartbeatAt)

	_, err = b.Complete(t.Context(), driver.CompleteParams{ID: run.ID, ExpectedRetryCount: run.RetryCount, NoRecord: true})
	wantFenceLost(t, "second Complete(NoRecord)", err)
	_, err = b.Complete(t.Context(), driver.CompleteParams{ID: uuid.New(), NoRecord: true})
	wantFenceLostOrNotFound(t, "Complete(NoRecord, missing)", err)
}

// SPEC §3.2: Complete is fenced on status=running and the generation.
func completeFences(t *testing.T, b driver.Backend) {
	pending := enqueueOne(t, b, item("complete.pending"))
	_, err := b.Complete(t.Context(), driver.CompleteParams{ID: pending.ID, ExpectedRetryCount: 0, Result: json.RawMessage(`1`)})
	wantFenceLost(t, "Complete(pending)", err)
	wantStatus(t, "pending record", get(t, b, pending.ID), queues.StatusPending)

	run := running(t, b, item("complete.run"))
	_, err = b.Complete(t.Context(), driver.CompleteParams{ID: run.ID, ExpectedRetryCount: 1, Result: json.RawMessage(`1`)})
	wantFenceLost(t, "Complete(wrong generation)", err)
	wantStatus(t, "running record", get(t, b, run.ID), queues.StatusRunning)
	complete(t, b, run)
	_, err = b.Complete(t.Context(), driver.CompleteParams{ID: run.ID, ExpectedRetryCount: 0, Result: json.RawMessage(`2`)})
	wantFenceLost(t, "second Complete", err)
	wantJSON(t, "result after a lost complete", get(t, b, run.ID).Result, json.RawMessage(`{"ok":true}`))

	_, err = b.Complete(t.Context(), driver.CompleteParams{ID: uuid.New(), ExpectedRetryCount: 0})
	wantFenceLostOrNotFound(t, "Complete(missing)", err)
}

// SPEC §3.1 (Fail(Retry) row): a retry without delay → pending, retry_count+1,
// scheduled_at null, queued_at refreshed, owner fields cleared, error kept.
func failRetryRequeues(t *testing.T, b driver.Backend) {
	run := running(t, b, item("fail.retry", retries(2), priority(4)))
	before := time.Now()
	got, err := b.Fail(t.Context(), driver.FailParams{ID: run.ID, Error: "boom", Retry: true, ExpectedRetryCount: 0})
	after := time.Now()
	wantNoErr(t, "Fail(retry)", err)
	wantStatus(t, "retried", got, queues.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantString(t, "error", got.Error, "boom")
	wantZeroTime(t, "scheduled_at", got.ScheduledAt)
	wantBetween(t, "queued_at", got.QueuedAt, before, after)
	wantNotBefore(t, "queued_at", got.QueuedAt, run.QueuedAt)
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

// SPEC §3.1, §6.1 (RetryDelay): a retry with a delay → scheduled, scheduled_at
// = backend now + delay; it is not claimable before then.
func failRetryDelaySchedules(t *testing.T, b driver.Backend) {
	run := running(t, b, item("fail.delay", retries(1)))
	const delay = 10 * time.Minute
	before := time.Now()
	got, err := b.Fail(t.Context(), driver.FailParams{ID: run.ID, Error: "later", Retry: true, ExpectedRetryCount: 0, RetryDelay: delay})
	after := time.Now()
	wantNoErr(t, "Fail(retry, delay)", err)
	wantStatus(t, "delayed retry", got, queues.StatusScheduled)
	wantBetween(t, "scheduled_at", got.ScheduledAt, before.Add(delay), after.Add(delay))
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantString(t, "worker_id", got.WorkerID, "")
	wantStored(t, b, "delayed retry", got)
	res := claimMany(t, b, driver.ClaimParams{Limit: 5, WorkerID: workerA, ExpireOverdue: true})
	wantInt(t, "claimed before the delay", len(res.Claimed), 0)
	if containsID(listPending(t, b), run.ID) {
		t.Fatal("ListPending lists a delayed retry")
	}
	byID, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: run.ID, WorkerID: workerA})
	wantNothingClaimed(t, "ClaimByID(delayed retry)", byID, err)
}

// SPEC §3.1 (Fail without budget), §2.1 (worker_id kept on terminal writes).
func failWithoutBudget(t *testing.T, b driver.Backend) {
	run := running(t, b, item("fail.final"))
	before := time.Now()
	got, err := b.Fail(t.Context(), driver.FailParams{ID: run.ID, Error: "fatal", Retry: true, ExpectedRetryCount: 0, RetryDelay: time.Hour})
	after := time.Now()
	wantNoErr(t, "Fail(no budget)", err)
	wantStatus(t, "failed", got, queues.StatusFailed)
	wantString(t, "error", got.Error, "fatal")
	wantString(t, "worker_id", got.WorkerID, workerA)
	wantBetween(t, "completed_at", got.CompletedAt, before, after)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantInt(t, "retry_count", got.RetryCount, 0)
	wantStored(t, b, "failed record", got)
}

// SPEC §3.1: Fail with Retry=false fails terminally whatever budget remains.
func failRetryFalse(t *testing.T, b driver.Backend) {
	run := running(t, b, item("fail.nonretryable", retries(5)))
	got, err := b.Fail(t.Context(), driver.FailParams{ID: run.ID, Error: "decode arguments: bad", Retry: false, ExpectedRetryCount: 0})
	wantNoErr(t, "Fail(Retry=false)", err)
	wantStatus(t, "failed", got, queues.StatusFailed)
	wantInt(t, "retry_count", got.RetryCount, 0)
	wantString(t, "error", got.Error, "decode arguments: bad")
}

// SPEC §3.2: Fail is fenced on status=running and the generation.
func failFences(t *testing.T, b driver.Backend) {
	pending := enqueueOne(t, b, item("fail.pending", retries(1)))
	_, err := b.Fail(t.Context(), driver.FailParams{ID: pending.ID, Error: "x", Retry: true, ExpectedRetryCount: 0})
	wantFenceLost(t, "Fail(pending)", err)
	wantInt(t, "retry_count after a lost fail", get(t, b, pending.ID).RetryCount, 0)

	run := running(t, b, item("fail.run", retries(1)))
	_, err = b.Fail(t.Context(), driver.FailParams{ID: run.ID, Error: "x", Retry: true, ExpectedRetryCount: 3})
	wantFenceLost(t, "Fail(wrong generation)", err)
	got := get(t, b, run.ID)
	wantStatus(t, "record after a lost fail", got, queues.StatusRunning)
	wantString(t, "error after a lost fail", got.Error, "")
	complete(t, b, run)
	_, err = b.Fail(t.Context(), driver.FailParams{ID: run.ID, Error: "late", Retry: false, ExpectedRetryCount: 0})
	wantFenceLost(t, "Fail(completed)", err)
	wantStatus(t, "completed record", get(t, b, run.ID), queues.StatusCompleted)
	_, err = b.Fail(t.Context(), driver.FailParams{ID: uuid.New(), Error: "x", ExpectedRetryCount: 0})
	wantFenceLostOrNotFound(t, "Fail(missing)", err)
}

// SPEC §20.24, §3.2: a retry (Fail with budget) and a stale requeue clear
// worker_id and execution_ref; a terminal Fail/Complete keeps worker_id.
func requeueClearsOwner(t *testing.T, b driver.Backend) {
	withRef := func(name string, n int) *queues.Record {
		rec := enqueueOne(t, b, item(name, execution("cloudrun", ""), retries(n)))
		setRef(t, b, rec.ID, newRef("cloudrun"))
		run := claimByID(t, b, rec.ID, workerA)
		if run.ExecutionRef == "" {
			t.Fatal("claimed record lost its execution_ref")
		}
		return run
	}
	retry := failRetry(t, b, withRef("owner.retry", 2), "boom")
	wantStatus(t, "retried", retry, queues.StatusPending)
	wantString(t, "worker_id after retry", retry.WorkerID, "")
	wantString(t, "execution_ref after retry", retry.ExecutionRef, "")

	stale := withRef("owner.stale", 2)
	res := recoverAll(t, b, 10)
	wantInt(t, "requeued", res.Requeued, 1)
	got := get(t, b, stale.ID)
	wantStatus(t, "stale requeued", got, queues.StatusPending)
	wantString(t, "worker_id after stale requeue", got.WorkerID, "")
	wantString(t, "execution_ref after stale requeue", got.ExecutionRef, "")
	wantZeroTime(t, "started_at after stale requeue", got.StartedAt)

	final := withRef("owner.final", 0)
	failed, err := b.Fail(t.Context(), driver.FailParams{ID: final.ID, Error: "fatal", Retry: true, ExpectedRetryCount: 0})
	wantNoErr(t, "Fail(terminal)", err)
	wantStatus(t, "failed", failed, queues.StatusFailed)
	wantString(t, "worker_id after terminal fail", failed.WorkerID, workerA)

	done := complete(t, b, withRef("owner.complete", 0))
	wantString(t, "worker_id after complete", done.WorkerID, workerA)
}

// SPEC §20.25 (backend level), §3.1: Cancel(IncludeRunning, wrong generation)
// → ErrFenceLost, still running; right → cancelled; repeat → ErrFenceLost.
func cancelRunningFences(t *testing.T, b driver.Backend) {
	run := running(t, b, item("cancel.running", retries(3)))
	_, err := b.Cancel(t.Context(), driver.CancelParams{ID: run.ID, IncludeRunning: true, ExpectedRetryCount: ptr(1)})
	wantFenceLost(t, "Cancel(running, wrong generation)", err)
	wantStatus(t, "record after a lost cancel", get(t, b, run.ID), queues.StatusRunning)
	_, err = b.Cancel(t.Context(), driver.CancelParams{ID: run.ID})
	wantFenceLost(t, "Cancel(running, without IncludeRunning)", err)
	wantStatus(t, "record after a lost cancel", get(t, b, run.ID), queues.StatusRunning)

	before := time.Now()
	got, err := b.Cancel(t.Context(), driver.CancelParams{ID: run.ID, IncludeRunning: true, ExpectedRetryCount: ptr(0)})
	after := time.Now()
	wantNoErr(t, "Cancel(running, right generation)", err)
	wantStatus(t, "cancelled", got, queues.StatusCancelled)
	wantString(t, "worker_id kept for the control hint", got.WorkerID, workerA)
	wantBetween(t, "completed_at", got.CompletedAt, before, after)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantStored(t, b, "cancelled record", got)

	_, err = b.Cancel(t.Context(), driver.CancelParams{ID: run.ID, IncludeRunning: true})
	wantFenceLost(t, "repeated Cancel", err)
	_, err = b.Complete(t.Context(), driver.CompleteParams{ID: run.ID, ExpectedRetryCount: 0, Result: json.RawMessage(`1`)})
	wantFenceLost(t, "Complete after cancel", err)
	_, err = b.Fail(t.Context(), driver.FailParams{ID: run.ID, Error: "x", Retry: true, ExpectedRetryCount: 0})
	wantFenceLost(t, "Fail after cancel", err)
	wantStatus(t, "record after late settles", get(t, b, run.ID), queues.StatusCancelled)
}

// SPEC §3.1 (Cancel row): pending and scheduled records cancel, with an
// optional generation fence; terminal or missing records do not.
func cancelPendingAndScheduled(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("cancel.pending"), item("cancel.scheduled", scheduledAt(at(time.Hour))))
	_, err := b.Cancel(t.Context(), driver.CancelParams{ID: recs[0].ID, ExpectedRetryCount: ptr(2)})
	wantFenceLost(t, "Cancel(pending, wrong generation)", err)
	wantStatus(t, "record after a lost cancel", get(t, b, recs[0].ID), queues.StatusPending)
	before := time.Now()
	got, err := b.Cancel(t.Context(), driver.CancelParams{ID: recs[0].ID, ExpectedRetryCount: ptr(0)})
	after := time.Now()
	wantNoErr(t, "Cancel(pending)", err)
	wantStatus(t, "cancelled pending", got, queues.StatusCancelled)
	wantBetween(t, "completed_at", got.CompletedAt, before, after)
	wantStored(t, b, "cancelled pending", got)
	sched, err := b.Cancel(t.Context(), driver.CancelParams{ID: recs[1].ID})
	wantNoErr(t, "Cancel(scheduled)", err)
	wantStatus(t, "cancelled scheduled", sched, queues.StatusCancelled)
	_, err = b.Cancel(t.Context(), driver.CancelParams{ID: recs[1].ID})
	wantFenceLost(t, "Cancel(cancelled)", err)

	done := completed(t, b, item("cancel.done"))
	_, err = b.Cancel(t.Context(), driver.CancelParams{ID: done.ID, IncludeRunning: true})
	wantFenceLost(t, "Cancel(completed)", err)
	wantStatus(t, "completed record", get(t, b, done.ID), queues.StatusCompleted)
	_, err = b.Cancel(t.Context(), driver.CancelParams{ID: uuid.New()})
	wantFenceLostOrNotFound(t, "Cancel(missing)", err)
}

// SPEC §20.26 (backend level), §4.14: CancelMatching matches task name + args
// subset + metadata subset; without IncludeRunning it skips running records;
// with it cancels them; non-matching records stay; records holding a ref are skipped.
func cancelMatching(t *testing.T, b driver.Backend) {
	args := argsJSON(`{"to":"a@example.com","lang":"en"}`)
	md := metadata(map[string]any{"tenant": "t1", "source": "api"})
	recs := enqueue(t, b,
		item("email.send", args, md), // 0 match
		item("email.send", argsJSON(`{"to":"b@example.com","lang":"en"}`), md), // 1 other args
		item("email.send", args, metadata(map[string]any{"tenant": "t2"})),     // 2 other metadata
		item("sms.send", args, md),                               // 3 other task
		item("email.send", args, md),                             // 4 running
		item("email.send", args, md, execution("cloudrun", "")),  // 5 holds a ref
		item("email.send", args, md, scheduledAt(at(time.Hour))), // 6 scheduled match
		item("email.send", args, md),                             // 7 completed
		item("email.send", argsJSON(`{"lang":"en"}`), md),        // 8 lacks the args key
	)
	claimByID(t, b, recs[4].ID, workerB)
	setRef(t, b, recs[5].ID, newRef("cloudrun"))
	complete(t, b, claimByID(t, b, recs[7].ID, workerA))

	filter := queues.CancelFilter{
		TaskName: "email.send",
		Args:     map[string]any{"to": "a@example.com"},
		Metadata: map[string]any{"tenant": "t1"},
	}
	got, err := b.CancelMatching(t.Context(), filter)
	wantNoErr(t, "CancelMatching", err)
	wantIDSet(t, "cancelled", idsOf(got), recs[0].ID, recs[6].ID)
	for _, r := range got {
		wantStatus(t, "returned record", r, queues.StatusCancelled)
		wantStored(t, b, "cancelled record", r)
	}
	for _, i := range []int{1, 2, 3, 8} {
		wantStatus(t, recs[i].TaskName+" non-matching", get(t, b, recs[i].ID), recs[i].Status)
	}
	wantStatus(t, "running match without IncludeRunning", get(t, b, recs[4].ID), queues.StatusRunning)
	wantStatus(t, "match holding a ref", get(t, b, recs[5].ID), queues.StatusPending)
	wantStatus(t, "completed match", get(t, b, recs[7].ID), queues.StatusCompleted)

	filter.IncludeRunning = true
	got, err = b.CancelMatching(t.Context(), filter)
	wantNoErr(t, "CancelMatching(IncludeRunning)", err)
	wantIDs(t, "cancelled with IncludeRunning", got, recs[4].ID)
	wantStatus(t, "running match", got[0], queues.StatusCancelled)
	wantString(t, "running match worker_id", got[0].WorkerID, workerB)
	wantStatus(t, "match holding a ref", get(t, b, recs[5].ID), queues.StatusPending)

	got, err = b.CancelMatching(t.Context(), filter)
	wantNoErr(t, "repeated CancelMatching", err)
	wantInt(t, "cancelled by a repeat", len(got), 0)
}

// SPEC §4.14 (CancelFilter): Queue and TaskName filters alone.
func cancelMatchingQueueAndTask(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b,
		item("report", inQueue("a")), item("report", inQueue("b")), item("other", inQueue("a")), item("report", inQueue("a")),
	)
	got, err := b.CancelMatching(t.Context(), queues.CancelFilter{TaskName: "report", Queue: "a"})
	wantNoErr(t, "CancelMatching(task+queue)", err)
	wantIDSet(t, "cancelled", idsOf(got), recs[0].ID, recs[3].ID)
	got, err = b.CancelMatching(t.Context(), queues.CancelFilter{Queue: "a"})
	wantNoErr(t, "CancelMatching(queue)", err)
	wantIDSet(t, "cancelled by queue", idsOf(got), recs[2].ID)
	wantStatus(t, "queue b record", get(t, b, recs[1].ID), queues.StatusPending)
}

// SPEC §4.14: args/metadata filters match by top-level key equality of JSON values.
func cancelMatchingValueEquality(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("values", argsJSON(`{"n":1,"flag":true,"obj":{"a":1,"b":2},"list":[1,2]}`),
		metadata(map[string]any{"count": 3, "tags": []any{"x"}})))
	for _, c := range []struct {
		name string
		f    queues.CancelFilter
	}{
		{"number as string", queues.CancelFilter{TaskName: "values", Args: map[string]any{"n": "1"}}},
		{"other number", queues.CancelFilter{TaskName: "values", Args: map[string]any{"n": 2}}},
		{"bool mismatch", queues.CancelFilter{TaskName: "values", Args: map[string]any{"flag": false}}},
		{"nested subset is not equality", queues.CancelFilter{TaskName: "values", Args: map[string]any{"obj": map[string]any{"a": 1}}}},
		{"list prefix is not equality", queues.CancelFilter{TaskName: "values", Args: map[string]any{"list": []any{1}}}},
		{"missing key", queues.CancelFilter{TaskName: "values", Args: map[string]any{"zzz": 1}}},
		{"metadata mismatch", queues.CancelFilter{TaskName: "values", Metadata: map[string]any{"count": 4}}},
	} {
		got, err := b.CancelMatching(t.Context(), c.f)
		wantNoErr(t, "CancelMatching("+c.name+")", err)
		if len(got) != 0 {
			t.Fatalf("CancelMatching(%s) cancelled %v; want nothing", c.name, idsOf(got))
		}
	}
	wantStatus(t, "record after non-matching filters", get(t, b, rec.ID), queues.StatusPending)
	got, err := b.CancelMatching(t.Context(), queues.CancelFilter{
		TaskName: "values",
		Args:     map[string]any{"n": 1, "flag": true, "obj": map[string]any{"b": 2, "a": 1}, "list": []any{1, 2}},
		Metadata: map[string]any{"count": 3.0, "tags": []any{"x"}},
	})
	wantNoErr(t, "CancelMatching(equal values)", err)
	wantIDs(t, "cancelled by equal values", got, rec.ID)
}

// SPEC §20.63, §3.1 (Interrupt row): Interrupt with a wrong owner or a wrong
// generation → ErrFenceLost; right → pending, retry_count+1, interruptions=1;
// the old generation can no longer complete; priority kept;
// scheduled/started/heartbeat/completed/ref/worker cleared; claimable again.
func interruptFencesAndEffects(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("interrupt.me", priority(7), retries(0), scheduledAt(at(-time.Minute)),
		metadata(map[string]any{"keep": "me"})))
	setRef(t, b, rec.ID, newRef("local"))
	run := claimByID(t, b, rec.ID, workerA)
	if run.ScheduledAt.IsZero() || run.ExecutionRef == "" {
		t.Fatalf("set-up: running record lacks scheduled_at or ref: %+v", run)
	}

	_, err := b.Interrupt(t.Context(), driver.InterruptParams{ID: rec.ID, ExpectedRetryCount: 0, WorkerID: workerB})
	wantFenceLost(t, "Interrupt(wrong owner)", err)
	_, err = b.Interrupt(t.Context(), driver.InterruptParams{ID: rec.ID, ExpectedRetryCount: 1, WorkerID: workerA})
	wantFenceLost(t, "Interrupt(wrong generation)", err)
	still := get(t, b, rec.ID)
	wantStatus(t, "record after lost interrupts", still, queues.StatusRunning)
	wantInt(t, "retry_count after lost interrupts", still.RetryCount, 0)

	before := time.Now()
	got, err := b.Interrupt(t.Context(), driver.InterruptParams{ID: rec.ID, ExpectedRetryCount: 0, WorkerID: workerA})
	after := time.Now()
	wantNoErr(t, "Interrupt", err)
	wantStatus(t, "interrupted", got, queues.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantInt(t, "interruptions", got.Interruptions, 1)
	wantInt(t, "attempts consumed", got.AttemptsConsumed(), 0)
	wantInt(t, "priority", got.Priority, 7)
	wantZeroTime(t, "scheduled_at", got.ScheduledAt)
	wantZeroTime(t, "started_at", got.StartedAt)
	wantZeroTime(t, "heartbeat_at", got.HeartbeatAt)
	wantZeroTime(t, "completed_at", got.CompletedAt)
	wantString(t, "execution_ref", got.ExecutionRef, "")
	wantString(t, "worker_id", got.WorkerID, "")
	wantBetween(t, "queued_at", got.QueuedAt, before, after)
	wantNotBefore(t, "queued_at", got.QueuedAt, run.QueuedAt)
	if got.Metadata["keep"] != "me" {
		t.Fatalf("metadata after interrupt = %v, want user keys kept", got.Metadata)
	}
	wantStored(t, b, "interrupted record", got)

	_, err = b.Complete(t.Context(), driver.CompleteParams{ID: rec.ID, ExpectedRetryCount: 0, Result: json.RawMessage(`1`)})
	wantFenceLost(t, "Complete(old generation)", err)
	_, err = b.Interrupt(t.Context(), driver.InterruptParams{ID: rec.ID, ExpectedRetryCount: 0, WorkerID: workerA})
	wantFenceLost(t, "repeated Interrupt", err)
	_, err = b.Interrupt(t.Context(), driver.InterruptParams{ID: rec.ID, ExpectedRetryCount: 1, WorkerID: ""})
	wantFenceLost(t, "Interrupt(pending)", err)

	res := claimMany(t, b, driver.ClaimParams{Limit: 1, WorkerID: workerB})
	wantIDs(t, "claim after interrupt", res.Claimed, rec.ID)
	wantInt(t, "claimed generation", res.Claimed[0].RetryCount, 1)
	complete(t, b, res.Claimed[0])
}

// SPEC §3.1, §5.12: every interruption adds one to metadata.interruptions.
func interruptionsAccumulate(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("interrupt.twice", metadata(map[string]any{"tenant": "t1"})))
	for i := 1; i <= 2; i++ {
		run := claimByID(t, b, rec.ID, workerA)
		got, err := b.Interrupt(t.Context(), driver.InterruptParams{ID: rec.ID, ExpectedRetryCount: run.RetryCount, WorkerID: workerA})
		wantNoErr(t, "Interrupt", err)
		wantInt(t, "retry_count", got.RetryCount, i)
		wantInt(t, "interruptions", got.Interruptions, i)
		wantInt(t, "attempts consumed", got.AttemptsConsumed(), 0)
		wantJSON(t, "metadata tenant", got.Metadata["tenant"], "t1")
	}
}

// interruptedThenClaimed returns the running second generation of a record
// whose first attempt was interrupted.
func interruptedThenClaimed(t *testing.T, b driver.Backend, p driver.EnqueueParams) *queues.Record {
	t.Helper()
	run := running(t, b, p)
	_, err := b.Interrupt(t.Context(), driver.InterruptParams{ID: run.ID, ExpectedRetryCount: 0, WorkerID: workerA})
	wantNoErr(t, "Interrupt", err)
	again := claimByID(t, b, run.ID, workerB)
	wantInt(t, "generation after interrupt", again.RetryCount, 1)
	wantInt(t, "attempts consumed after interrupt", again.AttemptsConsumed(), 0)
	return again
}

// SPEC §20.65, §3.3: an interruption spends no budget: after Interrupt, stale
// recovery with max_retries=1 still requeues.
func interruptionSpendsNoStaleBudget(t *testing.T, b driver.Backend) {
	run := interruptedThenClaimed(t, b, item("interrupt.stale", retries(1)))
	res := recoverAll(t, b, 10)
	wantInt(t, "requeued", res.Requeued, 1)
	wantInt(t, "failed", len(res.Failed), 0)
	got := get(t, b, run.ID)
	wantStatus(t, "stale requeued", got, queues.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 2)
	wantInt(t, "attempts consumed", got.AttemptsConsumed(), 1)
	// The budget is now spent: the next stale recovery fails it.
	claimByID(t, b, run.ID, workerA)
	res = recoverAll(t, b, 10)
	wantInt(t, "requeued with budget spent", res.Requeued, 0)
	wantIDs(t, "failed with budget spent", res.Failed, run.ID)
}

// SPEC §20.65, §3.3: after an interruption, Fail with Retry still retries.
func interruptionSpendsNoFailBudget(t *testing.T, b driver.Backend) {
	run := interruptedThenClaimed(t, b, item("interrupt.fail", retries(1)))
	got := failRetry(t, b, run, "boom")
	wantStatus(t, "retried after interrupt", got, queues.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 2)
	wantInt(t, "interruptions kept", got.Interruptions, 1)
	again := claimByID(t, b, run.ID, workerA)
	got = failRetry(t, b, again, "boom again")
	wantStatus(t, "failed with budget spent", got, queues.StatusFailed)
}

// SPEC §20.65, §1.6 (retry delay), §3.3: the delay after an interruption is
// the delay for attempts consumed (not retry_count), for stale recovery and for Fail.
func interruptionBackoff(t *testing.T, b driver.Backend) {
	md := backoffMetadata(600, 2) // 10 min × 2^n
	p := item("interrupt.backoff", retries(3), metadata(md))

	stale := interruptedThenClaimed(t, b, p)
	requeue, handler, delay := driver.StaleRequeueDecision(stale)
	if !requeue || handler || delay != 10*time.Minute {
		t.Fatalf("StaleRequeueDecision(backend record) = %v, %v, %s; want requeue after 10m (metadata %v)", requeue, handler, delay, stale.Metadata)
	}
	before := time.Now()
	res := recoverAll(t, b, 10)
	after := time.Now()
	wantInt(t, "requeued", res.Requeued, 1)
	got := get(t, b, stale.ID)
	wantStatus(t, "stale requeue with backoff", got, queues.StatusScheduled)
	wantBetween(t, "scheduled_at (Delay(attempts consumed = 0))", got.ScheduledAt, before.Add(delay), after.Add(delay))

	failing := interruptedThenClaimed(t, b, p)
	d := queuestype.BackoffFromMetadata(failing.Metadata).Delay(failing.AttemptsConsumed())
	if d != 10*time.Minute {
		t.Fatalf("BackoffFromMetadata(backend record).Delay(attempts consumed) = %s, want 10m", d)
	}
	before = time.Now()
	got, err := b.Fail(t.Context(), driver.FailParams{ID: failing.ID, Error: "boom", Retry: true, ExpectedRetryCount: 1, RetryDelay: d})
	after = time.Now()
	wantNoErr(t, "Fail(retry, delay)", err)
	wantStatus(t, "retry with backoff", got, queues.StatusScheduled)
	wantBetween(t, "scheduled_at", got.ScheduledAt, before.Add(d), after.Add(d))
}
