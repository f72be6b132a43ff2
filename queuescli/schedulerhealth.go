package queuescli

import (
	"errors"
	"fmt"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/internal/schedhealth"
	"github.com/spf13/cobra"
)

// Exit codes of `queues scheduler-health` besides 0 (healthy) and 1 (the
// command could not check).
const (
	// ExitCanaryNotRegistered: this binary does not register the scheduler
	// canary, so there is nothing to check.
	ExitCanaryNotRegistered = 3
	// ExitSchedulerStale: the canary did not complete within the window.
	ExitSchedulerStale = 4
)

// ---- scheduler-health ----

func (c *cli) schedulerHealthCmd() *cobra.Command {
	var minutes int
	cmd := &cobra.Command{
		Use:   "scheduler-health",
		Short: "Check that schedules fire: the scheduler canary completed recently",
		Long: `Check that schedules fire: look for a completion of the scheduler canary
(` + queues.SchedulerCanaryTask + `, a no-op task the application runs on a schedule)
within the last --minutes minutes.

Exit codes: 0 healthy (prints "healthy: <canary> completed <time>"), 4 stale
(prints "stale: no <canary> completion within <N>m window since <time>" on
stderr), 3 the canary is not registered in this binary, 1 the check failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := schedhealth.CheckMinutes(minutes); err != nil {
				return fmt.Errorf("--minutes: %w", err)
			}
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
			if err != nil {
				return err
			}
			defer closeService(cmd, svc)
			rep, err := schedhealth.Check(cmd.Context(), svc, minutes, time.Now())
			if errors.Is(err, schedhealth.ErrNotRegistered) {
				return &ExitError{Code: ExitCanaryNotRegistered, Err: err}
			}
			if err != nil {
				return fmt.Errorf("scheduler-health: %w", err)
			}
			if !rep.Healthy {
				fmt.Fprintf(c.opts.Stderr, "stale: no %s completion within %dm window since %s\n",
					rep.Canary, rep.Minutes, rep.Since.Format(time.RFC3339))
				return &ExitError{Code: ExitSchedulerStale}
			}
			_, err = fmt.Fprintf(c.opts.Stdout, "healthy: %s completed %s\n", rep.Canary, rep.LastCompletedAt.Format(time.RFC3339))
			return err
		},
	}
	cmd.Flags().IntVar(&minutes, "minutes", schedhealth.DefaultMinutes, "the window: a canary completion within the last N minutes (N ≥ 1) is healthy")
	return cmd
}
