package queuescli_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queuescli"
)

// envHelper makes the test binary act as a command tree whose registry
// lacks the scheduler canary (TestSchedulerHealthHelperProcess).
const envHelper = "QUEUESCLI_TEST_NO_CANARY"

// TestSchedulerHealthHelperProcess is not a test: run by
// TestSchedulerHealthNotRegisteredProcess as a child process, it runs the
// command line after "--" on a tree with one task that is not the canary,
// and exits with the command's code.
func TestSchedulerHealthHelperProcess(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper process only")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "app.only", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil })
	os.Exit(queuescli.Run(context.Background(), queuescli.New(queuescli.Options{Registry: reg}), args))
}

// TestSchedulerHealthNotRegisteredProcess runs scheduler-health in a
// process whose binary does not register the canary: exit 3 and one error
// line naming it.
func TestSchedulerHealthNotRegisteredProcess(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "q.db")
	if code, _, stderr := run(t, queuescli.Options{}, "migrate", "--backend", db); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSchedulerHealthHelperProcess$", "--", "scheduler-health", "--backend", db)
	cmd.Env = append(os.Environ(), envHelper+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != queuescli.ExitCanaryNotRegistered {
		t.Fatalf("scheduler-health without the canary: %v; stdout %q, stderr %q; want exit %d", err, out.String(), errb.String(), queuescli.ExitCanaryNotRegistered)
	}
	if want := "error: the scheduler canary queues.scheduler_canary is not registered\n"; errb.String() != want || out.Len() != 0 {
		t.Fatalf("stdout %q, stderr %q; want only %q on stderr", out.String(), errb.String(), want)
	}
}

// TestSchedulerHealthInProcess covers the exit codes through queuescli.Run:
// 3 without the canary, 4 with it and no completion, 1 for a bad window.
func TestSchedulerHealthInProcess(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "q.db")
	if code, _, stderr := run(t, queuescli.Options{}, "migrate", "--backend", db); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	code, out, stderr := run(t, queuescli.Options{Registry: queues.NewRegistry()}, "scheduler-health", "--backend", db)
	if code != queuescli.ExitCanaryNotRegistered || out != "" || !strings.Contains(stderr, "not registered") {
		t.Errorf("empty registry: exit %d, %q, %q", code, out, stderr)
	}
	code, out, stderr = run(t, queuescli.Options{}, "scheduler-health", "--backend", db, "--minutes", "30")
	if code != queuescli.ExitSchedulerStale || out != "" || !strings.HasPrefix(stderr, "stale: no queues.scheduler_canary completion within 30m window since ") {
		t.Errorf("no completion: exit %d, %q, %q", code, out, stderr)
	}
	code, _, stderr = run(t, queuescli.Options{}, "scheduler-health", "--backend", db, "--minutes", "0")
	if code != 1 || !strings.HasPrefix(stderr, "error: --minutes: minutes must be 1..") {
		t.Errorf("--minutes 0: exit %d, %q", code, stderr)
	}
}
