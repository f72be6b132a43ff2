package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
	"github.com/queuesgo/queues/internal/testservice"
	"github.com/queuesgo/queues/queuescli"
)

// bin is the queues binary built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "queues-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "queues")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build queues binary:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := testservice.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a test's process environment: a fresh SQLite file.
type env struct {
	t     *testing.T
	dir   string
	db    string
	trace string
	extra []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	return &env{t: t, dir: dir, db: filepath.Join(dir, "queues.db"), trace: filepath.Join(dir, "trace.log")}
}

func (e *env) dsn() string { return "sqlite:" + e.db }

func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(),
		queuescli.EnvBackend+"="+e.dsn(), queuescli.EnvDSN+"=", queuescli.EnvTaskID+"=",
		queuescli.EnvDemoTrace+"="+e.trace)
	cmd.Env = append(cmd.Env, e.extra...)
	return cmd
}

// run runs the binary to completion and returns exit code, stdout and stderr.
func (e *env) run(args ...string) (int, string, string) {
	e.t.Helper()
	cmd := e.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("run %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// mustRun runs the binary and fails unless it exits 0.
func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	code, out, errs := e.run(args...)
	if code != 0 {
		e.t.Fatalf("queues %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// proc is a running queues process.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	stdout *syncBuffer
	done   chan struct{}
	code   int
}

func (e *env) start(args ...string) *proc {
	e.t.Helper()
	p := &proc{cmd: e.command(args...), stderr: &syncBuffer{}, stdout: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.code = 128 + int(ws.Signal())
			}
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("process did not exit within %s\nstderr: %s", limit, p.stderr.String())
		return -1
	}
}

// waitStderr waits until the process's stderr contains s.
func (p *proc) waitStderr(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.stderr.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("process exited (%d) before printing %q\nstderr: %s", p.code, s, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q on stderr within %s\nstderr: %s", s, limit, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// service opens a Go-API service on the env's SQLite file (a second process
// view of the same store) with the demo tasks and any extra registrations.
func (e *env) service(register ...func(*queues.Registry)) *queues.Service {
	e.t.Helper()
	ctx := context.Background()
	b, err := dsn.Open(ctx, e.dsn())
	if err != nil {
		e.t.Fatal(err)
	}
	reg := queues.NewRegistry()
	if err := queuescli.RegisterDemoTasks(reg); err != nil {
		e.t.Fatal(err)
	}
	for _, r := range register {
		r(reg)
	}
	// A producer only: `queues run` processes serve the subprocess transport.
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, ExternalExecutionBackends: []string{"subprocess"}})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

// waitStats polls the counts until ok returns true.
func waitStats(t *testing.T, svc *queues.Service, limit time.Duration, ok func(queues.Statistics) bool) queues.Statistics {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st, err := svc.Statistics(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts did not reach the condition within %s: %+v", limit, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertOneErrorLine checks the CLI's failure contract.
func assertOneErrorLine(t *testing.T, stderr string, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") {
		t.Fatalf("want exactly one `error: ...` line, got %q", stderr)
	}
	for _, bad := range []string{"goroutine ", "panic", "Usage:", ".go:"} {
		if strings.Contains(stderr, bad) {
			t.Fatalf("stderr has %q: %q", bad, stderr)
		}
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("stderr %q does not mention %q", lines[0], w)
		}
	}
}

func decodeRecord(t *testing.T, s string) queues.Record {
	t.Helper()
	var r queues.Record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("decode record: %v: %q", err, s)
	}
	return r
}

func TestEnqueueGetStatusCancelMigrate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	out := e.mustRun("migrate")
	if !strings.Contains(out, "applied") && !strings.Contains(out, "up to date") {
		t.Errorf("migrate: %q", out)
	}
	if out := e.mustRun("migrate"); !strings.Contains(out, "up to date") {
		t.Errorf("second migrate: %q", out)
	}
	if out := e.mustRun("migrate", "--status"); !strings.Contains(out, "applied  ") {
		t.Errorf("migrate --status: %q", out)
	}
	if out := e.mustRun("migrate", "--dry-run"); !strings.Contains(out, "up to date") {
		t.Errorf("migrate --dry-run: %q", out)
	}

	// enqueue --json prints the record.
	rec := decodeRecord(t, e.mustRun("enqueue", "demo.echo", "--args", `{"x":1}`, "--json"))
	if rec.TaskName != "demo.echo" || rec.Status != queues.StatusPending || string(rec.Args) != `{"x":1}` || rec.Queue != "default" {
		t.Errorf("enqueued record: %+v", rec)
	}
	// Text form.
	out = e.mustRun("enqueue", "demo.noop")
	f := strings.Fields(out)
	if len(f) != 4 || f[0] != "enqueued" || f[2] != "demo.noop" || f[3] != "pending" {
		t.Errorf("enqueue text: %q", out)
	}
	noopID := f[1]
	// Options.
	opt := decodeRecord(t, e.mustRun("enqueue", "demo.sleep", "--args", `{"ms":1}`, "--queue", "q1", "--priority", "7",
		"--retries", "2", "--run-after", "1h", "--key", "k-1", "--json"))
	if opt.Queue != "q1" || opt.Priority != 7 || opt.MaxRetries != 2 || opt.Status != queues.StatusScheduled ||
		opt.Key != "k-1" || time.Until(opt.ScheduledAt) < 59*time.Minute {
		t.Errorf("enqueue options: %+v", opt)
	}
	// The same key returns the active record.
	out = e.mustRun("enqueue", "demo.sleep", "--args", `{"ms":1}`, "--queue", "q1", "--key", "k-1")
	if !strings.HasPrefix(out, "deduplicated "+opt.ID.String()) {
		t.Errorf("keyed enqueue: %q", out)
	}

	// get
	got := decodeRecord(t, e.mustRun("get", rec.ID.String(), "--json"))
	if got.ID != rec.ID || got.TaskName != "demo.echo" {
		t.Errorf("get --json: %+v", got)
	}
	out = e.mustRun("get", opt.ID.String())
	for _, want := range []string{"id:", opt.ID.String(), "status:", "scheduled", "queue:", "q1", "scheduled_at:"} {
		if !strings.Contains(out, want) {
			t.Errorf("get text lacks %q:\n%s", want, out)
		}
	}

	// status --json: exactly the eight keys.
	out = e.mustRun("status", "--json")
	var counts map[string]int
	if err := json.Unmarshal([]byte(out), &counts); err != nil {
		t.Fatalf("status --json: %v: %q", err, out)
	}
	want := map[string]int{"pending": 2, "scheduled": 1, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "expired": 0, "total": 3}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("status --json = %v, want %v", counts, want)
	}
	if strings.Count(out, "\n") != 1 || strings.Contains(out, " ") {
		t.Errorf("status --json is not one compact line: %q", out)
	}
	out = e.mustRun("status", "--queue", "q1")
	wantTable := "Status         Count\n" +
		"pending            0\n" +
		"scheduled          1\n" +
		"running            0\n" +
		"completed          0\n" +
		"failed             0\n" +
		"cancelled          0\n" +
		"expired            0\n" +
		"total              1\n"
	if out != wantTable {
		t.Errorf("status table:\n%s\nwant:\n%s", out, wantTable)
	}

	// cancel
	if out := e.mustRun("cancel", noopID); out != "cancelled "+noopID+"\n" {
		t.Errorf("cancel: %q", out)
	}
	if out := e.mustRun("cancel", noopID); !strings.HasPrefix(out, "already cancelled") {
		t.Errorf("second cancel: %q", out)
	}
	if got := decodeRecord(t, e.mustRun("get", noopID, "--json")); got.Status != queues.StatusCancelled {
		t.Errorf("after cancel: %s", got.Status)
	}
	missing := uuid.NewString()
	code, _, stderr := e.run("cancel", missing)
	if code != 1 {
		t.Errorf("cancel missing: exit %d", code)
	}
	assertOneErrorLine(t, stderr, "not found")
	code, _, stderr = e.run("get", missing)
	if code != 1 {
		t.Errorf("get missing: exit %d", code)
	}
	assertOneErrorLine(t, stderr, "task "+missing+" not found")

	// A running record needs --include-running.
	svc := e.service()
	res, err := svc.EnqueueRaw(context.Background(), "demo.sleep", json.RawMessage(`{"ms":60000}`), queues.EnqueueOptions{Queue: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	w := e.start("run", "--queue", "slow", "--drain-timeout", "5s", "--log-level", "info")
	w.waitStderr(t, "queues worker started", 10*time.Second)
	waitStats(t, svc, 10*time.Second, func(st queues.Statistics) bool { return st.Running == 1 })
	code, _, stderr = e.run("cancel", res.ID.String())
	if code != 1 {
		t.Errorf("cancel running without --include-running: exit %d", code)
	}
	assertOneErrorLine(t, stderr, "--include-running")
	if out := e.mustRun("cancel", res.ID.String(), "--include-running"); !strings.HasPrefix(out, "cancelled ") {
		t.Errorf("cancel --include-running: %q", out)
	}
	// The worker in the other process sees the durable cancellation and stops
	// the attempt (within CancellationPollInterval, 1s; it logs that): the
	// drain then needs no cancellation, so the exit is 0, not 2.
	w.waitStderr(t, "Queue running attempt cancelled", 10*time.Second)
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t, 15*time.Second); code != 0 {
		t.Errorf("worker exit %d: %s", code, w.stderr.String())
	}
	if r, _ := svc.GetTask(context.Background(), res.ID); r.Status != queues.StatusCancelled {
		t.Errorf("cancelled running record is %s", r.Status)
	}
}

func TestRunDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service()
	ctx := context.Background()
	var ids []uuid.UUID
	for range 4 {
		res, err := svc.EnqueueRaw(ctx, "demo.sleep", json.RawMessage(`{"ms":700}`), queues.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	w := e.start("run", "--max-concurrency", "4", "--worker-id", "drain-worker", "--drain-timeout", "20s")
	w.waitStderr(t, "queues worker started", 10*time.Second)
	waitStats(t, svc, 10*time.Second, func(st queues.Statistics) bool { return st.Running == 4 })
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d, want 0\nstderr: %s", code, w.stderr.String())
	}
	for _, id := range ids {
		r, err := svc.GetTask(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != queues.StatusCompleted || r.WorkerID != "drain-worker" {
			t.Errorf("%s: %s by %q after a graceful drain", id, r.Status, r.WorkerID)
		}
	}
}

func TestRunDrainTimeoutExits2(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service()
	if _, err := svc.EnqueueRaw(context.Background(), "demo.sleep", json.RawMessage(`{"ms":60000}`), queues.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	w := e.start("run", "--drain-timeout", "100ms")
	w.waitStderr(t, "queues worker started", 10*time.Second)
	waitStats(t, svc, 10*time.Second, func(st queues.Statistics) bool { return st.Running == 1 })
	start := time.Now()
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t, 15*time.Second); code != 2 {
		t.Fatalf("exit %d, want 2\nstderr: %s", code, w.stderr.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("drain took %s", d)
	}
}

func TestRunSignalLadder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service()
	// A task that ignores cancellation: the second signal cannot stop it.
	if _, err := svc.EnqueueRaw(context.Background(), "demo.sleep", json.RawMessage(`{"ms":60000,"ignore_cancel":true}`), queues.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	w := e.start("run", "--hard-exit-timeout", "-1s")
	w.waitStderr(t, "queues worker started", 10*time.Second)
	waitStats(t, svc, 10*time.Second, func(st queues.Statistics) bool { return st.Running == 1 })
	w.signal(t, syscall.SIGINT)
	w.waitStderr(t, "draining", 5*time.Second)
	w.signal(t, syscall.SIGTERM)
	w.waitStderr(t, "cancelling running attempts", 5*time.Second)
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t, 5*time.Second); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit %d, want %d\nstderr: %s", code, 128+int(syscall.SIGTERM), w.stderr.String())
	}

	// The watchdog after a second signal.
	e2 := newEnv(t)
	svc2 := e2.service()
	if _, err := svc2.EnqueueRaw(context.Background(), "demo.sleep", json.RawMessage(`{"ms":60000,"ignore_cancel":true}`), queues.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	w = e2.start("run", "--hard-exit-timeout", "300ms")
	w.waitStderr(t, "queues worker started", 10*time.Second)
	waitStats(t, svc2, 10*time.Second, func(st queues.Statistics) bool { return st.Running == 1 })
	w.signal(t, syscall.SIGINT)
	w.waitStderr(t, "draining", 5*time.Second)
	w.signal(t, syscall.SIGINT)
	if code := w.wait(t, 5*time.Second); code != 128+int(syscall.SIGINT) {
		t.Fatalf("exit %d, want %d\nstderr: %s", code, 128+int(syscall.SIGINT), w.stderr.String())
	}

	// Two signals with a task that honours cancellation: forced, exit 2.
	e3 := newEnv(t)
	svc3 := e3.service()
	if _, err := svc3.EnqueueRaw(context.Background(), "demo.sleep", json.RawMessage(`{"ms":60000}`), queues.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	w = e3.start("run")
	w.waitStderr(t, "queues worker started", 10*time.Second)
	waitStats(t, svc3, 10*time.Second, func(st queues.Statistics) bool { return st.Running == 1 })
	w.signal(t, syscall.SIGTERM)
	w.waitStderr(t, "draining", 5*time.Second)
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t, 10*time.Second); code != 2 {
		t.Fatalf("exit %d, want 2\nstderr: %s", code, w.stderr.String())
	}
}

func TestRunTaskExitCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	svc := e.service(func(r *queues.Registry) {
		// Known to this test process, unknown to the binary.
		queues.MustRegister(r, "test.only_here", func(ctx context.Context, _ struct{}) (struct{}, error) { return struct{}{}, nil })
	})
	enqueue := func(task, args string, o queues.EnqueueOptions) uuid.UUID {
		t.Helper()
		res, err := svc.EnqueueRaw(ctx, task, json.RawMessage(args), o)
		if err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	check := func(want int, args ...string) string {
		t.Helper()
		code, _, stderr := e.run(append([]string{"run-task"}, args...)...)
		if code != want {
			t.Errorf("run-task %v: exit %d, want %d (stderr %q)", args, code, want, stderr)
		}
		if want != 0 {
			assertOneErrorLine(t, stderr)
		}
		return stderr
	}
	check(2)
	check(3, "--task-id", "not-a-uuid")
	check(4, "--task-id", uuid.NewString())

	ok := enqueue("demo.echo", `{"v":42}`, queues.EnqueueOptions{})
	check(0, "--task-id", ok.String())
	if r, _ := svc.GetTask(ctx, ok); r.Status != queues.StatusCompleted || string(r.Result) != `{"v":42}` {
		t.Errorf("run-task record: %s %s", r.Status, r.Result)
	}
	// From the environment.
	viaEnv := enqueue("demo.noop", `{}`, queues.EnqueueOptions{})
	e.extra = []string{queuescli.EnvTaskID + "=" + viaEnv.String()}
	check(0)
	e.extra = nil

	unknown := enqueue("test.only_here", `{}`, queues.EnqueueOptions{})
	stderr := check(5, "--task-id", unknown.String())
	if !strings.Contains(stderr, `unknown queue task: "test.only_here"`) {
		t.Errorf("unknown task stderr: %q", stderr)
	}
	if r, _ := svc.GetTask(ctx, unknown); r.Status != queues.StatusFailed {
		t.Errorf("unknown task record: %s", r.Status)
	}

	fails := enqueue("demo.fail", `{"times":1}`, queues.EnqueueOptions{Retries: queues.Ptr(0)})
	check(1, "--task-id", fails.String())
	check(6, "--task-id", ok.String()) // already completed: the claim fails

	cancelled := enqueue("demo.noop", `{}`, queues.EnqueueOptions{})
	if _, err := svc.Cancel(ctx, cancelled, queues.CancelOptions{}); err != nil {
		t.Fatal(err)
	}
	check(6, "--task-id", cancelled.String())
	code, _, stderr := e.run("run-task", "--task-id", ok.String(), "--backend", "memory:")
	if code != 8 {
		t.Errorf("memory backend: exit %d", code)
	}
	assertOneErrorLine(t, stderr, "memory")

	// SIGTERM during run-task cancels the attempt (cause: worker shutting down).
	slow := enqueue("demo.sleep", `{"ms":60000}`, queues.EnqueueOptions{})
	p := e.start("run-task", "--task-id", slow.String())
	waitStats(t, svc, 10*time.Second, func(st queues.Statistics) bool { return st.Running == 1 })
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != 1 {
		t.Errorf("run-task after SIGTERM: exit %d, want 1 (stderr %q)", code, p.stderr.String())
	}
	if r, _ := svc.GetTask(ctx, slow); r.Status != queues.StatusRunning || !r.HeartbeatAt.IsZero() {
		t.Errorf("interrupted record: %s heartbeat %v (want running with a null heartbeat for stale recovery)", r.Status, r.HeartbeatAt)
	}
}

func TestBadInvocations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustRun("migrate") // enqueue refuses a named SQLite file that does not exist
	const secret = "s3cr3t-pw"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--stale-after", "1s"}, "--stale-after 1s must be more than twice the heartbeat interval"},
		{[]string{"run", "--stale-after", "300ms", "--heartbeat-interval", "200ms"}, "more than twice"},
		{[]string{"enqueue", "no.such.task"}, `unknown queue task "no.such.task"`},
		{[]string{"enqueue", "demo.noop", "--args", "{not json"}, "not valid JSON"},
		{[]string{"enqueue", "demo.sleep", "--args", `{"ms":"soon"}`}, "invalid task arguments"},
		{[]string{"run", "--backend", "memory:"}, "memory backend"},
		{[]string{"run", "--backend", "memory"}, "memory backend"},
		{[]string{"status", "--backend", "memory:"}, "memory backend"},
		// Loopback port 1: refused at once, no name lookup, no traffic off the machine.
		{[]string{"status", "--backend", "postgres://admin:" + secret + "@127.0.0.1:1/app?connect_timeout=2"}, "postgres"},
		{[]string{"run", "--dsn", "redis://:" + secret + "@127.0.0.1:1"}, "redis"},
		{[]string{"status", "--backend", "ftp://u:" + secret + "@x"}, `unknown scheme`},
		{[]string{"run", "--max-concurrency", "zero"}, "invalid argument"},
		{[]string{"frobnicate"}, "unknown command"},
	}
	for _, c := range cases {
		code, stdout, stderr := e.run(c.args...)
		if code == 0 {
			t.Errorf("%v: exit 0", c.args)
			continue
		}
		assertOneErrorLine(t, stderr, c.want)
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("%v: credentials echoed: %q", c.args, stderr)
		}
	}
}

func TestBenchJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, backend := range []string{"memory", "sqlite:" + filepath.Join(e.dir, "bench.db")} {
		code, stdout, stderr := e.run("bench", "--backend", backend, "--jobs", "2000", "--samples", "30", "--json")
		if code != 0 {
			t.Fatalf("bench %s: exit %d: %s", backend, code, stderr)
		}
		var rep struct {
			Backend          string              `json:"backend"`
			Jobs             int                 `json:"jobs"`
			InsertJobsPerSec float64             `json:"insert_jobs_per_sec"`
			WorkJobsPerSec   float64             `json:"work_jobs_per_sec"`
			LatencyMS        map[string]*float64 `json:"latency_ms"`
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("bench %s --json: %v: %q", backend, err, stdout)
		}
		name := strings.SplitN(backend, ":", 2)[0]
		if rep.Backend != name || rep.Jobs != 2000 || rep.InsertJobsPerSec <= 0 || rep.WorkJobsPerSec <= 0 {
			t.Errorf("bench %s: %+v", backend, rep)
		}
		for _, k := range []string{"p50", "p95", "p99"} {
			if v := rep.LatencyMS[k]; v == nil || *v <= 0 {
				t.Errorf("bench %s: latency_ms.%s = %v", backend, k, v)
			}
		}
	}
}

// `run --execution-backend subprocess` dispatches each record to a child
// `queues run-task` process on the same SQLite file.
func TestRunSubprocessExecution(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service()
	ctx := context.Background()
	sub := queues.EnqueueOptions{ExecutionBackend: "subprocess"}
	ok, err := svc.EnqueueRaw(ctx, "demo.echo", json.RawMessage(`{"hello":"child"}`), sub)
	if err != nil {
		t.Fatal(err)
	}
	failing, err := svc.EnqueueRaw(ctx, "demo.fail", json.RawMessage(`{"times":9}`), queues.EnqueueOptions{ExecutionBackend: "subprocess", Retries: queues.Ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	local, err := svc.EnqueueRaw(ctx, "demo.noop", json.RawMessage(`{}`), queues.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := e.start("run", "--execution-backend", "subprocess", "--max-concurrency", "4", "--max-processes", "4", "--poll-interval", "20ms", "--worker-id", "dispatcher")
	w.waitStderr(t, "queues worker started", 10*time.Second)
	waitStats(t, svc, 30*time.Second, func(st queues.Statistics) bool { return st.Completed == 1 && st.Failed == 1 })
	rec, _ := svc.GetTask(ctx, ok.ID)
	if rec.Status != queues.StatusCompleted || !strings.HasPrefix(rec.ExecutionRef, "subprocess:") || rec.WorkerID == "dispatcher" {
		t.Fatalf("subprocess record %+v", rec)
	}
	if rec, _ := svc.GetTask(ctx, failing.ID); rec.Status != queues.StatusFailed || rec.RetryCount != 1 {
		t.Fatalf("failing record: %s retry %d", rec.Status, rec.RetryCount)
	}
	if rec, _ := svc.GetTask(ctx, local.ID); rec.Status != queues.StatusPending {
		t.Fatalf("a local record must not be dispatched: %s", rec.Status)
	}
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, w.stderr.String())
	}
}
