// Package queuescli builds the `queues` command tree so an
// application can mount it into its own binary, where its tasks, middleware
// and execution backends are registered:
//
//	reg := queues.NewRegistry()
//	myapp.RegisterTasks(reg)
//	root := queuescli.New(queuescli.Options{Name: "myapp", Registry: reg})
//	os.Exit(queuescli.Main(root))
//
// or mount it beneath the application's own root command
// (`myapp queues run`) with rootCmd.AddCommand(queuescli.New(...)) and
// queuescli.Main(rootCmd).
//
// Every command takes the backend from --backend (alias --dsn), else the
// environment variable QUEUES_BACKEND (alias QUEUES_DSN), else
// sqlite:queues.db; see package backend/dsn for the forms. Commands that
// operate on a store other processes share (run, run-task, enqueue, status,
// get, cancel, migrate) refuse the process-local memory backend; bench
// accepts it. Only migrate, run and demo create a SQLite file that does not
// exist (enqueue creates only the default one); the other commands refuse a
// missing file, which is most likely a mistyped path. PostgreSQL and Redis
// connects are bounded by dsn.DefaultConnectTimeout.
//
// Failures print one line, `error: <message>`, on stderr and exit non-zero:
// no usage dump, no stack trace, and never the DSN's credentials.
package queuescli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
	"github.com/queuesgo/queues/execution"
	"github.com/spf13/cobra"
)

// DefaultDSN is the backend used when neither a flag nor the environment names one.
const DefaultDSN = "sqlite:queues.db"

// Environment variables read by the command tree.
const (
	EnvBackend   = "QUEUES_BACKEND"   // the backend DSN
	EnvDSN       = "QUEUES_DSN"       // alias of QUEUES_BACKEND
	EnvNamespace = "QUEUES_NAMESPACE" // the namespace
	EnvTaskID    = "QUEUES_TASK_ID"   // run-task's record ID
)

// Options configure the command tree.
type Options struct {
	// Name is the root command's name: "" → "queues".
	Name string
	// Short is the root command's one-line description.
	Short string
	// Registry holds the application's tasks; nil → an empty registry. A
	// Registry set by Config wins.
	Registry *queues.Registry
	// Config builds the service configuration around the backend that
	// --backend selected. It is optional: it may add middleware, events,
	// execution backends, a logger and worker defaults. A nil Backend or
	// Registry in the returned Config is filled in; command-line flags
	// (namespace, worker flags) override its values.
	Config func(ctx context.Context, b driver.Backend) (queues.Config, error)
	// Stdout and Stderr receive the commands' output: nil → os.Stdout, os.Stderr.
	Stdout, Stderr io.Writer
}

// ExitError ends a command with a specific exit code. Main prints Err (when
// not nil) as one `error: ...` line and exits with Code.
type ExitError struct {
	Code int
	Err  error
}

// Error returns Err's text, or "exit status N" when Err is nil.
func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

// Unwrap returns Err.
func (e *ExitError) Unwrap() error { return e.Err }

func exitErr(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// cli is the state shared by one command tree.
type cli struct {
	opts      Options
	backend   string
	dsnAlias  string
	namespace string
	logLevel  string
	logFormat string
	exit      func(int) // os.Exit; the third signal ends the process through it

	mu      sync.Mutex
	lastDSN string // the DSN string last resolved, for redaction
}

var trees sync.Map // *cobra.Command (the tree's root) → *cli

// stateOf finds the tree cmd belongs to.
func stateOf(cmd *cobra.Command) *cli {
	for c := cmd; c != nil; c = c.Parent() {
		if s, ok := trees.Load(c); ok {
			return s.(*cli)
		}
	}
	return nil
}

// New returns the command tree: run, run-task, enqueue, status, get, cancel,
// migrate and bench. Add further commands to it with AddCommand; they can
// open a service with NewService.
func New(opts Options) *cobra.Command {
	if opts.Name == "" {
		opts.Name = "queues"
	}
	if opts.Short == "" {
		opts.Short = "Durable background tasks: workers, enqueueing and inspection"
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	c := &cli{opts: opts, exit: os.Exit}
	root := &cobra.Command{
		Use:           opts.Name,
		Short:         opts.Short,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without a subcommand, print help.
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	root.SetOut(opts.Stdout)
	root.SetErr(opts.Stderr)
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &ExitError{Code: flagErrorCode(cmd), Err: err}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&c.backend, "backend", "", "backend DSN: "+dsn.Forms+" (env "+EnvBackend+"; default "+DefaultDSN+")")
	pf.StringVar(&c.dsnAlias, "dsn", "", "alias of --backend (env "+EnvDSN+")")
	pf.StringVar(&c.namespace, "namespace", "", "namespace of channel, lock and system task names (env "+EnvNamespace+"; default queues)")
	pf.StringVar(&c.logLevel, "log-level", "", "log level: debug, info, warn, error or off (default: warn for run and demo, off for one-shot commands, whose outcome is their output)")
	pf.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")

	root.AddCommand(c.runCmd(), c.runTaskCmd(), c.enqueueCmd(), c.statusCmd(), c.getCmd(),
		c.cancelCmd(), c.migrateCmd(), c.benchCmd(), c.listCmd())
	root.AddCommand(c.workersCmd(), c.queuesCmd(), c.runMaintenanceCmd())
	root.AddCommand(c.schedulesCmd())
	root.AddCommand(c.schedulerHealthCmd())
	trees.Store(root, c)
	return root
}

// flagErrorCode is the exit code of a usage error: run-task's configuration
// error code, else 1.
func flagErrorCode(cmd *cobra.Command) int {
	if cmd.Name() == "run-task" {
		return int(execution.ExitConfigError)
	}
	return 1
}

// Main runs cmd with the process arguments and returns the exit code; call
// os.Exit with it. Errors print as one `error: ...` line on stderr.
func Main(cmd *cobra.Command) int {
	return Run(context.Background(), cmd, os.Args[1:])
}

// Run runs cmd with args and returns the exit code, printing any error as
// one line on the command's stderr. It never panics: a panic in a command
// prints `error: internal error: ...` and exits 1.
func Run(ctx context.Context, cmd *cobra.Command, args []string) (code int) {
	cmd.SetArgs(args)
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	var ran *cobra.Command
	defer func() {
		if p := recover(); p != nil {
			st := stateOf(ran)
			if st == nil {
				st = stateOf(cmd)
			}
			w := cmd.ErrOrStderr()
			slog.Debug("queuescli: panic", "panic", p, "stack", string(debug.Stack()))
			fmt.Fprintln(w, "error: internal error: "+st.sanitize(fmt.Sprint(p)))
			code = 1
		}
	}()
	ran, err := cmd.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	code = 1
	msgErr := err
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		msgErr = ee.Err
	}
	if msgErr != nil {
		st := stateOf(ran)
		if st == nil {
			st = stateOf(cmd)
		}
		w := cmd.ErrOrStderr()
		if ran != nil {
			w = ran.ErrOrStderr()
		}
		fmt.Fprintln(w, "error: "+st.sanitize(oneLine(msgErr.Error())))
	}
	return code
}

// oneLine folds a multi-line message (errors.Join, cobra suggestions) into one line.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	out := strings.Join(parts, "; ")
	return strings.Replace(out, "Did you mean this?; ", "did you mean: ", 1)
}

// sanitize removes the DSN's credentials from a message.
func (c *cli) sanitize(msg string) string {
	if c == nil {
		return msg
	}
	c.mu.Lock()
	raw := c.lastDSN
	c.mu.Unlock()
	for _, s := range []string{raw, c.backend, c.dsnAlias, os.Getenv(EnvBackend), os.Getenv(EnvDSN)} {
		msg = redactIn(msg, s)
	}
	return msg
}

// redactIn replaces raw (a DSN) in msg by its redacted form, and the DSN's
// password wherever it appears.
func redactIn(msg, raw string) string {
	if raw == "" {
		return msg
	}
	red := dsn.Redact(raw)
	if red != raw {
		msg = strings.ReplaceAll(msg, raw, red)
	}
	if pw := dsnPassword(raw); len(pw) >= 3 {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return msg
}

func dsnPassword(raw string) string {
	at := strings.LastIndexByte(raw, '@')
	sl := strings.Index(raw, "://")
	if at < 0 || sl < 0 || at < sl {
		return ""
	}
	userinfo := raw[sl+3 : at]
	if i := strings.IndexByte(userinfo, ':'); i >= 0 {
		return userinfo[i+1:]
	}
	return ""
}

// DSN returns the backend DSN cmd's command line selected: --backend or
// --dsn, else QUEUES_BACKEND or QUEUES_DSN, else DefaultDSN. It may hold
// credentials: do not print it.
func DSN(cmd *cobra.Command) string {
	s, _, _ := resolveDSN(cmd)
	return s
}

// resolveDSN returns the DSN and whether it came from the default.
func resolveDSN(cmd *cobra.Command) (string, bool, error) {
	flag := func(name string) (string, bool) {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			f = cmd.InheritedFlags().Lookup(name)
		}
		if f == nil || !f.Changed {
			return "", false
		}
		return f.Value.String(), true
	}
	b, bok := flag("backend")
	d, dok := flag("dsn")
	switch {
	case bok && dok && b != d:
		return "", false, errors.New("--backend and --dsn name different backends; give one")
	case bok:
		return b, false, nil
	case dok:
		return d, false, nil
	}
	if v := os.Getenv(EnvBackend); v != "" {
		return v, false, nil
	}
	if v := os.Getenv(EnvDSN); v != "" {
		return v, false, nil
	}
	return DefaultDSN, true, nil
}

// longRunning names the commands that log at warn by default.
var longRunning = map[string]bool{"run": true, "demo": true}

// logger builds the CLI logger for cmd from --log-level and --log-format.
func (c *cli) logger(cmd *cobra.Command) (*slog.Logger, error) {
	level := strings.ToLower(c.logLevel)
	if level == "" {
		level = "off"
		if longRunning[cmd.Name()] {
			level = "warn"
		}
	}
	var lvl slog.Level
	switch level {
	case "off", "none":
		lvl = slog.LevelError + 100
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn, error or off", c.logLevel)
	}
	ho := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(c.logFormat) {
	case "text", "":
		return slog.New(slog.NewTextHandler(c.opts.Stderr, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.opts.Stderr, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", c.logFormat)
}

// ServiceOptions control NewService.
type ServiceOptions struct {
	// RequireSharedBackend refuses process-local backends (memory): set it
	// for commands whose records another process must see.
	RequireSharedBackend bool
	// Worker adjusts the service's worker configuration after the Config
	// hook and before validation; an error aborts. The placement is
	// PlacementExternal unless Worker sets PlacementInApp.
	Worker func(w *queues.WorkerConfig) error
	// NoStart returns the service without starting it (the caller calls Start).
	NoStart bool
	// CreateDatabase lets the command create a SQLite file that does not
	// exist yet. Without it a missing file is refused with "no database at
	// PATH": a command that reads or changes existing records must not
	// answer from a new, empty database made by a mistyped path.
	CreateDatabase bool

	skipMigrate bool // open the backend without applying migrations (the migrate command)
	// createDefault creates the SQLite file when the DSN is the default one
	// (nothing typed, so no typo to catch): enqueue on a fresh directory.
	createDefault bool
	// configure adjusts the whole config last (the run command adds executors).
	configure func(cfg *queues.Config, dsn string) error
}

// NewService builds the service for a command of this tree: the backend from
// the command line (see DSN), the Options.Config hook, --namespace and the
// logger. Unless opts.NoStart it is started (backend opened, in-app worker
// started if configured); the caller must Close it.
func NewService(cmd *cobra.Command, opts ServiceOptions) (*queues.Service, error) {
	c := stateOf(cmd)
	if c == nil {
		return nil, errors.New("queuescli: command is not part of a queuescli tree")
	}
	svc, _, err := c.newService(cmd, opts)
	return svc, err
}

// newService opens the configured service and returns it with its config
// (defaults not filled in).
func (c *cli) newService(cmd *cobra.Command, opts ServiceOptions) (*queues.Service, queues.Config, error) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	raw, isDefault, err := resolveDSN(cmd)
	if err != nil {
		return nil, queues.Config{}, err
	}
	if opts.createDefault && isDefault {
		opts.CreateDatabase = true
	}
	c.mu.Lock()
	c.lastDSN = raw
	c.mu.Unlock()
	d, err := dsn.Parse(raw)
	if err != nil {
		return nil, queues.Config{}, err
	}
	if opts.RequireSharedBackend && d.ProcessLocal() {
		return nil, queues.Config{}, fmt.Errorf("the %s backend keeps records inside one process; %q needs a backend other processes share, e.g. --backend sqlite:queues.db", d.Scheme, cmd.Name())
	}
	logger, err := c.logger(cmd)
	if err != nil {
		return nil, queues.Config{}, err
	}
	ns := c.namespace
	if !cmd.Flags().Changed("namespace") {
		if v := os.Getenv(EnvNamespace); v != "" {
			ns = v
		}
	}
	b, err := d.OpenWith(ctx, dsn.Options{SkipMigrate: opts.skipMigrate, Namespace: ns, MustExist: !opts.CreateDatabase})
	if err != nil {
		return nil, queues.Config{}, fmt.Errorf("open backend: %w", err)
	}
	cfg := queues.Config{Backend: b, Registry: c.opts.Registry}
	if c.opts.Config != nil {
		cfg, err = c.opts.Config(ctx, b)
		if err != nil {
			return nil, queues.Config{}, fmt.Errorf("load config: %w", err)
		}
		if cfg.Backend == nil {
			cfg.Backend = b
		}
		if cfg.Registry == nil {
			cfg.Registry = c.opts.Registry
		}
	}
	if opts.RequireSharedBackend && cfg.Backend.Capabilities().ProcessLocal {
		return nil, queues.Config{}, fmt.Errorf("the %s backend keeps records inside one process; %q needs a backend other processes share, e.g. --backend sqlite:queues.db", cfg.Backend.Name(), cmd.Name())
	}
	if ns != "" {
		cfg.Namespace = ns
	}
	if cfg.Logger == nil {
		cfg.Logger = logger
	}
	cfg.Worker.Placement = queues.PlacementExternal
	declareShipped(&cfg)
	if opts.configure != nil {
		if err := opts.configure(&cfg, raw); err != nil {
			return nil, cfg, err
		}
	}
	if opts.Worker != nil {
		if err := opts.Worker(&cfg.Worker); err != nil {
			return nil, cfg, err
		}
	}
	svc, err := queues.New(cfg)
	if err != nil {
		return nil, cfg, err
	}
	if !opts.NoStart {
		if err := svc.Start(ctx); err != nil {
			return nil, cfg, err
		}
	}
	return svc, cfg, nil
}

// closeService closes svc, reporting a failure on the logger only.
func closeService(cmd *cobra.Command, svc *queues.Service) {
	if svc == nil {
		return
	}
	ctx := context.WithoutCancel(cmd.Context())
	if err := svc.Close(ctx); err != nil {
		slog.Default().Debug("queuescli: close service", "error", err)
	}
}
