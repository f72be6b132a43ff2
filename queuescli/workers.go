package queuescli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
	"github.com/spf13/cobra"
)

// ---- workers ----

func (c *cli) workersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the live workers registered in the store",
		Long: `List the live workers: every worker registers in the store when it starts,
refreshes its entry on every heartbeat tick (idle or not) and removes it when
it stops; the entry of a worker that was killed vanishes after three missed
ticks (3 × the heartbeat interval, plus jitter).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
			if err != nil {
				return err
			}
			defer closeService(cmd, svc)
			ws, err := svc.Workers(cmd.Context())
			if errors.Is(err, queues.ErrUnsupported) {
				return fmt.Errorf("the %s backend keeps no registry of workers", svc.Backend().Name())
			}
			if err != nil {
				return fmt.Errorf("workers: %w", err)
			}
			if asJSON {
				if ws == nil {
					ws = []driver.WorkerInfo{}
				}
				return writeJSON(c.opts.Stdout, ws)
			}
			return writeWorkers(c.opts.Stdout, ws, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of the workers")
	return cmd
}

// writeWorkers prints the table of `queues workers`.
func writeWorkers(w io.Writer, ws []driver.WorkerInfo, now time.Time) error {
	if len(ws) == 0 {
		_, err := fmt.Fprintln(w, "no live workers")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOST\tPID\tQUEUES\tBACKEND\tRUNNING\tSTARTED\tSEEN")
	for _, x := range ws {
		qs := "all"
		if len(x.Queues) > 0 {
			qs = strings.Join(x.Queues, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d/%d\t%s\t%s ago\n", x.ID, x.Host, x.PID, qs, x.ExecutionBackend,
			x.Running, x.Concurrency, x.StartedAt.UTC().Format(time.RFC3339), ago(now, x.SeenAt))
	}
	return tw.Flush()
}

// ago is how long before now t was, rounded for a table.
func ago(now, t time.Time) time.Duration {
	d := max(now.Sub(t), 0)
	if d < time.Minute {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
