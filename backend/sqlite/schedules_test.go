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

// The first-party stores must keep schedule pauses.
var _ driver.SchedulePauser = (*sqlite.Backend)(nil)

// TestSchedulePauseByStoreClock pauses against a clock the test moves:
// Since is that clock's time (not the process's), a second pause later
// keeps it, and a pause after a resume takes the clock's new time.
func TestSchedulePauseByStoreClock(t *testing.T) {
	ctx := t.Context()
	clock := &manualClock{now: time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)}
	b := openTemp(t, sqlite.Options{Now: clock.Now})
	first := clock.Now()
	if err := b.PauseSchedule(ctx, "report"); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	if err := b.PauseSchedule(ctx, "report"); err != nil {
		t.Fatal(err)
	}
	ps, err := b.PausedSchedules(ctx)
	if err != nil || len(ps) != 1 || ps[0].Name != "report" || !ps[0].Since.Equal(first) {
		t.Fatalf("PausedSchedules = %+v, %v; want report since %v (the first pause, by the backend clock)", ps, err, first)
	}
	if ok, err := b.ResumeSchedule(ctx, "report"); err != nil || !ok {
		t.Fatalf("ResumeSchedule = %v, %v", ok, err)
	}
	if err := b.PauseSchedule(ctx, "report"); err != nil {
		t.Fatal(err)
	}
	if ps, err := b.PausedSchedules(ctx); err != nil || len(ps) != 1 || !ps[0].Since.Equal(clock.Now()) {
		t.Fatalf("PausedSchedules after resume and pause = %+v, %v; want since %v", ps, err, clock.Now())
	}
}

// TestMigrateSchedulePauses builds a file with the previous schema
// (migrations 0001 to 0004) holding a record in every status and a worker
// entry, opens it (which applies 0005) and checks that the records and the
// entry read back unchanged and that pauses work on the migrated file.
func TestMigrateSchedulePauses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	statuses := queuestype.AllStatuses
	var ids map[queuestype.Status]uuid.UUID
	previous := []string{"0001_create_queue_tasks", "0002_task_policy", "0003_dispatch_until", "0004_workers"}
	writeSchema(t, path, previous, func(db *sql.DB, now int64) {
		ids = seedEveryStatus(t, db, now, 1)
		hour := int64(time.Hour / time.Microsecond)
		if _, err := db.ExecContext(ctx, `INSERT INTO queue_worker (id, host, pid, queues, execution_backend, concurrency,
    running, started_at, version, seen_at, expires_at) VALUES ('old-worker', 'h', 1, '["q"]', 'local', 2, 1, ?, 'v', ?, ?)`,
			now, now, now+hour); err != nil {
			t.Fatalf("insert worker: %v", err)
		}
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
	if !slices.Equal(dry.Applied, previous) || !slices.Equal(dry.Pending, []string{"0005_schedule_pauses", "0006_snooze_errors", "0007_tags"}) {
		t.Fatalf("DryRun on the previous schema = %+v", dry)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open (migrates): %v", err)
	}
	if got := queueStrings(t, b, `SELECT version FROM queue_migration ORDER BY version`); !slices.Equal(got, sqlite.Versions()) {
		t.Fatalf("applied = %v, want %v", got, sqlite.Versions())
	}
	for _, s := range statuses {
		rec, err := b.GetTask(ctx, ids[s])
		if err != nil {
			t.Fatalf("GetTask %s: %v", s, err)
		}
		args, _ := json.Marshal(rec.Args)
		if rec.Status != s || rec.TaskName != "legacy."+string(s) || rec.Priority != 5 || rec.MaxRetries != 3 ||
			rec.RetryCount != 1 || rec.Interruptions != 1 || string(args) != `{"n":1}` || rec.Metadata["m"] != "v" {
			t.Errorf("%s: record after the migration = %+v", s, rec)
		}
	}
	if ws, err := b.ListWorkers(ctx, 0); err != nil || len(ws) != 1 || ws[0].ID != "old-worker" || !slices.Equal(ws[0].Queues, []string{"q"}) {
		t.Fatalf("ListWorkers after the migration = %+v, %v", ws, err)
	}
	if err := b.PauseSchedule(ctx, "legacy.completed"); err != nil {
		t.Fatal(err)
	}
	if ps, err := b.PausedSchedules(ctx); err != nil || len(ps) != 1 || ps[0].Name != "legacy.completed" {
		t.Fatalf("PausedSchedules after the migration = %+v, %v", ps, err)
	}
	if rep, err := b.Migrate(ctx, driver.MigrateOptions{}); err != nil || len(rep.AppliedNow) != 0 {
		t.Fatalf("second Migrate = %+v, %v", rep, err)
	}
}
