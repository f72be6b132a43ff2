package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/internal/retentionprobe"
)

// TestRetentionMeasure seeds 100,000 completed records and measures claim
// latency before and while maintenance deletes them. Run by hand:
//
//	QUEUES_RETENTION_MEASURE=1 go test -run TestRetentionMeasure -v -timeout 30m ./backend/sqlite/
func TestRetentionMeasure(t *testing.T) {
	retentionprobe.Skip(t)
	b, err := sqlite.Open(filepath.Join(t.TempDir(), "queues.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	const n = 100_000
	start := time.Now()
	if err := retentionprobe.SeedCompleted(ctx, b, n); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d completed records in %s", n, time.Since(start).Round(time.Millisecond))
	res := retentionprobe.Measure(t, b, 5*time.Second)
	t.Logf("sqlite: %s", res)
	if res.Deleted < n || res.MaintenanceError != "" {
		t.Fatalf("deleted %d of %d (%s)", res.Deleted, n, res.MaintenanceError)
	}
}
