package redis

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
	goredis "github.com/redis/go-redis/v9"
)

// Completed records are indexed by task only (<p>:done:<task>, registered
// in <p>:donetasks); <p>:terminal holds the other terminal statuses.
// Records completed by a layout-1 build are in <p>:terminal as well, so
// cleanup must delete such a record once, drop both entries, and forget a
// task whose completed index it emptied.
func TestCleanupCompletedIndexes(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := t.Context()
	enq := func(task string) *queues.Record {
		t.Helper()
		out, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: task, Args: json.RawMessage(`{}`), Queue: "q", ExecutionBackend: "local"}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0].Record
	}
	complete := func(rec *queues.Record, claimed bool) {
		t.Helper()
		res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: rec.ID, WorkerID: "w"})
		if err != nil || len(res.Claimed) != 1 {
			t.Fatalf("ClaimByID: %v %+v", err, res)
		}
		tr := driver.Transition{ID: rec.ID, Generation: 0, To: queues.StatusCompleted}
		if claimed {
			tr.Claimed = res.Claimed[0] // the hot path (luaComplete)
		}
		sent := b.completes.sent.Load()
		rs, err := b.Settle(ctx, []driver.Transition{tr})
		if err != nil || rs[0].Err != nil {
			t.Fatalf("Settle completed: %v %v", err, rs)
		}
		if hot := b.completes.sent.Load() != sent; hot != claimed {
			t.Fatalf("completion went through luaComplete: %v, want %v", hot, claimed)
		}
	}
	hot, ops, old := enq("a"), enq("b"), enq("c")
	complete(hot, true)
	complete(ops, false)
	complete(old, true)
	failed := enq("a")
	if _, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: failed.ID, WorkerID: "w"}); err != nil {
		t.Fatal(err)
	}
	if rs, err := b.Settle(ctx, []driver.Transition{{ID: failed.ID, To: queues.StatusFailed, Error: "boom"}}); err != nil || rs[0].Err != nil {
		t.Fatalf("Settle failed: %v %v", err, rs)
	}
	// What a layout-1 build wrote for old: a <p>:terminal entry as well.
	stored, err := b.GetTask(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.ZAdd(ctx, b.prefix+":terminal", goredis.Z{Score: float64(stored.CompletedAt.UnixMicro()), Member: old.ID.String()}).Err(); err != nil {
		t.Fatal(err)
	}

	if n, _ := admin.ZCard(ctx, b.prefix+":term:failed").Result(); n != 1 {
		t.Fatalf("<p>:term:failed holds %d, want the failed record", n)
	}
	// What an earlier build wrote for the failed record: a <p>:terminal entry.
	if err := admin.ZAdd(ctx, b.prefix+":terminal", goredis.Z{Score: float64(time.Now().UnixMicro()), Member: failed.ID.String()}).Err(); err != nil {
		t.Fatal(err)
	}
	terminal, err := admin.ZRange(ctx, b.prefix+":terminal", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(terminal) != 2 {
		t.Fatalf("<p>:terminal = %q, want the failed record and the layout-1 entry", terminal)
	}
	// A cleanup that keeps both records moves their earlier-build entries
	// to their own indexes and deletes nothing.
	n, err := b.CleanupTerminal(ctx, driver.CleanupParams{Limit: 100, Before: map[queues.Status]time.Time{queues.StatusCancelled: time.Now().Add(time.Hour)}})
	if err != nil || n != 0 {
		t.Fatalf("CleanupTerminal(cancelled only) = %d, %v; want 0", n, err)
	}
	if n, _ := admin.ZCard(ctx, b.prefix+":terminal").Result(); n != 0 {
		t.Fatalf("<p>:terminal holds %d after a cleanup that kept its records, want 0", n)
	}
	if n, _ := admin.ZCard(ctx, b.prefix+":term:failed").Result(); n != 1 {
		t.Fatalf("<p>:term:failed holds %d, want the failed record once", n)
	}
	tasks, err := admin.SMembers(ctx, b.prefix+":donetasks").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 3 {
		t.Fatalf("<p>:donetasks = %q, want a, b and c", tasks)
	}
	for _, task := range []string{"a", "b", "c"} {
		if n, _ := admin.ZCard(ctx, b.prefix+":done:"+task).Result(); n != 1 {
			t.Fatalf("<p>:done:%s holds %d, want 1", task, n)
		}
	}

	n, err = b.CleanupTerminal(ctx, driver.CleanupAll(time.Now().Add(time.Hour), 100))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("CleanupTerminal deleted %d, want 4 (three completed, one failed; the doubly indexed one once)", n)
	}
	for _, k := range []string{":terminal", ":term:failed", ":donetasks", ":done:a", ":done:b", ":done:c"} {
		if exists, _ := admin.Exists(ctx, b.prefix+k).Result(); exists != 0 {
			t.Errorf("%s still exists after cleanup", k)
		}
	}
	st, err := b.Statistics(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Completed+st.Failed != 0 {
		t.Errorf("statistics after cleanup: %+v", st)
	}
}

// With per-task cutoffs, failed records share <p>:term:failed across
// tasks: more kept records at its front than one script scans (TERMSCAN)
// still never hide the other tasks' records behind them.
func TestCleanupByTaskPassesKeptRecords(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := t.Context()
	fail := func(task string, n int) {
		t.Helper()
		items := make([]driver.EnqueueParams, n)
		for i := range items {
			items[i] = driver.EnqueueParams{TaskName: task, Args: json.RawMessage(`{}`), Queue: "q-" + task, ExecutionBackend: "local"}
		}
		if _, err := b.Enqueue(ctx, items); err != nil {
			t.Fatal(err)
		}
		res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: n, Queues: []string{"q-" + task}, WorkerID: "w", ExecutionBackend: "local"})
		if err != nil || len(res.Claimed) != n {
			t.Fatalf("ClaimMany: %d of %d, %v", len(res.Claimed), n, err)
		}
		ts := make([]driver.Transition, n)
		for i, r := range res.Claimed {
			ts[i] = driver.Transition{ID: r.ID, To: queues.StatusFailed, Error: "x"}
		}
		rs, err := b.Settle(ctx, ts)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	fail("kept", 1250)
	fail("other", 150)
	future := time.Now().Add(time.Hour)
	p := driver.CleanupParams{Limit: 1000, Before: map[queues.Status]time.Time{queues.StatusFailed: future},
		ByTask: map[string]map[queues.Status]time.Time{"kept": {}}}
	n, err := b.CleanupTerminal(ctx, p)
	if err != nil || n != 150 {
		t.Fatalf("CleanupTerminal = %d, %v; want the other task's 150 behind 1250 kept", n, err)
	}
	if n, _ := b.client.ZCard(ctx, b.prefix+":term:failed").Result(); n != 1250 {
		t.Fatalf("<p>:term:failed holds %d, want the 1250 kept", n)
	}
	if n, err := b.CleanupTerminal(ctx, p); err != nil || n != 0 {
		t.Fatalf("second CleanupTerminal = %d, %v; want 0", n, err)
	}
}
