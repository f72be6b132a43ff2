package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// enqueueClaim enqueues n records of task and claims them as worker.
func enqueueClaim(t *testing.T, b *Backend, task string, n int, worker string) []*queuestype.Record {
	t.Helper()
	ctx := context.Background()
	items := make([]driver.EnqueueParams, n)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: task, MaxRetries: 5, Metadata: map[string]any{"i": float64(i)},
			Policy: queuestype.Policy{Timeout: time.Duration(i+1) * time.Second, Description: "settle test"}}
	}
	if _, err := b.Enqueue(ctx, items); err != nil {
		t.Fatal(err)
	}
	res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: n, WorkerID: worker})
	if err != nil || len(res.Claimed) != n {
		t.Fatalf("ClaimMany: %v, %d claimed", err, len(res.Claimed))
	}
	return res.Claimed
}

// TestSettleMixedBatch settles a claimed batch in one call: completions
// carrying the claimed record (sent through the hot-path complete script),
// plus a failure, a delayed retry, an interruption with a new priority, a
// cancellation and a completion without the claimed record, and checks each
// result equals what GetTask reads, the status counts, and that the
// completions went through the hot path.
func TestSettleMixedBatch(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	recs := enqueueClaim(t, b, "mixed", 40, "w1")
	sent := b.completes.sent.Load()
	prio := 9
	ts := make([]driver.Transition, len(recs))
	for i, r := range recs {
		ts[i] = driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queuestype.StatusCompleted,
			Result: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), Claimed: r}
	}
	ts[0] = driver.Transition{ID: recs[0].ID, To: queuestype.StatusFailed, Error: "boom"}
	ts[1] = driver.Transition{ID: recs[1].ID, To: queuestype.StatusPending, Error: "again", Delay: time.Hour}
	ts[2] = driver.Transition{ID: recs[2].ID, To: queuestype.StatusPending, Interrupted: true, Priority: &prio, WorkerID: "w1"}
	ts[3] = driver.Transition{ID: recs[3].ID, To: queuestype.StatusCancelled, Error: "stopped"}
	ts[4] = driver.Transition{ID: recs[4].ID, To: queuestype.StatusCompleted, Result: json.RawMessage(`4`)}
	ts[5].NoRecord = true
	res, err := b.Settle(ctx, ts)
	if err != nil || len(res) != len(ts) {
		t.Fatalf("Settle: %v, %d results", err, len(res))
	}
	if n := b.completes.sent.Load() - sent; n != int64(len(recs)-5) {
		t.Fatalf("%d completions went through the hot path, want %d", n, len(recs)-5)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("transition %d: %v", i, r.Err)
		}
		got, err := b.GetTask(ctx, ts[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if ts[i].NoRecord {
			if r.Record != nil {
				t.Fatalf("transition %d: NoRecord returned a record", i)
			}
		} else if !jsonEqual(r.Record, got) {
			t.Fatalf("transition %d: returned %+v\nGetTask   %+v", i, r.Record, got)
		}
		if n, _ := got.Metadata["i"].(float64); got.Policy.Timeout != time.Duration(n+1)*time.Second || got.Policy.Description != "settle test" {
			t.Fatalf("transition %d: policy %+v", i, got.Policy)
		}
		switch i {
		case 0:
			if got.Status != queuestype.StatusFailed || got.Error != "boom" || got.WorkerID != "w1" || got.CompletedAt.IsZero() {
				t.Fatalf("failed: %+v", got)
			}
		case 1:
			if got.Status != queuestype.StatusScheduled || got.RetryCount != 1 || got.Error != "again" || got.Interruptions != 0 ||
				got.ScheduledAt.Sub(got.QueuedAt) != time.Hour || got.WorkerID != "" {
				t.Fatalf("delayed retry: %+v", got)
			}
		case 2:
			if got.Status != queuestype.StatusPending || got.RetryCount != 1 || got.Interruptions != 1 || got.Priority != 9 || got.Error != "" {
				t.Fatalf("interrupted: %+v", got)
			}
		case 3:
			if got.Status != queuestype.StatusCancelled || got.Error != "stopped" || got.WorkerID != "w1" {
				t.Fatalf("cancelled: %+v", got)
			}
		default:
			if got.Status != queuestype.StatusCompleted || got.CompletedAt.IsZero() || !got.HeartbeatAt.IsZero() || got.WorkerID != "w1" {
				t.Fatalf("completed %d: %+v", i, got)
			}
		}
	}
	st, err := b.Statistics(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Completed != len(recs)-4 || st.Failed != 1 || st.Cancelled != 1 || st.Pending != 1 || st.Scheduled != 1 || st.Running != 0 {
		t.Fatalf("statistics after Settle: %+v", st)
	}
	done, err := b.ListCompletedByTask(ctx, "mixed", time.Time{}, 100)
	if err != nil || len(done) != len(recs)-4 {
		t.Fatalf("ListCompletedByTask: %v, %d", err, len(done))
	}
	// The settled generation can no longer be settled again.
	again, err := b.Settle(ctx, ts[4:6])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if !errors.Is(r.Err, queuestype.ErrFenceLost) || r.Record != nil {
			t.Fatalf("repeated settle %d: %+v", i, r)
		}
	}
}

// TestSettleHotPathFences checks the hot-path completion's fences: the
// worker, the generation and a missing record (ErrFenceLost and
// ErrTaskNotFound, as Complete reports it).
func TestSettleHotPathFences(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	recs := enqueueClaim(t, b, "fences", 2, "w1")
	r := recs[0]
	missing := uuid.Must(uuid.NewV7())
	res, err := b.Settle(ctx, []driver.Transition{
		{ID: r.ID, Generation: 0, To: queuestype.StatusCompleted, Claimed: r, WorkerID: "w2"},
		{ID: r.ID, Generation: 1, To: queuestype.StatusCompleted, Claimed: r},
		{ID: missing, To: queuestype.StatusCompleted, NoRecord: true},
		{ID: recs[1].ID, To: queuestype.StatusExpired},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if !errors.Is(res[i].Err, queuestype.ErrFenceLost) {
			t.Fatalf("transition %d: %v, want ErrFenceLost", i, res[i].Err)
		}
	}
	if !errors.Is(res[2].Err, queuestype.ErrFenceLost) || !errors.Is(res[2].Err, queuestype.ErrTaskNotFound) {
		t.Fatalf("missing record: %v, want ErrFenceLost and ErrTaskNotFound", res[2].Err)
	}
	if !errors.Is(res[3].Err, queuestype.ErrConfig) {
		t.Fatalf("To expired: %v, want ErrConfig", res[3].Err)
	}
	if got, _ := b.GetTask(ctx, r.ID); got.Status != queuestype.StatusRunning {
		t.Fatalf("record after lost fences: %s", got.Status)
	}
	res, err = b.Settle(ctx, []driver.Transition{{ID: r.ID, To: queuestype.StatusCompleted, Claimed: r, WorkerID: "w1", Result: json.RawMessage(`"ok"`)}})
	if err != nil || res[0].Err != nil || res[0].Record.Status != queuestype.StatusCompleted || string(res[0].Record.Result) != `"ok"` {
		t.Fatalf("Settle with the right worker: %v %+v", err, res)
	}
}

// TestSettleStaleFence checks the StaleAfter fence: a heartbeat landing
// between ListStale and Settle keeps the live attempt's record.
func TestSettleStaleFence(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	recs := enqueueClaim(t, b, "stale", 3, "w1")
	if err := b.NullHeartbeats(ctx, []queuestype.Fence{{ID: recs[0].ID}}); err != nil {
		t.Fatal(err)
	}
	// Every running record is stale with a negative StaleAfter; with an
	// hour none but the null heartbeat is.
	all, err := b.ListStale(ctx, -1, 10)
	if err != nil || len(all) != 3 || all[0].ID != recs[0].ID {
		t.Fatalf("ListStale(-1) = %d records, %v; want 3, the null heartbeat first", len(all), err)
	}
	one, err := b.ListStale(ctx, time.Hour, 10)
	if err != nil || len(one) != 1 || one[0].ID != recs[0].ID {
		t.Fatalf("ListStale(1h) = %+v, %v", one, err)
	}
	if lim, err := b.ListStale(ctx, -1, 2); err != nil || len(lim) != 2 {
		t.Fatalf("ListStale(-1, 2) = %d, %v", len(lim), err)
	}
	if none, err := b.ListStale(ctx, -1, 0); err != nil || len(none) != 0 {
		t.Fatalf("ListStale(-1, 0) = %d, %v; want nothing", len(none), err)
	}
	res, err := b.Settle(ctx, []driver.Transition{
		{ID: recs[1].ID, To: queuestype.StatusFailed, Error: driver.StaleError, StaleAfter: time.Hour},
		{ID: recs[0].ID, To: queuestype.StatusPending, Error: driver.StaleError, StaleAfter: time.Hour},
		{ID: recs[2].ID, To: queuestype.StatusFailed, Error: driver.StaleError, StaleAfter: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, queuestype.ErrFenceLost) {
		t.Fatalf("fresh heartbeat: %v, want ErrFenceLost", res[0].Err)
	}
	if res[1].Err != nil || res[1].Record.Status != queuestype.StatusPending || res[1].Record.RetryCount != 1 || res[1].Record.Error != driver.StaleError {
		t.Fatalf("null heartbeat requeue: %+v", res[1])
	}
	if res[2].Err != nil || res[2].Record.Status != queuestype.StatusFailed {
		t.Fatalf("StaleAfter < 0: %+v", res[2])
	}
}

// TestSettleExternalPending checks a transition with ExpectedRef settles a
// pending record holding that ref (an external run) and leaves the claim
// and external indexes consistent.
func TestSettleExternalPending(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	outs, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "ext", ExpiresAt: time.Now().Add(time.Hour)}, {TaskName: "ext"}})
	if err != nil {
		t.Fatal(err)
	}
	ref := "job-1"
	for _, o := range outs {
		if _, err := b.SetExecutionRef(ctx, o.Record.ID, ref); err != nil {
			t.Fatal(err)
		}
	}
	wrong := "job-2"
	res, err := b.Settle(ctx, []driver.Transition{
		{ID: outs[0].Record.ID, To: queuestype.StatusCompleted, ExpectedRef: &ref, Result: json.RawMessage(`1`)},
		{ID: outs[1].Record.ID, To: queuestype.StatusFailed, ExpectedRef: &wrong, Error: "x"},
		{ID: outs[1].Record.ID, To: queuestype.StatusCompleted, Result: json.RawMessage(`2`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Record.Status != queuestype.StatusCompleted || res[0].Record.ExecutionRef != ref {
		t.Fatalf("external completion: %+v", res[0])
	}
	for i := 1; i < 3; i++ {
		if !errors.Is(res[i].Err, queuestype.ErrFenceLost) {
			t.Fatalf("transition %d: %v, want ErrFenceLost", i, res[i].Err)
		}
	}
	ext, err := b.ListRunningExternal(ctx, 10)
	if err != nil || len(ext) != 1 || ext[0].ID != outs[1].Record.ID {
		t.Fatalf("ListRunningExternal = %+v, %v", ext, err)
	}
	for _, k := range []string{":expiry:", ":ready:"} {
		n, err := admin.Keys(ctx, b.prefix+k+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range n {
			ms := admin.ZRange(ctx, key, 0, -1).Val()
			for _, m := range ms {
				if len(m) >= 36 && m[len(m)-36:] == outs[0].Record.ID.String() {
					t.Fatalf("completed record still in %s", key)
				}
			}
		}
	}
}

// TestSettleRepeatedRecord checks transitions naming one record twice in a
// call apply in input order even when the first could take the hot path:
// the first lands, the second finds the generation settled.
func TestSettleRepeatedRecord(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		r := enqueueClaim(t, b, fmt.Sprintf("repeat-%d", round), 1, "w1")[0]
		res, err := b.Settle(ctx, []driver.Transition{
			{ID: r.ID, To: queuestype.StatusCompleted, Claimed: r, Result: json.RawMessage(`1`)},
			{ID: r.ID, To: queuestype.StatusPending, Error: "late"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil || res[0].Record.Status != queuestype.StatusCompleted || !errors.Is(res[1].Err, queuestype.ErrFenceLost) {
			t.Fatalf("round %d: %+v / %v", round, res[0], res[1].Err)
		}
	}
}

// TestSettleHints checks what Settle publishes: the IDs that turned
// terminal on the completions channel (both scripts), and a wakeup when a
// requeued record is due now.
func TestSettleHints(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	sub := admin.Subscribe(ctx, b.doneCh, b.wakeCh)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the first subscription confirmation
		t.Fatal(err)
	}
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := sub.Channel()
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m.Channel + " " + m.Payload
		case <-time.After(5 * time.Second):
			t.Fatalf("no message for %s", what)
		}
		return ""
	}
	recs := enqueueClaim(t, b, "hints", 4, "w1")
	next("the enqueue wakeup")
	cases := []struct {
		name string
		tr   driver.Transition
		want string
	}{
		{"hot completion", driver.Transition{ID: recs[0].ID, To: queuestype.StatusCompleted, Claimed: recs[0]}, b.doneCh + " " + recs[0].ID.String()},
		{"failure", driver.Transition{ID: recs[1].ID, To: queuestype.StatusFailed, Error: "x"}, b.doneCh + " " + recs[1].ID.String()},
		{"due retry", driver.Transition{ID: recs[2].ID, To: queuestype.StatusPending}, b.wakeCh + ` {"event":"task_available"}`},
		{"cancellation", driver.Transition{ID: recs[3].ID, To: queuestype.StatusCancelled, WorkerID: "w1"}, b.doneCh + " " + recs[3].ID.String()},
	}
	for _, c := range cases {
		res, err := b.Settle(ctx, []driver.Transition{c.tr})
		if err != nil || res[0].Err != nil {
			t.Fatalf("%s: %v %v", c.name, err, res[0].Err)
		}
		if got := next(c.name); got != c.want {
			t.Fatalf("%s published %q, want %q", c.name, got, c.want)
		}
	}
}

// jsonEqual compares two JSON-compatible values by their JSON encoding.
func jsonEqual(a, b any) bool {
	ra, err1 := json.Marshal(a)
	rb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ra) == string(rb)
}
