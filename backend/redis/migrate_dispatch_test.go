package redis

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/execution/dispatch"
	"github.com/queuesgo/queues/queuestype"
)

// TestMigrateLayout2DispatchUntil builds a layout-2 prefix (a reservation
// is only its marker in execution_ref), migrates it and checks the reserved
// records got dispatch_until = the marker's deadline and are still left
// alone by claims, ListPending and ListStale, while the other records got
// none.
func TestMigrateLayout2DispatchUntil(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	enq := func(name string) *queuestype.Record {
		t.Helper()
		outs, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: name, ExecutionBackend: "cloudrun"}})
		if err != nil || outs[0].Err != nil {
			t.Fatalf("Enqueue(%s): %v %+v", name, err, outs)
		}
		return outs[0].Record
	}
	lease := 10 * time.Minute
	marker := dispatch.NewMarker(time.Now(), lease)
	deadline, ok := dispatch.MarkerDeadline(marker)
	if !ok {
		t.Fatalf("set-up: %q is not a marker", marker)
	}

	reserved := enq("mig.reserved")
	plain := enq("mig.plain")
	withRef := enq("mig.ref")
	cancelled := enq("mig.cancelled")
	running := enq("mig.running")

	// A layout-2 reservation: the marker in execution_ref, kept out of the
	// ready set, no dispatch_until.
	if _, err := b.ReserveDispatch(ctx, driver.ReserveDispatchParams{ID: reserved.ID, Marker: marker, Until: deadline}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetExecutionRef(ctx, withRef.ID, "cloudrun:exec-1"); err != nil {
		t.Fatal(err)
	}
	// A cancelled record that still holds a marker: terminal, reserved for
	// nothing.
	if _, err := b.ReserveDispatch(ctx, driver.ReserveDispatchParams{ID: cancelled.ID, Marker: dispatch.NewMarker(time.Now(), lease), Until: deadline}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Cancel(ctx, driver.CancelParams{ID: cancelled.ID}); err != nil {
		t.Fatal(err)
	}
	// A running record whose ref is a marker: layout 2 left it out of
	// ListStale.
	if res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: running.ID, WorkerID: "w1"}); err != nil || len(res.Claimed) != 1 {
		t.Fatalf("ClaimByID: %v %+v", err, res)
	}
	runMarker := dispatch.NewMarker(time.Now(), 2*lease)
	runDeadline, _ := dispatch.MarkerDeadline(runMarker)
	if _, err := b.SetExecutionRef(ctx, running.ID, runMarker); err != nil {
		t.Fatal(err)
	}
	all := []*queuestype.Record{reserved, plain, withRef, cancelled, running}
	for _, r := range all {
		if err := admin.HDel(ctx, b.taskKey(r.ID), "dispatch_until").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Set(ctx, b.prefix+":version", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}

	rep, err := b.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil || !reflect.DeepEqual(rep.Pending, []string{migrationDispatch}) ||
		!reflect.DeepEqual(rep.Applied, []string{migrationLayout, migrationPolicy}) {
		t.Fatalf("Migrate(dry run) on layout 2 = %+v, %v", rep, err)
	}
	if v := admin.HGet(ctx, b.taskKey(reserved.ID), "dispatch_until").Val(); v != "" {
		t.Fatalf("a dry run wrote dispatch_until %q", v)
	}
	rep, err = b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || !reflect.DeepEqual(rep.AppliedNow, []string{migrationDispatch}) || len(rep.Applied) != 3 {
		t.Fatalf("Migrate on layout 2 = %+v, %v", rep, err)
	}
	if v := admin.Get(ctx, b.prefix+":version").Val(); v != LayoutVersion {
		t.Fatalf("layout version after migration = %q, want %q", v, LayoutVersion)
	}

	want := map[uuid.UUID]time.Time{reserved.ID: deadline, running.ID: runDeadline}
	check := func(label string) {
		t.Helper()
		for _, r := range all {
			got, err := b.GetTask(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.DispatchUntil.Equal(want[r.ID]) {
				t.Errorf("%s: %s dispatch_until = %v, want %v", label, got.TaskName, got.DispatchUntil, want[r.ID])
			}
		}
	}
	check("after migration")

	// A second run (a migration cut short) changes nothing.
	before := map[uuid.UUID]map[string]string{}
	for _, r := range all {
		before[r.ID] = admin.HGetAll(ctx, b.taskKey(r.ID)).Val()
	}
	if err := admin.Set(ctx, b.prefix+":version", layoutMigratingDispatch, 0).Err(); err != nil {
		t.Fatal(err)
	}
	rep, err = b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || !reflect.DeepEqual(rep.AppliedNow, []string{migrationDispatch}) {
		t.Fatalf("Migrate on a migration cut short = %+v, %v", rep, err)
	}
	for _, r := range all {
		if got := admin.HGetAll(ctx, b.taskKey(r.ID)).Val(); !reflect.DeepEqual(got, before[r.ID]) {
			t.Errorf("%s changed on a second run: %v → %v", r.TaskName, before[r.ID], got)
		}
	}
	check("after a second run")

	// The reserved record is still left alone.
	pend, err := b.ListPending(ctx, driver.ListPendingParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pend {
		if r.ID == reserved.ID {
			t.Fatal("ListPending lists the migrated reserved record")
		}
	}
	if res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: reserved.ID, WorkerID: "w2"}); err != nil || len(res.Claimed)+len(res.Expired) != 0 {
		t.Fatalf("ClaimByID(reserved) = %+v, %v; want nothing", res, err)
	}
	stale, err := b.ListStale(ctx, -1, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range stale {
		if r.ID == running.ID {
			t.Fatal("ListStale lists the migrated running record holding a marker")
		}
	}
	res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 100, WorkerID: "w2", ExpireOverdue: true})
	if err != nil {
		t.Fatal(err)
	}
	claimed := map[uuid.UUID]bool{}
	for _, r := range res.Claimed {
		claimed[r.ID] = true
	}
	if claimed[reserved.ID] || !claimed[plain.ID] || !claimed[withRef.ID] || len(res.Claimed) != 2 {
		t.Fatalf("ClaimMany after migration claimed %v; want the plain and the ref record only", claimed)
	}

	// Releasing the migrated reservation makes the record claimable again.
	rel, err := b.ReleaseDispatch(ctx, driver.ReleaseDispatchParams{ID: reserved.ID, Marker: marker})
	if err != nil || !rel.DispatchUntil.IsZero() || rel.ExecutionRef != "" {
		t.Fatalf("ReleaseDispatch after migration = %+v, %v", rel, err)
	}
	if res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: reserved.ID, WorkerID: "w2"}); err != nil || len(res.Claimed) != 1 {
		t.Fatalf("ClaimByID(released) = %+v, %v", res, err)
	}
}

// TestReserveDispatchZeroUntil checks a reservation without a deadline is
// refused and changes nothing.
func TestReserveDispatchZeroUntil(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	outs, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "zero.until"}})
	if err != nil || outs[0].Err != nil {
		t.Fatalf("Enqueue: %v %+v", err, outs)
	}
	id := outs[0].Record.ID
	_, err = b.ReserveDispatch(ctx, driver.ReserveDispatchParams{ID: id, Marker: dispatch.NewMarker(time.Now(), 0)})
	if err == nil {
		t.Fatal("ReserveDispatch without Until succeeded")
	}
	got, err := b.GetTask(ctx, id)
	if err != nil || got.ExecutionRef != "" || !got.DispatchUntil.IsZero() {
		t.Fatalf("record after a refused reservation = %+v, %v", got, err)
	}
}
