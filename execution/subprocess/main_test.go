//go:build unix

package subprocess_test

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the child program: with SP_TEST_CHILD set in
// its environment (the executor's Options.Env), TestMain runs the child
// instead of the tests, so every test launches real processes without
// needing a Go toolchain at run time.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SP_TEST_CHILD"); mode != "" {
		os.Exit(runChild(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runChild is the child side. Args are "run-task --task-id <uuid>".
func runChild(mode string, args []string) int {
	if len(args) != 3 || args[0] != "run-task" || args[1] != "--task-id" {
		fmt.Fprintf(os.Stderr, "child: unexpected args %q\n", args)
		return 90
	}
	id := args[2]
	if os.Getenv("QUEUES_TASK_ID") != id {
		fmt.Fprintf(os.Stderr, "child: QUEUES_TASK_ID %q, --task-id %q\n", os.Getenv("QUEUES_TASK_ID"), id)
		return 91
	}
	switch mode {
	case "hold":
		return holdChild(id)
	case "consume":
		return consumeChild(id)
	}
	return 92
}

// holdChild announces itself in <SP_DIR>/<pid>.started, then waits until the
// test writes an exit code into <pid>.exit, or until SIGTERM, which it
// acknowledges in <pid>.term and answers with exit code 7 (cancelled). It
// gives up after 60s so no child outlives a test run.
func holdChild(id string) int {
	dir := os.Getenv("SP_DIR")
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	pid := strconv.Itoa(os.Getpid())
	_ = os.WriteFile(filepath.Join(dir, pid+".started"), []byte(id), 0o644)
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-term:
			_ = os.WriteFile(filepath.Join(dir, pid+".term"), nil, 0o644)
			return 7
		case <-deadline:
			return 93
		case <-tick.C:
			b, err := os.ReadFile(filepath.Join(dir, pid+".exit"))
			if err != nil || len(b) == 0 {
				continue // not written yet
			}
			code, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				return 94
			}
			return code
		}
	}
}
