package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/queuesgo/queues"
)

func TestPlans(t *testing.T) {
	b, _ := Open(filepath.Join(t.TempDir(), "p.db"), Options{})
	ctx := context.Background()
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	p := queues.ClaimParams{Limit: 100, ExecutionBackend: "local", WorkerID: "w"}
	parts := claimParts(&p)
	var cp params
	cp.add(int64(1))
	cp.add("w")
	q := "EXPLAIN QUERY PLAN UPDATE OR FAIL queue_task SET status = 'running', worker_id = ?2, started_at = ?1, heartbeat_at = ?1 WHERE id IN (" + claimSelect(&cp, parts, p.ExecutionBackend, p.Limit) + ") RETURNING " + recordColumns
	for _, query := range []string{q,
		"EXPLAIN QUERY PLAN SELECT scheduled_at FROM queue_task WHERE " + sqlOpen + " AND scheduled_at IS NOT NULL AND scheduled_at > ?1 AND " + sqlUnreserved + " ORDER BY scheduled_at LIMIT 1",
		"EXPLAIN QUERY PLAN SELECT id FROM queue_task WHERE status = 'running' AND (?1 OR heartbeat_at IS NULL OR heartbeat_at < ?2) ORDER BY coalesce(heartbeat_at, created_at), id LIMIT 10",
		"EXPLAIN QUERY PLAN SELECT id FROM queue_task WHERE completed_at IS NOT NULL AND completed_at < ?1 ORDER BY completed_at, id LIMIT 10",
		"EXPLAIN QUERY PLAN SELECT id FROM queue_task WHERE execution_ref IS NOT NULL AND completed_at IS NULL ORDER BY coalesce(started_at, created_at), id LIMIT 10",
		"EXPLAIN QUERY PLAN SELECT id FROM queue_task WHERE status = 'completed' AND task_name = ?1 ORDER BY completed_at DESC, id DESC LIMIT 10",
		"EXPLAIN QUERY PLAN SELECT id FROM queue_task WHERE status = ?1 AND (created_at, id) < (?2, 'x') ORDER BY created_at DESC, id DESC LIMIT 10",
		"EXPLAIN QUERY PLAN SELECT id FROM queue_task WHERE " + sqlDue + " AND execution_backend = ?2 AND queue = ?3 ORDER BY " + sqlClaimOrder + " LIMIT 10",
		"EXPLAIN QUERY PLAN UPDATE OR FAIL queue_task SET status = 'expired', completed_at = ?1, heartbeat_at = NULL WHERE id IN (SELECT id FROM queue_task WHERE " + sqlExpiryCandidates + " AND +execution_backend = ?2 ORDER BY expires_at, created_at, id LIMIT 1000) RETURNING id",
	} {
		fmt.Println(query)
		rows, err := b.rdb.Query(query, cp.args...)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var a, bb, c int
			var s string
			rows.Scan(&a, &bb, &c, &s)
			fmt.Println("   ", s)
		}
		rows.Close()
	}
}
