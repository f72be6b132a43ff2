package queues

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// lostSettleReply applies Settle calls and loses the reply of the first
// lose of them (a connection reset after the write).
type lostSettleReply struct {
	driver.Backend
	lose  atomic.Int32
	calls atomic.Int32
}

func (l *lostSettleReply) Settle(ctx context.Context, ts []driver.Transition) ([]driver.SettleResult, error) {
	l.calls.Add(1)
	res, err := l.Backend.Settle(ctx, ts)
	if err == nil && l.lose.Add(-1) >= 0 {
		return nil, errors.Join(driver.ErrUnavailable, errors.New("connection reset by peer"))
	}
	return res, err
}

// The retry loop wraps a Backend.Settle call:
// a transition whose reply was lost counts as landed once the record shows
// it, whichever transition it was.
func TestWriteSettleWrapsSettle(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		decide func(rec *Record) driver.Transition
		want   func(rec *Record) bool
	}{
		{"completed", func(rec *Record) driver.Transition {
			return driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: StatusCompleted, Result: json.RawMessage(`1`)}
		}, func(rec *Record) bool { return rec.Status == StatusCompleted && rec.RetryCount == 0 }},
		{"retry", func(rec *Record) driver.Transition {
			tr, _ := decideFailure(rec, failure{text: "boom", retryable: true})
			return tr
		},
			func(rec *Record) bool {
				return rec.Status == StatusPending && rec.RetryCount == 1 && rec.Error == "boom"
			}},
		{"failed", func(rec *Record) driver.Transition { tr, _ := decideFailure(rec, failure{text: "boom"}); return tr },
			func(rec *Record) bool {
				return rec.Status == StatusFailed && rec.RetryCount == 0 && rec.Error == "boom"
			}},
		{"interrupted", func(rec *Record) driver.Transition { tr, _ := decideInterrupt(rec, "w", 3, time.Time{}); return tr },
			func(rec *Record) bool {
				return rec.Status == StatusPending && rec.RetryCount == 1 && rec.Interruptions == 1
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := &lostSettleReply{Backend: memory.New(memory.Options{})}
			store.lose.Store(1)
			svc, err := New(Config{Backend: store, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "t", Args: json.RawMessage(`{}`), MaxRetries: 2,
				Queue: DefaultQueue, ExecutionBackend: ExecutionLocal}}); err != nil {
				t.Fatal(err)
			}
			res, err := store.ClaimMany(ctx, driver.ClaimParams{Limit: 1, WorkerID: "w"})
			if err != nil || len(res.Claimed) != 1 {
				t.Fatalf("claim: %v %v", res, err)
			}
			claimed := res.Claimed[0]
			a := svc.newAttempt(ctx, claimed, "w")
			tr := c.decide(claimed)
			rec, err := a.writeSettle(settleWrite{phase: c.name, write: svc.settleTransition(tr), landed: landedTransition(claimed, tr)})
			if err != nil {
				t.Fatalf("writeSettle: %v", err)
			}
			if rec == nil || !c.want(rec) {
				t.Fatalf("landed record %+v", rec)
			}
			if n := store.calls.Load(); n != 2 {
				t.Fatalf("%d Settle calls, want 2 (the lost reply, then the retry that met the fence)", n)
			}
			// A transition of a generation nobody holds is a lost claim, not a landing.
			stale := tr
			stale.Generation = 7
			if _, err := a.writeSettle(settleWrite{phase: c.name, write: svc.settleTransition(stale)}); !errors.Is(err, queuestype.ErrFenceLost) {
				t.Fatalf("stale generation: %v", err)
			}
		})
	}
}
