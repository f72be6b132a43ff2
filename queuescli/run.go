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

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/execution/subprocess"
	"github.com/spf13/cobra"
)

// Exit codes of `run`.
const (
	ExitRunClean     = 0 // the worker drained cleanly
	ExitRunCrashed   = 1 // the worker failed to start or crashed
	ExitRunEscalated = 2 // the drain had to cancel attempts, or a second signal forced it
)

// DefaultHardExitTimeout is how long `run` waits after a second signal before it exits anyway.
const DefaultHardExitTimeout = 10 * time.Second

// defaultRunMaxConcurrency is the --max-concurrency of `run` when neither
// the flag nor the app's configuration sets one: ten attempts at once suit
// tasks that mostly wait (HTTP calls, queries); one per core suits
// CPU-bound ones.
const defaultRunMaxConcurrency = 10

// staleAfterFlag is --stale-after: a duration, or "off".
type staleAfterFlag struct {
	d   time.Duration
	off bool
}

func (f *staleAfterFlag) String() string {
	switch {
	case f.off:
		return "off"
	case f.d == 0:
		return "0" // unset: the help text gives the default
	}
	return f.d.String()
}

func (f *staleAfterFlag) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "off") {
		f.d, f.off = 0, true
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(`use a duration such as 5m, or "off"`)
	}
	f.d, f.off = d, d < 0
	return nil
}

func (f *staleAfterFlag) Type() string { return "duration" }

// value is the WorkerConfig.StaleAfter the flag asks for: 0 for the
// default, negative for off.
func (f *staleAfterFlag) value() time.Duration {
	if f.off {
		return -1
	}
	return f.d
}

type runFlags struct {
	queues             []string
	maxConcurrency     int
	batchSize          int
	prefetch           int
	workerID           string
	pollInterval       time.Duration
	heartbeatInterval  time.Duration
	staleAfter         staleAfterFlag
	staleCheckInterval time.Duration
	drainTimeout       time.Duration
	hardExitTimeout    time.Duration
	requeueOnShutdown  bool
	executionBackend   string
	maxProcesses       int
	maintenanceEvery   staleAfterFlag
}

func (c *cli) runCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a standalone worker until SIGINT/SIGTERM",
		Long: `Run a worker that claims and executes this binary's registered tasks.

The first SIGINT/SIGTERM drains: no new claims, running attempts get up to
--drain-timeout to finish, then are cancelled. A second signal cancels running
attempts at once; a third (or --hard-exit-timeout after the second) exits
immediately with 128+signal.

Exit codes: 0 clean drain; 1 failed to start or crashed, or the store kept
reporting itself broken (a corrupt file, a missing schema, a refused login:
"error: store is broken: ..."); 2 the drain had to cancel attempts or was
forced. A store that cannot be reached is waited for, never given up on.

Retention is on by default: every minute one worker of the fleet runs
maintenance, which deletes completed and cancelled records 24h after they
ended and failed and expired ones after 7 days, in bounded batches
(forever-key reservations are kept). Set other retentions per status in the
app's Config.Maintenance (a negative one keeps that status forever), or turn
it off for this worker with --maintenance-interval off (and run
"run-maintenance" from a scheduler instead, if at all).

Durations use Go syntax: 500ms, 2s, 1m30s.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.run(cmd, f)
		},
	}
	registerRunFlags(cmd, &f)
	return cmd
}

// registerRunFlags defines the flags of `run` on cmd, bound to f.
func registerRunFlags(cmd *cobra.Command, f *runFlags) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.queues, "queue", nil, "queue to work (repeatable; default: all queues)")
	fl.IntVar(&f.maxConcurrency, "max-concurrency", 0, fmt.Sprintf("most attempts running at once in this process (default %d, or the app's configuration; suits tasks that wait on I/O, lower it for CPU-bound tasks)", defaultRunMaxConcurrency))
	fl.IntVar(&f.batchSize, "batch-size", 0, "most records claimed per poll (default 10)")
	fl.IntVar(&f.prefetch, "prefetch", 0, "claimed records held beyond --max-concurrency, waiting for a slot (throughput for short tasks; default 0)")
	fl.StringVar(&f.workerID, "worker-id", "", "worker identity stored on claimed records (default worker-<pid>)")
	fl.DurationVar(&f.pollInterval, "poll-interval", 0, "base wait between empty polls (default 100ms)")
	fl.DurationVar(&f.heartbeatInterval, "heartbeat-interval", 0, "time between heartbeat writes for running records (default 30s)")
	fl.Var(&f.staleAfter, "stale-after", "crash recovery: requeue or fail running records whose heartbeat is older than this (must exceed twice --heartbeat-interval; 0 or unset = 4 × the heartbeat interval, 2m by default; a negative value or off = off)")
	fl.DurationVar(&f.staleCheckInterval, "stale-check-interval", 0, "how often to look for stale records (default 60s)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 0, "how long the first signal waits for running attempts before cancelling them (default 30s)")
	fl.DurationVar(&f.hardExitTimeout, "hard-exit-timeout", DefaultHardExitTimeout, "after a second signal, exit anyway after this long (negative = never)")
	fl.BoolVar(&f.requeueOnShutdown, "requeue-on-shutdown", false, "requeue attempts cancelled by shutdown at once instead of leaving them to stale recovery")
	fl.StringVar(&f.executionBackend, "execution-backend", "", `"local" runs tasks in this process; "subprocess" dispatches each record to "<this binary> run-task --task-id <id>" (default: the app's configuration, else local)`)
	fl.Var(&f.maintenanceEvery, "maintenance-interval", "how often this worker tries a maintenance run, which deletes old terminal records (0 or unset = the app's Config.Maintenance.Interval, else 1m; a negative value or off = never)")
	fl.IntVar(&f.maxProcesses, "max-processes", 0, "with --execution-backend subprocess: most child processes at once (default: number of CPUs; raise --max-concurrency to match)")
}

// subprocessExecutor configures the subprocess transport so that children run
// this same command tree's run-task against the same backend.
func subprocessExecutor(cmd *cobra.Command, f runFlags, dsnValue string) (*subprocess.Executor, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate this binary for subprocess execution: %w", err)
	}
	path := strings.Fields(cmd.CommandPath())
	args := append(append([]string{}, path[1:len(path)-1]...), "run-task")
	env := []string{EnvBackend + "=" + dsnValue}
	if ns, _ := cmd.Flags().GetString("namespace"); ns != "" {
		env = append(env, EnvNamespace+"="+ns)
	}
	return subprocess.New(subprocess.Options{Binary: bin, Args: args, Env: env, MaxProcesses: f.maxProcesses}), nil
}

// applyRunFlags validates the flags and applies the given ones to w.
func applyRunFlags(cmd *cobra.Command, f runFlags, w *queues.WorkerConfig) error {
	changed := cmd.Flags().Changed
	if changed("queue") {
		for _, q := range f.queues {
			if strings.TrimSpace(q) == "" {
				return errors.New("--queue must not be empty")
			}
		}
		w.Queues = append([]string(nil), f.queues...)
	}
	if changed("max-concurrency") {
		if f.maxConcurrency < 1 {
			return fmt.Errorf("--max-concurrency must be at least 1 (got %d)", f.maxConcurrency)
		}
		w.MaxConcurrency = f.maxConcurrency
	} else if w.MaxConcurrency == 0 {
		w.MaxConcurrency = defaultRunMaxConcurrency
	}
	if changed("prefetch") {
		if f.prefetch < 0 {
			return fmt.Errorf("--prefetch must not be negative (got %d)", f.prefetch)
		}
		w.Prefetch = f.prefetch
	}
	if changed("batch-size") {
		if f.batchSize < 1 {
			return fmt.Errorf("--batch-size must be at least 1 (got %d)", f.batchSize)
		}
		w.BatchSize = f.batchSize
	}
	if changed("worker-id") {
		if strings.TrimSpace(f.workerID) == "" {
			return errors.New("--worker-id must not be empty")
		}
		w.ID = f.workerID
	}
	positive := func(name string, v time.Duration, dst *time.Duration) error {
		if !changed(name) {
			return nil
		}
		if v <= 0 {
			return fmt.Errorf("--%s must be a positive duration such as 500ms or 2s (got %s)", name, v)
		}
		*dst = v
		return nil
	}
	if err := errors.Join(
		positive("poll-interval", f.pollInterval, &w.PollInterval),
		positive("heartbeat-interval", f.heartbeatInterval, &w.HeartbeatInterval),
		positive("stale-check-interval", f.staleCheckInterval, &w.StaleCheckInterval),
	); err != nil {
		return err
	}
	if changed("stale-after") {
		// 0 keeps the default (4 × the heartbeat interval); off is negative.
		w.StaleAfter = f.staleAfter.value()
	}
	if changed("drain-timeout") {
		switch {
		case f.drainTimeout < 0:
			return fmt.Errorf("--drain-timeout must not be negative (got %s)", f.drainTimeout)
		case f.drainTimeout == 0:
			w.GracefulShutdownTimeout = time.Nanosecond // cancel at once
		default:
			w.GracefulShutdownTimeout = f.drainTimeout
		}
	}
	if changed("requeue-on-shutdown") {
		w.RequeueOnShutdown = f.requeueOnShutdown
	}
	return nil
}

// checkStale refuses a stale threshold a live worker's heartbeats could cross.
func checkStale(w queues.WorkerConfig) error {
	if w.StaleAfter > 0 {
		hb := w.HeartbeatInterval
		if hb <= 0 {
			hb = defaultHeartbeatInterval
		}
		if w.StaleAfter <= 2*hb {
			return fmt.Errorf("--stale-after %s must be more than twice the heartbeat interval %s (a live worker's records would be recovered); raise --stale-after or lower --heartbeat-interval", w.StaleAfter, hb)
		}
	}
	return nil
}

func (c *cli) run(cmd *cobra.Command, f runFlags) error {
	// Validate the flags before opening anything; the stale threshold is
	// checked again against the configured heartbeat interval.
	var probe queues.WorkerConfig
	if err := applyRunFlags(cmd, f, &probe); err != nil {
		return exitErr(ExitRunCrashed, "%w", err)
	}
	if c.opts.Config == nil {
		if err := checkStale(probe); err != nil {
			return exitErr(ExitRunCrashed, "%w", err)
		}
	}
	var configure func(*queues.Config, string) error
	switch f.executionBackend {
	case "", queues.ExecutionLocal:
		if f.executionBackend == queues.ExecutionLocal {
			configure = func(cfg *queues.Config, _ string) error { cfg.ExecutionBackend = queues.ExecutionLocal; return nil }
		}
	case subprocess.Name:
		configure = func(cfg *queues.Config, dsnValue string) error {
			ex, err := subprocessExecutor(cmd, f, dsnValue)
			if err != nil {
				return err
			}
			cfg.Executors = append(cfg.Executors, ex)
			cfg.ExecutionBackend = subprocess.Name
			return nil
		}
	default:
		return exitErr(ExitRunCrashed, "--execution-backend must be local or subprocess, not %q", f.executionBackend)
	}
	if cmd.Flags().Changed("maintenance-interval") {
		base := configure
		configure = func(cfg *queues.Config, dsnValue string) error {
			if v := f.maintenanceEvery.value(); v != 0 {
				cfg.Maintenance.Interval = v
			}
			if base != nil {
				return base(cfg, dsnValue)
			}
			return nil
		}
	}
	svc, cfg, err := c.newService(cmd, ServiceOptions{RequireSharedBackend: true, CreateDatabase: true, configure: configure, Worker: func(w *queues.WorkerConfig) error {
		if err := applyRunFlags(cmd, f, w); err != nil {
			return err
		}
		return checkStale(*w)
	}})
	if err != nil {
		return exitErr(ExitRunCrashed, "queue worker failed to start: %w", err)
	}
	defer closeService(cmd, svc)
	if cfg.ExecutionBackend == queues.ExecutionImmediate {
		return exitErr(ExitRunCrashed, "the immediate execution backend runs tasks inside Enqueue; `%s` cannot run it", cmd.CommandPath())
	}
	wcfg := cfg.Worker
	wcfg.Placement = queues.PlacementExternal
	w, err := svc.NewWorker(wcfg)
	if err != nil {
		return exitErr(ExitRunCrashed, "queue worker failed to start: %w", err)
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	done := make(chan error, 1)
	go func() { done <- w.Run(context.WithoutCancel(cmd.Context())) }()
	select {
	case <-w.Ready():
		eff := w.Config()
		qs := "all"
		if len(eff.Queues) > 0 {
			qs = strings.Join(eff.Queues, ",")
		}
		fmt.Fprintf(c.opts.Stderr, "queues worker started (id=%s backend=%s queues=%s max_concurrency=%d)\n",
			eff.ID, svc.Backend().Name(), qs, eff.MaxConcurrency)
	case err := <-done:
		return exitErr(ExitRunCrashed, "queue worker failed to start: %w", err)
	}

	hardExit := f.hardExitTimeout
	signals := 0
	for {
		select {
		case err := <-done:
			switch {
			case err == nil && signals < 2:
				return nil
			case err == nil:
				fmt.Fprintln(c.opts.Stderr, "queues worker stopped (forced)")
				return &ExitError{Code: ExitRunEscalated}
			case errors.Is(err, queues.ErrEscalated):
				fmt.Fprintln(c.opts.Stderr, "queues worker stopped: running attempts were cancelled")
				return &ExitError{Code: ExitRunEscalated}
			case errors.Is(err, queues.ErrStoreBroken):
				// "store is broken: <the store's error> (...)": waiting
				// cannot repair it, so the supervisor gets to see it.
				return exitErr(ExitRunCrashed, "%w", err)
			default:
				return exitErr(ExitRunCrashed, "queue worker crashed: %w", err)
			}
		case sig := <-sigs:
			signals++
			num := 0
			if s, ok := sig.(syscall.Signal); ok {
				num = int(s)
			}
			switch signals {
			case 1:
				fmt.Fprintf(c.opts.Stderr, "queues worker draining (%s); send again to cancel running attempts\n", sig)
				go func() { _, _ = w.Stop(context.Background(), false) }()
			case 2:
				fmt.Fprintf(c.opts.Stderr, "queues worker cancelling running attempts (%s); send again to exit at once\n", sig)
				go func() { _, _ = w.Stop(context.Background(), true) }()
				if hardExit > 0 {
					watchdog := time.AfterFunc(hardExit, func() {
						fmt.Fprintf(c.opts.Stderr, "queues worker did not stop within %s; exiting\n", hardExit)
						c.exit(128 + num)
					})
					defer watchdog.Stop()
				}
			default:
				fmt.Fprintf(c.opts.Stderr, "queues worker exiting at once (%s)\n", sig)
				c.exit(128 + num)
				return &ExitError{Code: 128 + num}
			}
		}
	}
}
