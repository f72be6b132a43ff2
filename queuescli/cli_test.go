package queuescli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queuescli"
	"github.com/spf13/cobra"
)

// run executes the tree in-process and returns the exit code, stdout and stderr.
func run(t *testing.T, opts queuescli.Options, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	opts.Stdout, opts.Stderr = &out, &errb
	if opts.Registry == nil {
		opts.Registry = demoRegistry(t)
	}
	root := queuescli.New(opts)
	code := queuescli.Run(context.Background(), root, args)
	return code, out.String(), errb.String()
}

func demoRegistry(t *testing.T) *queues.Registry {
	t.Helper()
	reg := queues.NewRegistry()
	if err := queuescli.RegisterDemoTasks(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// oneErrorLine asserts stderr is exactly one "error: ..." line and returns it.
func oneErrorLine(t *testing.T, stderr string) string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") {
		t.Fatalf("want one error line, got %q", stderr)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") || strings.Contains(stderr, "Usage:") {
		t.Fatalf("stack trace or usage in %q", stderr)
	}
	return lines[0]
}

func TestUsageErrors(t *testing.T) {
	t.Setenv(queuescli.EnvBackend, "")
	t.Setenv(queuescli.EnvDSN, "")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"nosuch"}, 1, `unknown command "nosuch"`},
		{[]string{"run", "--bogus"}, 1, "unknown flag: --bogus"},
		{[]string{"run-task", "--bogus"}, 8, "unknown flag: --bogus"},
		{[]string{"run", "--max-concurrency", "x"}, 1, "invalid argument"},
		{[]string{"run", "--heartbeat-interval", "5"}, 1, "missing unit"},
		{[]string{"run", "--backend", "memory:"}, 1, "memory backend keeps records inside one process"},
		{[]string{"run", "--backend", "memory", "--stale-after", "1s"}, 1, "--stale-after 1s must be more than twice the heartbeat interval 30s"},
		{[]string{"run", "--stale-after", "1s", "--heartbeat-interval", "500ms"}, 1, "--stale-after 1s must be more than twice the heartbeat interval 500ms"},
		{[]string{"run", "--max-concurrency", "0"}, 1, "--max-concurrency must be at least 1"},
		{[]string{"run", "--batch-size", "-1"}, 1, "--batch-size must be at least 1"},
		{[]string{"run", "--prefetch", "-1"}, 1, "--prefetch must not be negative"},
		{[]string{"bench", "--backend", "memory:", "--prefetch", "-1"}, 1, "--prefetch must not be negative"},
		{[]string{"run", "--heartbeat-interval", "-1s"}, 1, "--heartbeat-interval must be a positive duration"},
		{[]string{"run", "--drain-timeout", "-1s"}, 1, "--drain-timeout must not be negative"},
		{[]string{"run", "--queue", ""}, 1, "--queue must not be empty"},
		{[]string{"run", "extra"}, 1, "unknown command"},
		{[]string{"status", "--backend", "memory:"}, 1, "memory backend"},
		{[]string{"get", "--backend", "memory:", "not-a-uuid"}, 1, "not a UUID"},
		{[]string{"get"}, 1, "accepts 1 arg"},
		{[]string{"enqueue", "demo.noop", "--backend", "memory:"}, 1, "memory backend"},
		{[]string{"enqueue", "demo.noop", "--args", "{bad"}, 1, "--args is not valid JSON"},
		{[]string{"enqueue", "demo.noop", "--priority", "5000"}, 1, "--priority must be between -1000 and 1000"},
		{[]string{"enqueue", "demo.noop", "--retries", "-1"}, 1, "--retries must not be negative"},
		{[]string{"cancel", "--backend", "memory:", "x"}, 1, "not a UUID"},
		{[]string{"migrate", "--backend", "memory:"}, 1, "memory backend"},
		{[]string{"status", "--backend", "nosuch://x"}, 1, `scheme "nosuch"`},
		{[]string{"status", "--backend", "sqlite:a.db", "--dsn", "sqlite:b.db"}, 1, "--backend and --dsn name different backends"},
		{[]string{"status", "--backend", "sqlite:a.db", "--log-level", "loud"}, 1, `--log-level "loud"`},
		{[]string{"run-task"}, 2, "missing task ID"},
		{[]string{"run-task", "--task-id", "nope"}, 3, "not a UUID"},
		{[]string{"run-task", "--task-id", "0190a1a2-0000-7000-8000-000000000000", "--backend", "memory:"}, 8, "memory backend"},
		{[]string{"run-task", "--task-id", "0190a1a2-0000-7000-8000-000000000000", "--backend", "bogus:"}, 8, `scheme "bogus"`},
		{[]string{"bench", "--jobs", "0"}, 1, "--jobs must be at least 1"},
		{[]string{"bench", "--backend", "memory", "--duration", "0s"}, 1, "--duration must be positive"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Chdir(t.TempDir())
			code, _, stderr := run(t, queuescli.Options{}, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, stderr)
			}
			line := oneErrorLine(t, stderr)
			if !strings.Contains(line, c.want) {
				t.Errorf("stderr %q does not contain %q", line, c.want)
			}
		})
	}
}

func TestCredentialsNeverEchoed(t *testing.T) {
	const secret = "hunter2secret"
	for _, dsn := range []string{
		// Loopback port 1 refuses at once: no name lookups, no traffic off the machine.
		"postgres://app:" + secret + "@127.0.0.1:1/app?connect_timeout=2",
		"redis://:" + secret + "@127.0.0.1:1/0",
		"mysql://root:" + secret + "@127.0.0.1:1/app",
		"postgres://app:" + secret + "%zz@127.0.0.1:1/app",
	} {
		for _, args := range [][]string{
			{"status", "--backend", dsn},
			{"run", "--dsn", dsn},
			{"run-task", "--task-id", "0190a1a2-0000-7000-8000-000000000000", "--backend", dsn},
			{"enqueue", "demo.noop", "--backend", dsn},
		} {
			code, stdout, stderr := run(t, queuescli.Options{}, args...)
			if code == 0 {
				t.Fatalf("%v: exit 0", args[0])
			}
			oneErrorLine(t, stderr)
			if strings.Contains(stderr+stdout, secret) {
				t.Errorf("%s: output echoes the password: %q", args[0], stderr)
			}
		}
	}
	// From the environment too.
	t.Setenv(queuescli.EnvDSN, "postgres://app:"+secret+"@127.0.0.1:1/app?connect_timeout=2")
	_, _, stderr := run(t, queuescli.Options{}, "status")
	oneErrorLine(t, stderr)
	if strings.Contains(stderr, secret) {
		t.Errorf("env DSN echoed: %q", stderr)
	}
}

func TestConfigHookError(t *testing.T) {
	hook := func(ctx context.Context, b driver.Backend) (queues.Config, error) {
		return queues.Config{}, errors.New("settings file missing")
	}
	path := filepath.Join(t.TempDir(), "q.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil { // status opens only an existing file
		t.Fatal(err)
	}
	t.Setenv(queuescli.EnvBackend, "sqlite:"+path)
	code, _, stderr := run(t, queuescli.Options{Config: hook}, "status")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	if line := oneErrorLine(t, stderr); line != "error: load config: settings file missing" {
		t.Errorf("got %q", line)
	}
}

func TestPanicIsOneLine(t *testing.T) {
	var errb bytes.Buffer
	root := queuescli.New(queuescli.Options{Stdout: &bytes.Buffer{}, Stderr: &errb})
	root.AddCommand(&cobra.Command{Use: "boom", Run: func(*cobra.Command, []string) { panic("kaboom") }})
	if code := queuescli.Run(context.Background(), root, []string{"boom"}); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if line := oneErrorLine(t, errb.String()); line != "error: internal error: kaboom" {
		t.Errorf("got %q", line)
	}
}

func TestExitError(t *testing.T) {
	var errb bytes.Buffer
	root := queuescli.New(queuescli.Options{Stdout: &bytes.Buffer{}, Stderr: &errb})
	root.AddCommand(&cobra.Command{Use: "quiet", RunE: func(*cobra.Command, []string) error {
		return &queuescli.ExitError{Code: 7}
	}})
	root.AddCommand(&cobra.Command{Use: "multi", RunE: func(*cobra.Command, []string) error {
		return &queuescli.ExitError{Code: 3, Err: errors.Join(errors.New("first"), errors.New("second"))}
	}})
	if code := queuescli.Run(context.Background(), root, []string{"quiet"}); code != 7 || errb.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if code := queuescli.Run(context.Background(), root, []string{"multi"}); code != 3 {
		t.Fatalf("exit %d", code)
	}
	if line := oneErrorLine(t, errb.String()); line != "error: first; second" {
		t.Errorf("got %q", line)
	}
}

func TestMountedInAppRoot(t *testing.T) {
	var out, errb bytes.Buffer
	app := &cobra.Command{Use: "myapp", SilenceErrors: true, SilenceUsage: true}
	app.AddCommand(queuescli.New(queuescli.Options{Name: "queues", Registry: demoRegistry(t), Stdout: &out, Stderr: &errb}))
	app.SetOut(&out)
	app.SetErr(&errb)
	code := queuescli.Run(context.Background(), app, []string{"queues", "run-task"})
	if code != 2 || !strings.Contains(errb.String(), "missing task ID") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	code = queuescli.Run(context.Background(), app, []string{"queues", "bench", "--backend", "memory:", "--jobs", "50", "--samples", "3", "--json"})
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
}

func TestNewServiceOutsideTree(t *testing.T) {
	if _, err := queuescli.NewService(&cobra.Command{Use: "x"}, queuescli.ServiceOptions{}); err == nil {
		t.Fatal("want error")
	}
}

func TestDSNResolution(t *testing.T) {
	t.Setenv(queuescli.EnvBackend, "")
	t.Setenv(queuescli.EnvDSN, "")
	var got string
	probe := func(args []string, env map[string]string) string {
		for k, v := range env {
			t.Setenv(k, v)
		}
		root := queuescli.New(queuescli.Options{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
		root.AddCommand(&cobra.Command{Use: "probe", RunE: func(cmd *cobra.Command, args []string) error {
			got = queuescli.DSN(cmd)
			return nil
		}})
		if code := queuescli.Run(context.Background(), root, append([]string{"probe"}, args...)); code != 0 {
			t.Fatalf("exit %d", code)
		}
		for k := range env {
			t.Setenv(k, "")
		}
		return got
	}
	if s := probe(nil, nil); s != queuescli.DefaultDSN {
		t.Errorf("default: %q", s)
	}
	if s := probe(nil, map[string]string{queuescli.EnvDSN: "sqlite:dsn.db"}); s != "sqlite:dsn.db" {
		t.Errorf("QUEUES_DSN: %q", s)
	}
	if s := probe(nil, map[string]string{queuescli.EnvDSN: "sqlite:dsn.db", queuescli.EnvBackend: "sqlite:backend.db"}); s != "sqlite:backend.db" {
		t.Errorf("QUEUES_BACKEND wins: %q", s)
	}
	if s := probe([]string{"--dsn", "sqlite:flag.db"}, map[string]string{queuescli.EnvBackend: "sqlite:env.db"}); s != "sqlite:flag.db" {
		t.Errorf("--dsn beats env: %q", s)
	}
	if s := probe([]string{"--backend", "memory:"}, nil); s != "memory:" {
		t.Errorf("--backend: %q", s)
	}
}

func TestBenchMemory(t *testing.T) {
	code, stdout, stderr := run(t, queuescli.Options{}, "bench", "--backend", "memory", "--jobs", "2000", "--workers", "8", "--samples", "20", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkBenchJSON(t, stdout, "memory", 2000)

	code, stdout, stderr = run(t, queuescli.Options{}, "bench", "--backend", "memory:", "--jobs", "300", "--batch-size", "7", "--samples", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, p := range []string{"INSERT jobs=300 ", "WORK jobs=300 ", "client_cpu=", "LATENCY samples=5 "} {
		if !strings.Contains(stdout, p) {
			t.Errorf("text output lacks %q:\n%s", p, stdout)
		}
	}
}

func checkBenchJSON(t *testing.T, stdout, backend string, jobs int) {
	t.Helper()
	var rep map[string]any
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("bench --json: %v: %q", err, stdout)
	}
	for _, k := range []string{"backend", "jobs", "workers", "prefetch", "batch_size", "insert_jobs_per_sec", "work_jobs_per_sec", "work_client_cpu_us_per_job", "latency_ms", "samples"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("bench --json lacks %q: %s", k, stdout)
		}
	}
	if rep["backend"] != backend || rep["jobs"] != float64(jobs) {
		t.Errorf("backend/jobs: %v", rep)
	}
	if cpu, _ := rep["work_client_cpu_us_per_job"].(float64); runtime.GOOS != "windows" && cpu <= 0 {
		t.Errorf("work_client_cpu_us_per_job = %v, want > 0", rep["work_client_cpu_us_per_job"])
	}
	lat, _ := rep["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p95", "p99", "max"} {
		if v, ok := lat[k].(float64); !ok || v <= 0 {
			t.Errorf("latency_ms.%s = %v", k, lat[k])
		}
	}
	for _, k := range []string{"insert_jobs_per_sec", "work_jobs_per_sec"} {
		if v, _ := rep[k].(float64); v <= 0 {
			t.Errorf("%s = %v", k, rep[k])
		}
	}
}

func TestDemoTasks(t *testing.T) {
	reg := demoRegistry(t)
	t.Setenv(queuescli.EnvDemoTrace, filepath.Join(t.TempDir(), "trace"))
	svc := newImmediateService(t, reg)
	ctx := context.Background()
	cases := []struct {
		task, args string
		retries    *int
		status     queues.Status
		result     string
	}{
		{queuescli.DemoNoop, `{}`, nil, queues.StatusCompleted, `{}`},
		{queuescli.DemoNoop, `{"anything":[1,2]}`, nil, queues.StatusCompleted, `{}`},
		{queuescli.DemoEcho, `{"a":1,"b":"x"}`, nil, queues.StatusCompleted, `{"a":1,"b":"x"}`},
		{queuescli.DemoSleep, `{"ms":5}`, nil, queues.StatusCompleted, `{"slept_ms":5}`},
		{queuescli.DemoSleep, `{"ms":-1}`, nil, queues.StatusFailed, ``},
		{queuescli.DemoFail, `{"times":2}`, nil, queues.StatusCompleted, `{"failures":2}`},
		{queuescli.DemoFail, `{"times":3}`, queues.Ptr(1), queues.StatusFailed, ``},
		{queuescli.DemoFail, `{"times":0}`, nil, queues.StatusCompleted, `{"failures":0}`},
	}
	for _, c := range cases {
		res, err := svc.EnqueueRaw(ctx, c.task, json.RawMessage(c.args), queues.EnqueueOptions{Retries: c.retries})
		if err != nil {
			t.Fatalf("%s %s: %v", c.task, c.args, err)
		}
		rec := res.Record()
		if rec.Status != c.status {
			t.Errorf("%s %s: status %s (%s), want %s", c.task, c.args, rec.Status, rec.Error, c.status)
		}
		if c.result != "" && string(rec.Result) != c.result {
			t.Errorf("%s %s: result %s, want %s", c.task, c.args, rec.Result, c.result)
		}
	}
}

func newImmediateService(t *testing.T, reg *queues.Registry) *queues.Service {
	t.Helper()
	svc, err := queues.New(queues.Config{Backend: memoryBackend(), Registry: reg, ExecutionBackend: queues.ExecutionImmediate})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

func memoryBackend() driver.Backend { return memory.New(memory.Options{}) }
