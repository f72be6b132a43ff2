package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// manualClock is a backend clock a test moves by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestWorkersExpireByStoreClock registers entries against a clock the test
// moves: SeenAt and ExpiresAt come from that clock (not the process's), an
// entry is listed until its expires_at and not at it, and the listing that
// finds it expired deletes its row.
func TestWorkersExpireByStoreClock(t *testing.T) {
	ctx := t.Context()
	clock := &manualClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	b := openTemp(t, sqlite.Options{Now: clock.Now})
	w := driver.WorkerInfo{ID: "w-short", Host: "h", PID: 1, ExecutionBackend: "local", Concurrency: 1,
		StartedAt: clock.Now().Add(-time.Minute), Version: "v"}
	if err := b.RegisterWorker(ctx, w, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	w.ID = "w-long"
	if err := b.RegisterWorker(ctx, w, time.Hour); err != nil {
		t.Fatal(err)
	}
	ws, err := b.ListWorkers(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].ID != "w-long" || !ws[1].SeenAt.Equal(clock.Now()) || !ws[1].ExpiresAt.Equal(clock.Now().Add(10*time.Second)) {
		t.Fatalf("ListWorkers = %+v; want both, stamped by the backend clock %v", ws, clock.Now())
	}
	if ws[0].Queues == nil || len(ws[0].Queues) != 0 {
		t.Errorf("a nil queue filter reads back as %#v; want an empty list", ws[0].Queues)
	}
	clock.Add(10*time.Second - time.Microsecond)
	if ws, _ := b.ListWorkers(ctx, 0); len(ws) != 2 {
		t.Fatalf("a microsecond before its expiry the entry is not listed: %+v", ws)
	}
	clock.Add(time.Microsecond)
	ws, err = b.ListWorkers(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].ID != "w-long" {
		t.Fatalf("ListWorkers at the expiry = %+v; want only w-long", ws)
	}
	if got := queueStrings(t, b, `SELECT id FROM queue_worker ORDER BY id`); !slices.Equal(got, []string{"w-long"}) {
		t.Fatalf("rows after the listing = %v; want the expired row deleted", got)
	}
}

// TestMigrateWorkers builds a file with the previous schema (migrations
// 0001 to 0003) holding a record in every status, opens it (which applies
// 0004 and later) and checks that every record reads back unchanged, that the
// registry works and that its expiry index exists.
func TestMigrateWorkers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	statuses := queuestype.AllStatuses
	var ids map[queuestype.Status]uuid.UUID
	previous := []string{"0001_create_queue_tasks", "0002_task_policy", "0003_dispatch_until"}
	writeSchema(t, path, previous, func(db *sql.DB, now int64) {
		ids = seedEveryStatus(t, db, now, 1)
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
	if !slices.Equal(dry.Applied, previous) || !slices.Equal(dry.Pending, []string{"0004_workers", "0005_schedule_pauses", "0006_snooze_errors", "0007_tags"}) {
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
	if got := queueStrings(t, b, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'queue_worker' AND sql IS NOT NULL`); !slices.Equal(got, []string{"queue_worker_expiry"}) {
		t.Errorf("queue_worker indexes = %v", got)
	}
	w := driver.WorkerInfo{ID: "after-migration", Host: "h", Queues: []string{"q"}, ExecutionBackend: "local", StartedAt: time.Now()}
	if err := b.RegisterWorker(ctx, w, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ws, err := b.ListWorkers(ctx, 0); err != nil || len(ws) != 1 || ws[0].ID != w.ID {
		t.Fatalf("ListWorkers after the migration = %+v, %v", ws, err)
	}
	if rep, err := b.Migrate(ctx, driver.MigrateOptions{}); err != nil || len(rep.AppliedNow) != 0 {
		t.Fatalf("second Migrate = %+v, %v", rep, err)
	}
}

// writeSchema creates path with the schema of the given migrations
// (recorded in the ledger as the code of that time did) and lets fill
// write its records.
func writeSchema(t *testing.T, path string, versions []string, fill func(db *sql.DB, now int64)) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	now := time.Now().UnixMicro()
	for _, v := range versions {
		ddl, err := os.ReadFile(filepath.Join("migrations", v+".sql"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, string(ddl)); err != nil {
			t.Fatalf("previous schema %s: %v", v, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO queue_migration (version, applied_at) VALUES (?, ?)`, v, now); err != nil {
			t.Fatal(err)
		}
	}
	fill(db, now)
}

// seedEveryStatus inserts, with the columns every schema since 0003 has,
// one record in each status (task "legacy.<status>", args {"n":1}, queue q,
// priority 5, max_retries 3, the given retry_count, one interruption,
// metadata {"m":"v"}; the scheduled one holds a key, the running and
// completed ones a worker) into db at now (store microseconds) and returns
// their IDs: the records a migration test checks read back unchanged.
func seedEveryStatus(t *testing.T, db *sql.DB, now int64, retryCount int) map[queuestype.Status]uuid.UUID {
	t.Helper()
	const insert = `INSERT INTO queue_task (id, task_name, args, queue, execution_backend, worker_id, status,
    priority, max_retries, retry_count, scheduled_at, created_at, queued_at, started_at, heartbeat_at, completed_at,
    result, error, task_key, metadata, policy, interruptions)
VALUES (?, ?, '{"n":1}', 'q', 'local', ?, ?, 5, 3, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{"m":"v"}', '{"timeout":5}', 1)`
	ids := make(map[queuestype.Status]uuid.UUID, len(queuestype.AllStatuses))
	for _, s := range queuestype.AllStatuses {
		id := uuid.New()
		ids[s] = id
		var worker, scheduled, started, heartbeat, completed, result, errText, key any
		switch s {
		case queuestype.StatusScheduled:
			scheduled = now + int64(time.Hour/time.Microsecond)
			key = "key-" + id.String()
		case queuestype.StatusRunning:
			worker, started, heartbeat = "old-worker", now, now
		case queuestype.StatusCompleted:
			worker, started, completed, result = "old-worker", now, now, `{"ok":true}`
		case queuestype.StatusPending:
		default:
			completed, errText = now, "boom"
		}
		if _, err := db.ExecContext(t.Context(), insert, id.String(), "legacy."+string(s), worker, string(s), retryCount,
			scheduled, now, now, started, heartbeat, completed, result, errText, key); err != nil {
			t.Fatalf("insert %s: %v", s, err)
		}
	}
	return ids
}
