package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/jackc/pgx/v5"
)

// TestMigrateWorkers builds the schema of the previous version (0001 to
// 0003) holding a record in every status, runs Migrate and checks that it
// applies 0004_workers and the later migrations, that every record reads back unchanged, that
// the registry table has its expiry index and a byte-order ("C") id, and
// that the registry works on the migrated schema.
func TestMigrateWorkers(t *testing.T) {
	b, pool := unmigratedBackend(t)
	ctx := t.Context()
	applyFirstMigrations(t, b, pool, 3, "0004_workers")

	ids := seedEveryStatus(t, b, pool, 1)
	statuses := queuestype.AllStatuses

	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !slices.Equal(rep.AppliedNow, []string{"0004_workers", "0005_schedule_pauses", "0006_snooze_errors", "0007_tags"}) {
		t.Fatalf("Migrate applied %v; want [0004_workers 0005_schedule_pauses 0006_snooze_errors 0007_tags]", rep.AppliedNow)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })

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

	var collation string
	if err := pool.QueryRow(ctx, `SELECT coalesce(collation_name, '') FROM information_schema.columns
WHERE table_schema = $1 AND table_name = 'queue_worker' AND column_name = 'id'`, b.n.schema).Scan(&collation); err != nil {
		t.Fatal(err)
	}
	if collation != "C" {
		t.Errorf("queue_worker.id collation %q; want C (byte order on every database)", collation)
	}
	rows, err := pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'queue_worker' ORDER BY indexname`, b.n.schema)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(idx, []string{"queue_worker_expiry", "queue_worker_pkey"}) {
		t.Errorf("queue_worker indexes %v", idx)
	}

	w := driver.WorkerInfo{ID: "after-migration", Host: "h", Queues: []string{"q"}, ExecutionBackend: "local", StartedAt: time.Now()}
	if err := b.RegisterWorker(ctx, w, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ws, err := b.ListWorkers(ctx, 0); err != nil || len(ws) != 1 || ws[0].ID != w.ID {
		t.Fatalf("ListWorkers after the migration = %+v, %v", ws, err)
	}
}

// TestListWorkersDeletesExpiredRows: a row whose expires_at passed on the
// database clock is not listed, and the listing deletes it; a nil queue
// filter reads back as an empty list.
func TestListWorkersDeletesExpiredRows(t *testing.T) {
	b, pool := unmigratedBackend(t)
	ctx := t.Context()
	if _, err := b.Migrate(ctx, driver.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	for _, id := range []string{"dead", "live"} {
		if err := b.RegisterWorker(ctx, driver.WorkerInfo{ID: id, StartedAt: time.Now()}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE `+b.n.worker+` SET expires_at = now() - interval '1 second' WHERE id = 'dead'`); err != nil {
		t.Fatal(err)
	}
	ws, err := b.ListWorkers(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].ID != "live" || ws[0].Queues == nil || len(ws[0].Queues) != 0 {
		t.Fatalf("ListWorkers = %+v; want only live, with an empty queue list", ws)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+b.n.worker+` WHERE id = 'dead'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("expired rows left after the listing: %d, %v", n, err)
	}
}
