package queuescli

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queuestype"
	"github.com/spf13/cobra"
)

// ---- schedules ----

func (c *cli) schedulesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "List the declared schedules, or pause, resume or trigger one",
		Long: `List the schedules the application's registry declares: each one's spec
(interval or cron and timezone), whether it is paused, its next run, its
active occurrence and its last outcome. A schedule is named after its task
("<task>") or, for a named schedule, "<task>:<name>".

Pause, resume and trigger act on the store, so they hold for every process
sharing it: pause cancels the pending occurrence and enqueues no new one
until resume, which enqueues the next occurrence from now; trigger makes an
occurrence due now (an error when it is already running).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
			if err != nil {
				return err
			}
			defer closeService(cmd, svc)
			infos, err := svc.Schedules(cmd.Context())
			if err != nil {
				return fmt.Errorf("schedules: %w", err)
			}
			if asJSON {
				if infos == nil {
					infos = []queues.ScheduleInfo{}
				}
				return writeJSON(c.opts.Stdout, infos)
			}
			return writeSchedules(c.opts.Stdout, infos, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of the schedules")
	for _, action := range []string{"pause", "resume", "trigger"} {
		cmd.AddCommand(c.scheduleActionCmd(action))
	}
	return cmd
}

func (c *cli) scheduleActionCmd(action string) *cobra.Command {
	short := map[string]string{
		"pause":   "Pause a schedule fleet-wide and cancel its pending occurrence",
		"resume":  "Resume a paused schedule and enqueue its next occurrence",
		"trigger": "Make a schedule's occurrence due now",
	}[action]
	return &cobra.Command{
		Use:   action + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
			if err != nil {
				return err
			}
			defer closeService(cmd, svc)
			name := args[0]
			switch action {
			case "pause":
				err = svc.PauseSchedule(cmd.Context(), name)
			case "resume":
				err = svc.ResumeSchedule(cmd.Context(), name)
			default:
				var rec *queues.Record
				rec, err = svc.TriggerSchedule(cmd.Context(), name)
				if err == nil {
					_, err = fmt.Fprintf(c.opts.Stdout, "schedule %s triggered: task %s is due now\n", name, rec.ID)
					return err
				}
			}
			switch {
			case errors.Is(err, queuestype.ErrScheduleNotFound):
				return fmt.Errorf("no schedule named %q is declared (see `schedules`)", name)
			case errors.Is(err, queuestype.ErrScheduleRunning):
				return fmt.Errorf("schedule %s: its occurrence is running", name)
			case errors.Is(err, queuestype.ErrSchedulePauseUnsupported):
				return fmt.Errorf("the %s backend cannot pause schedules", svc.Backend().Name())
			case err != nil:
				return fmt.Errorf("%s schedule %s: %w", action, name, err)
			}
			_, err = fmt.Fprintf(c.opts.Stdout, "schedule %s %sd\n", name, action)
			return err
		},
	}
}

// writeSchedules prints the table of `queues schedules`.
func writeSchedules(w io.Writer, infos []queues.ScheduleInfo, now time.Time) error {
	if len(infos) == 0 {
		_, err := fmt.Fprintln(w, "no schedules declared")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTASK\tSPEC\tPAUSED\tNEXT RUN\tACTIVE\tLAST")
	for _, x := range infos {
		spec := "every " + x.Interval.String()
		if x.Cron != "" {
			spec = x.Cron + " " + x.Timezone
		}
		paused := "no"
		if x.Paused {
			paused = "since " + x.PausedSince.UTC().Format(time.RFC3339)
		}
		next := "-"
		if !x.NextRun.IsZero() {
			next = x.NextRun.UTC().Format(time.RFC3339)
			if d := x.NextRun.Sub(now); d > 0 {
				next += " (in " + d.Round(time.Second).String() + ")"
			}
		}
		active := "-"
		if a := x.Active; a != nil {
			active = a.ID.String() + " " + string(a.Status)
		}
		last := "-"
		if l := x.Last; l != nil {
			last = string(l.Status) + " " + l.CompletedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Name, x.TaskName, spec, paused, next, active, last)
	}
	return tw.Flush()
}
