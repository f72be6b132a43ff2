package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// legacyMarker is a reservation marker as the previous code wrote it into
// execution_ref, the only place it kept a reservation.
func legacyMarker(deadline int64) string {
	return fmt.Sprintf("__queues_dispatching__:%d:%s", deadline, uuid.NewString())
}

// TestMigrateDispatchUntil builds a file with the previous schema
// (migrations 0001 and 0002), writes reserved records the way the previous
// code did (a marker in execution_ref, nothing else) next to ordinary ones,
// opens it (which applies 0003) and checks that the reserved records carry
// their marker's deadline as DispatchUntil and are still skipped by claims,
// listings and the expiry sweep, and that no other record is reserved.
func TestMigrateDispatchUntil(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	deadline := time.Now().Add(10 * time.Minute).Unix()
	past := time.Now().Add(-time.Hour).UnixMicro()

	type row struct {
		name    string
		status  queuestype.Status
		ref     string
		expires any
		until   time.Time // the DispatchUntil wanted after the migration
	}
	marker := legacyMarker(deadline)
	rows := []row{
		{name: "reserved", status: queuestype.StatusPending, ref: marker, until: time.Unix(deadline, 0).UTC()},
		{name: "reserved-overdue", status: queuestype.StatusPending, ref: legacyMarker(deadline + 60), expires: past,
			until: time.Unix(deadline+60, 0).UTC()},
		{name: "reserved-running", status: queuestype.StatusRunning, ref: legacyMarker(deadline), until: time.Unix(deadline, 0).UTC()},
		// A marker whose deadline does not parse stays reserved, already
		// past its deadline.
		{name: "reserved-malformed", status: queuestype.StatusPending, ref: "__queues_dispatching__:soon:" + uuid.NewString(),
			until: time.UnixMicro(0).UTC()},
		{name: "reserved-no-colon", status: queuestype.StatusPending, ref: "__queues_dispatching__:123", until: time.UnixMicro(0).UTC()},
		{name: "plain", status: queuestype.StatusPending},
		{name: "provider-ref", status: queuestype.StatusPending, ref: "cloudrun:exec-1"},
		// Prefix tests are exact: neither case nor underscores as wildcards.
		{name: "lookalike-case", status: queuestype.StatusPending, ref: "__QUEUES_DISPATCHING__:" + fmt.Sprint(deadline) + ":x"},
		{name: "lookalike-wildcard", status: queuestype.StatusPending, ref: "xxqueuesxdispatchingxx:" + fmt.Sprint(deadline) + ":x"},
		{name: "running", status: queuestype.StatusRunning},
		{name: "completed", status: queuestype.StatusCompleted},
	}
	ids := make(map[string]uuid.UUID, len(rows))
	writePreviousDispatchSchema(t, path, func(db *sql.DB, now int64) {
		const insert = `INSERT INTO queue_task (id, task_name, queue, execution_backend, execution_ref, worker_id, status,
created_at, queued_at, started_at, heartbeat_at, completed_at, expires_at) VALUES (?, ?, 'default', 'local', ?, ?, ?, ?, ?, ?, ?, ?, ?)`
		for i, r := range rows {
			id := uuid.New()
			ids[r.name] = id
			var ref, worker, started, heartbeat, completed any
			if r.ref != "" {
				ref = r.ref
			}
			switch r.status {
			case queuestype.StatusRunning:
				// Long stale: a heartbeat an hour old.
				worker, started, heartbeat = "old-worker", past, past
			case queuestype.StatusCompleted:
				worker, started, completed = "old-worker", past, past
			}
			// Older records first, so that a claim would reach the
			// reserved ones before the plain one.
			at := now - int64(len(rows)-i)
			if _, err := db.ExecContext(ctx, insert, id.String(), r.name, ref, worker, string(r.status), at, at,
				started, heartbeat, completed, r.expires); err != nil {
				t.Fatalf("insert %s: %v", r.name, err)
			}
		}
	})

	b, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	dry, err := b.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dry.Applied, []string{"0001_create_queue_tasks", "0002_task_policy"}) ||
		!slices.Equal(dry.Pending, []string{"0003_dispatch_until", "0004_workers", "0005_schedule_pauses", "0006_snooze_errors", "0007_tags"}) {
		t.Fatalf("DryRun on the previous schema = %+v", dry)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open (migrates): %v", err)
	}
	if got := queueStrings(t, b, `SELECT version FROM queue_migration ORDER BY version`); !slices.Equal(got, sqlite.Versions()) {
		t.Fatalf("applied = %v, want %v", got, sqlite.Versions())
	}

	for _, r := range rows {
		rec, err := b.GetTask(ctx, ids[r.name])
		if err != nil {
			t.Fatalf("GetTask %s: %v", r.name, err)
		}
		if !rec.DispatchUntil.Equal(r.until) || rec.DispatchUntil.IsZero() != r.until.IsZero() {
			t.Errorf("%s: DispatchUntil %v, want %v", r.name, rec.DispatchUntil, r.until)
		}
		if rec.ExecutionRef != r.ref || rec.Status != r.status {
			t.Errorf("%s: ref %q status %s, want %q %s", r.name, rec.ExecutionRef, rec.Status, r.ref, r.status)
		}
	}

	// Claims, listings and the sweep still skip the reserved records.
	reserved := []uuid.UUID{ids["reserved"], ids["reserved-overdue"], ids["reserved-malformed"], ids["reserved-no-colon"]}
	pending, err := b.ListPending(ctx, driver.ListPendingParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got := recordIDs(pending); !sameIDs(got, []uuid.UUID{ids["plain"], ids["provider-ref"], ids["lookalike-case"], ids["lookalike-wildcard"]}) {
		t.Fatalf("ListPending = %v", got)
	}
	for _, id := range reserved {
		res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: id, WorkerID: "w"})
		if err != nil || len(res.Claimed) != 0 || len(res.Expired) != 0 {
			t.Fatalf("ClaimByID of reserved %s = %+v, %v; want nothing", id, res, err)
		}
	}
	expired, err := b.ExpireOverdue(ctx, 100)
	if err != nil || len(expired) != 0 {
		t.Fatalf("ExpireOverdue = %v, %v; want nothing", recordIDs(expired), err)
	}
	stale, err := b.ListStale(ctx, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := recordIDs(stale); !slices.Equal(got, []uuid.UUID{ids["running"]}) {
		t.Fatalf("ListStale = %v, want only the unreserved running record %s", got, ids["running"])
	}
	claimed, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 100, WorkerID: "w", ExpireOverdue: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := recordIDs(claimed.Claimed); !sameIDs(got, []uuid.UUID{ids["plain"], ids["provider-ref"], ids["lookalike-case"], ids["lookalike-wildcard"]}) ||
		len(claimed.Expired) != 0 {
		t.Fatalf("ClaimMany claimed %v expired %v; want the four unreserved pending records", got, recordIDs(claimed.Expired))
	}

	// A migrated reservation is released by its marker, like a new one.
	rel, err := b.ReleaseDispatch(ctx, driver.ReleaseDispatchParams{ID: ids["reserved"], Marker: marker})
	if err != nil {
		t.Fatal(err)
	}
	if !rel.DispatchUntil.IsZero() || rel.ExecutionRef != "" {
		t.Fatalf("released: DispatchUntil %v ref %q", rel.DispatchUntil, rel.ExecutionRef)
	}
	res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: ids["reserved"], WorkerID: "w"})
	if err != nil || len(res.Claimed) != 1 {
		t.Fatalf("ClaimByID after release = %+v, %v", res, err)
	}

	// Opening again applies nothing.
	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || len(rep.AppliedNow) != 0 {
		t.Fatalf("second Migrate = %+v, %v", rep, err)
	}
}

// writePreviousDispatchSchema creates path with the schema of migrations
// 0001 and 0002 (recorded in the ledger as the previous code did) and lets
// fill write its records.
func writePreviousDispatchSchema(t *testing.T, path string, fill func(db *sql.DB, now int64)) {
	t.Helper()
	writeSchema(t, path, []string{"0001_create_queue_tasks", "0002_task_policy"}, fill)
}

func recordIDs(recs []*queuestype.Record) []uuid.UUID {
	out := make([]uuid.UUID, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// sameIDs reports whether a and b hold the same IDs in any order.
func sameIDs(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	for _, id := range b {
		if !slices.Contains(a, id) {
			return false
		}
	}
	return true
}
