package queuescli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/execution"
	"github.com/spf13/cobra"
)

func (c *cli) runTaskCmd() *cobra.Command {
	var taskID, workerID string
	var heartbeat time.Duration
	cmd := &cobra.Command{
		Use:   "run-task",
		Short: "Claim one record by ID and run it in this process (external executions)",
		Long: `Claim the record --task-id (or QUEUES_TASK_ID) by ID, run it once and exit
with its outcome. SIGINT/SIGTERM cancels the running attempt (cause
worker shutting down); a second signal exits at once.

Exit codes: 0 completed; 1 failed or requeued; 2 no task ID; 3 not a UUID;
4 no such record; 5 task not registered in this binary; 6 claim lost or
expired; 7 cancelled; 8 configuration or backend failure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runTask(cmd, taskID, workerID, heartbeat)
		},
	}
	cmd.Flags().StringVar(&taskID, "task-id", "", "ID of the record to run (env "+EnvTaskID+")")
	cmd.Flags().StringVar(&workerID, "worker-id", "", "worker identity stored on the record (default worker-<pid>)")
	cmd.Flags().DurationVar(&heartbeat, "heartbeat-interval", 0, "time between heartbeat writes (default: the configured worker interval, 30s)")
	return cmd
}

func (c *cli) runTask(cmd *cobra.Command, taskID, workerID string, heartbeat time.Duration) error {
	code := func(e execution.ExitCode, format string, args ...any) error {
		return exitErr(int(e), format, args...)
	}
	if !cmd.Flags().Changed("task-id") {
		taskID = os.Getenv(EnvTaskID)
	}
	taskID = strings.TrimSpace(taskID)
	if taskID == "" {
		return code(execution.ExitMissingTaskID, "missing task ID: give --task-id or %s", EnvTaskID)
	}
	id, err := uuid.Parse(taskID)
	if err != nil {
		return code(execution.ExitInvalidTaskID, "invalid task ID %q: not a UUID", truncate(taskID, 64))
	}
	if cmd.Flags().Changed("heartbeat-interval") && heartbeat <= 0 {
		return code(execution.ExitConfigError, "--heartbeat-interval must be a positive duration such as 500ms or 2s")
	}
	if cmd.Flags().Changed("worker-id") && strings.TrimSpace(workerID) == "" {
		return code(execution.ExitConfigError, "--worker-id must not be empty")
	}
	svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
	if err != nil {
		return code(execution.ExitConfigError, "%w", err)
	}
	defer closeService(cmd, svc)

	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-sigs:
			cancel() // the attempt ends with cause ErrShutdown
		case <-finished:
			return
		}
		select {
		case sig := <-sigs:
			num := 0
			if s, ok := sig.(syscall.Signal); ok {
				num = int(s)
			}
			c.exit(128 + num)
		case <-finished:
		}
	}()

	ec, err := svc.ExecutionHost().ConsumeOne(ctx, id, execution.ConsumeOptions{WorkerID: workerID, HeartbeatInterval: heartbeat})
	if ec == execution.ExitSuccess {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("task %s ended with exit code %d", id, ec)
	}
	switch ec {
	case execution.ExitUnknownTask:
		err = fmt.Errorf("%w (not registered in this binary)", err)
	case execution.ExitCancelled:
		err = fmt.Errorf("task %s was cancelled", id)
	case execution.ExitFailure:
		if !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("task %s failed: %w", id, err)
		}
	}
	return &ExitError{Code: int(ec), Err: err}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
