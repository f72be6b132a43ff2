package queuescli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queuescli"
)

func TestSchedulesCommands(t *testing.T) {
	store := sharedMemory{memory.New(memory.Options{})}
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "job", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil },
		queues.TaskOptions{Schedule: &queues.Schedule{Interval: time.Hour}})
	opts := useBackend(store)
	opts.Registry = reg
	db := migratedSQLite(t) // parsed, not used: Config supplies the store
	run := func(t *testing.T, opts queuescli.Options, args ...string) (int, string, string) {
		return run(t, opts, append(args, "--backend", db)...)
	}
	code, out, stderr := run(t, opts, "schedules")
	if code != 0 || !strings.Contains(out, "job") || !strings.Contains(out, "every 1h0m0s") {
		t.Fatalf("schedules: exit %d\n%s%s", code, out, stderr)
	}
	// No worker synced yet: trigger enqueues one due now.
	code, out, stderr = run(t, opts, "schedules", "trigger", "job")
	if code != 0 || !strings.Contains(out, "triggered") {
		t.Fatalf("trigger: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr = run(t, opts, "schedules", "pause", "job"); code != 0 || out != "schedule job paused\n" {
		t.Fatalf("pause: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = run(t, opts, "schedules", "--json")
	var list []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0]["paused"] != true ||
		list[0]["active"] != nil || list[0]["last"] == nil {
		t.Fatalf("schedules --json: exit %d\n%s", code, out)
	}
	if code, out, stderr = run(t, opts, "schedules", "resume", "job"); code != 0 || out != "schedule job resumed\n" {
		t.Fatalf("resume: exit %d\n%s%s", code, out, stderr)
	}
	code, _, stderr = run(t, opts, "schedules", "pause", "nope")
	if code == 0 || !strings.Contains(oneErrorLine(t, stderr), `no schedule named "nope"`) {
		t.Fatalf("unknown: exit %d %s", code, stderr)
	}
}
