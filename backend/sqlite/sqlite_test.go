package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/sqlite"
)

func TestOpenValidates(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		path string
		opts sqlite.Options
	}{
		"empty path":          {"", sqlite.Options{}},
		"blank path":          {"  ", sqlite.Options{}},
		"memory":              {":memory:", sqlite.Options{}},
		"memory uri":          {"file::memory:?cache=shared", sqlite.Options{}},
		"uri":                 {"file:" + filepath.Join(dir, "q.db"), sqlite.Options{}},
		"query options":       {filepath.Join(dir, "q.db") + "?_journal=wal", sqlite.Options{}},
		"directory":           {dir, sqlite.Options{}},
		"missing directory":   {filepath.Join(dir, "missing", "q.db"), sqlite.Options{}},
		"negative busy":       {filepath.Join(dir, "q.db"), sqlite.Options{BusyTimeout: -time.Second}},
		"negative readers":    {filepath.Join(dir, "q.db"), sqlite.Options{Readers: -1}},
		"bad namespace":       {filepath.Join(dir, "q.db"), sqlite.Options{Namespace: "Bad-NS"}},
		"trailing underscore": {filepath.Join(dir, "q.db"), sqlite.Options{Namespace: "a_"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := sqlite.Open(c.path, c.opts)
			if !errors.Is(err, queues.ErrConfig) {
				t.Fatalf("Open(%q) = %v, %v; want ErrConfig", c.path, b, err)
			}
		})
	}
	b, err := sqlite.Open(filepath.Join(dir, "q.db"), sqlite.Options{Namespace: "my_app2", PollInterval: -1})
	if err != nil {
		t.Fatalf("valid options: %v", err)
	}
	if b.Name() != "sqlite" || b.Path() != filepath.Join(dir, "q.db") {
		t.Fatalf("Name %q Path %q", b.Name(), b.Path())
	}
	if _, err := os.Stat(filepath.Join(dir, "q.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sqlite.Open created the file before Backend.Open (stat err %v)", err)
	}
}

func TestCapabilities(t *testing.T) {
	b := openTemp(t, sqlite.Options{})
	want := driver.Capabilities{WakeupTransport: "sqlite-poll", ControlTransport: "memory", Maintenance: true}
	if got := b.Capabilities(); got != want {
		t.Fatalf("Capabilities = %+v, want %+v", got, want)
	}
}

func TestUseBeforeOpenAndAfterClose(t *testing.T) {
	ctx := context.Background()
	b, err := sqlite.Open(filepath.Join(t.TempDir(), "q.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetTask(ctx, uuid.New()); err == nil || errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("GetTask before Open = %v, want a not-open error", err)
	}
	if _, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "x"}}); err == nil {
		t.Fatal("Enqueue before Open succeeded")
	}
	if b.DB() != nil {
		t.Fatal("DB() before Open is not nil")
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	out, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "kept", Args: json.RawMessage(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.DB().QueryRowContext(ctx, `SELECT count(*) FROM queue_task`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("count through DB() = %d, %v", n, err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetTask(ctx, out[0].Record.ID); err == nil {
		t.Fatal("GetTask after Close succeeded")
	}
	// Open again: the record is still there.
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer b.Close(ctx)
	rec, err := b.GetTask(ctx, out[0].Record.ID)
	if err != nil || rec.TaskName != "kept" {
		t.Fatalf("GetTask after reopen = %v, %v", rec, err)
	}
	if st := b.Stats(); st.Groups == 0 || st.Writes == 0 {
		t.Fatalf("Stats = %+v, want counted writes", st)
	}
}

func TestCancelledContext(t *testing.T) {
	b := openTemp(t, sqlite.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "x"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue with a cancelled ctx = %v", err)
	}
	if _, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("ClaimMany with a cancelled ctx = %v", err)
	}
}

// queueStrings lists one text column through the reader pool.
func queueStrings(t *testing.T, b *sqlite.Backend, query string) []string {
	t.Helper()
	rows, err := b.DB().QueryContext(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestMigrateFreshFile(t *testing.T) {
	ctx := context.Background()
	b := openTemp(t, sqlite.Options{})
	all := sqlite.Versions()
	if len(all) == 0 || all[0] != "0001_create_queue_tasks" {
		t.Fatalf("Versions = %v", all)
	}
	if got := queueStrings(t, b, `SELECT version FROM queue_migration ORDER BY version`); !slices.Equal(got, all) {
		t.Fatalf("queue_migration = %v, want %v", got, all)
	}
	tables := queueStrings(t, b, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	for _, want := range []string{"queue_maintenance", "queue_migration", "queue_task", "queue_task_reservation"} {
		if !slices.Contains(tables, want) {
			t.Errorf("table %s missing (have %v)", want, tables)
		}
	}
	indexes := queueStrings(t, b, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'queue_task' AND sql IS NOT NULL ORDER BY name`)
	for _, want := range []string{"queue_task_claim", "queue_task_stale", "queue_task_expiry", "queue_task_terminal",
		"queue_task_completed_by_task", "queue_task_external", "queue_task_key"} {
		if !slices.Contains(indexes, want) {
			t.Errorf("index %s missing (have %v)", want, indexes)
		}
	}

	// Running it again is a no-op.
	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Applied, all) || len(rep.AppliedNow) != 0 || len(rep.Pending) != 0 {
		t.Fatalf("second Migrate = %+v, want everything applied, nothing now", rep)
	}
	dry, err := b.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil || !slices.Equal(dry.Applied, all) || len(dry.Pending) != 0 {
		t.Fatalf("DryRun on a migrated file = %+v, %v", dry, err)
	}
}

func TestMigrateDryRunAndSkip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	b, err := sqlite.Open(path, sqlite.Options{SkipMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	// Migrate works before Open (the CLI's "migrate --dry-run").
	dry, err := b.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dry.Pending, sqlite.Versions()) || len(dry.Applied) != 0 || len(dry.AppliedNow) != 0 {
		t.Fatalf("DryRun on a fresh file = %+v", dry)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open with SkipMigrate: %v", err)
	}
	if tables := queueStrings(t, b, `SELECT name FROM sqlite_master WHERE type = 'table'`); len(tables) != 0 {
		t.Fatalf("DryRun/SkipMigrate created tables: %v", tables)
	}
	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.AppliedNow, sqlite.Versions()) || !slices.Equal(rep.Applied, sqlite.Versions()) || len(rep.Pending) != 0 {
		t.Fatalf("Migrate = %+v", rep)
	}
	if _, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "after.migrate", Args: json.RawMessage(`{}`)}}); err != nil {
		t.Fatalf("Enqueue after Migrate: %v", err)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	b, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().ExecContext(ctx, `INSERT INTO queue_migration (version, applied_at) VALUES ('9999_from_the_future', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		nb, err := sqlite.Open(path, sqlite.Options{SkipMigrate: skip})
		if err != nil {
			t.Fatal(err)
		}
		err = nb.Open(ctx)
		if !errors.Is(err, sqlite.ErrSchemaTooNew) {
			t.Fatalf("Open (SkipMigrate %v) of a newer schema = %v, want ErrSchemaTooNew", skip, err)
		}
		t.Logf("refused: %v", err)
		if _, err := nb.Migrate(ctx, driver.MigrateOptions{DryRun: true}); !errors.Is(err, sqlite.ErrSchemaTooNew) {
			t.Fatalf("Migrate(DryRun) of a newer schema = %v, want ErrSchemaTooNew", err)
		}
		_ = nb.Close(ctx)
	}
}

// TestClaimAcrossQueues covers the claim paths the contract suite does not
// stress: many queues (one index range each), the any-backend form, and
// caps on an unfiltered claim.
func TestClaimAcrossQueues(t *testing.T) {
	ctx := context.Background()
	b := openTemp(t, sqlite.Options{})
	var items []driver.EnqueueParams
	for q := range 70 { // more than the per-range limit of one claim
		for i := range 3 {
			items = append(items, driver.EnqueueParams{TaskName: "q", Args: json.RawMessage(`{}`),
				Queue: "q" + string(rune('A'+q%26)) + string(rune('a'+q/26)), ExecutionBackend: "local", Priority: i})
		}
	}
	if _, err := b.Enqueue(ctx, items); err != nil {
		t.Fatal(err)
	}
	seen := map[uuid.UUID]bool{}
	claim := func(p driver.ClaimParams) []*queues.Record {
		t.Helper()
		res, err := b.ClaimMany(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res.Claimed {
			if seen[r.ID] {
				t.Fatalf("record %s claimed twice", r.ID)
			}
			seen[r.ID] = true
			if i > 0 && r.Priority > res.Claimed[i-1].Priority {
				t.Fatalf("claim order broken: priority %d after %d", r.Priority, res.Claimed[i-1].Priority)
			}
		}
		return res.Claimed
	}
	// 70 queues (beyond one range per queue): every priority-2 record first.
	first := claim(driver.ClaimParams{Limit: 70, ExecutionBackend: "local", WorkerID: "w"})
	if len(first) != 70 {
		t.Fatalf("claimed %d, want 70", len(first))
	}
	for _, r := range first {
		if r.Priority != 2 {
			t.Fatalf("claimed priority %d before all priority-2 records", r.Priority)
		}
	}
	// Any backend, with a cap on one queue.
	capped := claim(driver.ClaimParams{Limit: 100, WorkerID: "w", QueueLimits: map[string]int{"qAa": 0}})
	for _, r := range capped {
		if r.Queue == "qAa" {
			t.Fatal("claimed from a queue capped at 0")
		}
	}
	rest := claim(driver.ClaimParams{Limit: 1000, ExecutionBackend: "local", WorkerID: "w"})
	if len(seen) != len(items) {
		t.Fatalf("claimed %d of %d records (last claims %d, %d)", len(seen), len(items), len(capped), len(rest))
	}
}

// TestCompleteSeesOutsideChanges: a completed transition of a record this
// process claimed is rebuilt from the claim only while the row still
// matches it; a change made behind the backend's back (here through another
// connection) makes Settle read the row.
func TestCompleteSeesOutsideChanges(t *testing.T) {
	ctx := context.Background()
	b := openTemp(t, sqlite.Options{})
	if _, err := b.Enqueue(ctx, []driver.EnqueueParams{
		{TaskName: "a", Args: json.RawMessage(`{}`), ExecutionBackend: "local"},
		{TaskName: "b", Args: json.RawMessage(`{}`), ExecutionBackend: "local"},
	}); err != nil {
		t.Fatal(err)
	}
	res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 2, WorkerID: "w", ExecutionBackend: "local"})
	if err != nil || len(res.Claimed) != 2 {
		t.Fatalf("claim = %v, %v", res.Claimed, err)
	}
	changed, untouched := res.Claimed[0], res.Claimed[1]
	if _, err := b.DB().ExecContext(ctx, `UPDATE queue_task SET metadata = '{"outside":true}', execution_ref = 'ref-1' WHERE id = ?`, changed.ID.String()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rec      *queues.Record
		wantMeta string
		wantRef  string
	}{{changed, `{"outside":true}`, "ref-1"}, {untouched, `{}`, ""}} {
		res, err := b.Settle(ctx, []driver.Transition{{ID: c.rec.ID, Generation: 0, To: queues.StatusCompleted, Result: json.RawMessage(`{"r":1}`)}})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		done := res[0].Record
		stored, err := b.GetTask(ctx, c.rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		gotMeta, _ := json.Marshal(done.Metadata)
		if string(gotMeta) != c.wantMeta || done.ExecutionRef != c.wantRef {
			t.Fatalf("%s: completed metadata %s ref %q, want %s %q", done.TaskName, gotMeta, done.ExecutionRef, c.wantMeta, c.wantRef)
		}
		a, _ := json.Marshal(done)
		s, _ := json.Marshal(stored)
		if string(a) != string(s) {
			t.Fatalf("%s: Settle returned\n%s\nstored\n%s", done.TaskName, a, s)
		}
	}
}
