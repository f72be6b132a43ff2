package memory

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// hinted drains a wakeup channel without blocking and reports whether a
// hint was pending. Hints are sent before the writing call returns, so a
// missing hint is missing for good.
func hinted(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func settleOne(t *testing.T, b *Backend, tr driver.Transition) driver.SettleResult {
	t.Helper()
	res, err := b.Settle(context.Background(), []driver.Transition{tr})
	if err != nil {
		t.Fatalf("Settle: call error %v", err)
	}
	if len(res) != 1 {
		t.Fatalf("Settle: %d results for 1 transition", len(res))
	}
	return res[0]
}

func getTask(t *testing.T, b *Backend, id uuid.UUID) *queuestype.Record {
	t.Helper()
	r, err := b.GetTask(context.Background(), id)
	if err != nil {
		t.Fatalf("GetTask(%s): %v", id, err)
	}
	return r
}

func claimID(t *testing.T, b *Backend, id uuid.UUID, worker string) *queuestype.Record {
	t.Helper()
	res, err := b.ClaimByID(context.Background(), driver.ClaimByIDParams{ID: id, WorkerID: worker})
	if err != nil || len(res.Claimed) != 1 {
		t.Fatalf("ClaimByID(%s) = %+v, %v", id, res, err)
	}
	return res.Claimed[0]
}

// TestSettleOutcomeWrites settles each outcome the engine decides (a
// completion, a terminal failure, a retry at once and after a delay, the
// failure of an external run, a shutdown interruption, a cancellation, a
// stale requeue and a stale failure) and requires the returned and stored
// record to equal, field by field, the record before the write with exactly
// that outcome's changes, plus the right wakeup hint and statistics. The
// stale outcomes start from ListStale, as the engine's sweep does.
func TestSettleOutcomeWrites(t *testing.T) {
	ref := "ext-1"
	prio := 2
	// terminal is the write of a completed, failed or cancelled transition.
	terminal := func(s queuestype.Status) func(r *queuestype.Record, now time.Time) {
		return func(r *queuestype.Record, now time.Time) {
			r.Status, r.CompletedAt, r.HeartbeatAt = s, now, time.Time{}
		}
	}
	// requeued is the write of a pending transition: a new, unowned generation.
	requeued := func(delay time.Duration) func(r *queuestype.Record, now time.Time) {
		return func(r *queuestype.Record, now time.Time) {
			r.RetryCount++
			r.QueuedAt = now
			r.StartedAt, r.HeartbeatAt, r.CompletedAt = time.Time{}, time.Time{}, time.Time{}
			r.WorkerID, r.ExecutionRef = "", ""
			r.Status, r.ScheduledAt = queuestype.StatusPending, time.Time{}
			if delay > 0 {
				r.Status, r.ScheduledAt = queuestype.StatusScheduled, now.Add(delay)
			}
		}
	}
	cases := []struct {
		name  string
		item  driver.EnqueueParams
		setup func(t *testing.T, b *Backend, id uuid.UUID) // brings the record to the state the outcome is for
		stale bool                                         // the record is found by ListStale first
		tr    driver.Transition                            // ID and Generation filled in
		want  func(r *queuestype.Record, now time.Time)    // the write, applied to the record before it
		wake  bool
	}{
		{
			name: "complete",
			tr:   driver.Transition{To: queuestype.StatusCompleted, Result: json.RawMessage(`{"n":1}`)},
			want: func(r *queuestype.Record, now time.Time) {
				terminal(queuestype.StatusCompleted)(r, now)
				r.Result, r.Error = json.RawMessage(`{"n":1}`), ""
			},
		},
		{
			name: "fail terminally",
			tr:   driver.Transition{To: queuestype.StatusFailed, Error: "boom"},
			want: func(r *queuestype.Record, now time.Time) {
				terminal(queuestype.StatusFailed)(r, now)
				r.Error = "boom"
			},
		},
		{
			name: "retry at once",
			item: driver.EnqueueParams{MaxRetries: 2},
			tr:   driver.Transition{To: queuestype.StatusPending, Error: "boom"},
			want: func(r *queuestype.Record, now time.Time) {
				requeued(0)(r, now)
				r.Error = "boom"
			},
			wake: true,
		},
		{
			name: "retry after a delay",
			item: driver.EnqueueParams{MaxRetries: 2},
			tr:   driver.Transition{To: queuestype.StatusPending, Error: "boom", Delay: 5 * time.Second},
			want: func(r *queuestype.Record, now time.Time) {
				requeued(5*time.Second)(r, now)
				r.Error = "boom"
			},
		},
		{
			name: "external run failed while pending",
			item: driver.EnqueueParams{MaxRetries: 1},
			setup: func(t *testing.T, b *Backend, id uuid.UUID) {
				if _, err := b.SetExecutionRef(context.Background(), id, ref); err != nil {
					t.Fatal(err)
				}
			},
			tr: driver.Transition{To: queuestype.StatusPending, Error: "remote", ExpectedRef: &ref},
			want: func(r *queuestype.Record, now time.Time) {
				requeued(0)(r, now)
				r.Error = "remote"
			},
			wake: true,
		},
		{
			name: "shutdown interruption",
			item: driver.EnqueueParams{Priority: 7},
			tr:   driver.Transition{To: queuestype.StatusPending, Interrupted: true, WorkerID: "w1"},
			want: func(r *queuestype.Record, now time.Time) {
				requeued(0)(r, now)
				r.Interruptions++ // priority 7 kept
			},
			wake: true,
		},
		{
			name: "cancel running",
			tr:   driver.Transition{To: queuestype.StatusCancelled},
			want: terminal(queuestype.StatusCancelled), // worker_id and error kept
		},
		{
			name:  "stale requeue",
			item:  driver.EnqueueParams{MaxRetries: 1, Priority: 9},
			stale: true,
			// The record's backoff (1s initial, see below) with no attempt consumed.
			tr: driver.Transition{To: queuestype.StatusPending, Error: driver.StaleError, Priority: &prio, StaleAfter: 30 * time.Second,
				Delay: time.Second},
			want: func(r *queuestype.Record, now time.Time) {
				requeued(time.Second)(r, now)
				r.Error, r.Priority = driver.StaleError, prio
			},
		},
		{
			name:  "stale failure",
			item:  driver.EnqueueParams{MaxRetries: 3, Policy: queuestype.Policy{NoStaleRequeue: true}},
			stale: true,
			tr:    driver.Transition{To: queuestype.StatusFailed, Error: driver.StaleError, StaleAfter: 30 * time.Second},
			want: func(r *queuestype.Record, now time.Time) {
				terminal(queuestype.StatusFailed)(r, now)
				r.Error = driver.StaleError
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			b := New(Options{Now: clk.Now})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			item := c.item
			item.ID, item.TaskName = uuid.New(), "outcome"
			item.Policy.Description = "d"
			item.Policy.RetryBackoff = queuestype.RetryBackoff{InitialDelay: time.Second}
			enqueue(t, b, item)
			if c.setup != nil {
				c.setup(t, b, item.ID)
			} else {
				claimID(t, b, item.ID, "w1")
			}
			wake, err := b.Wakeups(ctx)
			if err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Minute)
			now := clk.Now()
			before := getTask(t, b, item.ID)
			if c.stale {
				listed, err := b.ListStale(ctx, 30*time.Second, 10)
				if err != nil || len(listed) != 1 || !reflect.DeepEqual(listed[0], before) {
					t.Fatalf("ListStale = %v, %v; want the record as stored", listed, err)
				}
			}
			tr := c.tr
			tr.ID, tr.Generation = item.ID, before.RetryCount
			res := settleOne(t, b, tr)
			if res.Err != nil {
				t.Fatalf("Settle: %v", res.Err)
			}
			want := before.Clone()
			c.want(want, now)
			if !reflect.DeepEqual(res.Record, want) {
				t.Fatalf("returned record:\n got  %+v\n want %+v", res.Record, want)
			}
			if got := getTask(t, b, item.ID); !reflect.DeepEqual(got, want) {
				t.Fatalf("stored record:\n got  %+v\n want %+v", got, want)
			}
			if got := hinted(wake); got != c.wake {
				t.Fatalf("wakeup hint %v, want %v", got, c.wake)
			}
			var wantStats queuestype.Statistics
			wantStats.Add(want.Status, 1)
			if st, _ := b.Statistics(ctx, ""); st != wantStats {
				t.Fatalf("statistics %+v, want %+v", st, wantStats)
			}
			// A second transition for the settled generation loses.
			if again := settleOne(t, b, tr); !errors.Is(again.Err, queuestype.ErrFenceLost) {
				t.Fatalf("replayed transition: %+v", again)
			}
			checkInvariants(t, b)
		})
	}
}

// TestSettleWrites checks each target status field by field, including the
// combinations no single engine outcome produces (a cancellation with error
// text, a priority and an interruption on one delayed requeue).
func TestSettleWrites(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	recs := enqueue(t, b,
		driver.EnqueueParams{TaskName: "cancel", MaxRetries: 1},
		driver.EnqueueParams{TaskName: "requeue", MaxRetries: 0, Priority: 1},
	)
	for _, r := range recs {
		claimID(t, b, r.ID, "w1")
	}
	clk.Add(time.Second)
	now := clk.Now()
	res := settleOne(t, b, driver.Transition{ID: recs[0].ID, To: queuestype.StatusCancelled, Error: "stopped by operator"})
	r := res.Record
	if res.Err != nil || r.Status != queuestype.StatusCancelled || r.Error != "stopped by operator" ||
		!r.CompletedAt.Equal(now) || !r.HeartbeatAt.IsZero() || r.WorkerID != "w1" || r.RetryCount != 0 {
		t.Fatalf("cancelled = %+v, %v", r, res.Err)
	}
	// The store applies what it is told: a requeue beyond MaxRetries is the
	// engine's call, not the store's.
	p := 5
	res = settleOne(t, b, driver.Transition{ID: recs[1].ID, To: queuestype.StatusPending, Error: "again",
		Interrupted: true, Priority: &p, Delay: time.Hour})
	r = res.Record
	if res.Err != nil || r.Status != queuestype.StatusScheduled || !r.ScheduledAt.Equal(now.Add(time.Hour)) ||
		r.RetryCount != 1 || r.Interruptions != 1 || r.Priority != 5 || r.Error != "again" || r.WorkerID != "" ||
		!r.StartedAt.IsZero() || !r.HeartbeatAt.IsZero() || !r.CompletedAt.IsZero() || !r.QueuedAt.Equal(now) {
		t.Fatalf("requeued = %+v, %v", r, res.Err)
	}
	if next, ok, _ := b.NextDue(ctx, nil); !ok || !next.Equal(now.Add(time.Hour)) {
		t.Fatalf("NextDue = %v, %v", next, ok)
	}
	clk.Add(time.Hour)
	run := claim(t, b, driver.ClaimParams{Limit: 5})
	if len(run.Claimed) != 1 || run.Claimed[0].ID != recs[1].ID || run.Claimed[0].RetryCount != 1 {
		t.Fatalf("claim after the delay = %+v", run.Claimed)
	}
	// A completion clears the error a retry left.
	res = settleOne(t, b, driver.Transition{ID: recs[1].ID, Generation: 1, To: queuestype.StatusCompleted})
	if r = res.Record; res.Err != nil || r.Error != "" || r.Result != nil || r.Status != queuestype.StatusCompleted {
		t.Fatalf("completed = %+v, %v", r, res.Err)
	}
	checkInvariants(t, b)
}

// TestSettleFences checks that every fence refuses a transition without
// changing the record, per transition and never as the call's error.
func TestSettleFences(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	recs := enqueue(t, b,
		driver.EnqueueParams{TaskName: "running", MaxRetries: 5},
		driver.EnqueueParams{TaskName: "pending"},
		driver.EnqueueParams{TaskName: "external"},
	)
	run := claimID(t, b, recs[0].ID, "w1")
	ref, other := "ext-1", "ext-2"
	if _, err := b.SetExecutionRef(ctx, recs[2].ID, ref); err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Second) // heartbeat of the running record is 10s old
	lost := []struct {
		name string
		tr   driver.Transition
	}{
		{"older generation", driver.Transition{ID: run.ID, Generation: 1, To: queuestype.StatusCompleted}},
		{"other worker", driver.Transition{ID: run.ID, To: queuestype.StatusFailed, WorkerID: "w2"}},
		{"other ref", driver.Transition{ID: run.ID, To: queuestype.StatusFailed, ExpectedRef: &other}},
		{"heartbeat fresher than StaleAfter", driver.Transition{ID: run.ID, To: queuestype.StatusPending, StaleAfter: time.Minute}},
		{"heartbeat exactly StaleAfter old", driver.Transition{ID: run.ID, To: queuestype.StatusPending, StaleAfter: 10 * time.Second}},
		{"pending without a ref fence", driver.Transition{ID: recs[1].ID, To: queuestype.StatusCancelled}},
		{"external without a ref fence", driver.Transition{ID: recs[2].ID, To: queuestype.StatusFailed}},
		{"external, other ref", driver.Transition{ID: recs[2].ID, To: queuestype.StatusFailed, ExpectedRef: &other}},
	}
	snapshot := func() []*queuestype.Record {
		out, _ := b.GetTasks(ctx, []uuid.UUID{recs[0].ID, recs[1].ID, recs[2].ID})
		return out
	}
	before := snapshot()
	for _, c := range lost {
		res := settleOne(t, b, c.tr)
		if !errors.Is(res.Err, queuestype.ErrFenceLost) || res.Record != nil {
			t.Errorf("%s: result %+v, want ErrFenceLost", c.name, res)
		}
		if errors.Is(res.Err, queuestype.ErrTaskNotFound) {
			t.Errorf("%s: an existing record reported not found", c.name)
		}
	}
	for _, to := range []queuestype.Status{queuestype.StatusRunning, queuestype.StatusScheduled, queuestype.StatusExpired, ""} {
		res := settleOne(t, b, driver.Transition{ID: run.ID, To: to})
		if !errors.Is(res.Err, queuestype.ErrConfig) || errors.Is(res.Err, queuestype.ErrFenceLost) {
			t.Errorf("To %q: %v, want ErrConfig", to, res.Err)
		}
	}
	if after := snapshot(); !reflect.DeepEqual(after, before) {
		t.Fatalf("a refused transition changed a record:\n before %+v\n after  %+v", before, after)
	}
	res := settleOne(t, b, driver.Transition{ID: uuid.New(), To: queuestype.StatusCompleted})
	if !errors.Is(res.Err, queuestype.ErrFenceLost) || !errors.Is(res.Err, queuestype.ErrTaskNotFound) {
		t.Fatalf("missing record: %v, want ErrFenceLost and ErrTaskNotFound", res.Err)
	}

	// The fences that hold: the ref fence on a pending external record, and
	// a heartbeat older than StaleAfter together with the worker fence.
	res = settleOne(t, b, driver.Transition{ID: recs[2].ID, To: queuestype.StatusFailed, Error: "remote", ExpectedRef: &ref})
	if res.Err != nil || res.Record.Status != queuestype.StatusFailed || res.Record.ExecutionRef != ref {
		t.Fatalf("external fail = %+v", res)
	}
	res = settleOne(t, b, driver.Transition{ID: run.ID, To: queuestype.StatusPending, StaleAfter: 9 * time.Second, WorkerID: "w1"})
	if res.Err != nil || res.Record.RetryCount != 1 || res.Record.Status != queuestype.StatusPending {
		t.Fatalf("stale requeue = %+v", res)
	}
	// A second transition for the settled generation loses, in any form.
	for _, to := range []queuestype.Status{queuestype.StatusCompleted, queuestype.StatusPending} {
		if res := settleOne(t, b, driver.Transition{ID: run.ID, To: to}); !errors.Is(res.Err, queuestype.ErrFenceLost) {
			t.Fatalf("replayed %s: %v", to, res.Err)
		}
	}
	// A null heartbeat is stale for any StaleAfter; a negative StaleAfter
	// accepts any heartbeat.
	again := claimID(t, b, run.ID, "w1")
	if err := b.NullHeartbeats(ctx, []queuestype.Fence{{ID: again.ID, RetryCount: again.RetryCount}}); err != nil {
		t.Fatal(err)
	}
	res = settleOne(t, b, driver.Transition{ID: run.ID, Generation: 1, To: queuestype.StatusPending, StaleAfter: time.Hour})
	if res.Err != nil {
		t.Fatalf("null heartbeat: %v", res.Err)
	}
	claimID(t, b, run.ID, "w1")
	res = settleOne(t, b, driver.Transition{ID: run.ID, Generation: 2, To: queuestype.StatusFailed, StaleAfter: -1})
	if res.Err != nil || res.Record.Status != queuestype.StatusFailed {
		t.Fatalf("negative StaleAfter on a fresh heartbeat = %+v", res)
	}
	checkInvariants(t, b)
}

// TestSettleBatch settles many records in one call: results come back in
// input order, refused transitions do not stop the others, a later
// transition sees the earlier ones of the same call, every time is the same
// store time, and one wakeup hint goes out only when a requeued record is due.
func TestSettleBatch(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	items := make([]driver.EnqueueParams, 6)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: "batch", MaxRetries: 3}
	}
	recs := enqueue(t, b, items...)
	claim(t, b, driver.ClaimParams{Limit: 6})
	wk, err := b.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	now := clk.Now()
	ts := []driver.Transition{
		{ID: recs[0].ID, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)},
		{ID: recs[1].ID, To: queuestype.StatusFailed, Error: "f"},
		{ID: recs[2].ID, To: queuestype.StatusPending, Error: "r"},
		{ID: recs[3].ID, To: queuestype.StatusPending, Error: "later", Delay: time.Minute},
		{ID: recs[4].ID, To: queuestype.StatusCancelled, NoRecord: true},
		{ID: recs[5].ID, Generation: 4, To: queuestype.StatusCompleted},
		{ID: recs[0].ID, To: queuestype.StatusFailed, Error: "too late"},
		{ID: uuid.New(), To: queuestype.StatusCompleted},
	}
	res, err := b.Settle(ctx, ts)
	if err != nil || len(res) != len(ts) {
		t.Fatalf("Settle = %d results, %v", len(res), err)
	}
	wantStatus := []queuestype.Status{queuestype.StatusCompleted, queuestype.StatusFailed, queuestype.StatusPending, queuestype.StatusScheduled}
	for i, s := range wantStatus {
		if res[i].Err != nil || res[i].Record == nil || res[i].Record.ID != ts[i].ID || res[i].Record.Status != s {
			t.Fatalf("result %d = %+v, want %s", i, res[i], s)
		}
	}
	if res[4].Err != nil || res[4].Record != nil {
		t.Fatalf("NoRecord result = %+v", res[4])
	}
	if r := getTask(t, b, recs[4].ID); r.Status != queuestype.StatusCancelled || !r.CompletedAt.Equal(now) {
		t.Fatalf("NoRecord transition not written: %+v", r)
	}
	for _, i := range []int{5, 6, 7} {
		if !errors.Is(res[i].Err, queuestype.ErrFenceLost) || res[i].Record != nil {
			t.Fatalf("result %d = %+v, want ErrFenceLost", i, res[i])
		}
	}
	if r := getTask(t, b, recs[0].ID); r.Status != queuestype.StatusCompleted || string(r.Result) != `1` {
		t.Fatalf("a refused later transition changed an earlier one: %+v", r)
	}
	if r := getTask(t, b, recs[5].ID); r.Status != queuestype.StatusRunning {
		t.Fatalf("refused transition wrote: %+v", r)
	}
	for _, r := range []*queuestype.Record{res[0].Record, res[1].Record} {
		if !r.CompletedAt.Equal(now) {
			t.Fatalf("completed_at %v, want the store time %v", r.CompletedAt, now)
		}
	}
	if !res[2].Record.QueuedAt.Equal(now) || !res[3].Record.ScheduledAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("requeue times: %+v / %+v", res[2].Record, res[3].Record)
	}
	if !hinted(wk) {
		t.Fatal("no wakeup hint for a due requeue")
	}

	// Nothing due: no hint.
	run := claim(t, b, driver.ClaimParams{Limit: 6})
	if len(run.Claimed) != 1 || run.Claimed[0].ID != recs[2].ID {
		t.Fatalf("claim = %+v", run.Claimed)
	}
	hinted(wk)
	res, err = b.Settle(ctx, []driver.Transition{
		{ID: recs[2].ID, Generation: 1, To: queuestype.StatusPending, Delay: time.Second},
		{ID: recs[5].ID, To: queuestype.StatusCompleted},
	})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("Settle = %+v, %v", res, err)
	}
	if hinted(wk) {
		t.Fatal("wakeup hint although no requeued record is due")
	}
	if res, err := b.Settle(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty Settle = %v, %v", res, err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := b.Settle(cctx, ts); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v", err)
	}
	checkInvariants(t, b)
}

// TestSettleResultNotShared checks that the stored result is the store's own
// copy and the returned record the caller's.
func TestSettleResultNotShared(t *testing.T) {
	b := New(Options{})
	recs := enqueue(t, b, driver.EnqueueParams{TaskName: "a"})
	claimID(t, b, recs[0].ID, "w1")
	result := json.RawMessage(`{"x":1}`)
	res := settleOne(t, b, driver.Transition{ID: recs[0].ID, To: queuestype.StatusCompleted, Result: result})
	result[2] = 'y'
	res.Record.Result[2] = 'z'
	if got := getTask(t, b, recs[0].ID); string(got.Result) != `{"x":1}` {
		t.Fatalf("stored result aliased: %s", got.Result)
	}
}

// TestSettleAnnouncesCompletion checks that a terminal transition releases
// WaitForCompletion callers and a requeue does not.
func TestSettleAnnouncesCompletion(t *testing.T) {
	b := New(Options{})
	ctx := context.Background()
	recs := enqueue(t, b, driver.EnqueueParams{TaskName: "a", MaxRetries: 1})
	claimID(t, b, recs[0].ID, "w1")
	done := make(chan error, 1)
	go func() { done <- b.WaitForCompletion(ctx, recs[0].ID) }()
	waiters := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.records[recs[0].ID].waiters)
	}
	deadline := time.Now().Add(5 * time.Second)
	for waiters() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("waiter never registered")
		}
		runtime.Gosched()
	}
	if res := settleOne(t, b, driver.Transition{ID: recs[0].ID, To: queuestype.StatusPending}); res.Err != nil {
		t.Fatal(res.Err)
	}
	select {
	case err := <-done:
		t.Fatalf("a requeue released the waiter (%v)", err)
	default:
	}
	if n := waiters(); n != 1 {
		t.Fatalf("%d waiters after a requeue, want 1", n)
	}
	claimID(t, b, recs[0].ID, "w1")
	if res := settleOne(t, b, driver.Transition{ID: recs[0].ID, Generation: 1, To: queuestype.StatusFailed, Error: "x"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a terminal transition did not release the waiter")
	}
}

// TestStaleSettleLosesToLateHeartbeat is the race stale recovery guards
// against: a heartbeat landing between ListStale and Settle keeps the live
// attempt's record.
func TestStaleSettleLosesToLateHeartbeat(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	recs := enqueue(t, b, driver.EnqueueParams{TaskName: "a", MaxRetries: 1})
	claimID(t, b, recs[0].ID, "w1")
	clk.Add(time.Minute)
	stale, err := b.ListStale(ctx, 30*time.Second, 10)
	if err != nil || len(stale) != 1 {
		t.Fatalf("ListStale = %v, %v", stale, err)
	}
	gen := stale[0].RetryCount
	if _, err := b.TouchHeartbeats(ctx, []driver.HeartbeatTouch{{ID: recs[0].ID, ExpectedRetryCount: &gen}}); err != nil {
		t.Fatal(err)
	}
	res := settleOne(t, b, driver.Transition{ID: recs[0].ID, Generation: gen, To: queuestype.StatusPending, StaleAfter: 30 * time.Second})
	if !errors.Is(res.Err, queuestype.ErrFenceLost) {
		t.Fatalf("stale requeue over a fresh heartbeat: %+v", res)
	}
	if r := getTask(t, b, recs[0].ID); r.Status != queuestype.StatusRunning || r.WorkerID != "w1" || r.RetryCount != 0 {
		t.Fatalf("live record changed: %+v", r)
	}
	clk.Add(31 * time.Second)
	if res := settleOne(t, b, driver.Transition{ID: recs[0].ID, Generation: gen, To: queuestype.StatusPending, StaleAfter: 30 * time.Second}); res.Err != nil {
		t.Fatalf("stale requeue once the heartbeat aged: %v", res.Err)
	}
}

// TestSettleConcurrentWithHeartbeatsAndStaleSweep races, for each record,
// a completion of generation 0 against a stale requeue of generation 0
// while heartbeats land: exactly one of the two wins each record and the
// record shows that winner.
func TestSettleConcurrentWithHeartbeatsAndStaleSweep(t *testing.T) {
	b := New(Options{})
	ctx := context.Background()
	const n = 300
	items := make([]driver.EnqueueParams, n)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: "race", MaxRetries: 1}
	}
	recs := enqueue(t, b, items...)
	claim(t, b, driver.ClaimParams{Limit: n})
	completed := make([]bool, n)
	requeued := make(map[uuid.UUID]bool)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // worker: completes in batches of 10
		defer wg.Done()
		for i := 0; i < n; i += 10 {
			ts := make([]driver.Transition, 0, 10)
			for _, r := range recs[i : i+10] {
				ts = append(ts, driver.Transition{ID: r.ID, To: queuestype.StatusCompleted, WorkerID: "w1", NoRecord: true})
			}
			res, err := b.Settle(ctx, ts)
			if err != nil {
				t.Error(err)
				return
			}
			for j, r := range res {
				if r.Err == nil {
					completed[i+j] = true
				} else if !errors.Is(r.Err, queuestype.ErrFenceLost) {
					t.Error(r.Err)
				}
			}
		}
	}()
	go func() { // stale sweep treating every running record as stale
		defer wg.Done()
		for {
			stale, err := b.ListStale(ctx, -1, 25)
			if err != nil {
				t.Error(err)
				return
			}
			if len(stale) == 0 {
				return
			}
			ts := make([]driver.Transition, 0, len(stale))
			for _, r := range stale {
				if r.RetryCount != 0 {
					continue
				}
				ts = append(ts, driver.Transition{ID: r.ID, To: queuestype.StatusPending, Error: driver.StaleError, StaleAfter: -1})
			}
			res, err := b.Settle(ctx, ts)
			if err != nil {
				t.Error(err)
				return
			}
			for j, r := range res {
				if r.Err == nil {
					requeued[ts[j].ID] = true
				} else if !errors.Is(r.Err, queuestype.ErrFenceLost) {
					t.Error(r.Err)
				}
			}
		}
	}()
	go func() { // heartbeats for every record, fenced on generation 0
		defer wg.Done()
		gen := 0
		touches := make([]driver.HeartbeatTouch, n)
		for i, r := range recs {
			touches[i] = driver.HeartbeatTouch{ID: r.ID, ExpectedRetryCount: &gen}
		}
		for range 20 {
			if _, err := b.TouchHeartbeats(ctx, touches); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	for i, r := range recs {
		got := getTask(t, b, r.ID)
		switch {
		case completed[i] && requeued[r.ID]:
			t.Fatalf("%s both completed and requeued", r.ID)
		case completed[i]:
			if got.Status != queuestype.StatusCompleted || got.RetryCount != 0 {
				t.Fatalf("completion won but record is %+v", got)
			}
		case requeued[r.ID]:
			if got.Status != queuestype.StatusPending || got.RetryCount != 1 || got.Error != driver.StaleError {
				t.Fatalf("stale requeue won but record is %+v", got)
			}
		default:
			t.Fatalf("%s settled by neither (%s)", r.ID, got.Status)
		}
	}
	checkInvariants(t, b)
}

// TestListStale checks selection, order (null heartbeats first by
// created_at, then oldest heartbeat, ties by id), the limit (0 lists
// nothing), the negative threshold, and that dispatch-reserved and non-running records are left out.
func TestListStale(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	mk := func(name string) *queuestype.Record {
		r := enqueue(t, b, driver.EnqueueParams{TaskName: name})[0]
		clk.Add(time.Millisecond)
		return r
	}
	nullA, nullB := mk("nullA"), mk("nullB")
	old1, old2 := mk("old1"), mk("old2")
	older := mk("older")
	fresh := mk("fresh")
	edge := mk("edge")
	pending := mk("pending")
	_ = pending

	// older is claimed first, then old1 and old2 in one claim (equal
	// heartbeats), then edge exactly 30s before the listing, then fresh.
	claimID(t, b, older.ID, "w")
	clk.Add(time.Second)
	res := claim(t, b, driver.ClaimParams{Limit: 2, WorkerID: "w"}) // takes nullA, nullB (oldest queued)
	if len(res.Claimed) != 2 {
		t.Fatal(res)
	}
	if err := b.NullHeartbeats(ctx, []queuestype.Fence{{ID: nullB.ID}, {ID: nullA.ID}}); err != nil {
		t.Fatal(err)
	}
	claimID(t, b, old1.ID, "w")
	claimID(t, b, old2.ID, "w")
	clk.Add(10 * time.Second)
	claimID(t, b, edge.ID, "w")
	clk.Add(20 * time.Second)
	claimID(t, b, fresh.ID, "w")
	clk.Add(10 * time.Second) // edge's heartbeat is now exactly 30s old

	oldIDs := []uuid.UUID{old1.ID, old2.ID}
	slices.SortFunc(oldIDs, driver.CompareID)
	want := append([]uuid.UUID{nullA.ID, nullB.ID, older.ID}, oldIDs...)
	got, err := b.ListStale(ctx, 30*time.Second, 100)
	if err != nil || !slices.Equal(ids(got), want) {
		t.Fatalf("ListStale(30s) = %v, %v\n want %v", names(got), err, want)
	}
	if got, _ := b.ListStale(ctx, 30*time.Second, 2); !slices.Equal(ids(got), want[:2]) {
		t.Fatalf("ListStale(limit 2) = %v", names(got))
	}
	if got, err := b.ListStale(ctx, -1, 0); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListStale(limit 0) = %v, %v; want an empty list", got, err)
	}
	all, _ := b.ListStale(ctx, -1, 100)
	if len(all) != 7 {
		t.Fatalf("ListStale(-1) = %v, want every running record", names(all))
	}
	if !slices.Equal(ids(all[:5]), want) || all[5].ID != edge.ID || all[6].ID != fresh.ID {
		t.Fatalf("ListStale(-1) order = %v", names(all))
	}
	// Listing changes nothing.
	for _, r := range all {
		if g := getTask(t, b, r.ID); !reflect.DeepEqual(g, r) {
			t.Fatalf("listed %+v, stored %+v", r, g)
		}
	}
	checkInvariants(t, b)
}

// TestPolicyAndInterruptionsEveryStatusAndReadPath enqueues records with a
// policy, brings them into every status with interruption counts, and checks
// that every read path returns the stored policy (what its JSON form decodes
// to, never sharing a pointer with a caller) and the counter, with the user
// metadata untouched. Legacy policy keys in metadata are plain user data to
// this store: they are neither read nor moved.
func TestPolicyAndInterruptionsEveryStatusAndReadPath(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	onShutdown := true
	pol := queuestype.Policy{
		Timeout:           1500*time.Millisecond + 1, // not a whole number of seconds' nanoseconds
		RetryBackoff:      queuestype.RetryBackoff{InitialDelay: time.Second, Multiplier: 2, MaxDelay: time.Minute},
		NoStaleRequeue:    true,
		RequeueOnShutdown: &onShutdown,
		LogLevel:          "debug",
		LogSuccess:        true,
		Description:       "d",
		CorrelationID:     "c-1",
		UniqueBy:          "task",
		UniqueVersion:     "v1",
		UniqueUntil:       "terminal",
	}
	wantPol, err := queuestype.DecodePolicy(queuestype.EncodePolicy(pol))
	if err != nil {
		t.Fatal(err)
	}
	legacy := map[string]any{"tenant": "t1", queuestype.MetaInterruptions: float64(5), queuestype.MetaRequeueOnStale: false}
	statuses := queuestype.AllStatuses
	items := make([]driver.EnqueueParams, len(statuses))
	for i, s := range statuses {
		items[i] = driver.EnqueueParams{TaskName: "pol", Key: "k-" + string(s), MaxRetries: 5, Policy: pol, Metadata: legacy}
		switch s {
		case queuestype.StatusScheduled:
			items[i].ScheduledAt = clk.Now().Add(time.Hour)
		case queuestype.StatusExpired:
			items[i].ScheduledAt = clk.Now().Add(time.Hour)
			items[i].ExpiresAt = clk.Now().Add(time.Second)
		}
	}
	outs, err := b.Enqueue(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	onShutdown = false // the caller's pointer must not reach the store
	wantInt := map[uuid.UUID]int{}
	byStatus := map[queuestype.Status]uuid.UUID{}
	check := func(where string, recs ...*queuestype.Record) {
		t.Helper()
		for _, r := range recs {
			if r == nil {
				t.Fatalf("%s: nil record", where)
			}
			if !reflect.DeepEqual(r.Policy, wantPol) {
				t.Fatalf("%s: %s policy %+v, want %+v", where, r.Status, r.Policy, wantPol)
			}
			if r.Interruptions != wantInt[r.ID] {
				t.Fatalf("%s: %s interruptions %d, want %d", where, r.Status, r.Interruptions, wantInt[r.ID])
			}
			if !reflect.DeepEqual(r.Metadata, legacy) {
				t.Fatalf("%s: %s metadata %v, want %v", where, r.Status, r.Metadata, legacy)
			}
		}
	}
	for i, o := range outs {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		byStatus[statuses[i]] = o.Record.ID
		check("Enqueue", o.Record)
	}
	id := func(s queuestype.Status) uuid.UUID { return byStatus[s] }

	// Every record that will run is interrupted twice by Settle (generations
	// 0 and 1), then claimed again, so each carries 2 interruptions.
	for _, s := range []queuestype.Status{queuestype.StatusPending, queuestype.StatusRunning, queuestype.StatusCompleted,
		queuestype.StatusFailed, queuestype.StatusCancelled} {
		res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: id(s), WorkerID: "w1"})
		if err != nil || len(res.Claimed) != 1 {
			t.Fatal(res, err)
		}
		check("ClaimByID", res.Claimed...)
		sr := settleOne(t, b, driver.Transition{ID: id(s), Generation: 0, To: queuestype.StatusPending, Interrupted: true, WorkerID: "w1"})
		if sr.Err != nil {
			t.Fatal(sr.Err)
		}
		wantInt[id(s)] = 1
		check("Settle(interrupted, generation 0)", sr.Record)
		claimID(t, b, id(s), "w1")
		sr = settleOne(t, b, driver.Transition{ID: id(s), Generation: 1, To: queuestype.StatusPending, Interrupted: true, WorkerID: "w1"})
		if sr.Err != nil {
			t.Fatal(sr.Err)
		}
		wantInt[id(s)] = 2
		check("Settle(pending)", sr.Record)
	}
	// The store keeps counting in the field; metadata.interruptions stays
	// the caller's value.
	if r := getTask(t, b, id(queuestype.StatusPending)); r.AttemptsConsumed() != 0 || r.Metadata[queuestype.MetaInterruptions] != float64(5) {
		t.Fatalf("after two interruptions: attempts consumed %d, metadata %v", r.AttemptsConsumed(), r.Metadata)
	}
	check("ListPending", must(b.ListPending(ctx, driver.ListPendingParams{}))...)
	claimed := claim(t, b, driver.ClaimParams{Limit: 10})
	if len(claimed.Claimed) != 5 {
		t.Fatalf("claimed %d", len(claimed.Claimed))
	}
	check("ClaimMany", claimed.Claimed...)
	// Leave pending: settle it back with a retry (not an interruption).
	sr := settleOne(t, b, driver.Transition{ID: id(queuestype.StatusPending), Generation: 2, To: queuestype.StatusPending, Error: "e"})
	check("Settle(retry)", sr.Record)
	check("ListStale", must(b.ListStale(ctx, -1, 100))...)
	check("Settle(completed)", settleOne(t, b, driver.Transition{ID: id(queuestype.StatusCompleted), Generation: 2, To: queuestype.StatusCompleted}).Record)
	check("Settle(failed)", settleOne(t, b, driver.Transition{ID: id(queuestype.StatusFailed), Generation: 2, To: queuestype.StatusFailed, Error: "x"}).Record)
	check("Cancel", must(b.Cancel(ctx, driver.CancelParams{ID: id(queuestype.StatusCancelled), IncludeRunning: true})))
	clk.Add(2 * time.Second)
	check("ExpireOverdue", must(b.ExpireOverdue(ctx, 10))...)

	// Every status is now held once.
	for _, s := range statuses {
		r := getTask(t, b, id(s))
		if r.Status != s {
			t.Fatalf("record for %s is %s", s, r.Status)
		}
		check("GetTask", r)
		check("GetTaskByKey", must(b.GetTaskByKey(ctx, "k-"+string(s))))
	}
	allIDs := make([]uuid.UUID, 0, len(statuses))
	for _, s := range statuses {
		allIDs = append(allIDs, id(s))
	}
	check("GetTasks", must(b.GetTasks(ctx, allIDs))...)
	page := must(b.ListTasks(ctx, driver.TaskFilter{Limit: 100}))
	if len(page.Items) != len(statuses) {
		t.Fatalf("ListTasks: %d records", len(page.Items))
	}
	check("ListTasks", page.Items...)
	check("ListCompletedByTask", must(b.ListCompletedByTask(ctx, "pol", time.Time{}, 10))...)
	dup, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "pol", Key: "k-running"}})
	if err != nil || !dup[0].Existing {
		t.Fatalf("keyed duplicate = %+v, %v", dup, err)
	}
	check("Enqueue(existing)", dup[0].Record)
	if _, err := b.SetExecutionRef(ctx, id(queuestype.StatusRunning), "ext"); err != nil {
		t.Fatal(err)
	}
	check("ListRunningExternal", must(b.ListRunningExternal(ctx, 10))...)
	check("CancelMatching", must(b.CancelMatching(ctx, driver.CancelFilter{TaskName: "pol"}))...)

	// Returned policies are the caller's own.
	r := getTask(t, b, id(queuestype.StatusRunning))
	*r.Policy.RequeueOnShutdown = false
	r.Policy.Description = "changed"
	check("GetTask after a caller changed a copy", getTask(t, b, id(queuestype.StatusRunning)))

	// A record enqueued without a policy has the zero policy whatever its
	// metadata says.
	plain := enqueue(t, b, driver.EnqueueParams{TaskName: "plain", Metadata: legacy})[0]
	if !plain.Policy.IsZero() || plain.Interruptions != 0 {
		t.Fatalf("plain record policy %+v interruptions %d", plain.Policy, plain.Interruptions)
	}
	checkInvariants(t, b)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestForeverKeyReadsPolicy checks that forever-key handling in Enqueue
// reads the record's policy, not metadata.unique_until: an active record
// whose policy holds its key forever keeps the key against a forever
// enqueue after its reservation was reset; one that only says so in its
// metadata is an ordinary holder (an identity conflict).
func TestForeverKeyReadsPolicy(t *testing.T) {
	b := New(Options{})
	ctx := context.Background()
	byPolicy := enqueue(t, b, driver.EnqueueParams{TaskName: "p", Key: "kp",
		Policy: queuestype.Policy{UniqueUntil: queuestype.UniqueForever}})[0]
	byMeta := enqueue(t, b, driver.EnqueueParams{TaskName: "m", Key: "km",
		Metadata: map[string]any{queuestype.MetaUniqueUntil: queuestype.UniqueForever}})[0]
	outs, err := b.Enqueue(ctx, []driver.EnqueueParams{
		{TaskName: "p", Key: "kp", Forever: true},
		{TaskName: "m", Key: "km", Forever: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if outs[0].Err != nil || !outs[0].Existing || outs[0].Record == nil || outs[0].Record.ID != byPolicy.ID {
		t.Fatalf("policy-forever holder: %+v", outs[0])
	}
	if !errors.Is(outs[1].Err, queuestype.ErrIdentityConflict) {
		t.Fatalf("metadata-only forever holder: %+v, want ErrIdentityConflict", outs[1])
	}
	if _, err := b.GetTask(ctx, byMeta.ID); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkClaimSettle is BenchmarkClaimComplete's claim/complete loop in
// four shapes: one Settle call per record or one for the whole claimed
// batch, with or without the returned records (PerRecord is the shape
// BenchmarkClaimComplete measures, with Claimed set).
func BenchmarkClaimSettle(b *testing.B) {
	for _, c := range []struct {
		name     string
		batch    bool
		noRecord bool
	}{{"PerRecord", false, false}, {"PerRecordNoRecord", false, true}, {"Batch", true, false}, {"BatchNoRecord", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			be := New(Options{})
			ctx := context.Background()
			enqueueDue(b, be, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			ts := make([]driver.Transition, 0, 50)
			done := 0
			for done < b.N {
				res, err := be.ClaimMany(ctx, driver.ClaimParams{Limit: 50, WorkerID: "w", ExpireOverdue: true,
					QueueLimits: map[string]int{"default": 50}})
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Claimed) == 0 {
					b.Fatalf("ran dry after %d", done)
				}
				ts = ts[:0]
				for _, r := range res.Claimed {
					ts = append(ts, driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queuestype.StatusCompleted,
						Result: json.RawMessage(`null`), Claimed: r, NoRecord: c.noRecord})
					if !c.batch {
						out, err := be.Settle(ctx, ts)
						if err != nil || out[0].Err != nil {
							b.Fatal(err, out)
						}
						ts = ts[:0]
					}
				}
				if c.batch {
					if _, err := be.Settle(ctx, ts); err != nil {
						b.Fatal(err)
					}
				}
				done += len(res.Claimed)
			}
		})
	}
}
