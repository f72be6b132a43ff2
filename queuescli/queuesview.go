package queuescli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/internal/queuefacts"
	"github.com/spf13/cobra"
)

// ---- queues ----

func (c *cli) queuesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "Show each queue: counts by status, what waits per execution backend, and records no live worker serves",
		Long: `Show each queue: its counts by status, the execution backends its waiting
records are routed to (due now / due later), and the due records whose
execution backend no live worker serves (a worker serves a record when its
queues include the record's queue, or are all queues, and its execution
backend is the record's). Such records wait until a worker for their
transport starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
			if err != nil {
				return err
			}
			defer closeService(cmd, svc)
			qs, err := queuefacts.Collect(cmd.Context(), svc)
			if errors.Is(err, queuefacts.ErrNoInspector) {
				return fmt.Errorf("the %s backend cannot report per-queue statistics", svc.Backend().Name())
			}
			if err != nil {
				return fmt.Errorf("queues: %w", err)
			}
			if asJSON {
				return writeJSON(c.opts.Stdout, qs)
			}
			return writeQueues(c.opts.Stdout, qs)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array with one object per queue")
	return cmd
}

// writeQueues prints the table of `queues queues` and, after it, one line
// per queue holding records no live worker serves.
func writeQueues(w io.Writer, qs []queuefacts.Queue) error {
	if len(qs) == 0 {
		_, err := fmt.Fprintln(w, "no queues")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "QUEUE\tPENDING\tSCHEDULED\tRUNNING\tCOMPLETED\tFAILED\tCANCELLED\tEXPIRED\tTOTAL\tWAITING FOR (due/later)\t")
	for _, q := range qs {
		var waits []string
		for _, bl := range q.ExecutionBackends {
			waits = append(waits, fmt.Sprintf("%s %d/%d", bl.ExecutionBackend, bl.Due, bl.Later))
		}
		st := q.Statistics
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", q.Queue, st.Pending, st.Scheduled, st.Running,
			st.Completed, st.Failed, st.Cancelled, st.Expired, st.Total, strings.Join(waits, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, line := range queuefacts.Unserved(qs) {
		b.WriteString(line + "\n")
	}
	if len(qs) > 0 && qs[0].BacklogSampled {
		fmt.Fprintf(&b, "(this backend cannot count waiting records per execution backend: the first %d due records were sampled)\n", queuefacts.SampleLimit)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeUnservedNote prints, after the table of `queues status`, one line
// per queue holding due records no live worker serves. It is a note: a
// store that cannot say, or fails to, leaves the table alone.
func writeUnservedNote(cmd *cobra.Command, svc *queues.Service, queue string, w io.Writer) error {
	lines, err := queuefacts.UnservedLines(cmd.Context(), svc, queue)
	if err != nil {
		slog.Default().Debug("queuescli: unserved records note", "error", err)
		return nil
	}
	for _, line := range lines {
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
