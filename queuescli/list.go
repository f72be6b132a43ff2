package queuescli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queuestype"
	"github.com/spf13/cobra"
)

// maxListFlag bounds --limit: the command holds what it prints in memory.
const maxListFlag = 10000

func (c *cli) listCmd() *cobra.Command {
	var (
		status, queue, task, tag string
		limit                    int
		asJSON                   bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List records, newest first, by status, queue, task or tag",
		Long: `List up to --limit records, newest first, that match every filter given:
a table of id, task, queue, status, tags and created time, or a JSON array of
records with --json.`,
		Example: `  queues list --tag customer:42
  queues list --status failed --queue mail --limit 20 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := queues.TaskFilter{Queue: queue, TaskName: task, Tag: tag}
			if status != "" {
				f.Status = queues.Status(status)
				if !f.Status.IsValid() {
					return fmt.Errorf("--status: unknown status %q (one of %s)", status, statusNames())
				}
			}
			if limit <= 0 || limit > maxListFlag {
				return fmt.Errorf("--limit must be between 1 and %d (got %d)", maxListFlag, limit)
			}
			if tag != "" {
				if err := queuestype.CheckCharsetName("--tag", tag, queuestype.DefaultLimits().TagBytes); err != nil {
					return err
				}
			}
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
			if err != nil {
				return err
			}
			defer closeService(cmd, svc)
			recs := []*queues.Record{}
			for len(recs) < limit {
				f.Limit = min(limit-len(recs), 500)
				page, err := svc.ListTasks(cmd.Context(), f)
				if errors.Is(err, queues.ErrUnsupported) {
					return errors.New("this queue backend cannot list tasks")
				}
				if err != nil {
					return fmt.Errorf("list tasks: %w", err)
				}
				recs = append(recs, page.Items...)
				if page.NextCursor == uuid.Nil {
					break
				}
				f.Cursor = page.NextCursor
			}
			if asJSON {
				return writeJSON(c.opts.Stdout, recs)
			}
			return writeRecordTable(c.opts.Stdout, recs)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&status, "status", "", "only records in this status")
	fl.StringVar(&queue, "queue", "", "only records of this queue")
	fl.StringVar(&task, "task", "", "only records of this task name")
	fl.StringVar(&tag, "tag", "", "only records carrying this tag")
	fl.IntVar(&limit, "limit", 50, fmt.Sprintf("print at most this many records (1..%d)", maxListFlag))
	fl.BoolVar(&asJSON, "json", false, "print a JSON array of records")
	return cmd
}

func statusNames() string {
	var s []string
	for _, st := range queuestype.AllStatuses {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

// writeRecordTable prints one line per record under a header.
func writeRecordTable(w io.Writer, recs []*queues.Record) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTASK\tQUEUE\tSTATUS\tTAGS\tCREATED")
	for _, r := range recs {
		tags := strings.Join(r.Tags, ",")
		if tags == "" {
			tags = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.TaskName, r.Queue, r.Status, tags,
			r.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
