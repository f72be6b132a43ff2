package queues_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/backend/sqlite"
)

type SendEmail struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

// Register a typed task, enqueue it, run an in-app worker and wait for the result.
func Example() {
	reg := queues.NewRegistry()
	sendEmail := queues.MustRegister(reg, "email.send",
		func(ctx context.Context, a SendEmail) (string, error) {
			return "sent to " + a.To, nil
		},
		queues.TaskOptions{Retries: 3, RetryBackoff: queues.ExponentialBackoff(time.Second, time.Minute), Timeout: 30 * time.Second})

	svc, err := queues.New(queues.Config{
		Backend:  memory.New(memory.Options{}),
		Registry: reg,
		Worker:   queues.WorkerConfig{Placement: queues.PlacementInApp, MaxConcurrency: 4},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		panic(err)
	}
	defer svc.Close(ctx)

	res, err := sendEmail.Enqueue(ctx, svc, SendEmail{To: "ada@example.com", Subject: "hi"})
	if err != nil {
		panic(err)
	}
	rec, err := res.Wait(ctx)
	if err != nil {
		panic(err)
	}
	value, _ := res.Value()
	fmt.Println(rec.Status, value)
	// Output: completed sent to ada@example.com
}

// Drive a worker by hand with RunOnce, as tests do.
func ExampleWorker_RunOnce() {
	reg := queues.NewRegistry()
	double := queues.MustRegister(reg, "math.double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil })
	svc, _ := queues.New(queues.Config{Backend: memory.New(memory.Options{}), Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	_ = svc.Start(ctx)
	defer svc.Close(ctx)

	res, _ := double.Enqueue(ctx, svc, 21)
	w, _ := svc.NewWorker(queues.WorkerConfig{ID: "test-worker"})
	n, _ := w.RunOnce(ctx) // claims and starts one batch
	_ = w.Wait(ctx)        // waits for the attempts it started
	_, _ = res.Refresh(ctx)
	v, _ := res.Value()
	fmt.Println(n, v)
	// Output: 1 42
}

// Uniqueness: a second enqueue with the same arguments returns the active record.
func ExampleUniqueByArguments() {
	reg := queues.NewRegistry()
	report := queues.MustRegister(reg, "report.build", func(ctx context.Context, a struct{ Account string }) (struct{}, error) {
		return struct{}{}, nil
	}, queues.TaskOptions{UniqueBy: queues.UniqueByArguments})
	svc, _ := queues.New(queues.Config{Backend: memory.New(memory.Options{}), Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	_ = svc.Start(ctx)
	defer svc.Close(ctx)

	a, _ := report.Enqueue(ctx, svc, struct{ Account string }{"acct-1"})
	b, _ := report.Enqueue(ctx, svc, struct{ Account string }{"acct-1"})
	fmt.Println(a.ID == b.ID, b.Deduplicated)
	// Output: true true
}

// Enqueue inside the application's own transaction: the order row and the
// task record commit together, or neither exists. Here on SQLite, with a
// *sql.Tx on the store's file; on PostgreSQL tx is a pgx.Tx.
func ExampleEnqueueTx() {
	dir, err := os.MkdirTemp("", "queues-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.db")
	ctx := context.Background()

	reg := queues.NewRegistry()
	ship := queues.MustRegister(reg, "order.ship", func(ctx context.Context, order int64) (string, error) {
		return fmt.Sprintf("order %d shipped", order), nil
	})
	store, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		panic(err)
	}
	svc, err := queues.New(queues.Config{Backend: store, Registry: reg,
		Worker: queues.WorkerConfig{Placement: queues.PlacementInApp}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	if err := svc.Start(ctx); err != nil { // opens and migrates the file
		panic(err)
	}
	defer svc.Close(ctx)

	// The application's own handle on the file: IMMEDIATE transactions and a busy timeout.
	db, err := sql.Open("sqlite", path+"?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)`); err != nil {
		panic(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		panic(err)
	}
	row, err := tx.ExecContext(ctx, `INSERT INTO orders (item) VALUES ('book')`)
	if err != nil {
		panic(err)
	}
	order, _ := row.LastInsertId()
	res, err := queues.EnqueueTx(ctx, svc, tx, ship, order)
	if err != nil {
		panic(err)
	}
	if err := tx.Commit(); err != nil { // the record exists from here on
		panic(err)
	}
	if _, err := res.Wait(ctx); err != nil {
		panic(err)
	}
	value, _ := res.Value()
	fmt.Println(value)
	// Output: order 1 shipped
}
