package queuescli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/maintenance"
	"github.com/spf13/cobra"
)

// Exit codes of `run-maintenance`.
const (
	ExitMaintenanceDone    = 0 // completed, nothing to do, or already running elsewhere
	ExitMaintenanceFailed  = 1 // configuration, open/run/close or phase failure
	ExitMaintenancePartial = 2 // the time budget ran out before every phase finished
)

// maintenanceClock is the clock of run-maintenance's runs; tests fix it so
// the report's durations are stable.
var maintenanceClock func() time.Time

// errProcessLocal is a backend whose records no other process sees.
var errProcessLocal = errors.New("process-local backend")

func (c *cli) runMaintenanceCmd() *cobra.Command {
	var (
		phases []string
		asJSON bool
		budget time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run-maintenance",
		Short: "Run maintenance once: reconcile, recover stale records, delete old terminal records",
		Long: `Run maintenance once under the fleet's maintenance lock, then print its report.

Phases run in this order, each when enabled: external (reconcile executions
of an external execution backend, when the app's execution backend is one),
stale (recover running records whose heartbeat went stale, when the app's
Config.Maintenance.StaleAfter is set), terminal (delete terminal records past
their retention: by default completed and cancelled records 24h after they
ended, failed and expired ones after 7 days; forever-key reservations are
kept) and events (reported skipped: no event history is kept yet). --phase
narrows the run, never reorders it. Workers already run maintenance every
minute by default; this command is for deployments that run it as a
separate job.

Exit codes: 0 completed, nothing to do, or already running in another
process; 1 configuration error, a process-local backend, a failure to open,
run or close ("error: maintenance_<stage>_failed:<kind>"), or a failed phase;
2 partial (the time budget ran out).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts maintenance.Options
			for _, s := range phases {
				p, err := maintenance.ParsePhase(s)
				if err != nil {
					return &ExitError{Code: ExitMaintenanceFailed, Err: err}
				}
				opts.Phases = append(opts.Phases, p)
			}
			if cmd.Flags().Changed("time-budget") && budget <= 0 {
				return exitErr(ExitMaintenanceFailed, "--time-budget must be a positive duration such as 30s (got %s)", budget)
			}
			opts.Now = maintenanceClock
			return c.runMaintenance(cmd, opts, budget, asJSON)
		},
	}
	cmd.Flags().StringArrayVar(&phases, "phase", nil, "run only this phase: external, stale, terminal or events (repeatable; default: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one line of JSON")
	cmd.Flags().DurationVar(&budget, "time-budget", 0, "time budget of the run (default: the app's Config.Maintenance.TimeBudget, else 5m)")
	return cmd
}

// runMaintenance opens the service, runs maintenance once and prints the
// report; the exit code follows the outcome.
func (c *cli) runMaintenance(cmd *cobra.Command, opts maintenance.Options, budget time.Duration, asJSON bool) error {
	stage := func(name string, err error) error {
		// The kind is the stable part; the cause (without credentials)
		// goes to stderr first, for the operator.
		fmt.Fprintln(cmd.ErrOrStderr(), "cause: "+c.sanitize(oneLine(err.Error())))
		return &ExitError{Code: ExitMaintenanceFailed,
			Err: fmt.Errorf("maintenance_%s_failed:%s", name, maintenance.ErrorKind(nil, err))}
	}
	svc, _, err := c.newService(cmd, ServiceOptions{configure: func(cfg *queues.Config, _ string) error {
		if cfg.Backend.Capabilities().ProcessLocal {
			return fmt.Errorf("%w: the %s backend keeps records inside one process, where no other process can maintain them; use a backend other processes share", errProcessLocal, cfg.Backend.Name())
		}
		if budget > 0 {
			cfg.Maintenance.TimeBudget = budget
			if cfg.Maintenance.CoordinationTimeout != 0 && cfg.Maintenance.CoordinationTimeout <= budget {
				cfg.Maintenance.CoordinationTimeout = 0 // its default exceeds the budget
			}
		}
		return nil
	}})
	if errors.Is(err, errProcessLocal) {
		return &ExitError{Code: ExitMaintenanceFailed, Err: err}
	}
	if err != nil {
		return stage("open", err)
	}
	rep, err := svc.RunMaintenance(cmd.Context(), opts)
	if err != nil {
		closeService(cmd, svc)
		return stage("run", err)
	}
	if asJSON {
		b, _ := rep.MarshalJSON()
		_, err = fmt.Fprintf(c.opts.Stdout, "%s\n", b)
	} else {
		err = rep.WriteText(c.opts.Stdout)
	}
	if err != nil {
		closeService(cmd, svc)
		return fmt.Errorf("write report: %w", err)
	}
	if err := svc.Close(context.WithoutCancel(cmd.Context())); err != nil {
		return stage("close", err)
	}
	switch rep.Outcome {
	case maintenance.OutcomeFailed:
		return &ExitError{Code: ExitMaintenanceFailed}
	case maintenance.OutcomePartial:
		return &ExitError{Code: ExitMaintenancePartial}
	}
	return nil
}
