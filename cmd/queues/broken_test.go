package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
	"github.com/queuesgo/queues/queuescli"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to find the pages to damage
)

// TestRunStopsOnDamagedSQLite damages the pages of the records table and
// of its claim index in a migrated SQLite file holding records, so that
// the worker starts (the migration table is intact) and every claim then
// fails with "database disk image is malformed". `queues run` must give up
// within seconds, exit 1 and say so in one `error: store is broken: ...`
// line, not log the error for every poll.
func TestRunStopsOnDamagedSQLite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustRun("migrate")
	ctx := context.Background()
	b, err := dsn.Open(ctx, e.dsn())
	if err != nil {
		t.Fatal(err)
	}
	reg := queues.NewRegistry()
	if err := queuescli.RegisterDemoTasks(reg); err != nil {
		t.Fatal(err)
	}
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if _, err := svc.EnqueueRaw(ctx, "demo.noop", json.RawMessage(`{"pad":"`+strings.Repeat("x", 200)+`"}`), queues.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	damageSQLite(t, e.db, "queue_task", "queue_task_claim")

	start := time.Now()
	p := e.start("run", "--worker-id", "broken-store")
	code := p.wait(t, 20*time.Second)
	took := time.Since(start)
	stderr := p.stderr.String()
	t.Logf("exit %d after %s\n%s", code, took.Round(time.Millisecond), stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstderr: %s", code, stderr)
	}
	if took > 10*time.Second {
		t.Errorf("gave up after %s, want a few seconds", took)
	}
	var errLines, mentions []string
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if strings.HasPrefix(l, "error: ") {
			errLines = append(errLines, l)
		}
		if strings.Contains(l, "malformed") {
			mentions = append(mentions, l)
		}
	}
	if len(errLines) != 1 {
		t.Fatalf("want one `error: ...` line, got %d:\n%s", len(errLines), stderr)
	}
	if l := errLines[0]; !strings.HasPrefix(l, "error: store is broken: claim: ") || !strings.Contains(l, "database disk image is malformed") {
		t.Errorf("error line %q does not say the store is broken with the claim's error", l)
	}
	// A sweep that ran before the give-up may log its own first failure,
	// once; the claim loop's tries are reported by the error line alone.
	if len(mentions) > 2 {
		t.Errorf("the error is said %d times, want the error line and at most one sweep line:\n%s", len(mentions), stderr)
	}
}

// damageSQLite overwrites every page of the named tables and indexes in
// the SQLite file at path with random bytes. It checkpoints the
// write-ahead log into the file first, so the damaged pages are the ones
// read.
func damageSQLite(t *testing.T, path string, names ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	var pageSize int64
	if err := db.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	query := "SELECT pageno FROM dbstat WHERE name IN (" + strings.TrimSuffix(strings.Repeat("?,", len(names)), ",") + ")"
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	var pages []int64
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(pages) < 2 {
		t.Fatalf("tables %v span %d pages; want several to damage", names, len(pages))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, pageSize)
	for _, p := range pages {
		if p == 1 {
			t.Fatalf("page 1 (the schema) belongs to %v", names)
		}
		for i := range garbage {
			garbage[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(garbage, (p-1)*pageSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("damaged %d pages of %v", len(pages), names)
}
