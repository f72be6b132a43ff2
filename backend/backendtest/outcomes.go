package backendtest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// testHandlerOutcomes covers what the stores write for the handler
// outcomes the engine decides: a snooze (a new generation that counts in
// snooze_count, not in the attempts consumed) and the error history a
// failed or retried attempt carries.
func testHandlerOutcomes(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"SettleSnoozed", settleSnoozed},
		{"SettleErrorHistory", settleErrorHistory},
		{"SettleErrorHistoryCapped", settleErrorHistoryCapped},
	})
}

// Snoozed counts the requeue as a snooze: snooze_count+1, due at store
// now + Delay, and the attempts consumed stay where they were; the
// generation still advances, so the fence of the snoozed attempt is spent.
func settleSnoozed(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("outcome.snooze", retries(1)))
	for i := 1; i <= 3; i++ {
		run := claimByID(t, b, rec.ID, workerA)
		got := settled(t, b, driver.Transition{ID: run.ID, Generation: run.RetryCount, To: queuestype.StatusPending,
			Snoozed: true, Error: run.Error})
		wantStatus(t, "snoozed without a delay", got, queuestype.StatusPending)
		wantInt(t, "retry_count", got.RetryCount, i)
		wantInt(t, "snooze_count", got.SnoozeCount, i)
		wantInt(t, "interruptions", got.Interruptions, 0)
		wantInt(t, "attempts consumed", got.AttemptsConsumed(), 0)
		wantStored(t, b, "snoozed record", got)
	}
	run := claimByID(t, b, rec.ID, workerA)
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: run.RetryCount, To: queuestype.StatusPending, Error: "real failure"})
	wantInt(t, "snooze_count kept by a retry", got.SnoozeCount, 3)
	wantInt(t, "attempts consumed after a retry", got.AttemptsConsumed(), 1)

	// A delayed snooze is due at the store's now + Delay, and the snoozed
	// attempt's fence is spent.
	const delay = 10 * time.Minute
	run = running(t, b, item("outcome.snooze.delay"))
	before := time.Now()
	got = settled(t, b, driver.Transition{ID: run.ID, Generation: 0, To: queuestype.StatusPending, Snoozed: true, Delay: delay})
	after := time.Now()
	wantStatus(t, "snoozed with a delay", got, queuestype.StatusScheduled)
	wantBetween(t, "scheduled_at", got.ScheduledAt, before.Add(delay), after.Add(delay))
	wantInt(t, "snooze_count", got.SnoozeCount, 1)
	wantStored(t, b, "delayed snooze", got)
	wantSettleLost(t, "the snoozed generation's fence", settleOne(t, b, driver.Transition{ID: run.ID,
		Generation: 0, To: queuestype.StatusFailed, Error: "late"}))
}

// A failed or retried write replaces the history with the one it carries,
// in order; a write without one (nil) keeps it, and so does a completion.
func settleErrorHistory(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("outcome.history", retries(5)))
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	var h []queuestype.AttemptError
	for i := 1; i <= 3; i++ {
		run := claimByID(t, b, rec.ID, workerA)
		h = queuestype.AppendAttemptError(h, queuestype.AttemptError{Attempt: run.Attempt(), At: at.Add(time.Duration(i) * time.Second),
			Error: "failure ✓ " + strings.Repeat("x", i), Trace: "goroutine 1 [running]:\n\tmain.go:1", WorkerID: workerA})
		got := settled(t, b, driver.Transition{ID: run.ID, Generation: run.RetryCount, To: queuestype.StatusPending,
			Error: h[len(h)-1].Error, Errors: h})
		wantHistory(t, "retried", got.Errors, h)
		wantStored(t, b, "retried record", got)
	}
	// An interruption carries no history: the stored one stays.
	run := claimByID(t, b, rec.ID, workerA)
	got := settled(t, b, driver.Transition{ID: run.ID, Generation: run.RetryCount, To: queuestype.StatusPending, Interrupted: true})
	wantHistory(t, "interrupted", got.Errors, h)
	// Claims return it, so the engine can extend it.
	run = claimByID(t, b, rec.ID, workerA)
	wantHistory(t, "claimed", run.Errors, h)
	got = settled(t, b, driver.Transition{ID: run.ID, Generation: run.RetryCount, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)})
	wantHistory(t, "completed", got.Errors, h)
	wantStored(t, b, "completed record", got)

	other := running(t, b, item("outcome.history.fail"))
	wantHistory(t, "fresh record", other.Errors, nil)
	last := []queuestype.AttemptError{{Attempt: 1, At: at, Error: "fatal", WorkerID: workerA}}
	got = settled(t, b, driver.Transition{ID: other.ID, Generation: 0, To: queuestype.StatusFailed, Error: "fatal", Errors: last})
	wantHistory(t, "failed", got.Errors, last)
	wantStored(t, b, "failed record", got)
	rb, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rb), `"errors":[{"attempt":1,"at":"2026-03-04T05:06:07.123456Z","error":"fatal","worker":"`+workerA+`"}]`) {
		t.Fatalf("JSON form of the history: %s", rb)
	}
}

// The engine's caps (count and bytes) hold through a store round trip.
func settleErrorHistoryCapped(t *testing.T, b driver.Backend) {
	rec := running(t, b, item("outcome.history.cap", retries(1)))
	var h []queuestype.AttemptError
	big := strings.Repeat("é", queuestype.DefaultLimits().ErrorTextBytes/2)
	for i := 1; i <= queuestype.ErrorHistoryEntries+3; i++ {
		text := "short"
		if i > queuestype.ErrorHistoryEntries-10 {
			text = big
		}
		h = queuestype.AppendAttemptError(h, queuestype.AttemptError{Attempt: i, Error: text})
	}
	if len(h) >= queuestype.ErrorHistoryEntries {
		t.Fatalf("the byte cap kept %d entries", len(h))
	}
	got := settled(t, b, driver.Transition{ID: rec.ID, Generation: 0, To: queuestype.StatusFailed, Error: big, Errors: h})
	wantHistory(t, "capped", got.Errors, h)
	wantStored(t, b, "capped record", got)
}

func wantHistory(t *testing.T, what string, got, want []queuestype.AttemptError) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d history entries, want %d: %+v", what, len(got), len(want), got)
	}
	for i := range want {
		if !sameAttemptError(got[i], want[i]) {
			t.Fatalf("%s: history[%d] = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}
