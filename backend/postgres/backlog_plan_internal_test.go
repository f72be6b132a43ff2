package postgres

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/queuesgo/queues/driver"
)

// TestBacklogPlan: CountBacklog's predicate matches the partial claim
// indexes, so it can read the open records without the terminal ones, and
// groups them without a sort. Explained on 20,000 records of which 1,000
// are open, with sequential scans off: on a table this small the planner
// rightly prefers one (it reads every page either way); on a large table
// with a small backlog the index path is the cheap one it takes.
func TestBacklogPlan(t *testing.T) {
	b, pool := planBackend(t)
	ctx := t.Context()
	items := make([]driver.EnqueueParams, 20000)
	for i := range items {
		eb := "local"
		if i%2 == 1 {
			eb = "other"
		}
		items[i] = driver.EnqueueParams{TaskName: "plan", Args: json.RawMessage(`{}`), Queue: "q" + string(rune('a'+i%5)), ExecutionBackend: eb}
	}
	// 19,000 completed records, then a backlog of 1,000 (the usual shape:
	// most rows terminal).
	if _, err := b.Enqueue(ctx, items[:19000]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE "+b.n.task+" SET status = 'completed', completed_at = now()"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Enqueue(ctx, items[19000:]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE "+b.n.task); err != nil {
		t.Fatal(err)
	}
	plan := explainRolledBack(t, pool, "SET LOCAL enable_seqscan = off", strings.ReplaceAll(backlogSQL, "{t}", b.n.task))
	if !strings.Contains(plan, "_claim") || strings.Contains(plan, "Rows Removed by Filter") || strings.Contains(plan, "Sort") {
		t.Errorf("CountBacklog does not read the claim index in order:\n%s", plan)
	}
}
