package redis

import (
	"context"
	"testing"
	"time"

	"github.com/queuesgo/queues/internal/retentionprobe"
)

// TestRetentionMeasure seeds 100,000 completed records and measures claim
// latency before and while maintenance deletes them. Run by hand:
//
//	QUEUES_RETENTION_MEASURE=1 go test -run TestRetentionMeasure -v -timeout 30m ./backend/redis/
func TestRetentionMeasure(t *testing.T) {
	retentionprobe.Skip(t)
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	const n = 100_000
	start := time.Now()
	if err := retentionprobe.SeedCompleted(ctx, b, n); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d completed records in %s", n, time.Since(start).Round(time.Millisecond))
	res := retentionprobe.Measure(t, b, 5*time.Second)
	t.Logf("redis: %s", res)
	if res.Deleted < n || res.MaintenanceError != "" {
		t.Fatalf("deleted %d of %d (%s)", res.Deleted, n, res.MaintenanceError)
	}
}
