package main

import (
	"context"
	"database/sql"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queuescli"
)

// TestSchedulerHealthExitCodes runs `queues scheduler-health` as a process
// on a SQLite file: exit 4 with the stale line on stderr before the canary
// ever completed, exit 0 with the healthy line once run-task completed it,
// exit 4 again when that completion is older than the window (moved back in
// the file), exit 0 with a window that reaches it, exit 1 for a bad window
// and for the process-local memory backend. (Exit 3, a binary without the
// canary, is TestSchedulerHealthNotRegisteredProcess in queuescli: this
// binary always registers it.)
func TestSchedulerHealthExitCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustRun("migrate")

	stale := regexp.MustCompile(`^stale: no queues\.scheduler_canary completion within (\d+)m window since (\S+)\n$`)
	wantStale := func(minutes string, args ...string) {
		t.Helper()
		before := time.Now()
		code, out, stderr := e.run(append([]string{"scheduler-health"}, args...)...)
		m := stale.FindStringSubmatch(stderr)
		if code != 4 || out != "" || m == nil || m[1] != minutes {
			t.Fatalf("scheduler-health %v: exit %d, stdout %q, stderr %q; want exit 4 and the stale line for %sm", args, code, out, stderr, minutes)
		}
		since, err := time.Parse(time.RFC3339, m[2])
		if err != nil {
			t.Fatalf("stale line's time %q: %v", m[2], err)
		}
		if want := before.Add(-mustDuration(t, minutes+"m")); since.Before(want.Add(-time.Second)) || since.After(time.Now()) {
			t.Fatalf("stale since %v; want about %v", since, want)
		}
	}
	wantStale("5")

	rec := decodeRecord(t, e.mustRun("enqueue", queues.SchedulerCanaryTask, "--json"))
	e.mustRun("run-task", "--task-id", rec.ID.String())
	done := decodeRecord(t, e.mustRun("get", rec.ID.String(), "--json"))
	if done.Status != queues.StatusCompleted {
		t.Fatalf("canary after run-task: %s", done.Status)
	}
	healthy := "healthy: queues.scheduler_canary completed " + done.CompletedAt.UTC().Format(time.RFC3339) + "\n"
	for _, args := range [][]string{{"scheduler-health"}, {"scheduler-health", "--minutes", "1"}} {
		if code, out, stderr := e.run(args...); code != 0 || out != healthy || stderr != "" {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want exit 0 and %q", args, code, out, stderr, healthy)
		}
	}

	// Move the completion ten minutes back, as if the scheduler stopped.
	db, err := sql.Open("sqlite", e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), `UPDATE queue_task SET completed_at = completed_at - ? WHERE id = ?`,
		int64(10*time.Minute/time.Microsecond), rec.ID.String()); err != nil {
		t.Fatal(err)
	}
	wantStale("5")
	wantStale("9", "--minutes", "9")
	if code, out, _ := e.run("scheduler-health", "--minutes", "11"); code != 0 || !strings.HasPrefix(out, "healthy: queues.scheduler_canary completed ") {
		t.Fatalf("--minutes 11: exit %d, %q; want healthy", code, out)
	}

	for _, bad := range [][]string{
		{"scheduler-health", "--minutes", "0"},
		{"scheduler-health", "--minutes", "x"},
		{"scheduler-health", "--backend", "memory:"},
	} {
		code, out, stderr := e.run(bad...)
		if code != 1 || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want exit 1", bad, code, out)
		}
		assertOneErrorLine(t, stderr)
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// With QUEUES_SCHEDULER_CANARY set, `queues run` keeps the canary on its
// schedule and scheduler-health turns healthy without anything enqueued by
// hand.
func TestSchedulerCanaryRunsOnItsSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustRun("migrate")
	e.extra = append(e.extra, queuescli.EnvSchedulerCanary+"=200ms")
	if code, _, _ := e.run("scheduler-health"); code != 4 {
		t.Fatalf("scheduler-health before any worker: exit %d, want 4", code)
	}
	p := e.start("run")
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, stderr := e.run("scheduler-health", "--minutes", "1")
		if code == 0 {
			if !strings.HasPrefix(out, "healthy: "+queues.SchedulerCanaryTask+" completed ") {
				t.Fatalf("scheduler-health: %q", out)
			}
			break
		}
		if code != 4 {
			t.Fatalf("scheduler-health: exit %d: %s", code, stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scheduled canary did not complete within 15s\nworker stderr: %s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("queues run exited %d after SIGTERM\nstderr: %s", code, p.stderr.String())
	}
}
