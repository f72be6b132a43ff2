package queues

import (
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
		tr, delay := decideFailure(rec, "boom", c.retryable)
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
	tr, handler := decideStale(rec, time.Hour, PriorityCeiling(100))
	if tr.To != StatusPending || handler || tr.Delay != time.Minute || tr.StaleAfter != time.Hour ||
		tr.Priority == nil || *tr.Priority != 100 || tr.Error != driver.StaleError {
		t.Errorf("interrupted record with budget: %+v handler=%v", tr, handler)
	}
	rec.Error = "first failure"
	tr, _ = decideStale(rec, time.Hour, nil)
	if tr.Error != "first failure" {
		t.Errorf("a stale requeue replaced the last error with %q", tr.Error)
	}
	if tr.Priority != nil {
		t.Errorf("no priority mapping: priority %v, want unchanged", *tr.Priority)
	}
	noRequeue := &Record{ID: uuid.New(), MaxRetries: 5, Policy: queuestype.Policy{NoStaleRequeue: true}}
	if tr, handler := decideStale(noRequeue, time.Hour, nil); tr.To != StatusFailed || !handler {
		t.Errorf("NoStaleRequeue: to %s handler=%v, want failed with the handler", tr.To, handler)
	}
	spent := &Record{ID: uuid.New(), MaxRetries: 0, Error: "earlier"}
	if tr, handler := decideStale(spent, -1, nil); tr.To != StatusFailed || handler || tr.StaleAfter != -1 || tr.Error != driver.StaleError {
		t.Errorf("no budget: %+v handler=%v, want failed without the handler", tr, handler)
	}
}

func TestDecideInterrupt(t *testing.T) {
	rec := &Record{ID: uuid.New(), MaxRetries: 0, RetryCount: 2, Interruptions: 2}
	tr, exhausted := decideInterrupt(rec, "w1", 3)
	if exhausted || tr.To != StatusPending || !tr.Interrupted || tr.WorkerID != "w1" || tr.Generation != 2 {
		t.Errorf("interruptions left: %+v exhausted=%v", tr, exhausted)
	}
	rec.Interruptions = 3
	tr, exhausted = decideInterrupt(rec, "w1", 3)
	if !exhausted || tr.To != StatusFailed || tr.Interrupted || tr.Error != interruptedText {
		t.Errorf("interruptions used up without budget: %+v exhausted=%v", tr, exhausted)
	}
	rec.MaxRetries = 5
	tr, _ = decideInterrupt(rec, "w1", 3)
	if tr.To != StatusPending || tr.Interrupted || tr.Delay != 0 {
		t.Errorf("interruptions used up with budget: %+v, want a plain retry at once", tr)
	}
}
