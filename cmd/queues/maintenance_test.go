package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/backend/dsn"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/maintenance"
)

// run-maintenance's exit codes, as a real process: 0 completed, 0 when
// another process holds the maintenance lock (already_running), 2 partial
// (a budget spent before the phase starts), 1 for the process-local memory
// backend, a configuration error and an unknown phase.
func TestRunMaintenanceExitCodes(t *testing.T) {
	e := newEnv(t)
	e.mustRun("migrate")
	report := func(args ...string) (int, maintenance.Outcome, string) {
		t.Helper()
		code, out, stderr := e.run(append([]string{"run-maintenance", "--json"}, args...)...)
		var rep struct {
			Outcome maintenance.Outcome `json:"outcome"`
		}
		if out != "" {
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("run-maintenance %v: %v: %q", args, err, out)
			}
		}
		return code, rep.Outcome, stderr
	}
	if code, outcome, stderr := report(); code != 0 || outcome != maintenance.OutcomeCompleted {
		t.Fatalf("completed run: exit %d, outcome %q: %s", code, outcome, stderr)
	}
	if code, outcome, stderr := report("--time-budget", "1ns"); code != 2 || outcome != maintenance.OutcomePartial {
		t.Fatalf("partial run: exit %d, outcome %q: %s", code, outcome, stderr)
	}

	// Another process holds the lock.
	ctx := context.Background()
	b, err := dsn.Open(ctx, e.dsn())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close(ctx) }()
	l := b.(driver.Locker)
	if ok, err := l.AcquireLock(ctx, "queue-maintenance", "held-by-test", time.Minute); err != nil || !ok {
		t.Fatalf("AcquireLock: %v %v", ok, err)
	}
	if code, outcome, stderr := report(); code != 0 || outcome != maintenance.OutcomeAlreadyRunning {
		t.Fatalf("locked run: exit %d, outcome %q: %s", code, outcome, stderr)
	}
	if _, err := l.ReleaseLock(ctx, "queue-maintenance", "held-by-test"); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--backend", "memory"}, "error: process-local backend"},
		{[]string{"--namespace", "Bad"}, "error: maintenance_open_failed:config"},
		{[]string{"--phase", "vacuum"}, `error: unknown maintenance phase "vacuum"`},
	} {
		code, outcome, stderr := report(c.args...)
		if code != 1 || outcome != "" || !strings.Contains(stderr, c.want) {
			t.Fatalf("run-maintenance %v: exit %d, outcome %q, stderr %q; want exit 1 and %q", c.args, code, outcome, stderr, c.want)
		}
	}
}

// `queues run --help` states the retention defaults and how to turn them off.
func TestRunHelpStatesRetention(t *testing.T) {
	e := newEnv(t)
	out := strings.Join(strings.Fields(e.mustRun("run", "--help")), " ")
	for _, want := range []string{"deletes completed and cancelled records 24h after they ended and failed and expired ones after 7 days",
		"--maintenance-interval off"} {
		if !strings.Contains(out, want) {
			t.Fatalf("run --help lacks %q:\n%s", want, out)
		}
	}
}
