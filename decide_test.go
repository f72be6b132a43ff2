package queues

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

func TestDecideFailure(t *testing.T) {
	backoff := RetryBackoff{InitialDelay: time.Second, Multiplier: 2}
	cases := []struct {
		name                          string
		maxRetries, retry, interrupts int
		retryable                     bool
		wantTo                        Status
		wantDelay                     time.Duration
	}{
		{"budget left", 2, 0, 0, true, StatusPending, time.Second},
		{"second failure doubles", 2, 1, 0, true, StatusPending, 2 * time.Second},
		{"budget spent", 2, 2, 0, true, StatusFailed, 0},
		{"no budget at all", 0, 0, 0, true, StatusFailed, 0},
		{"non-retryable with budget", 5, 0, 0, false, StatusFailed, 0},
		// Interruptions spend no budget: retry 3 with 2 interruptions has
		// consumed one attempt, so the backoff is the second step.
		{"interruptions spend no budget", 2, 3, 2, true, StatusPending, 2 * time.Second},
	}
	for _, c := range cases {
		rec := &Record{ID: uuid.New(), MaxRetries: c.maxRetries, RetryCount: c.retry, Interruptions: c.interrupts,
			Policy: queuestype.Policy{RetryBackoff: backoff}}
		tr, delay := decideFailure(rec, failure{text: "boom", retryable: c.retryable})
		if tr.To != c.wantTo || delay != c.wantDelay || tr.Delay != c.wantDelay {
			t.Errorf("%s: to %s delay %v (transition %v), want %s %v", c.name, tr.To, delay, tr.Delay, c.wantTo, c.wantDelay)
		}
		if tr.ID != rec.ID || tr.Generation != c.retry || tr.Error != "boom" {
			t.Errorf("%s: transition %+v does not fence the claimed generation", c.name, tr)
		}
	}
}

func TestDecideStale(t *testing.T) {
	rec := &Record{ID: uuid.New(), MaxRetries: 1, RetryCount: 1, Interruptions: 1, Priority: 900,
		Policy: queuestype.Policy{RetryBackoff: FixedBackoff(time.Minute)}}
	tr, handler := decideStale(rec, time.Hour, PriorityCeiling(100), time.Time{})
	if tr.To != StatusPending || handler || tr.Delay != time.Minute || tr.StaleAfter != time.Hour ||
		tr.Priority == nil || *tr.Priority != 100 || tr.Error != driver.StaleError {
		t.Errorf("interrupted record with budget: %+v handler=%v", tr, handler)
	}
	rec.Error = "first failure"
	tr, _ = decideStale(rec, time.Hour, nil, time.Time{})
	if tr.Error != "first failure" {
		t.Errorf("a stale requeue replaced the last error with %q", tr.Error)
	}
	if tr.Priority != nil {
		t.Errorf("no priority mapping: priority %v, want unchanged", *tr.Priority)
	}
	noRequeue := &Record{ID: uuid.New(), MaxRetries: 5, Policy: queuestype.Policy{NoStaleRequeue: true}}
	if tr, handler := decideStale(noRequeue, time.Hour, nil, time.Time{}); tr.To != StatusFailed || !handler {
		t.Errorf("NoStaleRequeue: to %s handler=%v, want failed with the handler", tr.To, handler)
	}
	spent := &Record{ID: uuid.New(), MaxRetries: 0, Error: "earlier"}
	if tr, handler := decideStale(spent, -1, nil, time.Time{}); tr.To != StatusFailed || handler || tr.StaleAfter != -1 || tr.Error != driver.StaleError {
		t.Errorf("no budget: %+v handler=%v, want failed without the handler", tr, handler)
	}
}

func TestDecideInterrupt(t *testing.T) {
	rec := &Record{ID: uuid.New(), MaxRetries: 0, RetryCount: 2, Interruptions: 2}
	tr, exhausted := decideInterrupt(rec, "w1", 3, time.Time{})
	if exhausted || tr.To != StatusPending || !tr.Interrupted || tr.WorkerID != "w1" || tr.Generation != 2 {
		t.Errorf("interruptions left: %+v exhausted=%v", tr, exhausted)
	}
	rec.Interruptions = 3
	tr, exhausted = decideInterrupt(rec, "w1", 3, time.Time{})
	if !exhausted || tr.To != StatusFailed || tr.Interrupted || tr.Error != interruptedText {
		t.Errorf("interruptions used up without budget: %+v exhausted=%v", tr, exhausted)
	}
	rec.MaxRetries = 5
	tr, _ = decideInterrupt(rec, "w1", 3, time.Time{})
	if tr.To != StatusPending || tr.Interrupted || tr.Delay != 0 {
		t.Errorf("interruptions used up with budget: %+v, want a plain retry at once", tr)
	}
}

func TestDecideSnoozeKeepsBudget(t *testing.T) {
	rec := &Record{ID: uuid.New(), MaxRetries: 1, RetryCount: 3, SnoozeCount: 2, Interruptions: 1, Error: "earlier"}
	tr, ok := decideSnooze(rec, time.Minute, 3)
	if !ok || tr.To != StatusPending || !tr.Snoozed || tr.Delay != time.Minute || tr.Generation != 3 ||
		tr.Error != "earlier" || tr.Errors != nil || tr.Interrupted {
		t.Fatalf("snooze under the cap: %+v ok=%v", tr, ok)
	}
	// 3 generations, 1 interruption and 2 snoozes: nothing consumed.
	if rec.AttemptsConsumed() != 0 {
		t.Errorf("attempts consumed %d, want 0", rec.AttemptsConsumed())
	}
	rec.SnoozeCount = 3
	if _, ok := decideSnooze(rec, time.Minute, 3); ok {
		t.Error("a snooze at the cap was allowed")
	}
}

func TestDecideFailureRetryAfterAndRetryDelay(t *testing.T) {
	rec := &Record{ID: uuid.New(), MaxRetries: 3, RetryCount: 1, Policy: queuestype.Policy{RetryBackoff: FixedBackoff(time.Second)}}
	boom := errors.New("boom")
	var gotAttempt int
	perErr := func(attempt int, err error) time.Duration {
		gotAttempt = attempt
		if errors.Is(err, boom) {
			return 7 * time.Second
		}
		return -time.Second
	}
	cases := []struct {
		name string
		f    failure
		want time.Duration
	}{
		{"backoff", failure{text: "x", retryable: true, err: boom}, time.Second},
		{"retry delay per error", failure{text: "x", retryable: true, err: boom, retryDelay: perErr}, 7 * time.Second},
		{"negative retry delay is 0", failure{text: "x", retryable: true, err: errors.New("other"), retryDelay: perErr}, 0},
		{"retry after wins", failure{text: "x", retryable: true, err: RetryAfter(time.Hour, boom), retryDelay: perErr}, time.Hour},
	}
	for _, c := range cases {
		tr, delay := decideFailure(rec, c.f)
		if tr.To != StatusPending || delay != c.want || tr.Delay != c.want {
			t.Errorf("%s: to %s delay %v, want pending %v", c.name, tr.To, delay, c.want)
		}
	}
	if gotAttempt != 2 {
		t.Errorf("RetryDelay got attempt %d, want 2 (the second failure)", gotAttempt)
	}
	rec.RetryCount = 3
	if tr, _ := decideFailure(rec, failure{text: "x", retryable: true, err: RetryAfter(time.Hour, boom)}); tr.To != StatusFailed {
		t.Errorf("retry-after without budget: %s, want failed", tr.To)
	}
	if tr, _ := decideFailure(rec, failure{text: "x", retryable: false, err: RetryAfter(time.Hour, NonRetryable(boom))}); tr.To != StatusFailed {
		t.Errorf("non-retryable retry-after: %s, want failed", tr.To)
	}
}

func TestDecideFailureAppendsHistory(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	old := []AttemptError{{Attempt: 1, Error: "first"}}
	rec := &Record{ID: uuid.New(), MaxRetries: 3, RetryCount: 1, Errors: old}
	tr, _ := decideFailure(rec, failure{text: "second", retryable: true, at: at, workerID: "w1",
		err: &panicError{v: "x", stack: "goroutine 1"}})
	want := []AttemptError{{Attempt: 1, Error: "first"}, {Attempt: 2, At: at, Error: "second", Trace: "goroutine 1", WorkerID: "w1"}}
	if len(tr.Errors) != 2 || tr.Errors[0] != want[0] || tr.Errors[1] != want[1] {
		t.Fatalf("history %+v, want %+v", tr.Errors, want)
	}
	if len(rec.Errors) != 1 {
		t.Error("the claimed record's history was modified")
	}
	st, _ := decideStale(rec, time.Hour, nil, at)
	if n := len(st.Errors); n != 2 || st.Errors[1].Error != driver.StaleError {
		t.Errorf("stale history %+v", st.Errors)
	}
}
