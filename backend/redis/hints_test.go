package redis

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
)

// subscriberID finds the subscription connection of b in CLIENT LIST (by
// its client name) and returns its client ID.
func subscriberID(t *testing.T, b *Backend) string {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+b.hub.name+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				return id
			}
		}
	}
	return ""
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSubscriptionKilled kills the subscription connection (CLIENT KILL)
// under a running worker whose durable poll has backed off to 30 s, and
// shows that the worker keeps claiming: the hint channels close, the hub
// reconnects by itself, the worker resubscribes, and new jobs start within
// moments of their enqueue.
func TestSubscriptionKilled(t *testing.T) {
	started := make(chan time.Time, 16)
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "noop", func(ctx context.Context, a noopArgs) (noopResult, error) {
		started <- time.Now()
		return noopResult{}, nil
	})
	svc, be := benchService(t, reg)
	startWorker(t, svc, queues.WorkerConfig{MaxConcurrency: 4, PollInterval: 10 * time.Millisecond, PollBackoffMax: 30 * time.Second,
		PollBackoffMultiplier: 100})
	ctx := context.Background()
	runOne := func(what string) time.Duration {
		t.Helper()
		time.Sleep(50 * time.Millisecond) // the worker is idle, its poll backed off
		t0 := time.Now()
		if _, err := task.Enqueue(ctx, svc, noopArgs{}); err != nil {
			t.Fatal(err)
		}
		select {
		case t1 := <-started:
			return t1.Sub(t0)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: job did not start within 5s", what)
			return 0
		}
	}
	t.Logf("before the kill: started after %s", runOne("before the kill"))

	for round := 1; round <= 3; round++ {
		id := subscriberID(t, be)
		if id == "" {
			t.Fatalf("round %d: subscription connection %q not in CLIENT LIST", round, be.hub.name)
		}
		if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
			t.Fatalf("CLIENT KILL ID %s: %v", id, err)
		}
		waitFor(t, "the hub to notice the kill and reconnect", 5*time.Second, func() bool {
			be.hub.mu.Lock()
			defer be.hub.mu.Unlock()
			return be.hub.breaks >= round && be.hub.up
		})
		if nid := subscriberID(t, be); nid == "" || nid == id {
			t.Fatalf("round %d: no new subscription connection (old %s, now %q)", round, id, nid)
		}
		// The worker resubscribes after its own backoff; give it a moment.
		d := runOne("after the kill")
		t.Logf("round %d: subscription %s killed; next job started after %s", round, id, d)
		if d > 2*time.Second {
			t.Fatalf("round %d: job started %s after enqueue; the worker lost its wakeups", round, d)
		}
	}
	// Several jobs in a row, all woken promptly.
	for i := range 5 {
		if d := runOne("steady"); d > time.Second {
			t.Fatalf("job %d started %s after enqueue", i, d)
		}
	}
}

// TestCompletionWaiterCrossProcess shows that Result.Wait and
// WaitForCompletion return as soon as another process settles the record,
// through the completions channel, instead of polling.
func TestCompletionWaiterCrossProcess(t *testing.T) {
	waiter := newTestBackend(t, Options{})
	other := newTestBackend(t, Options{Prefix: strings.Trim(waiter.prefix, "{}"), Namespace: waiter.namespace})
	ctx := context.Background()
	outs, err := waiter.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "w", Args: json.RawMessage(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	id := outs[0].Record.ID
	res, err := other.ClaimByID(ctx, driver.ClaimByIDParams{ID: id, WorkerID: "other"})
	if err != nil || len(res.Claimed) != 1 {
		t.Fatalf("ClaimByID: %v %v", res, err)
	}
	done := make(chan time.Time, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := waiter.WaitForCompletion(wctx, id); err != nil {
			t.Errorf("WaitForCompletion: %v", err)
		}
		done <- time.Now()
	}()
	time.Sleep(100 * time.Millisecond) // the waiter is blocked
	select {
	case <-done:
		t.Fatal("WaitForCompletion returned before the record was settled")
	default:
	}
	t0 := time.Now()
	if rs, err := other.Settle(ctx, []driver.Transition{{ID: id, To: queues.StatusCompleted, Result: json.RawMessage(`1`)}}); err != nil || rs[0].Err != nil {
		t.Fatalf("Settle completed: %v %v", err, rs)
	}
	select {
	case t1 := <-done:
		t.Logf("WaitForCompletion returned %s after the other process completed the record", t1.Sub(t0))
		if t1.Sub(t0) > 500*time.Millisecond {
			t.Fatalf("WaitForCompletion took %s after completion", t1.Sub(t0))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitForCompletion did not return after completion")
	}

	// Through the service: Result.Wait with a 10 s poll interval still
	// returns right after the worker completes the record.
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "slow", func(ctx context.Context, a noopArgs) (noopResult, error) {
		time.Sleep(100 * time.Millisecond)
		return noopResult{}, nil
	})
	svc, _ := benchService(t, reg)
	startWorker(t, svc, queues.WorkerConfig{MaxConcurrency: 2})
	h, err := task.Enqueue(ctx, svc, noopArgs{})
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	rec, err := h.Wait(ctx, queues.WaitOptions{PollInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != queues.StatusCompleted {
		t.Fatalf("Wait returned status %s", rec.Status)
	}
	if d := time.Since(t0); d > 900*time.Millisecond {
		t.Fatalf("Result.Wait took %s for a 100 ms task", d)
	}
	if lag := time.Since(rec.CompletedAt); lag > 500*time.Millisecond {
		t.Fatalf("Result.Wait returned %s after completed_at", lag)
	}
}

// TestWakeupAcrossBackends shows a wakeup hint crossing processes: one
// backend enqueues, another (same namespace) receives the hint.
func TestWakeupAcrossBackends(t *testing.T) {
	a := newTestBackend(t, Options{})
	b := newTestBackend(t, Options{Prefix: strings.Trim(a.prefix, "{}"), Namespace: a.namespace})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "x"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no wakeup across backends")
	}
}

// TestScriptReloadAfterFlush empties the server's script cache (SCRIPT
// FLUSH) and shows that every kind of call still works: EVALSHA gets
// NOSCRIPT and the script is loaded again.
func TestScriptReloadAfterFlush(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	flush := func() {
		t.Helper()
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
	}
	flush()
	outs, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "a"}, {TaskName: "b"}, {TaskName: "c"}, {TaskName: "d"}})
	if err != nil {
		t.Fatalf("Enqueue after SCRIPT FLUSH: %v", err)
	}
	flush()
	res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 4, WorkerID: "w"})
	if err != nil || len(res.Claimed) != 4 {
		t.Fatalf("ClaimMany after SCRIPT FLUSH: %d claimed, %v", len(res.Claimed), err)
	}
	flush()
	// A completion whose record is read back in the same MULTI (EVALSHA +
	// HMGET): no claimed record at hand.
	if rs, err := b.Settle(ctx, []driver.Transition{{ID: outs[0].Record.ID, To: queues.StatusCompleted}}); err != nil || rs[0].Err != nil ||
		rs[0].Record.Status != queues.StatusCompleted {
		t.Fatalf("Settle completed after SCRIPT FLUSH: %v %+v", err, rs)
	}
	flush()
	// The hot-path completion (luaComplete), with the claimed record.
	var claimed *queues.Record
	for _, r := range res.Claimed {
		if r.ID == outs[3].Record.ID {
			claimed = r
		}
	}
	sent := b.completes.sent.Load()
	if rs, err := b.Settle(ctx, []driver.Transition{{ID: claimed.ID, To: queues.StatusCompleted, Claimed: claimed}}); err != nil || rs[0].Err != nil ||
		rs[0].Record.Status != queues.StatusCompleted || b.completes.sent.Load() != sent+1 {
		t.Fatalf("hot-path Settle completed after SCRIPT FLUSH: %v %+v", err, rs)
	}
	flush()
	// A transition through the ops script's settle op, read back in the same MULTI.
	rs, err := b.Settle(ctx, []driver.Transition{{ID: outs[2].Record.ID, To: queues.StatusFailed, Error: "boom"}})
	if err != nil || rs[0].Err != nil || rs[0].Record.Status != queues.StatusFailed || rs[0].Record.Error != "boom" {
		t.Fatalf("Settle failed after SCRIPT FLUSH: %v %+v", err, rs)
	}
	flush()
	hb, err := b.TouchHeartbeats(ctx, []driver.HeartbeatTouch{{ID: outs[1].Record.ID}})
	if err != nil || len(hb.Touched) != 1 {
		t.Fatalf("TouchHeartbeats after SCRIPT FLUSH: %+v, %v", hb, err)
	}
	flush()
	if _, err := b.Statistics(ctx, ""); err != nil {
		t.Fatalf("Statistics after SCRIPT FLUSH: %v", err)
	}
	st, err := b.Statistics(ctx, "")
	if err != nil || st.Running != 1 || st.Completed != 2 || st.Failed != 1 {
		t.Fatalf("Statistics = %+v, %v", st, err)
	}
}

// TestLockRefreshAndOptions covers same-token lock refresh, the prefix
// check, Connect's URL handling and Migrate.
func TestLockRefreshAndOptions(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	ok, err := b.AcquireLock(ctx, "l", "tok", 100*time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("AcquireLock: %v %v", ok, err)
	}
	ok, err = b.AcquireLock(ctx, "l", "tok", time.Minute)
	if err != nil || !ok {
		t.Fatalf("AcquireLock by the holder (refresh): %v %v", ok, err)
	}
	if ttl := admin.PTTL(ctx, b.prefix+":lock:l").Val(); ttl < 30*time.Second {
		t.Fatalf("lock TTL after refresh = %s", ttl)
	}
	if _, err := b.AcquireLock(ctx, "l", "tok", 0); !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("AcquireLock(ttl 0) = %v, want ErrConfig", err)
	}
	if _, err := New(admin, Options{Prefix: "a{b}"}); !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("New with braces in the prefix = %v, want ErrConfig", err)
	}
	if _, err := Connect(ctx, "redis://user:secret@[bad", Options{}); !errors.Is(err, queues.ErrConfig) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Connect(bad url) = %v, want ErrConfig without the password", err)
	}
	v, err := Connect(ctx, strings.Replace(testURL(), "redis://", "valkey://", 1), Options{Prefix: strings.Trim(b.prefix, "{}")})
	if err != nil {
		t.Fatalf("Connect(valkey://): %v", err)
	}
	defer v.Close(ctx)
	rep, err := v.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil || len(rep.Applied) != 3 || len(rep.Pending) != 0 {
		t.Fatalf("Migrate(dry run) on an opened prefix = %+v, %v", rep, err)
	}
	fresh, err := New(admin, Options{Prefix: randName("p")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deletePrefix(context.Background(), admin, fresh.prefix) })
	rep, err = fresh.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil || len(rep.Pending) != 3 || len(rep.AppliedNow) != 0 {
		t.Fatalf("Migrate(dry run) on a fresh prefix = %+v, %v", rep, err)
	}
	rep, err = fresh.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || len(rep.AppliedNow) != 3 || admin.Get(ctx, fresh.prefix+":version").Val() != LayoutVersion {
		t.Fatalf("Migrate on a fresh prefix = %+v, %v", rep, err)
	}
	if err := admin.Set(ctx, fresh.prefix+":version", "99", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Open(ctx); err == nil {
		t.Fatal("Open on a prefix with an unknown layout version succeeded")
	}
}
