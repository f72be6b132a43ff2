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

// The first-party stores must keep schedule pauses.
var _ driver.SchedulePauser = (*Backend)(nil)

// TestMigrateSchedulePauses builds the schema of the previous version (0001
// to 0004) holding a record in every status and a worker entry, runs
// Migrate and checks that it applies 0005_schedule_pauses and the later migrations, that every
// record and the entry read back unchanged, that the pause table orders
// names in byte order ("C") from its primary key, and that pauses work on
// the migrated schema.
func TestMigrateSchedulePauses(t *testing.T) {
	b, pool := unmigratedBackend(t)
	ctx := t.Context()
	applyFirstMigrations(t, b, pool, 4, "0005_schedule_pauses")

	ids := seedEveryStatus(t, b, pool, 1)
	statuses := queuestype.AllStatuses
	if _, err := pool.Exec(ctx, `INSERT INTO `+b.n.worker+` (id, host, pid, queues, execution_backend, concurrency,
    running, started_at, version, seen_at, expires_at)
VALUES ('old-worker', 'h', 1, '{q}', 'local', 2, 1, now(), 'v', now(), now() + interval '1 hour')`); err != nil {
		t.Fatalf("insert worker: %v", err)
	}

	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !slices.Equal(rep.AppliedNow, []string{"0005_schedule_pauses", "0006_snooze_errors", "0007_tags"}) {
		t.Fatalf("Migrate applied %v; want [0005_schedule_pauses 0006_snooze_errors 0007_tags]", rep.AppliedNow)
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
	if ws, err := b.ListWorkers(ctx, 0); err != nil || len(ws) != 1 || ws[0].ID != "old-worker" || !slices.Equal(ws[0].Queues, []string{"q"}) {
		t.Fatalf("ListWorkers after the migration = %+v, %v", ws, err)
	}

	var collation string
	if err := pool.QueryRow(ctx, `SELECT coalesce(collation_name, '') FROM information_schema.columns
WHERE table_schema = $1 AND table_name = 'queue_schedule_pause' AND column_name = 'name'`, b.n.schema).Scan(&collation); err != nil {
		t.Fatal(err)
	}
	if collation != "C" {
		t.Errorf("queue_schedule_pause.name collation %q; want C (byte order on every database)", collation)
	}
	rows, err := pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'queue_schedule_pause' ORDER BY indexname`, b.n.schema)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(idx, []string{"queue_schedule_pause_pkey"}) {
		t.Errorf("queue_schedule_pause indexes %v", idx)
	}

	for _, name := range []string{"legacy.completed", "Legacy", "ä"} {
		if err := b.PauseSchedule(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := b.PausedSchedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var dbNow time.Time
	if err := pool.QueryRow(ctx, `SELECT now()`).Scan(&dbNow); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
		if p.Since.After(dbNow) || dbNow.Sub(p.Since) > time.Minute {
			t.Errorf("%q Since %v; want the database's clock (now %v)", p.Name, p.Since, dbNow)
		}
	}
	if !slices.Equal(names, []string{"Legacy", "legacy.completed", "ä"}) {
		t.Errorf("PausedSchedules after the migration = %q; want byte order", names)
	}
}
