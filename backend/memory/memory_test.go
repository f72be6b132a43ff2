package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func enqueue(t testing.TB, b *Backend, items ...driver.EnqueueParams) []*queues.Record {
	t.Helper()
	outs, err := b.Enqueue(context.Background(), items)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	recs := make([]*queues.Record, len(outs))
	for i, o := range outs {
		if o.Err != nil {
			t.Fatalf("enqueue item %d: %v", i, o.Err)
		}
		recs[i] = o.Record
	}
	return recs
}

func claim(t testing.TB, b *Backend, p driver.ClaimParams) driver.ClaimResult {
	t.Helper()
	if p.WorkerID == "" {
		p.WorkerID = "w1"
	}
	res, err := b.ClaimMany(context.Background(), p)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return res
}

func names(recs []*queues.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.TaskName
	}
	return out
}

func TestClaimOrderMixedPrioritiesAndPromotion(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	now := clk.Now()
	enqueue(t, b,
		driver.EnqueueParams{TaskName: "p1", Priority: 1},
		driver.EnqueueParams{TaskName: "p10", Priority: 10},
		driver.EnqueueParams{TaskName: "later-p20", Priority: 20, ScheduledAt: now.Add(time.Minute)},
		driver.EnqueueParams{TaskName: "p5", Priority: 5},
	)
	clk.Add(time.Second)
	enqueue(t, b,
		driver.EnqueueParams{TaskName: "p10-second", Priority: 10},
		driver.EnqueueParams{TaskName: "later-p5", Priority: 5, ScheduledAt: now.Add(2 * time.Minute)},
	)
	res := claim(t, b, driver.ClaimParams{Limit: 2})
	if got := names(res.Claimed); !slices.Equal(got, []string{"p10", "p10-second"}) {
		t.Fatalf("first claim = %v", got)
	}
	for _, r := range res.Claimed {
		if r.Status != queues.StatusRunning || r.WorkerID != "w1" || r.StartedAt.IsZero() || !r.StartedAt.Equal(r.HeartbeatAt) {
			t.Fatalf("claimed record not stamped: %+v", r)
		}
	}
	// The scheduled ones are not due yet and stay scheduled.
	if n, ok, _ := b.NextDue(context.Background(), nil); !ok || !n.Equal(now.Add(time.Minute)) {
		t.Fatalf("NextDue = %v %v", n, ok)
	}
	clk.Add(2 * time.Minute)
	res = claim(t, b, driver.ClaimParams{Limit: 10})
	// later-p20 was queued at the start but is the highest priority; later-p5
	// ties with p5 on priority and queued_at: created_at decides.
	want := []string{"later-p20", "p5", "later-p5", "p1"}
	if got := names(res.Claimed); !slices.Equal(got, want) {
		t.Fatalf("second claim = %v, want %v", got, want)
	}
	if _, ok, _ := b.NextDue(context.Background(), nil); ok {
		t.Fatal("NextDue reports a record after everything was claimed")
	}
	checkInvariants(t, b)
}

func TestEqualPriorityFIFOAndIDTieBreak(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	// Same priority, same queued_at and created_at: id order.
	ids := []uuid.UUID{uuid.MustParse("00000000-0000-7000-8000-000000000003"), uuid.MustParse("00000000-0000-7000-8000-000000000001"), uuid.MustParse("00000000-0000-7000-8000-000000000002")}
	for _, id := range ids {
		enqueue(t, b, driver.EnqueueParams{ID: id, TaskName: id.String()[35:]})
	}
	res := claim(t, b, driver.ClaimParams{Limit: 3})
	if got := names(res.Claimed); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("claim = %v", got)
	}
}

func TestPerQueueCaps(t *testing.T) {
	b := New(Options{})
	for i := range 4 {
		enqueue(t, b, driver.EnqueueParams{TaskName: fmt.Sprint("a", i), Queue: "a", Priority: 10})
		enqueue(t, b, driver.EnqueueParams{TaskName: fmt.Sprint("b", i), Queue: "b"})
		enqueue(t, b, driver.EnqueueParams{TaskName: fmt.Sprint("c", i), Queue: "c"})
	}
	res := claim(t, b, driver.ClaimParams{Limit: 5, QueueLimits: map[string]int{"a": 1, "b": 0}})
	perQueue := map[string]int{}
	for _, r := range res.Claimed {
		perQueue[r.Queue]++
	}
	if len(res.Claimed) != 5 || perQueue["a"] != 1 || perQueue["b"] != 0 || perQueue["c"] != 4 {
		t.Fatalf("claimed %v", names(res.Claimed))
	}
	if res.Claimed[0].Queue != "a" {
		t.Fatalf("the capped high-priority queue should come first: %v", names(res.Claimed))
	}
	// Queue filter plus cap.
	res = claim(t, b, driver.ClaimParams{Limit: 5, Queues: []string{"a", "b"}, QueueLimits: map[string]int{"a": 2}})
	perQueue = map[string]int{}
	for _, r := range res.Claimed {
		perQueue[r.Queue]++
	}
	if perQueue["a"] != 2 || perQueue["b"] != 3 || perQueue["c"] != 0 {
		t.Fatalf("claimed %v", names(res.Claimed))
	}
	checkInvariants(t, b)
}

func TestCancelledRecordLeavesIndex(t *testing.T) {
	b := New(Options{})
	ctx := context.Background()
	recs := enqueue(t, b,
		driver.EnqueueParams{TaskName: "x", Priority: 3},
		driver.EnqueueParams{TaskName: "y", Priority: 2},
		driver.EnqueueParams{TaskName: "z", Priority: 1},
	)
	if _, err := b.Cancel(ctx, driver.CancelParams{ID: recs[0].ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Cancel(ctx, driver.CancelParams{ID: recs[0].ID}); !errors.Is(err, queues.ErrFenceLost) {
		t.Fatalf("second cancel: %v", err)
	}
	checkInvariants(t, b)
	if n := b.partFor("local", "default").ready.Len(); n != 2 {
		t.Fatalf("ready heap holds %d entries, want 2", n)
	}
	lp, _ := b.ListPending(ctx, driver.ListPendingParams{})
	if got := names(lp); !slices.Equal(got, []string{"y", "z"}) {
		t.Fatalf("ListPending = %v", got)
	}
	res := claim(t, b, driver.ClaimParams{Limit: 5})
	if got := names(res.Claimed); !slices.Equal(got, []string{"y", "z"}) {
		t.Fatalf("claim = %v", got)
	}
	// CancelMatching removes from the index as well.
	enqueue(t, b, driver.EnqueueParams{TaskName: "m", Args: json.RawMessage(`{"n":1,"s":"x"}`)},
		driver.EnqueueParams{TaskName: "m", Args: json.RawMessage(`{"n":2}`)})
	got, err := b.CancelMatching(ctx, queues.CancelFilter{TaskName: "m", Args: map[string]any{"n": 1}})
	if err != nil || len(got) != 1 {
		t.Fatalf("CancelMatching = %v, %v", got, err)
	}
	res = claim(t, b, driver.ClaimParams{Limit: 5})
	if len(res.Claimed) != 1 || string(res.Claimed[0].Args) != `{"n":2}` {
		t.Fatalf("claim after CancelMatching = %v", res.Claimed)
	}
	checkInvariants(t, b)
}

func TestExpiredRecordsInIndex(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	now := clk.Now()
	enqueue(t, b,
		driver.EnqueueParams{TaskName: "overdue", Priority: 5, ExpiresAt: now.Add(time.Second)},
		driver.EnqueueParams{TaskName: "live", ExpiresAt: now.Add(time.Hour)},
	)
	clk.Add(2 * time.Second)
	// Without ExpireOverdue the overdue record is skipped, not claimed, not expired.
	res := claim(t, b, driver.ClaimParams{Limit: 1})
	if got := names(res.Claimed); !slices.Equal(got, []string{"live"}) || len(res.Expired) != 0 {
		t.Fatalf("claim = %v expired %v", got, res.Expired)
	}
	checkInvariants(t, b)
	exp, err := b.ExpireOverdue(ctx, 0)
	if err != nil || len(exp) != 1 || exp[0].TaskName != "overdue" || exp[0].Status != queues.StatusExpired || exp[0].CompletedAt.IsZero() {
		t.Fatalf("ExpireOverdue = %v, %v", exp, err)
	}
	// Claim-time expiry, including a record that is not due yet.
	enqueue(t, b,
		driver.EnqueueParams{TaskName: "overdue2", ExpiresAt: clk.Now().Add(time.Second)},
		driver.EnqueueParams{TaskName: "future-overdue", ScheduledAt: clk.Now().Add(time.Hour), ExpiresAt: clk.Now().Add(time.Second)},
		driver.EnqueueParams{TaskName: "live2", Priority: -5},
	)
	clk.Add(2 * time.Second)
	res = claim(t, b, driver.ClaimParams{Limit: 1, ExpireOverdue: true})
	if got := names(res.Claimed); !slices.Equal(got, []string{"live2"}) || len(res.Expired) != 2 {
		t.Fatalf("claim = %v expired %v", got, names(res.Expired))
	}
	st, _ := b.Statistics(ctx, "")
	if st.Expired != 3 || st.Running != 2 || st.Total != 5 {
		t.Fatalf("stats = %+v", st)
	}
	checkInvariants(t, b)
}

func TestRetryRequeueOrderAndWakeups(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wk, err := b.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs := enqueue(t, b, driver.EnqueueParams{TaskName: "a", MaxRetries: 2}, driver.EnqueueParams{TaskName: "b"})
	select {
	case <-wk:
	default:
		t.Fatal("no hint after enqueue")
	}
	select {
	case <-wk:
		t.Fatal("two hints for one enqueue call")
	default:
	}
	res := claim(t, b, driver.ClaimParams{Limit: 1})
	if res.Claimed[0].ID != recs[0].ID {
		t.Fatal("wrong record claimed")
	}
	clk.Add(time.Second)
	sr := settleOne(t, b, driver.Transition{ID: recs[0].ID, Generation: 0, To: queues.StatusPending, Error: "boom"})
	r, err := sr.Record, sr.Err
	if err != nil || r.Status != queues.StatusPending || r.RetryCount != 1 || r.WorkerID != "" || !r.QueuedAt.Equal(clk.Now()) ||
		r.Error != "boom" {
		t.Fatalf("retry = %+v, %v", r, err)
	}
	select {
	case <-wk:
	default:
		t.Fatal("no hint after retry")
	}
	// The retry was queued later than b, so b comes first.
	res = claim(t, b, driver.ClaimParams{Limit: 2})
	if got := names(res.Claimed); !slices.Equal(got, []string{"b", "a"}) {
		t.Fatalf("claim = %v", got)
	}
	// Delayed retry: scheduled, no hint, promoted later.
	sr = settleOne(t, b, driver.Transition{ID: recs[0].ID, Generation: 1, To: queues.StatusPending, Error: "boom", Delay: time.Minute})
	r, err = sr.Record, sr.Err
	if err != nil || r.Status != queues.StatusScheduled || !r.ScheduledAt.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("delayed retry = %+v, %v", r, err)
	}
	select {
	case <-wk:
		t.Fatal("hint for a delayed retry")
	default:
	}
	if res := claim(t, b, driver.ClaimParams{Limit: 2}); len(res.Claimed) != 0 {
		t.Fatal("claimed a delayed retry early")
	}
	clk.Add(time.Minute)
	if res := claim(t, b, driver.ClaimParams{Limit: 2}); len(res.Claimed) != 1 || res.Claimed[0].RetryCount != 2 {
		t.Fatalf("claim after delay = %v", res.Claimed)
	}
	// A terminal failure (the engine's call once the budget is spent) ends
	// the record: no hint, worker_id kept, completed_at stamped.
	sr = settleOne(t, b, driver.Transition{ID: recs[0].ID, Generation: 2, To: queues.StatusFailed, Error: "last"})
	r, err = sr.Record, sr.Err
	if err != nil || r.Status != queues.StatusFailed || r.WorkerID != "w1" || !r.CompletedAt.Equal(clk.Now()) ||
		r.Error != "last" || r.RetryCount != 2 || !r.HeartbeatAt.IsZero() {
		t.Fatalf("terminal fail = %+v, %v", r, err)
	}
	select {
	case <-wk:
		t.Fatal("hint for a terminal failure")
	default:
	}
	cancel()
	if _, ok := <-wk; ok {
		// drain a possibly pending hint, then expect the close
		if _, ok := <-wk; ok {
			t.Fatal("wakeup channel not closed after ctx end")
		}
	}
	checkInvariants(t, b)
}

// TestInterruptAndStaleRecovery drives a shutdown interruption and a stale
// sweep through Settle. Which stale record is requeued and which fails (the
// retry budget, the record's stale-requeue policy, the priority mapping) is
// the engine's decision, tested in the root package; here the store must
// apply exactly the transitions it is given, fenced on owner, generation and
// heartbeat age.
func TestInterruptAndStaleRecovery(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recs := enqueue(t, b,
		driver.EnqueueParams{TaskName: "a", Priority: 9, MaxRetries: 1},
		driver.EnqueueParams{TaskName: "b", MaxRetries: 0},
		driver.EnqueueParams{TaskName: "c", MaxRetries: 3, Policy: queuestype.Policy{NoStaleRequeue: true}},
	)
	claim(t, b, driver.ClaimParams{Limit: 3})
	wk, err := b.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	interrupt := driver.Transition{ID: recs[0].ID, To: queues.StatusPending, Interrupted: true, WorkerID: "other"}
	if res := settleOne(t, b, interrupt); !errors.Is(res.Err, queues.ErrFenceLost) {
		t.Fatalf("interrupt wrong owner: %+v", res)
	}
	if r := getTask(t, b, recs[0].ID); r.Status != queues.StatusRunning || r.RetryCount != 0 || r.Interruptions != 0 {
		t.Fatalf("a refused interruption wrote: %+v", r)
	}
	if hinted(wk) {
		t.Fatal("hint for a refused interruption")
	}
	interrupt.WorkerID = "w1"
	res := settleOne(t, b, interrupt)
	r := res.Record
	if res.Err != nil || r.Status != queues.StatusPending || r.RetryCount != 1 || r.Interruptions != 1 || r.Priority != 9 ||
		r.WorkerID != "" || !r.StartedAt.IsZero() || !r.HeartbeatAt.IsZero() || !r.QueuedAt.Equal(clk.Now()) {
		t.Fatalf("interrupt = %+v, %v", r, res.Err)
	}
	if !hinted(wk) {
		t.Fatal("no hint after an interruption")
	}
	if res := settleOne(t, b, driver.Transition{ID: recs[0].ID, Generation: 0, To: queues.StatusCompleted}); !errors.Is(res.Err, queues.ErrFenceLost) {
		t.Fatalf("old generation complete: %+v", res)
	}
	claim(t, b, driver.ClaimParams{Limit: 3})
	clk.Add(time.Minute)
	stale, err := b.ListStale(ctx, 30*time.Second, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := ids(stale)
	slices.SortFunc(got, driver.CompareID)
	want := ids(recs)
	slices.SortFunc(want, driver.CompareID)
	if !slices.Equal(got, want) {
		t.Fatalf("ListStale = %v, want every claimed record", names(stale))
	}
	// The engine's decisions for this sweep: a has budget left (an
	// interruption consumes none) and is requeued at a priority capped at
	// 3; b has no budget and c's policy forbids a stale requeue, so both fail.
	capped := 3
	decided := map[uuid.UUID]driver.Transition{
		recs[0].ID: {To: queues.StatusPending, Error: driver.StaleError, Priority: &capped},
		recs[1].ID: {To: queues.StatusFailed, Error: driver.StaleError},
		recs[2].ID: {To: queues.StatusFailed, Error: driver.StaleError},
	}
	ts := make([]driver.Transition, len(stale))
	for i, r := range stale {
		tr := decided[r.ID]
		tr.ID, tr.Generation, tr.StaleAfter = r.ID, r.RetryCount, 30*time.Second
		ts[i] = tr
	}
	hinted(wk)
	out, err := b.Settle(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	for i, sr := range out {
		r := sr.Record
		if sr.Err != nil || r.ID != ts[i].ID {
			t.Fatalf("stale settle %d = %+v", i, sr)
		}
		switch r.ID {
		case recs[0].ID:
			if r.Status != queues.StatusPending || r.RetryCount != 2 || r.Priority != 3 || r.Error != driver.StaleError ||
				r.Interruptions != 1 || r.WorkerID != "" || !r.QueuedAt.Equal(now) {
				t.Fatalf("requeued = %+v", r)
			}
		default:
			if r.Status != queues.StatusFailed || r.RetryCount != 0 || r.Error != driver.StaleError || r.WorkerID != "w1" ||
				!r.CompletedAt.Equal(now) || !r.HeartbeatAt.IsZero() {
				t.Fatalf("failed = %+v", r)
			}
		}
		if g := getTask(t, b, r.ID); !reflect.DeepEqual(g, r) {
			t.Fatalf("returned %+v, stored %+v", r, g)
		}
	}
	if !hinted(wk) {
		t.Fatal("no hint after a due stale requeue")
	}
	if left, err := b.ListStale(ctx, 30*time.Second, 100); err != nil || len(left) != 0 {
		t.Fatalf("ListStale after the sweep = %v, %v", names(left), err)
	}
	st, _ := b.Statistics(ctx, "")
	if st.Pending != 1 || st.Failed != 2 || st.Running != 0 || st.Total != 3 {
		t.Fatalf("stats = %+v", st)
	}
	checkInvariants(t, b)
}

func TestReturnedRecordsAreCopies(t *testing.T) {
	b := New(Options{})
	ctx := context.Background()
	recs := enqueue(t, b, driver.EnqueueParams{TaskName: "a", Args: json.RawMessage(`{"x":1}`), Metadata: map[string]any{"k": "v", "n": 2}})
	recs[0].Metadata["k"] = "changed"
	recs[0].Args[2] = 'y'
	got, _ := b.GetTask(ctx, recs[0].ID)
	if got.Metadata["k"] != "v" || string(got.Args) != `{"x":1}` {
		t.Fatalf("store aliased by caller: %+v", got)
	}
	if got.Metadata["n"] != float64(2) {
		t.Fatalf("metadata numbers should read back as JSON numbers (float64), got %T", got.Metadata["n"])
	}
}

func TestDedupAndForeverWithinOneCall(t *testing.T) {
	b := New(Options{})
	ctx := context.Background()
	outs, err := b.Enqueue(ctx, []driver.EnqueueParams{
		{TaskName: "t", Key: "k1"},
		{TaskName: "t", Key: "k1"},
		{TaskName: "f", Key: "k2", Forever: true},
		{TaskName: "f", Key: "k2", Forever: true},
		{TaskName: "f", Key: "k1", Forever: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if outs[0].Existing || !outs[1].Existing || outs[1].Record.ID != outs[0].Record.ID {
		t.Fatalf("terminal-lifetime duplicate: %+v %+v", outs[0], outs[1])
	}
	if outs[2].Existing || outs[3].Owner == nil || outs[3].Owner.TaskID != outs[2].Record.ID || outs[3].Record != nil {
		t.Fatalf("forever duplicate: %+v %+v", outs[2], outs[3])
	}
	if !errors.Is(outs[4].Err, queues.ErrIdentityConflict) {
		t.Fatalf("forever over an active non-forever key: %+v", outs[4])
	}
	// An existing ID fails the whole call and writes nothing.
	_, err = b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "new"}, {ID: outs[0].Record.ID, TaskName: "dup"}})
	if err == nil {
		t.Fatal("duplicate ID accepted")
	}
	if st, _ := b.Statistics(ctx, ""); st.Total != 2 {
		t.Fatalf("partial write: %+v", st)
	}
	// A terminal holder gives its key up.
	claim(t, b, driver.ClaimParams{Limit: 10})
	if res := settleOne(t, b, driver.Transition{ID: outs[0].Record.ID, To: queues.StatusCompleted}); res.Err != nil {
		t.Fatal(res.Err)
	}
	again := enqueue(t, b, driver.EnqueueParams{TaskName: "t", Key: "k1"})
	if again[0].ID == outs[0].Record.ID {
		t.Fatal("terminal record still holds the key")
	}
	old, _ := b.GetTask(ctx, outs[0].Record.ID)
	if old.Key != "" {
		t.Fatalf("old key not cleared: %q", old.Key)
	}
	if byKey, _ := b.GetTaskByKey(ctx, "k1"); byKey.ID != again[0].ID {
		t.Fatal("GetTaskByKey does not return the new holder")
	}
	checkInvariants(t, b)
}

func TestWaitForCompletion(t *testing.T) {
	b := New(Options{})
	ctx := context.Background()
	recs := enqueue(t, b, driver.EnqueueParams{TaskName: "a"})
	done := make(chan error, 1)
	go func() { done <- b.WaitForCompletion(ctx, recs[0].ID) }()
	claim(t, b, driver.ClaimParams{Limit: 1})
	if res := settleOne(t, b, driver.Transition{ID: recs[0].ID, To: queues.StatusCompleted}); res.Err != nil {
		t.Fatal(res.Err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not released")
	}
	if err := b.WaitForCompletion(ctx, uuid.New()); err != nil {
		t.Fatalf("missing record: %v", err)
	}
	recs = enqueue(t, b, driver.EnqueueParams{TaskName: "b"})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := b.WaitForCompletion(cctx, recs[0].ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx end: %v", err)
	}
}

func TestListTasksPaging(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	var all []uuid.UUID
	for range 7 {
		r := enqueue(t, b, driver.EnqueueParams{TaskName: "a"})
		all = append(all, r[0].ID)
		clk.Add(time.Millisecond)
	}
	slices.Reverse(all)
	var got []uuid.UUID
	var cur uuid.UUID
	for pages := 0; ; pages++ {
		page, err := b.ListTasks(ctx, queues.TaskFilter{Limit: 3, Cursor: cur})
		if err != nil || pages > 5 {
			t.Fatal(err, pages)
		}
		for _, r := range page.Items {
			got = append(got, r.ID)
		}
		if page.NextCursor == uuid.Nil {
			break
		}
		cur = page.NextCursor
	}
	if !slices.Equal(got, all) {
		t.Fatalf("pages = %v, want %v", got, all)
	}
}

// TestRandomizedAgainstModel drives random operations and checks ClaimMany,
// ListPending, ExpireOverdue and Statistics against a brute-force evaluation
// of the same store, plus the index invariants after every step.
func TestRandomizedAgainstModel(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed) })
	}
}

func runModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7))
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	queueNames := []string{"a", "b", "c"}
	backends := []string{"local", "ext"}
	sec := time.Second
	pick := func() *entry { // random stored entry
		if len(b.records) == 0 {
			return nil
		}
		n := rng.IntN(len(b.records))
		for _, e := range b.records {
			if n == 0 {
				return e
			}
			n--
		}
		return nil
	}
	for step := 0; step < 400; step++ {
		now := clk.Now()
		switch op := rng.IntN(14); op {
		case 0, 1, 2:
			items := make([]driver.EnqueueParams, 1+rng.IntN(4))
			for i := range items {
				p := driver.EnqueueParams{
					TaskName:         fmt.Sprint("t", step, "-", i),
					Queue:            queueNames[rng.IntN(3)],
					ExecutionBackend: backends[rng.IntN(2)],
					Priority:         rng.IntN(3) - 1,
					MaxRetries:       rng.IntN(2),
				}
				if rng.IntN(3) == 0 {
					p.ScheduledAt = now.Add(time.Duration(rng.IntN(5)) * sec)
				}
				if rng.IntN(3) == 0 {
					p.ExpiresAt = now.Add(time.Duration(rng.IntN(8)-2) * sec)
				}
				items[i] = p
			}
			if _, err := b.Enqueue(ctx, items); err != nil {
				t.Fatal(err)
			}
		case 3:
			clk.Add(time.Duration(rng.IntN(3)) * sec)
		case 4, 5:
			p := driver.ClaimParams{Limit: rng.IntN(6), WorkerID: "w", ExpireOverdue: rng.IntN(2) == 0}
			if rng.IntN(2) == 0 {
				p.Queues = []string{queueNames[rng.IntN(3)], queueNames[rng.IntN(3)]}
			}
			if rng.IntN(2) == 0 {
				p.ExecutionBackend = backends[rng.IntN(2)]
			}
			if rng.IntN(2) == 0 {
				p.QueueLimits = map[string]int{queueNames[rng.IntN(3)]: rng.IntN(3)}
			}
			wantClaim, wantExpired := modelClaim(b, p, now)
			res, err := b.ClaimMany(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(res.Claimed); !slices.Equal(got, wantClaim) {
				t.Fatalf("step %d claim %+v:\n got  %v\n want %v", step, p, got, wantClaim)
			}
			gotExp := ids(res.Expired)
			slices.SortFunc(gotExp, driver.CompareID)
			if !slices.Equal(gotExp, wantExpired) {
				t.Fatalf("step %d claim expired:\n got  %v\n want %v", step, gotExp, wantExpired)
			}
		case 6:
			if e := pick(); e != nil {
				_, _ = b.Cancel(ctx, driver.CancelParams{ID: e.rec.ID, IncludeRunning: rng.IntN(2) == 0})
			}
		case 7:
			// One outcome for a running record, decided here: complete,
			// retry after 0-2s, or fail for good.
			if e := pick(); e != nil && e.rec.Status == queues.StatusRunning {
				tr := driver.Transition{ID: e.rec.ID, Generation: e.rec.RetryCount, To: queues.StatusCompleted}
				switch rng.IntN(3) {
				case 1:
					tr.To, tr.Error, tr.Delay = queues.StatusPending, "x", time.Duration(rng.IntN(3))*sec
				case 2:
					tr.To, tr.Error = queues.StatusFailed, "x"
				}
				res, err := b.Settle(ctx, []driver.Transition{tr})
				if err != nil || res[0].Err != nil {
					t.Fatalf("step %d Settle(%s): %v, %v", step, tr.To, err, res[0].Err)
				}
			}
		case 8:
			if e := pick(); e != nil {
				switch rng.IntN(4) {
				case 0:
					_, _ = b.ReserveDispatch(ctx, driver.ReserveDispatchParams{ID: e.rec.ID, Marker: "__queues_dispatching__:m", Until: time.Now().Add(time.Minute)})
				case 1:
					_, _ = b.ReleaseDispatch(ctx, driver.ReleaseDispatchParams{ID: e.rec.ID, Marker: "__queues_dispatching__:m", ExecutionBackend: backends[rng.IntN(2)]})
				case 2:
					_, _ = b.SetExecutionRef(ctx, e.rec.ID, "ref")
				case 3:
					_, _ = b.SetExecutionBackend(ctx, e.rec.ID, backends[rng.IntN(2)], "")
				}
			}
		case 9:
			want := modelExpire(b, now)
			limit := rng.IntN(4)
			if limit > 0 && len(want) > limit {
				want = want[:limit]
			}
			got, err := b.ExpireOverdue(ctx, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), want) {
				t.Fatalf("step %d expire: got %v want %v", step, ids(got), want)
			}
		case 10:
			// A stale sweep treating every running record as stale: list
			// two, then requeue or fail each (decided here), fenced on
			// the listed heartbeat age.
			stale, err := b.ListStale(ctx, -1, 2)
			if err != nil {
				t.Fatal(err)
			}
			ts := make([]driver.Transition, len(stale))
			for i, r := range stale {
				ts[i] = driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queues.StatusPending, Error: driver.StaleError,
					Delay: time.Duration(rng.IntN(2)) * sec, StaleAfter: -1}
				if rng.IntN(3) == 0 {
					ts[i].To = queues.StatusFailed
				}
			}
			res, err := b.Settle(ctx, ts)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != nil {
					t.Fatalf("step %d stale Settle %+v: %v", step, ts[i], r.Err)
				}
			}
		case 11:
			_, _ = b.CleanupTerminal(ctx, driver.CleanupAll(now, 3))
		case 12:
			// A batch of transitions on random records, most of them
			// running (some fences lose on purpose).
			targets := []queues.Status{queues.StatusCompleted, queues.StatusFailed, queues.StatusCancelled, queues.StatusPending}
			ts := make([]driver.Transition, 1+rng.IntN(5))
			for i := range ts {
				tr := driver.Transition{To: targets[rng.IntN(len(targets))], Delay: time.Duration(rng.IntN(3)) * sec,
					Interrupted: rng.IntN(2) == 0, StaleAfter: time.Duration(rng.IntN(3)-1) * sec}
				if e := pick(); e != nil {
					tr.ID, tr.Generation = e.rec.ID, e.rec.RetryCount
					if e.rec.ExecutionRef != "" && rng.IntN(2) == 0 {
						ref := e.rec.ExecutionRef
						tr.ExpectedRef = &ref
					}
				}
				if rng.IntN(4) == 0 {
					p := rng.IntN(3) - 1
					tr.Priority = &p
				}
				ts[i] = tr
			}
			res, err := b.Settle(ctx, ts)
			if err != nil || len(res) != len(ts) {
				t.Fatalf("step %d Settle: %d results, %v", step, len(res), err)
			}
		case 13:
			staleAfter := time.Duration(rng.IntN(4)-1) * sec
			limit := 1 + rng.IntN(4)
			var want []*queues.Record
			for _, e := range b.running {
				hb := e.rec.HeartbeatAt
				if e.rec.DispatchUntil.IsZero() && (staleAfter < 0 || hb.IsZero() || hb.Before(now.Add(-staleAfter))) {
					want = append(want, &e.rec)
				}
			}
			slices.SortFunc(want, driver.StaleOrder)
			want = want[:min(limit, len(want))]
			got, err := b.ListStale(ctx, staleAfter, limit)
			if err != nil || !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("step %d ListStale(%s, %d) = %v, %v; want %v", step, staleAfter, limit, ids(got), err, ids(want))
			}
		}
		checkInvariants(t, b)
		// ListPending must equal the brute-force due list.
		p := driver.ListPendingParams{Limit: 1000}
		if rng.IntN(2) == 0 {
			p.Queues = []string{queueNames[rng.IntN(3)]}
		}
		want, _ := modelClaim(b, driver.ClaimParams{Limit: 1000, Queues: p.Queues}, clk.Now())
		got, _ := b.ListPending(ctx, p)
		if !slices.Equal(ids(got), want) {
			t.Fatalf("step %d ListPending:\n got  %v\n want %v", step, ids(got), want)
		}
	}
}

func ids(recs []*queues.Record) []uuid.UUID {
	out := make([]uuid.UUID, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// modelClaim computes by brute force what ClaimMany(p) at now should return.
func modelClaim(b *Backend, p driver.ClaimParams, now time.Time) (claimed, expired []uuid.UUID) {
	var due []*queues.Record
	for _, e := range b.records {
		r := &e.rec
		if !isOpen(r.Status) {
			continue
		}
		if len(p.Queues) > 0 && !slices.Contains(p.Queues, r.Queue) {
			continue
		}
		if p.ExecutionBackend != "" && r.ExecutionBackend != p.ExecutionBackend {
			continue
		}
		if r.IsExpired(now) {
			if p.ExpireOverdue && r.ExecutionRef == "" && p.Limit > 0 {
				expired = append(expired, r.ID)
			}
			continue
		}
		if !r.IsDue(now) || !r.DispatchUntil.IsZero() {
			continue
		}
		due = append(due, r)
	}
	slices.SortFunc(due, func(x, y *queues.Record) int {
		if claimLess(x, y) {
			return -1
		}
		return 1
	})
	taken := map[string]int{}
	for _, r := range due {
		if len(claimed) >= p.Limit {
			break
		}
		if c, ok := p.QueueLimits[r.Queue]; ok && taken[r.Queue] >= c {
			continue
		}
		taken[r.Queue]++
		claimed = append(claimed, r.ID)
	}
	slices.SortFunc(expired, driver.CompareID)
	return claimed, expired
}

// modelExpire lists, in sweep order, every record ExpireOverdue may expire at now.
func modelExpire(b *Backend, now time.Time) []uuid.UUID {
	var list []*queues.Record
	for _, e := range b.records {
		r := &e.rec
		if isOpen(r.Status) && r.ExecutionRef == "" && r.IsExpired(now) {
			list = append(list, r)
		}
	}
	slices.SortFunc(list, func(x, y *queues.Record) int {
		if timeIDLess(x.ExpiresAt, y.ExpiresAt, x, y) {
			return -1
		}
		return 1
	})
	return ids(list)
}

// checkInvariants verifies heaps, memberships and counters against the records.
func checkInvariants(t testing.TB, b *Backend) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	checkHeap := func(h *entryHeap) {
		for i, e := range h.items {
			if e.idx[h.kind] != i {
				t.Fatalf("heap %d: entry %s at %d records index %d", h.kind, e.rec.ID, i, e.idx[h.kind])
			}
			if i > 0 && h.less(i, (i-1)/2) {
				t.Fatalf("heap %d: order violated at %d", h.kind, i)
			}
			if b.records[e.rec.ID] != e {
				t.Fatalf("heap %d holds a deleted entry", h.kind)
			}
		}
	}
	for _, p := range b.partList {
		for k := kReady; k < kTerminal; k++ {
			checkHeap(p.heap(k))
			for _, e := range p.heap(k).items {
				if e.part != p {
					t.Fatalf("entry %s in partition %v but points to %v", e.rec.ID, p.key, e.part.key)
				}
			}
		}
	}
	for i := range b.terminal {
		checkHeap(&b.terminal[i])
	}
	stats := map[string]*queues.Statistics{}
	for id, e := range b.records {
		r := &e.rec
		if r.ID != id {
			t.Fatal("record map key mismatch")
		}
		if stats[r.Queue] == nil {
			stats[r.Queue] = &queues.Statistics{}
		}
		stats[r.Queue].Add(r.Status, 1)
		open := isOpen(r.Status)
		marker := !r.DispatchUntil.IsZero()
		inReady, inFuture, inExpiry := e.idx[kReady] >= 0, e.idx[kFuture] >= 0, e.idx[kExpiry] >= 0
		if (inReady || inFuture) && (!open || marker) {
			t.Fatalf("%s (%s, ref %q) is in the ready/future index", id, r.Status, r.ExecutionRef)
		}
		if inReady && inFuture {
			t.Fatalf("%s is in both ready and future", id)
		}
		if open && !marker && !inReady && !inFuture && !r.IsExpired(now) {
			t.Fatalf("%s is claimable but not indexed", id)
		}
		if inFuture == false && inReady && r.ScheduledAt.After(now) {
			t.Fatalf("%s is ready before its due time", id)
		}
		if wantExp := open && r.ExecutionRef == "" && !r.ExpiresAt.IsZero(); wantExp != inExpiry {
			t.Fatalf("%s expiry membership %v, want %v", id, inExpiry, wantExp)
		}
		if (e.idx[kTerminal] >= 0) != r.IsTerminal() {
			t.Fatalf("%s terminal membership wrong", id)
		}
		if (b.running[id] == e) != (r.Status == queues.StatusRunning) {
			t.Fatalf("%s running membership wrong", id)
		}
		if (b.withRef[id] == e) != (r.ExecutionRef != "" && !r.IsTerminal()) {
			t.Fatalf("%s ref membership wrong", id)
		}
		if r.Key != "" && b.byKey[r.Key] != e {
			t.Fatalf("%s key %q not indexed", id, r.Key)
		}
	}
	if len(b.running) > len(b.records) || len(b.withRef) > len(b.records) {
		t.Fatal("membership sets hold deleted entries")
	}
	for q, st := range b.stats {
		want := stats[q]
		if want == nil {
			want = &queues.Statistics{}
		}
		if *st != *want {
			t.Fatalf("stats[%s] = %+v, want %+v", q, *st, *want)
		}
	}
	for q, want := range stats {
		if b.stats[q] == nil || *b.stats[q] != *want {
			t.Fatalf("stats[%s] missing or wrong", q)
		}
	}
}

func TestConcurrentClaimersNeverShare(t *testing.T) {
	b := New(Options{})
	ctx := context.Background()
	const n = 2000
	items := make([]driver.EnqueueParams, n)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: "t", Priority: i % 7}
	}
	if _, err := b.Enqueue(ctx, items); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uuid.UUID]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprint("w", w)
			for {
				res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 7, WorkerID: worker})
				if err != nil {
					t.Error(err)
					return
				}
				if len(res.Claimed) == 0 {
					return
				}
				for _, r := range res.Claimed {
					mu.Lock()
					if prev, dup := seen[r.ID]; dup {
						t.Errorf("%s claimed by %s and %s", r.ID, prev, worker)
					}
					seen[r.ID] = worker
					mu.Unlock()
					if r.WorkerID != worker {
						t.Errorf("worker_id %q, want %q", r.WorkerID, worker)
					}
					res, err := b.Settle(ctx, []driver.Transition{{ID: r.ID, To: queues.StatusCompleted}})
					if err != nil || res[0].Err != nil {
						t.Error(err, res)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d of %d", len(seen), n)
	}
	checkInvariants(t, b)
}

// BenchmarkClaimComplete measures the worker's hot path: claim batches of 50
// and complete each record with its own Settle call (one completed
// transition, the record returned), against a store that starts with b.N
// due records. BenchmarkClaimSettle covers batched and record-less settles.
func BenchmarkClaimComplete(b *testing.B) {
	be := New(Options{})
	ctx := context.Background()
	enqueueDue(b, be, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	ts := make([]driver.Transition, 1)
	// Built once: Settle's transitions escape, so a literal in the loop
	// would cost the benchmark a heap allocation per call outside the store.
	null := json.RawMessage(`null`)
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
		for _, r := range res.Claimed {
			ts[0] = driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queues.StatusCompleted, Result: null}
			out, err := be.Settle(ctx, ts)
			if err != nil || out[0].Err != nil {
				b.Fatal(err, out)
			}
		}
		done += len(res.Claimed)
	}
}

// BenchmarkEnqueue measures single-record enqueue calls.
func BenchmarkEnqueue(b *testing.B) {
	be := New(Options{})
	ctx := context.Background()
	b.ReportAllocs()
	items := []driver.EnqueueParams{{TaskName: "noop", Args: json.RawMessage(`{"n":1}`), Metadata: map[string]any{"description": "x"}}}
	for b.Loop() {
		if _, err := be.Enqueue(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEndToEndParallel runs producers and 50 concurrent claim/complete
// loops against one store, reporting jobs/s.
func BenchmarkEndToEndParallel(b *testing.B) {
	be := New(Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var produced sync.WaitGroup
	produced.Add(1)
	go func() {
		defer produced.Done()
		items := make([]driver.EnqueueParams, 0, 100)
		for i := 0; i < b.N; i++ {
			items = append(items, driver.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{}`)})
			if len(items) == cap(items) || i == b.N-1 {
				if _, err := be.Enqueue(ctx, items); err != nil {
					b.Error(err)
					return
				}
				items = items[:0]
			}
		}
	}()
	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for w := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprint("w", w)
			for {
				mu.Lock()
				finished := done >= b.N
				mu.Unlock()
				if finished {
					return
				}
				res, err := be.ClaimMany(ctx, driver.ClaimParams{Limit: 1, WorkerID: worker, ExpireOverdue: true})
				if err != nil {
					b.Error(err)
					return
				}
				for _, r := range res.Claimed {
					out, err := be.Settle(ctx, []driver.Transition{{ID: r.ID, Generation: r.RetryCount, To: queues.StatusCompleted}})
					if err != nil || out[0].Err != nil {
						b.Error(err, out)
					}
				}
				mu.Lock()
				done += len(res.Claimed)
				mu.Unlock()
			}
		}()
	}
	produced.Wait()
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

// enqueueDue enqueues n due no-op records in batches of 1000, over three priorities.
func enqueueDue(b *testing.B, be *Backend, n int) {
	b.Helper()
	ctx := context.Background()
	const batch = 1000
	items := make([]driver.EnqueueParams, 0, batch)
	for i := 0; i < n; i++ {
		items = append(items, driver.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{}`), Priority: i % 3})
		if len(items) == batch || i == n-1 {
			if _, err := be.Enqueue(ctx, items); err != nil {
				b.Fatal(err)
			}
			items = items[:0]
		}
	}
}
