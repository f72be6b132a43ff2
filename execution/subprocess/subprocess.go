// Package subprocess is the process-per-task external execution backend: a
// dispatcher launches `<binary> run-task --task-id <uuid>` for every due
// record, and the child claims the record by ID and runs it with
// execution.Host.ConsumeOne.
//
// # Setup
//
// The child is normally the application's own binary with the queuescli
// command tree mounted (so `run-task` exists and the tasks are registered),
// which is the default: Binary is os.Executable() and Args is ["run-task"].
// Any program that ends up calling ConsumeOne on the same store works, e.g.
//
//	exec := subprocess.New(subprocess.Options{MaxProcesses: 4})
//	svc, err := queues.New(queues.Config{
//		Backend:          sqliteBackend,          // shared by every process
//		Registry:         reg,
//		ExecutionBackend: "subprocess",           // this service's workers dispatch
//		Executors:        []execution.Transport{exec},
//	})
//	w, err := svc.NewWorker(queues.WorkerConfig{MaxConcurrency: 4})
//	err = w.Run(ctx)
//
// The dispatcher counts live children toward WorkerConfig.MaxConcurrency
// and never runs more than MaxProcesses children, so set MaxConcurrency to
// at least MaxProcesses.
//
// # Stores
//
// It works with every store several processes can open — SQLite (same
// host), PostgreSQL and Redis — and not with the memory backend: memory
// records live in the dispatcher's process, so ConsumeOne in a child cannot
// see them.
//
// # Execution refs and reconciliation
//
// A launched child's execution ref is "subprocess:<hostname>:<pid>:<start-unix-ms>"
// (a ':' in the host name is written as '_').
// The dispatcher waits on its children and reconciles a record as soon as
// its child exits (exit 0 → succeeded, 7 → cancelled, anything else →
// failed), without waiting for the periodic reconcile: a child that settled
// its own record needs nothing, and one that died mid-attempt (killed,
// crashed, out of memory) has its record retried or failed at once.
//
// Refs this process did not launch (after a dispatcher restart) are probed
// by PID on this host: on Linux the process must be alive, not a zombie, and
// carry QUEUES_TASK_ID=<id> in its environment (or, when the environment is
// unreadable, have started at the ref's time), so a reused PID is not
// mistaken for the child; on other Unix systems liveness alone is checked.
// A dead or foreign process means "not found" and the record is retried.
// Refs of other hosts are left to their own dispatchers (probe error).
//
// # Cancellation
//
// CancelExecution sends SIGTERM to the child (accepted); a process that is
// already gone is already_cancelled; a ref of another host is unsupported
// (the durable cancel proceeds and the child stops at its next heartbeat,
// whose generation fence fails). The child should end ConsumeOne's ctx on
// SIGTERM (queuescli's run-task does), so the attempt is cancelled.
//
// Close neither waits for nor kills children: they own their records and
// settle them; after a restart, reconciliation probes them by PID. Wait
// blocks until every child launched by this executor has exited and been
// reconciled.
package subprocess

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/execution/dispatch"
	"github.com/queuesgo/queues/queuestype"
)

// Name is the execution backend name records carry.
const Name = "subprocess"

// refPrefix starts every execution ref of this backend.
const refPrefix = Name + ":"

// Options configure an Executor. The zero value launches this program's own
// binary with `run-task`.
type Options struct {
	// Binary is the program to run: "" → os.Executable(). A name without a
	// path separator is looked up in PATH.
	Binary string
	// Args precede "--task-id <uuid>": nil → ["run-task"].
	Args []string
	// Env is added to the parent's environment (after it, so it overrides);
	// QUEUES_TASK_ID=<uuid> is always set last.
	Env []string
	// WorkDir is the children's working directory: "" → the dispatcher's.
	WorkDir string
	// MaxProcesses caps live children: 0 → runtime.NumCPU().
	MaxProcesses int
	// Stdout and Stderr receive the children's output: nil → the
	// dispatcher's own os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// FallbackExecutionBackend re-routes a record whose child cannot be
	// started (binary missing, fork failure) to this execution backend ("" =
	// release it for the next dispatch and report the error).
	FallbackExecutionBackend string
	// ReconcileTimeout bounds the immediate reconcile after a child exits: 0 → 30s.
	ReconcileTimeout time.Duration
}

// Executor launches one child process per task. Create it with New and put
// it in queues.Config.Executors. It implements execution.Transport,
// execution.InFlighter and execution.CapacityLimiter and is safe for
// concurrent use.
type Executor struct {
	opts    Options
	optsErr error
	binary  string
	args    []string
	max     int

	mu       sync.Mutex
	host     string
	opened   bool
	closed   bool
	live     int               // children running, plus launches in progress
	children map[string]*child // by ref; exited ones stay until reconciled
	watchers sync.WaitGroup
}

// child is one launched process.
type child struct {
	ref  string
	id   uuid.UUID
	pid  int
	cmd  *exec.Cmd
	host execution.Host
	exit chan struct{} // closed when the process has exited
	code int           // exit code; -1 when killed by a signal (valid after exit)
	desc string        // "exit status 1", "signal: killed" (valid after exit)
	// settled is closed once Dispatch has finished with the child; finalized
	// (written before) says whether its ref may be on the record.
	settled   chan struct{}
	finalized bool
	// cancelRequested is set when CancelExecution signalled the child.
	cancelRequested atomic.Bool
}

// cancelGrace is how long the exit reconcile of a child stopped by
// CancelExecution waits for the canceller's durable cancel (Service.Cancel
// writes it right after the signal), so the caller that asked wins it.
const cancelGrace = 2 * time.Second

// Compile-time checks.
var (
	_ execution.Transport       = (*Executor)(nil)
	_ execution.InFlighter      = (*Executor)(nil)
	_ execution.CapacityLimiter = (*Executor)(nil)
)

// New returns an executor with opts. Invalid options are reported by Open
// (and so by queues.Service.Start) with an error matching queues.ErrConfig.
func New(opts Options) *Executor {
	e := &Executor{opts: opts, children: map[string]*child{}}
	e.binary = opts.Binary
	if e.binary == "" {
		bin, err := os.Executable()
		if err != nil {
			e.optsErr = &queuestype.ConfigError{Field: "subprocess.Binary", Problem: "cannot find this program's binary: " + err.Error()}
		}
		e.binary = bin
	}
	e.args = append([]string(nil), opts.Args...)
	if opts.Args == nil {
		e.args = []string{"run-task"}
	}
	switch {
	case opts.MaxProcesses < 0:
		e.optsErr = &queuestype.ConfigError{Field: "subprocess.MaxProcesses", Problem: "must not be negative"}
	case opts.MaxProcesses == 0:
		e.max = runtime.NumCPU()
	default:
		e.max = opts.MaxProcesses
	}
	if opts.ReconcileTimeout < 0 {
		e.optsErr = &queuestype.ConfigError{Field: "subprocess.ReconcileTimeout", Problem: "must not be negative"}
	}
	if e.opts.ReconcileTimeout == 0 {
		e.opts.ReconcileTimeout = 30 * time.Second
	}
	return e
}

// Name returns "subprocess".
func (e *Executor) Name() string { return Name }

// Binary returns the program children run (resolved by Open).
func (e *Executor) Binary() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.binary
}

// Open validates the options, resolves the binary and reads the host name.
// It is idempotent.
func (e *Executor) Open(ctx context.Context) error {
	if e.optsErr != nil {
		return e.optsErr
	}
	bin := e.Binary()
	if !strings.ContainsRune(bin, filepath.Separator) && !strings.ContainsRune(bin, '/') {
		p, err := exec.LookPath(bin)
		if err != nil {
			return &queuestype.ConfigError{Field: "subprocess.Binary", Problem: err.Error()}
		}
		bin = p
	}
	if st, err := os.Stat(bin); err != nil {
		return &queuestype.ConfigError{Field: "subprocess.Binary", Problem: err.Error()}
	} else if st.IsDir() {
		return &queuestype.ConfigError{Field: "subprocess.Binary", Problem: bin + " is a directory"}
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.ReplaceAll(host, ":", "_")
	e.mu.Lock()
	defer e.mu.Unlock()
	e.binary = bin
	e.host = host
	e.opened = true
	e.closed = false
	return nil
}

// Close stops dispatching. Children keep running and settle their own
// records; their exits are still reconciled while the service is open.
func (e *Executor) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return nil
}

// Wait blocks until every child launched so far has exited and its exit has
// been reconciled, or ctx ends.
func (e *Executor) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { e.watchers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// InFlight returns the number of live children (and launches in progress).
func (e *Executor) InFlight() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live
}

// MaxInFlight returns MaxProcesses.
func (e *Executor) MaxInFlight() int { return e.max }

// Host returns the host name refs of this executor carry (after Open).
func (e *Executor) Host() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.host
}

// Dispatch launches a child for rec through the job-style protocol of
// package dispatch. At MaxProcesses live children it returns skipped without
// touching the record.
func (e *Executor) Dispatch(ctx context.Context, h execution.Host, rec *execution.Record) (execution.DispatchOutcome, error) {
	e.mu.Lock()
	switch {
	case !e.opened || e.closed:
		e.mu.Unlock()
		return execution.DispatchOutcome{Status: execution.DispatchStatusSkipped}, fmt.Errorf("subprocess executor: %w", queuestype.ErrClosed)
	case e.live >= e.max:
		e.mu.Unlock()
		return execution.DispatchOutcome{Status: execution.DispatchStatusSkipped}, nil
	}
	e.live++ // the slot is held from here; released below if nothing runs
	e.mu.Unlock()

	var c *child
	out, err := dispatch.RunJob(ctx, h, rec, Name,
		func(context.Context) (string, error) {
			var err error
			c, err = e.start(h, rec)
			if err != nil {
				return "", err
			}
			return c.ref, nil
		},
		func(string) {
			if c != nil {
				_ = signalTerm(c.cmd.Process)
			}
		},
		dispatch.JobOptions{FallbackBackend: e.opts.FallbackExecutionBackend})
	if c == nil {
		e.mu.Lock()
		e.live--
		e.mu.Unlock()
		return out, err
	}
	var de *execution.DispatchError
	c.finalized = out.Status == execution.DispatchStatusDispatched || (errors.As(err, &de) && de.Committed)
	close(c.settled)
	return out, err
}

// start launches the child for rec and begins waiting on it.
func (e *Executor) start(h execution.Host, rec *execution.Record) (*child, error) {
	id := rec.ID.String()
	args := make([]string, 0, len(e.args)+2)
	args = append(args, e.args...)
	args = append(args, "--task-id", id)
	cmd := exec.Command(e.Binary(), args...)
	env := os.Environ()
	env = append(env, e.opts.Env...)
	cmd.Env = append(env, "QUEUES_TASK_ID="+id)
	cmd.Dir = e.opts.WorkDir
	cmd.Stdout, cmd.Stderr = e.opts.Stdout, e.opts.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{id: rec.ID, pid: cmd.Process.Pid, cmd: cmd, host: h, exit: make(chan struct{}), settled: make(chan struct{})}
	e.mu.Lock()
	c.ref = formatRef(e.host, c.pid, time.Now().UnixMilli())
	e.children[c.ref] = c
	e.mu.Unlock()
	e.watchers.Add(1)
	go e.watch(c)
	return c, nil
}

// watch waits for c to exit, frees its slot, and reconciles its record at once.
func (e *Executor) watch(c *child) {
	defer e.watchers.Done()
	err := c.cmd.Wait()
	code, desc := 0, "exit status 0"
	if err != nil {
		code, desc = -1, err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
	}
	e.mu.Lock()
	c.code, c.desc = code, desc
	e.live--
	e.mu.Unlock()
	close(c.exit)
	<-c.settled
	if !c.finalized {
		e.forget(c)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.ReconcileTimeout)
	defer cancel()
	if c.cancelRequested.Load() && e.awaitCancel(ctx, c) {
		e.forget(c)
		return
	}
	if _, err := c.host.ReconcileTask(ctx, c.id); err != nil {
		// Keep the exit status: the periodic reconcile applies it later.
		c.host.Logger().Warn("Queue subprocess exit reconcile failed", "task_id", c.id, "execution_ref", c.ref,
			"exit", desc, "error", err)
		return
	}
	e.forget(c)
}

// awaitCancel waits up to cancelGrace for c's record to be settled or
// re-dispatched by someone else (the durable cancel after CancelExecution);
// it reports whether that happened.
func (e *Executor) awaitCancel(ctx context.Context, c *child) bool {
	deadline := time.Now().Add(cancelGrace)
	for {
		r, err := c.host.GetTask(ctx, c.id)
		if err == nil && (r.IsTerminal() || r.ExecutionRef != c.ref) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *Executor) forget(c *child) {
	e.mu.Lock()
	if e.children[c.ref] == c {
		delete(e.children, c.ref)
	}
	e.mu.Unlock()
}

// Reconcile probes the child rec.ExecutionRef names and applies the result.
func (e *Executor) Reconcile(ctx context.Context, h execution.Host, rec *execution.Record) (*execution.Record, error) {
	out, err := dispatch.Reconcile(ctx, h, rec, func(ctx context.Context, ref string) (execution.Probe, error) {
		return e.probe(ref, rec.ID)
	})
	if err == nil {
		e.mu.Lock()
		c := e.children[rec.ExecutionRef]
		e.mu.Unlock()
		if c != nil {
			select {
			case <-c.exit:
				e.forget(c) // its exit has been applied
			default:
			}
		}
	}
	return out, err
}

// Repair has nothing to do for a job-style transport: a record is either
// reserved (reconciliation releases expired markers) or holds a child's ref.
func (e *Executor) Repair(ctx context.Context, h execution.Host, limit int) (execution.RepairResult, error) {
	return execution.RepairResult{}, nil
}

// probe reports the state of the child ref names, launched for task id.
func (e *Executor) probe(ref string, id uuid.UUID) (execution.Probe, error) {
	e.mu.Lock()
	c := e.children[ref]
	host := e.host
	e.mu.Unlock()
	if c != nil {
		select {
		case <-c.exit:
		default:
			return execution.Probe{Status: execution.ProbeRunning}, nil
		}
		switch c.code {
		case int(execution.ExitSuccess):
			return execution.Probe{Status: execution.ProbeSucceeded, Detail: c.desc}, nil
		case int(execution.ExitCancelled):
			return execution.Probe{Status: execution.ProbeCancelled, Detail: c.desc}, nil
		default:
			return execution.Probe{Status: execution.ProbeFailed, Detail: c.desc}, nil
		}
	}
	r, err := parseRef(ref)
	if err != nil {
		return execution.Probe{}, err
	}
	if r.host != host {
		return execution.Probe{}, fmt.Errorf("subprocess ref %s belongs to host %q; its own dispatcher reconciles it", ref, r.host)
	}
	r.taskID = id.String()
	running, err := processMatches(r)
	if err != nil {
		return execution.Probe{}, err
	}
	if running {
		return execution.Probe{Status: execution.ProbeRunning, Detail: "untracked process alive"}, nil
	}
	return execution.Probe{Status: execution.ProbeNotFound, Detail: "no such process"}, nil
}

// processMatches reports whether a live process on this host is the child r
// describes: alive and, where /proc can tell, not a zombie and really the
// child (its environment carries the task ID, or it started at the ref's
// time), so a reused PID is not mistaken for it.
func processMatches(r ref) (bool, error) {
	alive, err := processAlive(r.pid)
	if err != nil || !alive {
		return false, err
	}
	known, match := procIdentity(r.pid, r.taskID, r.startMs)
	return !known || match, nil
}

// CancelExecution sends SIGTERM to the child rec holds.
func (e *Executor) CancelExecution(ctx context.Context, rec *execution.Record) execution.CancelResult {
	e.mu.Lock()
	c := e.children[rec.ExecutionRef]
	host := e.host
	e.mu.Unlock()
	if c != nil {
		select {
		case <-c.exit:
			return execution.CancelResult{Status: execution.CancelAlreadyCancelled, Detail: "process already exited: " + c.desc}
		default:
		}
		c.cancelRequested.Store(true)
		err := signalTerm(c.cmd.Process)
		switch {
		case err == nil:
			return execution.CancelResult{Status: execution.CancelAccepted, Detail: "SIGTERM sent to pid " + strconv.Itoa(c.pid)}
		case errors.Is(err, os.ErrProcessDone):
			return execution.CancelResult{Status: execution.CancelAlreadyCancelled, Detail: "no such process"}
		default:
			return execution.CancelResult{Status: execution.CancelRetryable, Detail: err.Error()}
		}
	}
	r, err := parseRef(rec.ExecutionRef)
	if err != nil {
		return execution.CancelResult{Status: execution.CancelUnsupported, Detail: err.Error()}
	}
	if r.host != host {
		return execution.CancelResult{Status: execution.CancelUnsupported,
			Detail: fmt.Sprintf("the process runs on host %q; it stops at its next heartbeat", r.host)}
	}
	r.taskID = rec.ID.String()
	running, err := processMatches(r)
	if err != nil {
		return execution.CancelResult{Status: execution.CancelRetryable, Detail: err.Error()}
	}
	if !running {
		return execution.CancelResult{Status: execution.CancelAlreadyCancelled, Detail: "no such process"}
	}
	switch err := terminatePID(r.pid); {
	case err == nil:
		return execution.CancelResult{Status: execution.CancelAccepted, Detail: "SIGTERM sent to pid " + strconv.Itoa(r.pid)}
	case errors.Is(err, errNoProcess):
		return execution.CancelResult{Status: execution.CancelAlreadyCancelled, Detail: "no such process"}
	default:
		return execution.CancelResult{Status: execution.CancelRetryable, Detail: err.Error()}
	}
}

// ref is a parsed execution ref.
type ref struct {
	host    string
	pid     int
	startMs int64
	taskID  string // filled by callers that know the record
}

func formatRef(host string, pid int, startMs int64) string {
	return refPrefix + host + ":" + strconv.Itoa(pid) + ":" + strconv.FormatInt(startMs, 10)
}

// ParseRef splits an execution ref "subprocess:<hostname>:<pid>:<start-unix-ms>".
func ParseRef(s string) (host string, pid int, start time.Time, err error) {
	r, err := parseRef(s)
	if err != nil {
		return "", 0, time.Time{}, err
	}
	return r.host, r.pid, time.UnixMilli(r.startMs).UTC(), nil
}

func parseRef(s string) (ref, error) {
	bad := fmt.Errorf("not a subprocess execution ref: %q", s)
	rest, ok := strings.CutPrefix(s, refPrefix)
	if !ok {
		return ref{}, bad
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return ref{}, bad
	}
	ms, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil {
		return ref{}, bad
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, ':')
	if j <= 0 {
		return ref{}, bad
	}
	pid, err := strconv.Atoi(rest[j+1:])
	if err != nil || pid <= 0 {
		return ref{}, bad
	}
	return ref{host: rest[:j], pid: pid, startMs: ms}, nil
}
