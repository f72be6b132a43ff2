package redis

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
)

// Each tag has its index <p>:tag:<tag>; cleanup removes a deleted record
// from every index of its tags, so the keys of tags no record carries any
// more are gone (an empty zset does not exist), whichever way the record
// was completed (the hot luaComplete path or the settle script).
func TestTagIndexCleanup(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := t.Context()
	enq := func(tags ...string) *queues.Record {
		t.Helper()
		out, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "t", Args: json.RawMessage(`{}`), Tags: tags}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0].Record
	}
	complete := func(rec *queues.Record, hot bool) {
		t.Helper()
		res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: rec.ID, WorkerID: "w"})
		if err != nil || len(res.Claimed) != 1 {
			t.Fatalf("ClaimByID: %v %+v", err, res)
		}
		tr := driver.Transition{ID: rec.ID, Generation: 0, To: queues.StatusCompleted}
		if hot {
			tr.Claimed = res.Claimed[0]
		}
		if rs, err := b.Settle(ctx, []driver.Transition{tr}); err != nil || rs[0].Err != nil {
			t.Fatalf("Settle: %v %v", err, rs)
		}
	}
	a, c, kept := enq("x", "y"), enq("y"), enq("z")
	complete(a, true)
	complete(c, false)
	if got, _ := b.GetTask(ctx, a.ID); len(got.Tags) != 2 {
		t.Fatalf("completed record lost its tags: %q", got.Tags)
	}
	n, err := b.CleanupTerminal(ctx, driver.CleanupAll(time.Now().Add(time.Hour), 100))
	if err != nil || n != 2 {
		t.Fatalf("CleanupTerminal = %d, %v; want 2", n, err)
	}
	for _, tag := range []string{"x", "y"} {
		if e, err := b.client.Exists(ctx, b.prefix+":tag:"+tag).Result(); err != nil || e != 0 {
			t.Fatalf("tag index %s after cleanup: exists %d, %v", tag, e, err)
		}
	}
	if m, err := b.client.ZCard(ctx, b.prefix+":tag:z").Result(); err != nil || m != 1 {
		t.Fatalf("tag index z of the kept record: %d members, %v", m, err)
	}
	if page, err := b.ListTasks(ctx, driver.TaskFilter{Tag: "z"}); err != nil || len(page.Items) != 1 || page.Items[0].ID != kept.ID {
		t.Fatalf("ListTasks(tag z) = %+v, %v", page.Items, err)
	}
}
