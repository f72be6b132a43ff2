package postgres_test

import (
	"context"
	"encoding/json"
	"os"
	"time"
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/postgres"
)

// TestExplainSetup leaves a populated schema "queues_explain" behind for
// manual EXPLAIN sessions (QUEUES_EXPLAIN=1).
func TestExplainSetup(t *testing.T) {
	if os.Getenv("QUEUES_EXPLAIN") != "1" {
		t.Skip("QUEUES_EXPLAIN=1")
	}
	pool := testPool(t)
	mustExec(t, `DROP SCHEMA IF EXISTS queues_explain CASCADE`)
	b, err := postgres.New(pool, postgres.Options{Schema: "queues_explain", Namespace: "explain"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.Migrate(ctx, queues.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	n := envInt("QUEUES_EXPLAIN_ROWS", 100000)
	items := make([]queues.EnqueueParams, 0, 5000)
	for i := 0; i < n; i += 5000 {
		items = items[:0]
		for j := 0; j < 5000 && i+j < n; j++ {
			items = append(items, queues.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{}`), Queue: "default", ExecutionBackend: "local"})
		}
		if _, err := b.Enqueue(ctx, items); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExplainClaimIdle(t *testing.T) {
	if os.Getenv("QUEUES_EXPLAIN") != "2" {
		t.Skip("QUEUES_EXPLAIN=2")
	}
	pool := testPool(t)
	b, err := postgres.New(pool, postgres.Options{Schema: "queues_explain", Namespace: "explain"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := b.Enqueue(ctx, []queues.EnqueueParams{{TaskName: "noop", Args: json.RawMessage(`{}`), Queue: "default", ExecutionBackend: "local"}}); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		res, err := b.ClaimMany(ctx, queues.ClaimParams{Limit: 1000, WorkerID: "w", ExecutionBackend: "local", ExpireOverdue: true})
		t1 := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Claimed {
			if _, err := b.Complete(ctx, queues.CompleteParams{ID: r.ID, ExpectedRetryCount: 0}); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("claim %d in %s, complete %s", len(res.Claimed), t1.Sub(t0), time.Since(t1))
	}
}
