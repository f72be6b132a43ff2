package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// TestMigrateSnoozeErrors builds a file with the previous schema
// (migrations 0001 to 0005) holding a record in every status, opens it
// (which applies 0006) and checks that every record reads back with no
// snoozes and no error history and its budget unchanged, and that a
// migrated running record takes a snooze and a history.
func TestMigrateSnoozeErrors(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	statuses := queuestype.AllStatuses
	var ids map[queuestype.Status]uuid.UUID
	previous := []string{"0001_create_queue_tasks", "0002_task_policy", "0003_dispatch_until", "0004_workers", "0005_schedule_pauses"}
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
	if !slices.Equal(dry.Applied, previous) || !slices.Equal(dry.Pending, []string{"0006_snooze_errors", "0007_tags"}) {
		t.Fatalf("DryRun on the previous schema = %+v", dry)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open (migrates): %v", err)
	}
	for _, s := range statuses {
		rec, err := b.GetTask(ctx, ids[s])
		if err != nil {
			t.Fatalf("GetTask %s: %v", s, err)
		}
		if rec.Status != s || rec.SnoozeCount != 0 || rec.Errors != nil || rec.AttemptsConsumed() != 1 || rec.RetryCount != 2 {
			t.Errorf("%s: record after the migration = %+v", s, rec)
		}
	}
	h := []queuestype.AttemptError{{Attempt: 3, At: time.Now().UTC(), Error: "boom", WorkerID: "old-worker"}}
	res, err := b.Settle(ctx, []driver.Transition{{ID: ids[queuestype.StatusRunning], Generation: 2, To: queuestype.StatusPending,
		Snoozed: true, Errors: h}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("Settle on a migrated record: %v %v", err, res)
	}
	if got := res[0].Record; got.SnoozeCount != 1 || len(got.Errors) != 1 || got.Errors[0].Error != "boom" || got.AttemptsConsumed() != 1 {
		t.Fatalf("migrated record after a snooze = %+v", got)
	}
	if rep, err := b.Migrate(ctx, driver.MigrateOptions{}); err != nil || len(rep.AppliedNow) != 0 {
		t.Fatalf("second Migrate = %+v, %v", rep, err)
	}
}
