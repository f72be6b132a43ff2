package queues_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
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
