package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// tagIndexRows counts the rows of the tag index in the file at path.
func tagIndexRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM queue_task_tag`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMigrateTags builds a file with the 0006 schema holding a record in
// every status, opens it (which applies 0007) and checks that every record
// reads back without tags and is still listed and cleaned up, and that new
// tagged records are indexed and leave the index when cleanup deletes them.
func TestMigrateTags(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	statuses := queuestype.AllStatuses
	var ids map[queuestype.Status]uuid.UUID
	previous := []string{"0001_create_queue_tasks", "0002_task_policy", "0003_dispatch_until", "0004_workers", "0005_schedule_pauses", "0006_snooze_errors"}
	writeSchema(t, path, previous, func(db *sql.DB, now int64) {
		ids = seedEveryStatus(t, db, now, 2)
	})
	b, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	dry, err := b.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dry.Applied, previous) || !slices.Equal(dry.Pending, []string{"0007_tags"}) {
		t.Fatalf("DryRun on the 0006 schema = %+v", dry)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open (migrates): %v", err)
	}
	for _, s := range statuses {
		rec, err := b.GetTask(ctx, ids[s])
		if err != nil {
			t.Fatalf("GetTask %s: %v", s, err)
		}
		if rec.Status != s || rec.Tags != nil || rec.RetryCount != 2 {
			t.Errorf("%s: record after the migration = %+v", s, rec)
		}
		if b, _ := json.Marshal(rec); !json.Valid(b) {
			t.Errorf("%s: record JSON invalid", s)
		}
	}
	page, err := b.ListTasks(ctx, driver.TaskFilter{Queue: "q", Limit: 100})
	if err != nil || len(page.Items) != len(statuses) {
		t.Fatalf("ListTasks after the migration = %d items, %v", len(page.Items), err)
	}
	out, err := b.Enqueue(ctx, []driver.EnqueueParams{
		{TaskName: "new", Args: json.RawMessage(`{}`), Tags: []string{"b", "a"}},
		{TaskName: "new", Args: json.RawMessage(`{}`), Tags: []string{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := tagIndexRows(t, path); n != 3 {
		t.Fatalf("tag index rows after two tagged enqueues = %d, want 3", n)
	}
	page, err = b.ListTasks(ctx, driver.TaskFilter{Tag: "a"})
	if err != nil || len(page.Items) != 2 || !slices.Equal(page.Items[1].Tags, []string{"a", "b"}) {
		t.Fatalf("ListTasks by tag after the migration = %+v, %v", page.Items, err)
	}
	for _, o := range out {
		claimed, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: o.Record.ID, WorkerID: "w"})
		if err != nil || len(claimed.Claimed) != 1 {
			t.Fatalf("ClaimByID: %v %v", claimed, err)
		}
		res, err := b.Settle(ctx, []driver.Transition{{ID: o.Record.ID, WorkerID: "w", To: queuestype.StatusCompleted}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("Settle: %v %v", err, res)
		}
	}
	n, err := b.CleanupTerminal(ctx, driver.CleanupAll(time.Now().Add(time.Hour), 100))
	if err != nil || n != 6 {
		t.Fatalf("CleanupTerminal = %d, %v; want the 4 migrated and 2 new terminal records", n, err)
	}
	if n := tagIndexRows(t, path); n != 0 {
		t.Fatalf("tag index rows after cleanup = %d, want 0", n)
	}
}
