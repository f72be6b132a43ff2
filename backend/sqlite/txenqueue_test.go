package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
)

// appDB opens the application's own database/sql handle on the store's
// file, as the package doc recommends: IMMEDIATE transactions and a
// busy_timeout. It creates the application's table.
func appDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func countOrders(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM orders`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

type shipArgs struct{ Order int64 }

// An application transaction inserts its own row and enqueues a task; on
// commit a worker of the store claims and completes it, woken by the
// change poll (the worker's own poll is an hour); on rollback nothing is
// left: no record, no reservation, no row.
func TestEnqueueTxCommitAndRollback(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	b := openTempAt(t, path, sqlite.Options{PollInterval: 20 * time.Millisecond})
	db := appDB(t, path)

	reg := queues.NewRegistry()
	var ran atomic.Int64
	ship := queues.MustRegister(reg, "ship", func(ctx context.Context, a shipArgs) (shipArgs, error) {
		ran.Add(1)
		return a, nil
	})
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	startWorker(t, svc, queues.WorkerConfig{ID: "tx-worker", PollInterval: time.Hour, PollBackoffMax: -1})

	// Commit. The transaction begins once the worker has polled and waits
	// for a hint (it holds the write lock, so it would hold the worker's
	// first claim until the commit).
	time.Sleep(200 * time.Millisecond)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO orders (item) VALUES ('book')`)
	if err != nil {
		t.Fatal(err)
	}
	orderID, _ := res.LastInsertId()
	h, err := queues.EnqueueTx(ctx, svc, tx, ship, shipArgs{Order: orderID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetTask(ctx, h.ID); !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("record visible before commit: %v", err)
	}
	committed := time.Now()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rec, err := h.Wait(wctx, queues.WaitOptions{PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("waiting for the committed task: %v", err)
	}
	if rec.Status != queues.StatusCompleted || rec.WorkerID != "tx-worker" || string(rec.Result) != `{"Order":`+jsonInt(orderID)+`}` {
		t.Fatalf("record = status %s worker %q result %s", rec.Status, rec.WorkerID, rec.Result)
	}
	t.Logf("commit to completion: %s", time.Since(committed).Round(time.Millisecond))

	// Rollback: a forever-keyed enqueue leaves neither record nor reservation.
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO orders (item) VALUES ('lamp')`); err != nil {
		t.Fatal(err)
	}
	key := "ship:lamp"
	rolled, err := queues.EnqueueManyTx(ctx, svc, tx, []queues.EnqueueRequest{
		ship.Request(shipArgs{Order: 2}),
		{Task: "ship", Args: shipArgs{Order: 3}, Options: queues.EnqueueOptions{Key: key}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for _, r := range rolled {
		if _, err := b.GetTask(ctx, r.ID); !errors.Is(err, queues.ErrTaskNotFound) {
			t.Fatalf("record %s after rollback: %v", r.ID, err)
		}
	}
	if _, err := b.GetTaskByKey(ctx, key); !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("key after rollback: %v", err)
	}
	if n := countOrders(t, db); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
	if st, err := b.Statistics(ctx, ""); err != nil || st.Total != 1 {
		t.Fatalf("statistics %+v, %v; want the one committed record", st, err)
	}
	if ran.Load() != 1 {
		t.Fatalf("%d runs, want 1", ran.Load())
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// Keys inside the caller's transaction deduplicate against the stored
// records and reservations: an active holder is returned, a forever
// reservation returns its owner, a terminal holder's key is taken over, a
// repeated key in one call resolves to the earlier item, and a forever item
// on a key held by an active non-forever record is an identity conflict.
func TestEnqueueTxKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	b := openTempAt(t, path, sqlite.Options{})
	db := appDB(t, path)

	item := func(name, key string, forever bool) driver.EnqueueParams {
		return driver.EnqueueParams{TaskName: name, Args: json.RawMessage(`{}`), Queue: queues.DefaultQueue,
			ExecutionBackend: "local", Key: key, Forever: forever}
	}
	stored, err := b.Enqueue(ctx, []driver.EnqueueParams{
		item("active", "k:active", false),
		item("forever", "k:forever", true),
		item("done", "k:done", false),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Cancel(ctx, driver.CancelParams{ID: stored[2].Record.ID}); err != nil {
		t.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := b.EnqueueTx(ctx, tx, []driver.EnqueueParams{
		item("again", "k:active", false),   // active holder
		item("again", "k:forever", true),   // reserved: the owner
		item("again", "k:done", false),     // terminal holder: taken over
		item("twice", "k:done", false),     // repeats item 2
		item("conflict", "k:active", true), // forever on an active non-forever key
		item("new", "k:new", true),         // new forever key
	})
	if err != nil {
		t.Fatal(err)
	}
	if o := outs[0]; !o.Existing || o.Record == nil || o.Record.ID != stored[0].Record.ID {
		t.Fatalf("active holder: %+v", o)
	}
	if o := outs[1]; !o.Existing || o.Owner == nil || o.Owner.TaskID != stored[1].Record.ID {
		t.Fatalf("forever owner: %+v", o)
	}
	if o := outs[2]; o.Existing || o.Record == nil || o.Record.Key != "k:done" {
		t.Fatalf("takeover: %+v", o)
	}
	if o := outs[3]; !o.Existing || o.Record == nil || o.Record.ID != outs[2].Record.ID {
		t.Fatalf("repeated key: %+v", o)
	}
	if o := outs[4]; !errors.Is(o.Err, queues.ErrIdentityConflict) {
		t.Fatalf("forever on an active key: %+v", o)
	}
	if o := outs[5]; o.Existing || o.Record == nil {
		t.Fatalf("new forever key: %+v", o)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if r, err := b.GetTaskByKey(ctx, "k:done"); err != nil || r.ID != outs[2].Record.ID {
		t.Fatalf("k:done held by %+v, %v; want the new record", r, err)
	}
	if r, err := b.GetIdentity(ctx, "k:new"); err != nil || r == nil || r.TaskID != outs[5].Record.ID {
		t.Fatalf("reservation k:new = %+v, %v", r, err)
	}
	if got, err := b.GetTask(ctx, outs[5].Record.ID); err != nil || got.Status != queues.StatusPending {
		t.Fatalf("stored record = %+v, %v", got, err)
	}

	// The same through the service: a keyed enqueue is deduplicated.
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "again", func(ctx context.Context, _ struct{}) (struct{}, error) { return struct{}{}, nil })
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	h, err := queues.EnqueueTx(ctx, svc, tx, task, struct{}{}, queues.EnqueueOptions{Key: "k:active"})
	if err != nil || !h.Deduplicated || h.ID != stored[0].Record.ID {
		t.Fatalf("keyed EnqueueTx = %+v, %v; want the active holder, deduplicated", h, err)
	}
}

// A failing call undoes its own writes (savepoint) and leaves the caller's
// transaction usable; a nil tx and another transaction type are refused.
func TestEnqueueTxFailureKeepsCallerTx(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fail.db")
	b := openTempAt(t, path, sqlite.Options{})
	db := appDB(t, path)
	existing, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "x", Args: json.RawMessage(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO orders (item) VALUES ('kept')`); err != nil {
		t.Fatal(err)
	}
	fresh := uuid.New()
	_, err = b.EnqueueTx(ctx, tx, []driver.EnqueueParams{
		{ID: fresh, TaskName: "first", Args: json.RawMessage(`{}`)},
		{ID: existing[0].Record.ID, TaskName: "dup", Args: json.RawMessage(`{}`)},
	})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("EnqueueTx with an existing ID = %v", err)
	}
	if _, err := b.EnqueueTx(ctx, tx, []driver.EnqueueParams{{TaskName: "p", Priority: 5000}}); !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("bad priority = %v; want ErrConfig", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit after a failed EnqueueTx: %v", err)
	}
	if _, err := b.GetTask(ctx, fresh); !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("the failed call's first record was kept: %v", err)
	}
	if n := countOrders(t, db); n != 1 {
		t.Fatalf("%d orders, want the caller's 1", n)
	}

	if _, err := b.EnqueueTx(ctx, nil, []driver.EnqueueParams{{TaskName: "x"}}); !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("EnqueueTx(nil) = %v; want ErrConfig", err)
	}
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "x", func(ctx context.Context, _ struct{}) (struct{}, error) { return struct{}{}, nil })
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = queues.EnqueueTx(ctx, svc, conn, task, struct{}{})
	if !errors.Is(err, queues.ErrUnsupported) || !strings.Contains(err.Error(), "*sql.Tx") || !strings.Contains(err.Error(), "*sql.Conn") {
		t.Fatalf("EnqueueTx(*sql.Conn) = %v; want ErrUnsupported naming *sql.Tx and *sql.Conn", err)
	}
}

// The caller's transaction holds the file's write lock: the store's writer
// waits for it (busy_timeout) and goes on after the commit. A deferred
// transaction that read before the store committed cannot write (SQLite's
// SQLITE_BUSY_SNAPSHOT), and the error says how to begin it.
func TestEnqueueTxSharesTheWriteLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lock.db")
	b := openTempAt(t, path, sqlite.Options{})
	db := appDB(t, path)

	tx, err := db.BeginTx(ctx, nil) // IMMEDIATE: holds the write lock from here
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnqueueTx(ctx, tx, []driver.EnqueueParams{{TaskName: "in.tx", Args: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "store", Args: json.RawMessage(`{}`)}})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the store wrote while the caller's transaction held the lock (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("store enqueue after the commit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the store's write did not go on after the commit")
	}

	// A deferred transaction with a stale snapshot.
	deferred, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer deferred.Close()
	dtx, err := deferred.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dtx.Rollback()
	var n int
	if err := dtx.QueryRowContext(ctx, `SELECT count(*) FROM queue_task`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "meanwhile", Args: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	_, err = b.EnqueueTx(ctx, dtx, []driver.EnqueueParams{{TaskName: "stale", Args: json.RawMessage(`{}`)}})
	if err == nil || !strings.Contains(err.Error(), "_txlock=immediate") {
		t.Fatalf("EnqueueTx on a stale deferred transaction = %v; want the BEGIN IMMEDIATE advice", err)
	}
	t.Logf("stale deferred transaction: %v", err)
}
