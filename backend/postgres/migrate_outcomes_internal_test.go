package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// TestMigrateSnoozeErrors builds the schema of the previous version (0001
// to 0005) holding a record in every status, runs Migrate and checks that
// it applies 0006_snooze_errors only, that every record reads back with no
// snoozes, no error history and its budget unchanged, and that a migrated
// running record takes a snooze and a history.
func TestMigrateSnoozeErrors(t *testing.T) {
	b, pool := unmigratedBackend(t)
	ctx := t.Context()
	applyFirstMigrations(t, b, pool, 5, "0006_snooze_errors")

	ids := seedEveryStatus(t, b, pool, 2)
	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !slices.Equal(rep.AppliedNow, []string{"0006_snooze_errors", "0007_tags"}) {
		t.Fatalf("Migrate applied %v; want [0006_snooze_errors 0007_tags]", rep.AppliedNow)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	for _, s := range queuestype.AllStatuses {
		rec, err := b.GetTask(ctx, ids[s])
		if err != nil {
			t.Fatalf("GetTask %s: %v", s, err)
		}
		if rec.Status != s || rec.SnoozeCount != 0 || rec.Errors != nil || rec.RetryCount != 2 || rec.AttemptsConsumed() != 1 {
			t.Errorf("%s: record after the migration = %+v", s, rec)
		}
	}
	h := []queuestype.AttemptError{{Attempt: 3, At: time.Now().UTC(), Error: "boom", WorkerID: "old-worker"}}
	res, err := b.Settle(ctx, []driver.Transition{{ID: ids[queuestype.StatusRunning], Generation: 2, To: queuestype.StatusPending,
		Snoozed: true, Errors: h}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("Settle on a migrated record: %v %v", err, res)
	}
	if got := res[0].Record; got.SnoozeCount != 1 || len(got.Errors) != 1 || got.Errors[0].Error != "boom" || got.AttemptsConsumed() != 1 {
		t.Fatalf("migrated record after a snooze = %+v", got)
	}
}
