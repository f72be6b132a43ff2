package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/queuesgo/queues/internal/retentionprobe"
)

// TestRetentionMeasure inserts 1,000,000 completed records two days old
// (one INSERT ... SELECT) and measures claim latency before and while
// maintenance deletes them. Run by hand:
//
//	QUEUES_RETENTION_MEASURE=1 go test -run TestRetentionMeasure -v -timeout 30m ./backend/postgres/
func TestRetentionMeasure(t *testing.T) {
	retentionprobe.Skip(t)
	opts := freshOptions(t)
	b := newBackend(t, opts)
	ctx := context.Background()
	start := time.Now()
	const n = 1_000_000
	if _, err := testPool(t).Exec(ctx, `INSERT INTO `+pgx.Identifier{opts.Schema, "queue_task"}.Sanitize()+`
(id, task_name, args, queue, execution_backend, status, created_at, queued_at, started_at, completed_at, worker_id)
SELECT gen_random_uuid(), 'measure.old', '{}', 'seed', 'local', 'completed',
       now() - interval '3 days', now() - interval '3 days', now() - interval '3 days',
       now() - interval '2 days' + g * interval '1 millisecond', 'seed'
FROM generate_series(1, $1) g`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := testPool(t).Exec(ctx, `ANALYZE `+pgx.Identifier{opts.Schema, "queue_task"}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d completed records in %s", n, time.Since(start).Round(time.Millisecond))
	res := retentionprobe.Measure(t, b, 5*time.Second)
	t.Logf("postgres: %s", res)
	if res.Deleted < n || res.MaintenanceError != "" {
		t.Fatalf("deleted %d of %d (%s)", res.Deleted, n, res.MaintenanceError)
	}
}
