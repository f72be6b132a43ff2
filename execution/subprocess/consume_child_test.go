//go:build unix

package subprocess_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/execution"
)

// e2eRegistry registers the tasks of the end-to-end tests; the parent (for
// enqueueing) and the children (for running) use the same registry.
func e2eRegistry() (*queues.Registry, e2eTasks) {
	reg := queues.NewRegistry()
	var t e2eTasks
	t.ok = queues.MustRegister(reg, "sp.ok", func(ctx context.Context, _ empty) (string, error) {
		return fmt.Sprintf("ok from %d", os.Getpid()), nil
	}, queues.TaskOptions{ExecutionBackend: "subprocess"})
	t.fail = queues.MustRegister(reg, "sp.fail", func(ctx context.Context, _ empty) (empty, error) {
		return empty{}, errors.New("boom")
	}, queues.TaskOptions{ExecutionBackend: "subprocess"})
	t.sleep = queues.MustRegister(reg, "sp.sleep", func(ctx context.Context, _ empty) (empty, error) {
		select {
		case <-ctx.Done():
			return empty{}, context.Cause(ctx)
		case <-time.After(time.Minute):
			return empty{}, nil
		}
	}, queues.TaskOptions{ExecutionBackend: "subprocess"})
	return reg, t
}

type e2eTasks struct {
	ok    *queues.Task[empty, string]
	fail  *queues.Task[empty, empty]
	sleep *queues.Task[empty, empty]
}

// openStore opens the SQLite file shared by the dispatcher and its children.
func openStore(ctx context.Context, path string) (driver.Backend, error) {
	b, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	if err := b.Open(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// consumeChild is what `<app> run-task --task-id <id>` does: open the store
// named by SP_DB, claim the record by ID and run it with ConsumeOne, ending
// the attempt on SIGTERM, and exit with the code ConsumeOne returns.
func consumeChild(id string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	taskID, err := uuid.Parse(id)
	if err != nil {
		return int(execution.ExitInvalidTaskID)
	}
	b, err := openStore(context.Background(), os.Getenv("SP_DB"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open store:", err)
		return int(execution.ExitConfigError)
	}
	reg, _ := e2eRegistry()
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return int(execution.ExitConfigError)
	}
	if err := svc.Start(context.Background()); err != nil {
		return int(execution.ExitConfigError)
	}
	defer func() { _ = svc.Close(context.Background()) }()
	code, _ := svc.ExecutionHost().ConsumeOne(ctx, taskID, execution.ConsumeOptions{HeartbeatInterval: 500 * time.Millisecond})
	return int(code)
}
