package queuescli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/spf13/cobra"
)

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func parseID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(strings.TrimSpace(s))
	if err != nil {
		return uuid.Nil, fmt.Errorf("invalid task ID %q: not a UUID", truncate(s, 64))
	}
	return id, nil
}

// ---- enqueue ----

func (c *cli) enqueueCmd() *cobra.Command {
	var (
		args        string
		queue       string
		priority    int
		retries     int
		runAfter    time.Duration
		key         string
		timeout     time.Duration
		asJSON      bool
		idFlag      string
		execBackend string
		expiresIn   time.Duration
		tags        []string
	)
	cmd := &cobra.Command{
		Use:   "enqueue TASK",
		Short: "Enqueue a registered task with JSON arguments",
		Long: `Enqueue one record of TASK (a task registered in this binary) with the JSON
arguments --args, and print it: a short line, or the record's JSON with --json.

A SQLite file named with --backend or the environment must exist (run
` + "`queues migrate`" + ` first): a mistyped path is refused instead of receiving a
record no worker will see. The default sqlite:queues.db is created when missing.`,
		Example: `  queues enqueue demo.sleep --args '{"ms":500}'
  queues enqueue demo.fail --args '{"times":2}' --retries 3 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, pos []string) error {
			task := pos[0]
			raw := json.RawMessage(strings.TrimSpace(args))
			if len(raw) == 0 {
				raw = json.RawMessage("{}")
			}
			if !json.Valid(raw) {
				return errors.New("--args is not valid JSON")
			}
			var o queues.EnqueueOptions
			fl := cmd.Flags()
			o.Queue = queue
			if fl.Changed("priority") {
				if priority < queues.MinPriority || priority > queues.MaxPriority {
					return fmt.Errorf("--priority must be between %d and %d (got %d)", queues.MinPriority, queues.MaxPriority, priority)
				}
				o.Priority = queues.Ptr(priority)
			}
			if fl.Changed("retries") {
				if retries < 0 {
					return fmt.Errorf("--retries must not be negative (got %d)", retries)
				}
				o.Retries = queues.Ptr(retries)
			}
			if runAfter < 0 || timeout < 0 || expiresIn < 0 {
				return errors.New("--run-after, --timeout and --expires-in must not be negative")
			}
			o.RunAfter, o.Timeout, o.ExpiresIn, o.Key = runAfter, timeout, expiresIn, key
			o.ExecutionBackend = execBackend
			o.Tags = tags
			if idFlag != "" {
				id, err := parseID(idFlag)
				if err != nil {
					return fmt.Errorf("--id: %w", err)
				}
				// The library reads the zero UUID as "generate one"; typed
				// on the command line it is a mistake, not a request for a
				// fresh ID.
				if id == uuid.Nil {
					return errors.New("--id: the zero UUID is not a record ID; omit --id to get a new one")
				}
				o.ID = id
			}
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true, NoStart: true, createDefault: true})
			if err != nil {
				return err
			}
			if !svc.Registry().Has(task) {
				return fmt.Errorf("unknown queue task %q (registered: %s)", task, registered(svc.Registry()))
			}
			if err := svc.Start(cmd.Context()); err != nil {
				return err
			}
			defer closeService(cmd, svc)
			res, err := svc.EnqueueRaw(cmd.Context(), task, raw, o)
			if err != nil {
				return fmt.Errorf("enqueue %s: %w", task, err)
			}
			rec := res.Record()
			if rec == nil { // a forever reservation's owner
				if asJSON {
					return writeJSON(c.opts.Stdout, map[string]any{"id": res.ID, "task_name": res.TaskName, "deduplicated": true})
				}
				_, err := fmt.Fprintf(c.opts.Stdout, "deduplicated %s %s\n", res.ID, res.TaskName)
				return err
			}
			if asJSON {
				return writeJSON(c.opts.Stdout, rec)
			}
			verb := "enqueued"
			if res.Deduplicated {
				verb = "deduplicated"
			}
			_, err = fmt.Fprintf(c.opts.Stdout, "%s %s %s %s\n", verb, rec.ID, rec.TaskName, rec.Status)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&args, "args", "{}", "task arguments as a JSON document")
	fl.StringVar(&queue, "queue", "", "queue (default: the task's queue)")
	fl.IntVar(&priority, "priority", 0, "priority, -1000..1000, higher runs first (default: the task's)")
	fl.IntVar(&retries, "retries", 0, "retries allowed after the first attempt (default: the task's)")
	fl.DurationVar(&runAfter, "run-after", 0, "delay before the record is due, e.g. 30s")
	fl.StringVar(&key, "key", "", "identity key: while a record with this key is active, enqueueing returns it")
	fl.DurationVar(&timeout, "timeout", 0, "attempt timeout, e.g. 1m (default: the task's)")
	fl.DurationVar(&expiresIn, "expires-in", 0, "expire the record if not started within this long after it is due")
	fl.StringVar(&idFlag, "id", "", "record ID to use (a non-zero UUID; default: a new UUIDv7)")
	fl.StringVar(&execBackend, "execution-backend", "", `where the record runs: "local" (a worker's goroutine) or an external transport such as "subprocess" (default: the task's, else local)`)
	fl.StringArrayVar(&tags, "tag", nil, "tag the record (repeatable), added to the task's tags; list them with queues list --tag")
	fl.BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

func registered(r *queues.Registry) string {
	names := r.Names()
	if len(names) == 0 {
		return "none"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ---- status ----

func (c *cli) statusCmd() *cobra.Command {
	var queue string
	var asJSON, exact bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Count records per status",
		Long: `Count records per status, in every queue or in --queue.

On a very large PostgreSQL table the terminal counts (completed, failed,
cancelled, expired) and the total are planner estimates, marked "~" in the
table; with --json a note on stderr says so. --exact counts them exactly,
reading the whole table. A store that cannot be reached makes the command
fail with exit code 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
			if err != nil {
				return err
			}
			defer closeService(cmd, svc)
			var st queues.Statistics
			if ec, ok := svc.Backend().(driver.ExactCounter); ok && exact {
				st, err = ec.ExactStatistics(cmd.Context(), queue)
			} else {
				st, err = svc.Statistics(cmd.Context(), queue)
			}
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			if asJSON {
				if st.Estimated {
					fmt.Fprintln(c.opts.Stderr, "note: completed, failed, cancelled, expired and total are estimates; pass --exact to count them")
				}
				return writeJSON(c.opts.Stdout, st)
			}
			if err := writeStatus(c.opts.Stdout, st); err != nil {
				return err
			}
			return writeUnservedNote(cmd, svc, queue, c.opts.Stdout)
		},
	}
	cmd.Flags().StringVar(&queue, "queue", "", "count only this queue (default: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object with the eight counts")
	cmd.Flags().BoolVar(&exact, "exact", false, "count every status exactly, even where the store would estimate (reads the whole table)")
	return cmd
}

// writeStatus prints the counts table of `queues status`; an estimated
// count is printed as ~N.
func writeStatus(w io.Writer, st queues.Statistics) error {
	rows := []struct {
		name string
		n    int
		est  bool
	}{
		{"pending", st.Pending, false}, {"scheduled", st.Scheduled, false}, {"running", st.Running, false},
		{"completed", st.Completed, st.Estimated}, {"failed", st.Failed, st.Estimated}, {"cancelled", st.Cancelled, st.Estimated},
		{"expired", st.Expired, st.Estimated}, {"total", st.Total, st.Estimated},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s%8s\n", "Status", "Count")
	for _, r := range rows {
		n := fmt.Sprint(r.n)
		if r.est {
			n = "~" + n
		}
		fmt.Fprintf(&b, "%-12s%8s\n", r.name, n)
	}
	if st.Estimated {
		b.WriteString("~ estimated (planner statistics); --exact counts them\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ---- get ----

func (c *cli) getCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
			if err != nil {
				return err
			}
			defer closeService(cmd, svc)
			rec, err := svc.GetTask(cmd.Context(), id)
			if errors.Is(err, queues.ErrTaskNotFound) {
				return fmt.Errorf("task %s not found", id)
			}
			if err != nil {
				return fmt.Errorf("get task %s: %w", id, err)
			}
			if asJSON {
				return writeJSON(c.opts.Stdout, rec)
			}
			return writeRecord(c.opts.Stdout, rec)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

// writeRecord prints a record as aligned "field: value" lines.
func writeRecord(w io.Writer, r *queues.Record) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	line("id", r.ID.String())
	line("task", r.TaskName)
	line("status", string(r.Status))
	line("queue", r.Queue)
	line("priority", fmt.Sprint(r.Priority))
	line("attempt", fmt.Sprintf("%d (retries used %d of %d)", r.Attempt(), r.AttemptsConsumed(), r.MaxRetries))
	line("execution", r.ExecutionBackend)
	line("execution_ref", r.ExecutionRef)
	line("worker", r.WorkerID)
	line("key", r.Key)
	line("tags", strings.Join(r.Tags, ","))
	line("created_at", ts(r.CreatedAt))
	line("queued_at", ts(r.QueuedAt))
	line("scheduled_at", ts(r.ScheduledAt))
	line("expires_at", ts(r.ExpiresAt))
	line("started_at", ts(r.StartedAt))
	line("heartbeat_at", ts(r.HeartbeatAt))
	line("completed_at", ts(r.CompletedAt))
	line("args", string(r.Args))
	line("result", string(r.Result))
	line("error", oneLine(r.Error))
	if r.SnoozeCount > 0 {
		line("snoozes", fmt.Sprint(r.SnoozeCount))
	}
	// The error history, oldest first; traces are in the --json form.
	for _, e := range r.Errors {
		by := ""
		if e.WorkerID != "" {
			by = " on " + e.WorkerID
		}
		line(fmt.Sprintf("error (attempt %d)", e.Attempt), ts(e.At)+by+": "+oneLine(e.Error))
	}
	if len(r.Metadata) > 0 {
		b, _ := json.Marshal(r.Metadata)
		line("metadata", string(b))
	}
	return tw.Flush()
}

// ---- cancel ----

func (c *cli) cancelCmd() *cobra.Command {
	var includeRunning bool
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a pending or scheduled record (running ones with --include-running)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true})
			if err != nil {
				return err
			}
			defer closeService(cmd, svc)
			ok, err := svc.Cancel(cmd.Context(), id, queues.CancelOptions{IncludeRunning: includeRunning, Reason: reason})
			if err != nil {
				if errors.Is(err, queues.ErrTaskNotFound) {
					return fmt.Errorf("task %s not found", id)
				}
				return fmt.Errorf("cancel task %s: %w", id, err)
			}
			if ok {
				_, err := fmt.Fprintf(c.opts.Stdout, "cancelled %s\n", id)
				return err
			}
			rec, err := svc.GetTask(cmd.Context(), id)
			switch {
			case errors.Is(err, queues.ErrTaskNotFound):
				return fmt.Errorf("task %s not found", id)
			case err != nil:
				return fmt.Errorf("cancel task %s: %w", id, err)
			case rec.Status == queues.StatusCancelled:
				_, err := fmt.Fprintf(c.opts.Stdout, "already cancelled %s\n", id)
				return err
			case rec.Status == queues.StatusRunning && !includeRunning:
				return fmt.Errorf("task %s is running; pass --include-running to cancel it", id)
			case rec.IsTerminal():
				return fmt.Errorf("task %s is already %s", id, rec.Status)
			}
			return fmt.Errorf("task %s could not be cancelled (status %s)", id, rec.Status)
		},
	}
	cmd.Flags().BoolVar(&includeRunning, "include-running", false, "also cancel a running record (its worker stops the attempt)")
	cmd.Flags().StringVar(&reason, "reason", "", "message of the task.cancelled event")
	return cmd
}

// ---- migrate ----

func (c *cli) migrateCmd() *cobra.Command {
	var status, dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the backend's schema migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, _, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true, NoStart: true, skipMigrate: true, CreateDatabase: true})
			if err != nil {
				return err
			}
			b := svc.Backend()
			m, ok := b.(driver.Migrator)
			if !ok {
				return fmt.Errorf("the %s backend has no schema migrations", b.Name())
			}
			// No Open: opening checks that the schema is migrated, which is
			// what this command is for; Migrate connects by itself.
			defer func() { _ = b.Close(cmd.Context()) }()
			rep, err := m.Migrate(cmd.Context(), driver.MigrateOptions{DryRun: status || dryRun})
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			if asJSON {
				return writeJSON(c.opts.Stdout, map[string]any{
					"applied": nonNil(rep.Applied), "applied_now": nonNil(rep.AppliedNow), "pending": nonNil(rep.Pending),
				})
			}
			w := c.opts.Stdout
			switch {
			case status:
				for _, v := range rep.Applied {
					fmt.Fprintf(w, "applied  %s\n", v)
				}
				for _, v := range rep.Pending {
					fmt.Fprintf(w, "pending  %s\n", v)
				}
				if len(rep.Applied)+len(rep.Pending) == 0 {
					fmt.Fprintln(w, "no migrations")
				}
			case dryRun:
				for _, v := range rep.Pending {
					fmt.Fprintf(w, "would apply  %s\n", v)
				}
				if len(rep.Pending) == 0 {
					fmt.Fprintf(w, "schema up to date (%d migrations applied)\n", len(rep.Applied))
				}
			default:
				for _, v := range rep.AppliedNow {
					fmt.Fprintf(w, "applied  %s\n", v)
				}
				if len(rep.AppliedNow) == 0 {
					fmt.Fprintf(w, "schema up to date (%d migrations applied)\n", len(rep.Applied))
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&status, "status", false, "list applied and pending migrations without applying any")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the migrations that would be applied")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
