package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// fakeClock is a settable backend clock.
type fakeClock struct{ us atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.us.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixMicro())
	return c
}
func (c *fakeClock) now() time.Time          { return time.UnixMicro(c.us.Load()).UTC() }
func (c *fakeClock) advance(d time.Duration) { c.us.Add(d.Microseconds()) }

// testPolicy is a policy with every kind of field set.
func testPolicy() queuestype.Policy {
	yes := true
	return queuestype.Policy{Timeout: 2500 * time.Millisecond, RetryBackoff: queuestype.RetryBackoff{InitialDelay: time.Second, Multiplier: 2, MaxDelay: time.Minute},
		RequeueOnShutdown: &yes, LogLevel: "debug", Description: "settle test", CorrelationID: "c-1", UniqueBy: "task", UniqueVersion: "v1"}
}

// enqueueClaim enqueues n records carrying testPolicy and claims them all for worker.
func enqueueClaim(t *testing.T, b *sqlite.Backend, n int, worker string) []*queuestype.Record {
	t.Helper()
	ctx := context.Background()
	items := make([]driver.EnqueueParams, n)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: "settle.t", Args: json.RawMessage(`{"i":1}`), MaxRetries: 3,
			Metadata: map[string]any{"user": "u"}, Policy: testPolicy()}
	}
	out, err := b.Enqueue(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if !reflect.DeepEqual(o.Record.Policy, testPolicy()) {
			t.Fatalf("Enqueue returned policy %+v, want %+v", o.Record.Policy, testPolicy())
		}
	}
	res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: n, WorkerID: worker})
	if err != nil || len(res.Claimed) != n {
		t.Fatalf("claim = %d records, %v; want %d", len(res.Claimed), err, n)
	}
	return res.Claimed
}

// wantStored fails unless rec is exactly what GetTask reads.
func wantStored(t *testing.T, b *sqlite.Backend, what string, rec *queuestype.Record) {
	t.Helper()
	got, err := b.GetTask(context.Background(), rec.ID)
	if err != nil {
		t.Fatalf("%s: GetTask: %v", what, err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Fatalf("%s: returned\n %+v\nstored\n %+v", what, rec, got)
	}
}

// TestSettleBatch settles one batch holding every target status, fence
// failures, a missing record, a refused status and a repeated ID, and checks
// results come back in input order with exactly the stored records, the
// store's clock on every time, and one wakeup for the due requeue.
func TestSettleBatch(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	b := openTemp(t, sqlite.Options{Now: clock.now})
	recs := enqueueClaim(t, b, 6, "w1")
	hints, err := b.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute)
	now := clock.now()
	nine := 9
	missing := uuid.New()
	ts := []driver.Transition{
		{ID: recs[4].ID, Generation: 0, To: queuestype.StatusPending, Delay: time.Hour, Error: "later"},
		{ID: recs[0].ID, Generation: 0, To: queuestype.StatusCompleted, Result: json.RawMessage(`{"r":1}`), WorkerID: "w1"},
		{ID: recs[5].ID, Generation: 1, To: queuestype.StatusCompleted},
		{ID: recs[1].ID, Generation: 0, To: queuestype.StatusFailed, Error: "boom"},
		{ID: missing, Generation: 0, To: queuestype.StatusFailed},
		{ID: recs[2].ID, Generation: 0, To: queuestype.StatusCancelled},
		{ID: recs[3].ID, Generation: 0, To: queuestype.StatusPending, Interrupted: true, Priority: &nine, Error: "shutdown"},
		{ID: recs[5].ID, Generation: 0, To: queuestype.StatusRunning},
		{ID: recs[0].ID, Generation: 0, To: queuestype.StatusCompleted}, // already completed above
	}
	res, err := b.Settle(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(ts) {
		t.Fatalf("%d results for %d transitions", len(res), len(ts))
	}
	ok := func(i int) *queuestype.Record {
		t.Helper()
		if res[i].Err != nil || res[i].Record == nil || res[i].Record.ID != ts[i].ID {
			t.Fatalf("result %d = %+v, want the settled record of %s", i, res[i], ts[i].ID)
		}
		wantStored(t, b, "result", res[i].Record)
		if !reflect.DeepEqual(res[i].Record.Policy, testPolicy()) {
			t.Fatalf("result %d policy %+v", i, res[i].Record.Policy)
		}
		return res[i].Record
	}
	lost := func(i int, notFound bool) {
		t.Helper()
		if res[i].Record != nil || !errors.Is(res[i].Err, queuestype.ErrFenceLost) || errors.Is(res[i].Err, queuestype.ErrTaskNotFound) != notFound {
			t.Fatalf("result %d = %+v, want ErrFenceLost (not found: %v)", i, res[i], notFound)
		}
	}

	r := ok(0)
	if r.Status != queuestype.StatusScheduled || r.RetryCount != 1 || !r.ScheduledAt.Equal(now.Add(time.Hour)) || !r.QueuedAt.Equal(now) ||
		r.Error != "later" || r.WorkerID != "" || !r.StartedAt.IsZero() || !r.HeartbeatAt.IsZero() || r.Interruptions != 0 || r.Priority != 0 {
		t.Fatalf("delayed retry = %+v", r)
	}
	r = ok(1)
	if r.Status != queuestype.StatusCompleted || string(r.Result) != `{"r":1}` || !r.CompletedAt.Equal(now) || r.WorkerID != "w1" ||
		!r.HeartbeatAt.IsZero() || r.Error != "" {
		t.Fatalf("completed = %+v", r)
	}
	lost(2, false)
	r = ok(3)
	if r.Status != queuestype.StatusFailed || r.Error != "boom" || !r.CompletedAt.Equal(now) || r.WorkerID != "w1" || !r.HeartbeatAt.IsZero() {
		t.Fatalf("failed = %+v", r)
	}
	lost(4, true)
	r = ok(5)
	if r.Status != queuestype.StatusCancelled || r.Error != "" || !r.CompletedAt.Equal(now) || r.WorkerID != "w1" || !r.HeartbeatAt.IsZero() {
		t.Fatalf("cancelled = %+v", r)
	}
	r = ok(6)
	if r.Status != queuestype.StatusPending || r.RetryCount != 1 || r.Interruptions != 1 || r.AttemptsConsumed() != 0 || r.Priority != 9 ||
		r.Error != "shutdown" || !r.ScheduledAt.IsZero() || !r.QueuedAt.Equal(now) || r.WorkerID != "" {
		t.Fatalf("interrupted = %+v", r)
	}
	if res[7].Record != nil || !errors.Is(res[7].Err, queuestype.ErrConfig) {
		t.Fatalf("transition to running = %+v, want ErrConfig", res[7])
	}
	lost(8, false)
	if got, err := b.GetTask(ctx, recs[5].ID); err != nil || got.Status != queuestype.StatusRunning || got.RetryCount != 0 {
		t.Fatalf("record behind lost fences = %+v, %v; want it running untouched", got, err)
	}
	select {
	case <-hints:
	case <-time.After(5 * time.Second):
		t.Fatal("no wakeup after a due requeue")
	}
}

// TestSettleFences covers the worker, stale and execution-ref fences, the
// NoRecord shortcut, and the claim-cache completion after the record's
// metadata changed.
func TestSettleFences(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	b := openTemp(t, sqlite.Options{Now: clock.now})
	recs := enqueueClaim(t, b, 5, "w1")
	settle1 := func(tr driver.Transition) driver.SettleResult {
		t.Helper()
		res, err := b.Settle(ctx, []driver.Transition{tr})
		if err != nil || len(res) != 1 {
			t.Fatalf("Settle = %v, %v", res, err)
		}
		return res[0]
	}

	// Worker fence.
	if r := settle1(driver.Transition{ID: recs[0].ID, To: queuestype.StatusFailed, WorkerID: "w2"}); !errors.Is(r.Err, queuestype.ErrFenceLost) {
		t.Fatalf("wrong worker = %+v, want ErrFenceLost", r)
	}
	if r := settle1(driver.Transition{ID: recs[0].ID, To: queuestype.StatusFailed, WorkerID: "w1", NoRecord: true}); r.Err != nil || r.Record != nil {
		t.Fatalf("right worker with NoRecord = %+v, want success without a record", r)
	}

	// Stale fence: the heartbeat (at claim) is 10s old.
	clock.advance(10 * time.Second)
	if r := settle1(driver.Transition{ID: recs[1].ID, To: queuestype.StatusPending, StaleAfter: 20 * time.Second}); !errors.Is(r.Err, queuestype.ErrFenceLost) {
		t.Fatalf("fresh heartbeat with StaleAfter = %+v, want ErrFenceLost", r)
	}
	if r := settle1(driver.Transition{ID: recs[1].ID, To: queuestype.StatusPending, StaleAfter: 5 * time.Second, Error: driver.StaleError}); r.Err != nil ||
		r.Record.Status != queuestype.StatusPending || r.Record.Error != driver.StaleError {
		t.Fatalf("stale heartbeat = %+v", r)
	}
	if r := settle1(driver.Transition{ID: recs[2].ID, To: queuestype.StatusFailed, StaleAfter: -1}); r.Err != nil || r.Record.Status != queuestype.StatusFailed {
		t.Fatalf("negative StaleAfter = %+v, want applied", r)
	}
	if err := b.NullHeartbeats(ctx, []queuestype.Fence{{ID: recs[3].ID}}); err != nil {
		t.Fatal(err)
	}
	if r := settle1(driver.Transition{ID: recs[3].ID, To: queuestype.StatusFailed, StaleAfter: time.Hour}); r.Err != nil {
		t.Fatalf("null heartbeat with StaleAfter = %+v, want applied", r)
	}

	// Claim cache: a heartbeat that patches metadata must show in the
	// completed record.
	if _, err := b.TouchHeartbeats(ctx, []driver.HeartbeatTouch{{ID: recs[4].ID, MetadataPatch: map[string]any{"progress": 0.5}}}); err != nil {
		t.Fatal(err)
	}
	r := settle1(driver.Transition{ID: recs[4].ID, To: queuestype.StatusCompleted, Claimed: recs[4]})
	if r.Err != nil || r.Record.Metadata["progress"] != 0.5 {
		t.Fatalf("completion after a metadata patch = %+v", r)
	}
	wantStored(t, b, "completed after patch", r.Record)

	// Execution-ref fence on a pending record handed to an external run.
	out, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "ext", Args: json.RawMessage(`{}`), Policy: testPolicy()}})
	if err != nil {
		t.Fatal(err)
	}
	ext := out[0].Record
	if _, err := b.SetExecutionRef(ctx, ext.ID, "job-1"); err != nil {
		t.Fatal(err)
	}
	other, none := "job-2", ""
	if r := settle1(driver.Transition{ID: ext.ID, To: queuestype.StatusCompleted}); !errors.Is(r.Err, queuestype.ErrFenceLost) {
		t.Fatalf("pending record without ExpectedRef = %+v, want ErrFenceLost", r)
	}
	if r := settle1(driver.Transition{ID: ext.ID, To: queuestype.StatusCompleted, ExpectedRef: &other}); !errors.Is(r.Err, queuestype.ErrFenceLost) {
		t.Fatalf("wrong ref = %+v, want ErrFenceLost", r)
	}
	if r := settle1(driver.Transition{ID: ext.ID, To: queuestype.StatusCompleted, ExpectedRef: &none}); !errors.Is(r.Err, queuestype.ErrFenceLost) {
		t.Fatalf("empty ref on a record holding one = %+v, want ErrFenceLost", r)
	}
	ref := "job-1"
	r = settle1(driver.Transition{ID: ext.ID, To: queuestype.StatusPending, ExpectedRef: &ref, Error: "remote crash"})
	if r.Err != nil || r.Record.RetryCount != 1 || r.Record.ExecutionRef != "" || r.Record.Status != queuestype.StatusPending {
		t.Fatalf("external retry = %+v", r)
	}
	// The ref is gone: an empty ExpectedRef now matches.
	r = settle1(driver.Transition{ID: ext.ID, Generation: 1, To: queuestype.StatusCancelled, ExpectedRef: &none, Error: "stop"})
	if r.Err != nil || r.Record.Status != queuestype.StatusCancelled || r.Record.Error != "stop" {
		t.Fatalf("cancel with an empty ExpectedRef = %+v", r)
	}
	wantStored(t, b, "external cancel", r.Record)
}

// TestListStale checks the order (missing heartbeats first, then oldest,
// then by ID), the cut-off by the store's clock, the limit, that reserved
// and non-running records are left out, and that listed records carry
// their policy and interruption count.
func TestListStale(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	b := openTemp(t, sqlite.Options{Now: clock.now})
	if _, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "idle", Args: json.RawMessage(`{}`), ScheduledAt: clock.now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	recs := enqueueClaim(t, b, 6, "w") // heartbeats at t0
	touch := func(i int) {
		t.Helper()
		if _, err := b.TouchHeartbeats(ctx, []driver.HeartbeatTouch{{ID: recs[i].ID}}); err != nil {
			t.Fatal(err)
		}
	}
	clock.advance(10 * time.Second)
	touch(1) // t0+10s
	clock.advance(10 * time.Second)
	touch(2) // t0+20s
	touch(5)
	clock.advance(10 * time.Second) // now t0+30s
	if err := b.NullHeartbeats(ctx, []queuestype.Fence{{ID: recs[0].ID}, {ID: recs[4].ID}}); err != nil {
		t.Fatal(err)
	}
	// A running record holding a dispatch reservation (no API reserves a
	// running record; the column is what counts).
	if _, err := b.DB().ExecContext(ctx, `UPDATE queue_task SET dispatch_until = ? WHERE id = ?`,
		clock.now().Add(time.Hour).UnixMicro(), recs[5].ID.String()); err != nil {
		t.Fatal(err)
	}
	nulls := []uuid.UUID{recs[0].ID, recs[4].ID}
	if nulls[1].String() < nulls[0].String() {
		nulls[0], nulls[1] = nulls[1], nulls[0]
	}
	list := func(staleAfter time.Duration, limit int) []uuid.UUID {
		t.Helper()
		got, err := b.ListStale(ctx, staleAfter, limit)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]uuid.UUID, len(got))
		for i, r := range got {
			ids[i] = r.ID
			if r.Status != queuestype.StatusRunning || !reflect.DeepEqual(r.Policy, testPolicy()) {
				t.Fatalf("listed %+v", r)
			}
		}
		return ids
	}
	want := func(what string, got []uuid.UUID, want ...uuid.UUID) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
	want("stale after 15s", list(15*time.Second, 10), nulls[0], nulls[1], recs[3].ID, recs[1].ID)
	want("stale after 20s", list(20*time.Second, 10), nulls[0], nulls[1], recs[3].ID)
	want("every running record", list(-1, 10), nulls[0], nulls[1], recs[3].ID, recs[1].ID, recs[2].ID)
	want("limit 3", list(-1, 3), nulls[0], nulls[1], recs[3].ID)
	want("stale after 1h", list(time.Hour, 10), nulls[0], nulls[1])
	want("limit 0", list(-1, 0))
	want("negative limit", list(-1, -1))

	// An interrupted, reclaimed record lists its count.
	if _, err := b.Settle(ctx, []driver.Transition{{ID: recs[3].ID, To: queuestype.StatusPending, Interrupted: true}}); err != nil {
		t.Fatal(err)
	}
	res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: recs[3].ID, WorkerID: "w"})
	if err != nil || len(res.Claimed) != 1 {
		t.Fatalf("reclaim = %+v, %v", res, err)
	}
	got, err := b.ListStale(ctx, -1, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range got {
		if r.ID == recs[3].ID {
			found = true
			if r.Interruptions != 1 || r.RetryCount != 1 {
				t.Fatalf("reclaimed record listed with interruptions %d generation %d", r.Interruptions, r.RetryCount)
			}
		}
	}
	if !found {
		t.Fatalf("the reclaimed record is not listed: %v", got)
	}
}

// TestSettleCompletesFromClaim pins that a completion of a record this
// process claimed takes the write by rowid (completeKnown) and rebuilds the
// record from the claim instead of reading it back. To tell the paths apart, the
// test changes a column behind the backend's back that no store write
// changes while a record runs (priority): the claim-built record still
// shows the claimed value, while a completion that must read the row (a
// stale fence is not in the claim cache) shows the stored one.
func TestSettleCompletesFromClaim(t *testing.T) {
	ctx := context.Background()
	b := openTemp(t, sqlite.Options{})
	recs := enqueueClaim(t, b, 2, "w")
	for _, r := range recs {
		if _, err := b.DB().ExecContext(ctx, `UPDATE queue_task SET priority = 5 WHERE id = ?`, r.ID.String()); err != nil {
			t.Fatal(err)
		}
	}
	res, err := b.Settle(ctx, []driver.Transition{
		{ID: recs[0].ID, To: queuestype.StatusCompleted, WorkerID: "w"},
		{ID: recs[1].ID, To: queuestype.StatusCompleted, StaleAfter: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{0, 5} {
		if r := res[i]; r.Err != nil || r.Record.Status != queuestype.StatusCompleted || r.Record.Priority != want {
			t.Fatalf("completion %d = %+v (err %v), want completed with priority %d", i, r.Record, r.Err, want)
		}
	}
}
