package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// TestQueryPlans pins the index each hot statement uses: a regression here
// turns a seek into a scan of every record (measured: the expiry probe once
// sorted every due record on each claim because of an innocent filter).
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	b, err := Open(filepath.Join(t.TempDir(), "p.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)

	claimOne := func(names []string) (string, []any) {
		var ps params
		ps.add(int64(1))
		return "SELECT " + recordColumns + " FROM queue_task WHERE rowid IN (" +
			claimSelect(&ps, claimParts(100, names, nil), "local", 100) + ")", ps.args
	}
	byTask := driver.CleanupParams{Before: driver.CleanupAll(time.Now(), 0).Before,
		ByTask: map[string]map[queuestype.Status]time.Time{"t": {queuestype.StatusFailed: time.Now()}, "u": {}}}
	cuts, _, err := driver.CheckCleanup(ctx, byTask)
	if err != nil {
		t.Fatal(err)
	}
	qTask, aTask := cleanupByTaskSQL(byTask, cuts, 10)
	q1, a1 := claimOne([]string{"default"})
	q2, a2 := claimOne([]string{"a", "b"})
	cases := []struct {
		name  string
		query string
		args  []any
		want  []string // substrings of the plan
	}{
		{"claim one queue", q1, a1, []string{"INDEX queue_task_claim (execution_backend=? AND queue=?)"}},
		{"claim two queues", q2, a2, []string{"INDEX queue_task_claim (execution_backend=? AND queue=?)"}},
		{"open queues", sqlOpenQueues, []any{"local"}, []string{"INDEX queue_task_claim (execution_backend=?)", "INDEX queue_task_claim (execution_backend=? AND queue>?)"}},
		{"mark claimed", sqlMarkClaimed, []any{1, "w", "[1]"}, []string{"INTEGER PRIMARY KEY (rowid=?)"}},
		{"complete known", sqlCompleteKnown, []any{1, "x", 0, nil, "{}", 1, nil}, []string{"INTEGER PRIMARY KEY (rowid=?)"}},
		{"expiry probe", "SELECT 1 FROM queue_task WHERE " + sqlExpiryCandidates + " AND +execution_backend = ?2 LIMIT 1", []any{1, "local"},
			[]string{"INDEX queue_task_expiry"}},
		{"next due", "SELECT scheduled_at FROM queue_task WHERE " + sqlOpen + " AND scheduled_at IS NOT NULL AND scheduled_at > " + sqlNow +
			" AND " + sqlUnreserved + " ORDER BY scheduled_at LIMIT 1", []any{1}, []string{"INDEX queue_task_due (scheduled_at>?)"}},
		{"count backlog", sqlBacklog, []any{1}, []string{"SCAN queue_task USING INDEX queue_task_claim"}},
		{"list stale", sqlListStale, []any{1, 10}, []string{"INDEX queue_task_stale (<expr><?)"}},
		{"settle completed", sqlSettleCompleted, []any{"x", 0, nil, nil, nil, 1, nil}, []string{"sqlite_autoindex_queue_task_1 (id=?)"}},
		{"settle failed", sqlSettleFailed, []any{"x", 0, "r", "w", 1, 1, "e", nil}, []string{"sqlite_autoindex_queue_task_1 (id=?)"}},
		{"settle cancelled", sqlSettleCancelled, []any{"x", 0, nil, nil, nil, 1, nil}, []string{"sqlite_autoindex_queue_task_1 (id=?)"}},
		{"settle pending", sqlSettlePending, []any{"x", 0, nil, nil, nil, 1, "pending", nil, nil, nil, 0, 0, nil},
			[]string{"sqlite_autoindex_queue_task_1 (id=?)"}},
		{"cleanup", sqlCleanupSelect, []any{1, nil, 1, nil, 1, 10}, []string{"INDEX queue_task_terminal"}},
		{"cleanup by task", qTask, aTask, []string{"INDEX queue_task_terminal"}},
		{"running external", `SELECT id FROM queue_task WHERE execution_ref IS NOT NULL AND ` + sqlNotTerminal +
			` ORDER BY coalesce(started_at, created_at), id LIMIT 10`, nil, []string{"INDEX queue_task_external"}},
		{"completed by task", `SELECT id FROM queue_task WHERE status = 'completed' AND task_name = ?1 ORDER BY completed_at DESC, id DESC LIMIT 10`,
			[]any{"t"}, []string{"INDEX queue_task_completed_by_task (task_name=?)"}},
		{"list tasks", `SELECT id FROM queue_task WHERE (created_at, id) < (CAST(?1 AS INTEGER), CAST(?2 AS TEXT)) ORDER BY created_at DESC, id DESC LIMIT 10`,
			[]any{1, "x"}, []string{"INDEX queue_task_created"}},
	}
	for _, c := range cases {
		var plan []string
		rows, err := b.rdb.QueryContext(ctx, "EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: plan lacks %q:\n%s", c.name, w, text)
			}
		}
		for _, bad := range []string{"SCAN queue_task\n", "USE TEMP B-TREE FOR ORDER BY"} {
			if strings.Contains(text+"\n", bad) && c.name != "claim two queues" {
				t.Errorf("%s: plan has %q:\n%s", c.name, strings.TrimSpace(bad), text)
			}
		}
	}
}
