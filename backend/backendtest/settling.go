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

// testSettling covers cancellation (Cancel, CancelMatching), how requeues and
// terminal writes treat the record's owner, and shutdown interruptions
// applied as transitions. The plain transitions and their fences are in the
// Transitions group; the decisions (budget, backoff) are the engine's and
// are tested beside it.
func testSettling(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"RequeueClearsOwnerTerminalKeepsIt", requeueClearsOwner},
		{"CancelRunningFences", cancelRunningFences},
		{"CancelPendingAndScheduled", cancelPendingAndScheduled},
		{"CancelMatching", cancelMatching},
		{"CancelMatchingQueueAndTask", cancelMatchingQueueAndTask},
		{"CancelMatchingValueEquality", cancelMatchingValueEquality},
		{"InterruptFencesAndEffects", interruptFencesAndEffects},
		{"InterruptionsAccumulate", interruptionsAccumulate},
		{"InterruptionSpendsNoStaleBudget", interruptionSpendsNoStaleBudget},
		{"InterruptionBackoffUsesAttemptsConsumed", interruptionBackoff},
	})
}

// A retry (Fail with budget) and a stale requeue clear
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
	failed, err := settleCall(t, b, driver.Transition{ID: final.ID, Generation: 0, To: queuestype.StatusFailed, Error: "fatal"})
	wantNoErr(t, "Settle(failed)", err)
	wantStatus(t, "failed", failed, queues.StatusFailed)
	wantString(t, "worker_id after terminal fail", failed.WorkerID, workerA)

	done := complete(t, b, withRef("owner.complete", 0))
	wantString(t, "worker_id after complete", done.WorkerID, workerA)
}

// Cancel(IncludeRunning, wrong generation)
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
	_, err = settleCall(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)})
	wantFenceLost(t, "Settle(completed) after cancel", err)
	_, err = settleCall(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusPending, Error: "x"})
	wantFenceLost(t, "Settle(retry) after cancel", err)
	wantStatus(t, "record after late settles", get(t, b, run.ID), queues.StatusCancelled)
}

// Pending and scheduled records cancel, with an
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

// CancelMatching matches task name + args
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

// Queue and TaskName filters alone.
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

// Args/metadata filters match by top-level key equality of JSON values.
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

// Interrupt with a wrong owner or a wrong
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

	_, err := interrupt(t, b, rec.ID, 0, workerB)
	wantFenceLost(t, "Interrupt(wrong owner)", err)
	_, err = interrupt(t, b, rec.ID, 1, workerA)
	wantFenceLost(t, "Interrupt(wrong generation)", err)
	still := get(t, b, rec.ID)
	wantStatus(t, "record after lost interrupts", still, queues.StatusRunning)
	wantInt(t, "retry_count after lost interrupts", still.RetryCount, 0)

	before := time.Now()
	got, err := interrupt(t, b, rec.ID, 0, workerA)
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

	_, err = settleCall(t, b, driver.Transition{ID: rec.ID, Generation: 0, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)})
	wantFenceLost(t, "Settle(completed, old generation)", err)
	_, err = interrupt(t, b, rec.ID, 0, workerA)
	wantFenceLost(t, "repeated Interrupt", err)
	_, err = interrupt(t, b, rec.ID, 1, "")
	wantFenceLost(t, "Interrupt(pending)", err)

	res := claimMany(t, b, driver.ClaimParams{Limit: 1, WorkerID: workerB})
	wantIDs(t, "claim after interrupt", res.Claimed, rec.ID)
	wantInt(t, "claimed generation", res.Claimed[0].RetryCount, 1)
	complete(t, b, res.Claimed[0])
}

// Every interruption adds one to the interruptions counter.
func interruptionsAccumulate(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("interrupt.twice", metadata(map[string]any{"tenant": "t1"})))
	for i := 1; i <= 2; i++ {
		run := claimByID(t, b, rec.ID, workerA)
		got, err := interrupt(t, b, rec.ID, run.RetryCount, workerA)
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
	_, err := interrupt(t, b, run.ID, 0, workerA)
	wantNoErr(t, "Interrupt", err)
	again := claimByID(t, b, run.ID, workerB)
	wantInt(t, "generation after interrupt", again.RetryCount, 1)
	wantInt(t, "attempts consumed after interrupt", again.AttemptsConsumed(), 0)
	return again
}

// An interruption spends no budget: after Interrupt, stale
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

// The delay of a stale requeue after an interruption is the backoff of the
// attempts consumed (not of retry_count): the engine decides it from the
// record the store returns, so the counter must round-trip.
func interruptionBackoff(t *testing.T, b driver.Backend) {
	p := item("interrupt.backoff", retries(3), backoff(10*time.Minute, 2))

	stale := interruptedThenClaimed(t, b, p)
	delay := stale.Policy.RetryBackoff.Delay(stale.AttemptsConsumed())
	if delay != 10*time.Minute {
		t.Fatalf("backoff of the claimed record after an interruption = %s, want 10m (policy %+v)", delay, stale.Policy)
	}
	before := time.Now()
	res := recoverAll(t, b, 10)
	after := time.Now()
	wantInt(t, "requeued", res.Requeued, 1)
	got := get(t, b, stale.ID)
	wantStatus(t, "stale requeue with backoff", got, queues.StatusScheduled)
	wantBetween(t, "scheduled_at (Delay(attempts consumed = 0))", got.ScheduledAt, before.Add(delay), after.Add(delay))
}

// interrupt applies a shutdown interruption of generation gen owned by worker.
func interrupt(t *testing.T, b driver.Backend, id uuid.UUID, gen int, worker string) (*queues.Record, error) {
	t.Helper()
	return settleCall(t, b, driver.Transition{ID: id, Generation: gen, To: queuestype.StatusPending, Interrupted: true, WorkerID: worker})
}
