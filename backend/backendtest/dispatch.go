package backendtest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// testDispatch covers execution refs and the external dispatch fences.
func testDispatch(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"SetExecutionRefListsRunningExternal", setRefListsRunningExternal},
		{"ListRunningExternalFilterAndLimit", listRunningExternalFilterAndLimit},
		{"ListRunningExternalOrder", listRunningExternalOrder},
		{"ReserveDispatchGenerationFence", reserveDispatchGenerationFence},
		{"ClaimByIDGenerationAndRefFences", claimByIDFences},
		{"ClearAndReplaceRefFences", clearAndReplaceRefFences},
		{"ReserveDispatchRejects", reserveDispatchRejects},
		{"ExpirySweepIgnoresReservedThenRelease", expirySweepIgnoresReserved},
		{"ReservedRecordNotClaimed", reservedRecordNotClaimed},
		{"FinalizeSupersededReservation", finalizeSuperseded},
		{"ReservedPastDeadlineKept", reservedPastDeadlineKept},
		{"FinalizedRefClaimableAfterExpiry", finalizedRefClaimableAfterExpiry},
		{"FinalizeAfterCancel", finalizeAfterCancel},
		{"FailExpectedRef", failExpectedRef},
		{"FailExpectedRefOnRunning", failExpectedRefOnRunning},
		{"ReleaseDispatchReroutes", releaseDispatchReroutes},
		{"SetExecutionBackendReroutes", setExecutionBackendReroutes},
		{"SetExecutionRefTerminalOrMissing", setExecutionRefTerminal},
		{"ReservationIsAField", reservationIsAField},
	})
}

// A reservation is the record's dispatch_until, set by ReserveDispatch and
// cleared by Release and Finalize; the store never reads the marker's text,
// so an ordinary ref that happens to look like a marker reserves nothing.
func reservationIsAField(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("resv.field", execution("cloudrun", "")), item("resv.final", execution("cloudrun", "")),
		item("resv.lookalike", execution("cloudrun", "")))
	until := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)
	m := newMarker(until)
	got := reserve(t, b, recs[0].ID, m)
	wantNear(t, "dispatch_until after ReserveDispatch", got.DispatchUntil, until, time.Second)
	wantString(t, "execution_ref holds the marker", got.ExecutionRef, m)
	wantStored(t, b, "reserved record", got)
	if containsID(listPending(t, b), recs[0].ID) {
		t.Fatal("ListPending lists a reserved record")
	}
	rel, err := disp(t, b).ReleaseDispatch(t.Context(), driver.ReleaseDispatchParams{ID: recs[0].ID, Marker: m})
	wantNoErr(t, "ReleaseDispatch", err)
	wantZeroTime(t, "dispatch_until after release", rel.DispatchUntil)
	wantStored(t, b, "released record", rel)

	m2 := newMarker(until)
	reserve(t, b, recs[1].ID, m2)
	ref := newRef("cloudrun")
	fin, err := disp(t, b).FinalizeDispatch(t.Context(), driver.FinalizeDispatchParams{ID: recs[1].ID, Marker: m2, Ref: ref})
	wantNoErr(t, "FinalizeDispatch", err)
	wantZeroTime(t, "dispatch_until after finalize", fin.DispatchUntil)
	wantString(t, "execution_ref after finalize", fin.ExecutionRef, ref)
	wantStored(t, b, "finalized record", fin)

	// A reservation needs a deadline.
	_, err = disp(t, b).ReserveDispatch(t.Context(), driver.ReserveDispatchParams{ID: recs[2].ID, Marker: newMarker(until)})
	if !errors.Is(err, queuestype.ErrConfig) {
		t.Fatalf("ReserveDispatch without Until: %v, want ErrConfig", err)
	}
	wantString(t, "execution_ref after a refused reservation", get(t, b, recs[2].ID).ExecutionRef, "")

	// A ref set by SetExecutionRef is an execution, never a reservation,
	// whatever its text.
	look := setRef(t, b, recs[2].ID, newMarker(until))
	wantZeroTime(t, "dispatch_until of a lookalike ref", look.DispatchUntil)
	wantStored(t, b, "lookalike record", look)
}

// After SetExecutionRef, ListRunningExternal returns the record
// with its ref; an unrelated local record stays pending.
func setRefListsRunningExternal(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("ext.cloud", execution("cloudrun", "")), item("ext.local"))
	ref := newRef("cloudrun")
	set := setRef(t, b, recs[0].ID, ref)
	wantStatus(t, "record after SetExecutionRef", set, queues.StatusPending)
	wantStored(t, b, "record after SetExecutionRef", set)
	list, err := disp(t, b).ListRunningExternal(t.Context(), 10)
	wantNoErr(t, "ListRunningExternal", err)
	wantIDs(t, "ListRunningExternal", list, recs[0].ID)
	wantString(t, "listed execution_ref", list[0].ExecutionRef, ref)
	local := get(t, b, recs[1].ID)
	wantStatus(t, "local record", local, queues.StatusPending)
	wantString(t, "local execution_ref", local.ExecutionRef, "")

	// The remote side claims it by ID; it stays listed while running.
	run := claimByID(t, b, recs[0].ID, workerA)
	wantString(t, "execution_ref after the claim", run.ExecutionRef, ref)
	list, err = disp(t, b).ListRunningExternal(t.Context(), 10)
	wantNoErr(t, "ListRunningExternal", err)
	wantIDs(t, "ListRunningExternal after the claim", list, recs[0].ID)
	wantStatus(t, "listed record", list[0], queues.StatusRunning)
}

// ListRunningExternal includes pending/scheduled records holding
// a ref and excludes ones without (and terminal ones); limit=1 → exactly 1; limit=0 → empty.
func listRunningExternalFilterAndLimit(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b,
		item("lre.pending", execution("cloudrun", "")),
		item("lre.scheduled", execution("cloudrun", ""), scheduledAt(at(time.Hour))),
		item("lre.noref", execution("cloudrun", "")),
		item("lre.done", execution("cloudrun", "")),
	)
	setRef(t, b, recs[0].ID, newRef("cloudrun"))
	setRef(t, b, recs[1].ID, newRef("cloudrun"))
	setRef(t, b, recs[3].ID, newRef("cloudrun"))
	complete(t, b, claimByID(t, b, recs[3].ID, workerA))

	list, err := disp(t, b).ListRunningExternal(t.Context(), 10)
	wantNoErr(t, "ListRunningExternal(10)", err)
	wantIDSet(t, "ListRunningExternal(10)", idsOf(list), recs[0].ID, recs[1].ID)
	one, err := disp(t, b).ListRunningExternal(t.Context(), 1)
	wantNoErr(t, "ListRunningExternal(1)", err)
	wantInt(t, "ListRunningExternal(1) length", len(one), 1)
	zero, err := disp(t, b).ListRunningExternal(t.Context(), 0)
	wantNoErr(t, "ListRunningExternal(0)", err)
	wantInt(t, "ListRunningExternal(0) length", len(zero), 0)
}

// externalOrder is the ListRunningExternal order: coalesce(started_at, created_at), id.
func externalOrder(a, b *queues.Record) int {
	ta, tb := a.StartedAt, b.StartedAt
	if ta.IsZero() {
		ta = a.CreatedAt
	}
	if tb.IsZero() {
		tb = b.CreatedAt
	}
	if c := ta.Compare(tb); c != 0 {
		return c
	}
	return compareUUID(a.ID, b.ID)
}

// ListRunningExternal orders by coalesce(started_at,
// created_at), id; equal-age records are ordered by ID under a limit.
func listRunningExternalOrder(t *testing.T, b driver.Backend) {
	// One Enqueue call (one backend timestamp on most stores) with IDs in
	// descending order, so equal-age records must come back by ascending ID.
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return compareUUID(b, a) })
	var items []driver.EnqueueParams
	for i, id := range ids {
		items = append(items, item("order."+string(rune('a'+i)), execution("cloudrun", ""), withID(id)))
	}
	recs := enqueue(t, b, items...)
	for _, r := range recs {
		setRef(t, b, r.ID, newRef("cloudrun"))
	}
	want := sortedIDs(storedAll(t, b, recs), externalOrder)
	two, err := disp(t, b).ListRunningExternal(t.Context(), 2)
	wantNoErr(t, "ListRunningExternal(2)", err)
	wantIDs(t, "ListRunningExternal(2)", two, want[:2]...)
	all, err := disp(t, b).ListRunningExternal(t.Context(), 10)
	wantNoErr(t, "ListRunningExternal(10)", err)
	wantIDs(t, "ListRunningExternal(10)", all, want...)

	// Claiming the first one moves it to its started_at, after the others' created_at.
	claimByID(t, b, want[0], workerA)
	want = sortedIDs(storedAll(t, b, recs), externalOrder)
	all, err = disp(t, b).ListRunningExternal(t.Context(), 10)
	wantNoErr(t, "ListRunningExternal after a claim", err)
	wantIDs(t, "ListRunningExternal after a claim", all, want...)
}

// ReserveDispatch with the wrong expected generation →
// ErrFenceLost; with the correct one → reserved.
func reserveDispatchGenerationFence(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("rd.fenced", execution("subprocess", "")), item("rd.unfenced", execution("subprocess", "")))
	m := newMarker(time.Now().Add(15 * time.Minute))
	_, err := disp(t, b).ReserveDispatch(t.Context(), driver.ReserveDispatchParams{ID: recs[0].ID, Marker: m, Until: untilOf(m), ExpectedRetryCount: ptr(1)})
	wantFenceLost(t, "ReserveDispatch(wrong generation)", err)
	wantString(t, "execution_ref after a lost reservation", get(t, b, recs[0].ID).ExecutionRef, "")
	got, err := disp(t, b).ReserveDispatch(t.Context(), driver.ReserveDispatchParams{ID: recs[0].ID, Marker: m, Until: untilOf(m), ExpectedRetryCount: ptr(0)})
	wantNoErr(t, "ReserveDispatch(right generation)", err)
	wantString(t, "execution_ref", got.ExecutionRef, m)
	wantStatus(t, "reserved record", got, queues.StatusPending)
	wantStored(t, b, "reserved record", got)
	reserve(t, b, recs[1].ID, newMarker(time.Now().Add(15*time.Minute))) // no generation fence
}

// ClaimByID with the wrong generation or wrong ref claims nothing.
func claimByIDFences(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("byid.ref", execution("rabbitmq", "")))
	ref := "rabbitmq:0:1700000000000:" + uuid.NewString()
	setRef(t, b, rec.ID, ref)
	res, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: rec.ID, WorkerID: workerA, ExpectedRetryCount: ptr(1)})
	wantNothingClaimed(t, "ClaimByID(wrong generation)", res, err)
	res, err = b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: rec.ID, WorkerID: workerA, ExpectedRef: ptr("rabbitmq:0:1:other")})
	wantNothingClaimed(t, "ClaimByID(wrong ref)", res, err)
	res, err = b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: rec.ID, WorkerID: workerA, ExpectedRetryCount: ptr(0), ExpectedRef: ptr("rabbitmq:0:1:other")})
	wantNothingClaimed(t, "ClaimByID(right generation, wrong ref)", res, err)
	got := get(t, b, rec.ID)
	wantStatus(t, "record after fenced claims", got, queues.StatusPending)
	wantString(t, "worker_id after fenced claims", got.WorkerID, "")

	res, err = b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: rec.ID, WorkerID: workerB, ExpectedRetryCount: ptr(0), ExpectedRef: ptr(ref)})
	wantNoErr(t, "ClaimByID(right generation and ref)", err)
	wantIDs(t, "claimed", res.Claimed, rec.ID)
	wantString(t, "worker_id", res.Claimed[0].WorkerID, workerB)
	wantString(t, "execution_ref kept by the claim", res.Claimed[0].ExecutionRef, ref)
}

// ClearExecutionRef/ReplaceExecutionRef need both generation and
// current ref; replace then clear succeed.
func clearAndReplaceRefFences(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("ref.swap", execution("nats", "")))
	r1, r2 := newRef("nats"), newRef("nats")
	setRef(t, b, rec.ID, r1)
	_, err := disp(t, b).ReplaceExecutionRef(t.Context(), rec.ID, 1, r1, r2)
	wantFenceLost(t, "ReplaceExecutionRef(wrong generation)", err)
	_, err = disp(t, b).ReplaceExecutionRef(t.Context(), rec.ID, 0, r2, r2)
	wantFenceLost(t, "ReplaceExecutionRef(wrong ref)", err)
	wantString(t, "ref after lost replaces", get(t, b, rec.ID).ExecutionRef, r1)
	got, err := disp(t, b).ReplaceExecutionRef(t.Context(), rec.ID, 0, r1, r2)
	wantNoErr(t, "ReplaceExecutionRef", err)
	wantString(t, "replaced ref", got.ExecutionRef, r2)
	wantStored(t, b, "record after replace", got)

	_, err = disp(t, b).ClearExecutionRef(t.Context(), rec.ID, 0, r1)
	wantFenceLost(t, "ClearExecutionRef(superseded ref)", err)
	_, err = disp(t, b).ClearExecutionRef(t.Context(), rec.ID, 1, r2)
	wantFenceLost(t, "ClearExecutionRef(wrong generation)", err)
	wantString(t, "ref after lost clears", get(t, b, rec.ID).ExecutionRef, r2)
	got, err = disp(t, b).ClearExecutionRef(t.Context(), rec.ID, 0, r2)
	wantNoErr(t, "ClearExecutionRef", err)
	wantString(t, "cleared ref", got.ExecutionRef, "")
	wantStatus(t, "record after clear", got, queues.StatusPending)
	wantStored(t, b, "record after clear", got)
	_, err = disp(t, b).ClearExecutionRef(t.Context(), rec.ID, 0, r2)
	wantFenceLost(t, "second ClearExecutionRef", err)
}

// Reserving an expired, reserved,
// referenced, not-yet-due, running or terminal record → ErrFenceLost.
func reserveDispatchRejects(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b,
		item("rr.expired", execution("subprocess", ""), expiresAt(at(-time.Minute))),
		item("rr.reserved", execution("subprocess", "")),
		item("rr.ref", execution("subprocess", "")),
		item("rr.future", execution("subprocess", ""), scheduledAt(at(time.Hour))),
		item("rr.running", execution("subprocess", "")),
		item("rr.cancelled", execution("subprocess", "")),
	)
	lease := time.Now().Add(15 * time.Minute)
	m1 := newMarker(lease)
	reserve(t, b, recs[1].ID, m1)
	ref := newRef("subprocess")
	setRef(t, b, recs[2].ID, ref)
	claimByID(t, b, recs[4].ID, workerA)
	_, err := b.Cancel(t.Context(), driver.CancelParams{ID: recs[5].ID})
	wantNoErr(t, "Cancel", err)

	for i, r := range recs {
		_, err := disp(t, b).ReserveDispatch(t.Context(), driver.ReserveDispatchParams{ID: r.ID, Marker: newMarker(lease), Until: lease})
		wantFenceLost(t, "ReserveDispatch("+r.TaskName+")", err)
		got := get(t, b, r.ID)
		want := map[int]string{1: m1, 2: ref}[i]
		wantString(t, r.TaskName+" execution_ref", got.ExecutionRef, want)
	}
	wantStatus(t, "expired record (not swept)", get(t, b, recs[0].ID), queues.StatusPending)
	_, err = disp(t, b).ReserveDispatch(t.Context(), driver.ReserveDispatchParams{ID: uuid.New(), Marker: newMarker(lease), Until: lease})
	wantFenceLostOrNotFound(t, "ReserveDispatch(missing)", err)
}

// The expiry sweep ignores reserved records; release with a
// wrong ref → ErrFenceLost; with the owner's ref → cleared (and the overdue
// record is then swept).
func expirySweepIgnoresReserved(t *testing.T, b driver.Backend) {
	deadline := at(shortDeadline)
	recs := enqueue(t, b,
		item("sweep.reserved", execution("subprocess", ""), expiresAt(deadline)),
		item("sweep.probe", execution("subprocess", ""), expiresAt(deadline)),
	)
	m := newMarker(time.Now().Add(15 * time.Minute))
	reserve(t, b, recs[0].ID, m)
	waitOverdue(t, b, deadline, recs[1].ID)

	expired, err := b.ExpireOverdue(t.Context(), 100)
	wantNoErr(t, "ExpireOverdue", err)
	wantIDs(t, "expired by the sweep", expired, recs[1].ID)
	got := get(t, b, recs[0].ID)
	wantStatus(t, "reserved record after the sweep", got, queues.StatusPending)
	wantString(t, "reserved record marker", got.ExecutionRef, m)

	_, err = disp(t, b).ReleaseDispatch(t.Context(), driver.ReleaseDispatchParams{ID: recs[0].ID, Marker: newMarker(time.Now().Add(time.Minute))})
	wantFenceLost(t, "ReleaseDispatch(wrong marker)", err)
	wantString(t, "marker after a lost release", get(t, b, recs[0].ID).ExecutionRef, m)
	rel, err := disp(t, b).ReleaseDispatch(t.Context(), driver.ReleaseDispatchParams{ID: recs[0].ID, Marker: m})
	wantNoErr(t, "ReleaseDispatch", err)
	wantString(t, "execution_ref after release", rel.ExecutionRef, "")
	wantString(t, "execution_backend after a plain release", rel.ExecutionBackend, "subprocess")
	wantStatus(t, "released record", rel, queues.StatusPending)
	wantStored(t, b, "released record", rel)

	expired, err = b.ExpireOverdue(t.Context(), 100)
	wantNoErr(t, "ExpireOverdue after release", err)
	wantIDs(t, "expired after release", expired, recs[0].ID)
}

// A reservation-marked record is neither claimed (ClaimMany,
// ClaimByID) nor listed pending.
func reservedRecordNotClaimed(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("marked", execution("subprocess", ""), priority(10)), item("plain", execution("subprocess", "")))
	m := newMarker(time.Now().Add(15 * time.Minute))
	reserve(t, b, recs[0].ID, m)
	if containsID(listPending(t, b), recs[0].ID) {
		t.Fatal("ListPending lists a reservation-marked record")
	}
	res := claimMany(t, b, driver.ClaimParams{Limit: 10, WorkerID: workerA, ExpireOverdue: true})
	wantIDs(t, "ClaimMany", res.Claimed, recs[1].ID)
	wantInt(t, "expired by ClaimMany", len(res.Expired), 0)
	byID, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: recs[0].ID, WorkerID: workerA})
	wantNothingClaimed(t, "ClaimByID(marked)", byID, err)
	got := get(t, b, recs[0].ID)
	wantStatus(t, "marked record", got, queues.StatusPending)
	wantString(t, "marked record ref", got.ExecutionRef, m)
}

// Finalize with a superseded reservation → ErrFenceLost; with the
// current one → ref replaced.
func finalizeSuperseded(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("fin", execution("subprocess", "")))
	lease := time.Now().Add(15 * time.Minute)
	m1, m2 := newMarker(lease), newMarker(lease)
	reserve(t, b, rec.ID, m1)
	_, err := disp(t, b).ReleaseDispatch(t.Context(), driver.ReleaseDispatchParams{ID: rec.ID, Marker: m1})
	wantNoErr(t, "ReleaseDispatch", err)
	reserve(t, b, rec.ID, m2)

	ref := "subprocess:host-1:4242:1700000000000"
	_, err = disp(t, b).FinalizeDispatch(t.Context(), driver.FinalizeDispatchParams{ID: rec.ID, Marker: m1, Ref: ref})
	wantFenceLost(t, "FinalizeDispatch(superseded marker)", err)
	wantString(t, "ref after a lost finalize", get(t, b, rec.ID).ExecutionRef, m2)
	got, err := disp(t, b).FinalizeDispatch(t.Context(), driver.FinalizeDispatchParams{ID: rec.ID, Marker: m2, Ref: ref})
	wantNoErr(t, "FinalizeDispatch(current marker)", err)
	wantString(t, "finalized ref", got.ExecutionRef, ref)
	wantStatus(t, "finalized record", got, queues.StatusPending)
	wantStored(t, b, "finalized record", got)
	_, err = disp(t, b).FinalizeDispatch(t.Context(), driver.FinalizeDispatchParams{ID: rec.ID, Marker: m2, Ref: "subprocess:other"})
	wantFenceLost(t, "second FinalizeDispatch", err)
	wantString(t, "ref after a repeated finalize", get(t, b, rec.ID).ExecutionRef, ref)
}

// A reserved record whose deadlines pass (its marker lease
// and its expires_at) is neither claimed nor expired; ref and status are kept.
func reservedPastDeadlineKept(t *testing.T, b driver.Backend) {
	deadline := at(shortDeadline)
	recs := enqueue(t, b,
		item("late.reserved", execution("subprocess", ""), expiresAt(deadline), priority(10)),
		item("late.probe", execution("subprocess", ""), expiresAt(deadline)),
	)
	m := newMarker(time.Now().Add(-time.Minute)) // lease already over
	reserve(t, b, recs[0].ID, m)
	waitOverdue(t, b, deadline, recs[1].ID)

	res := claimMany(t, b, driver.ClaimParams{Limit: 10, WorkerID: workerA, ExecutionBackend: "subprocess", ExpireOverdue: true})
	if containsID(res.Claimed, recs[0].ID) || containsID(res.Expired, recs[0].ID) {
		t.Fatalf("ClaimMany(ExpireOverdue) touched the reserved record: claimed %v expired %v", idsOf(res.Claimed), idsOf(res.Expired))
	}
	wantIDs(t, "expired by the claim", res.Expired, recs[1].ID)
	expired, err := b.ExpireOverdue(t.Context(), 100)
	wantNoErr(t, "ExpireOverdue", err)
	wantInt(t, "expired by the sweep", len(expired), 0)
	byID, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: recs[0].ID, WorkerID: workerA})
	wantNothingClaimed(t, "ClaimByID(reserved overdue)", byID, err)
	got := get(t, b, recs[0].ID)
	wantStatus(t, "reserved overdue record", got, queues.StatusPending)
	wantString(t, "reserved overdue marker", got.ExecutionRef, m)
}

// A record with a finalized ref is
// claimable by ID after its expires_at, and the sweep leaves it alone.
func finalizedRefClaimableAfterExpiry(t *testing.T, b driver.Backend) {
	deadline := at(shortDeadline)
	recs := enqueue(t, b,
		item("fin.late", execution("cloudrun", ""), expiresAt(deadline)),
		item("fin.probe", execution("cloudrun", ""), expiresAt(deadline)),
	)
	m := newMarker(time.Now().Add(15 * time.Minute))
	reserve(t, b, recs[0].ID, m)
	ref := newRef("cloudrun")
	_, err := disp(t, b).FinalizeDispatch(t.Context(), driver.FinalizeDispatchParams{ID: recs[0].ID, Marker: m, Ref: ref})
	wantNoErr(t, "FinalizeDispatch", err)
	waitOverdue(t, b, deadline, recs[1].ID)

	expired, err := b.ExpireOverdue(t.Context(), 100)
	wantNoErr(t, "ExpireOverdue", err)
	wantIDs(t, "expired by the sweep", expired, recs[1].ID)
	res, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: recs[0].ID, WorkerID: workerB, ExpectedRef: ptr(ref)})
	wantNoErr(t, "ClaimByID(finalized, overdue)", err)
	wantIDs(t, "claimed", res.Claimed, recs[0].ID)
	wantInt(t, "expired by the claim", len(res.Expired), 0)
	wantString(t, "worker_id", res.Claimed[0].WorkerID, workerB)
	wantString(t, "execution_ref", res.Claimed[0].ExecutionRef, ref)
}

// FinalizeDispatch after the record was cancelled → ErrFenceLost; it stays cancelled.
func finalizeAfterCancel(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("fin.cancel", execution("subprocess", "")))
	m := newMarker(time.Now().Add(15 * time.Minute))
	reserve(t, b, rec.ID, m)
	c, err := b.Cancel(t.Context(), driver.CancelParams{ID: rec.ID})
	wantNoErr(t, "Cancel(reserved)", err)
	wantStatus(t, "cancelled", c, queues.StatusCancelled)
	_, err = disp(t, b).FinalizeDispatch(t.Context(), driver.FinalizeDispatchParams{ID: rec.ID, Marker: m, Ref: newRef("subprocess")})
	wantFenceLost(t, "FinalizeDispatch(cancelled)", err)
	got := get(t, b, rec.ID)
	wantStatus(t, "record after finalize", got, queues.StatusCancelled)
	if got.ExecutionRef != "" && got.ExecutionRef != m {
		t.Fatalf("execution_ref after a lost finalize = %q; the provider ref must not be written", got.ExecutionRef)
	}
}

// A transition with ExpectedRef on a pending record holding that ref
// requeues it with the ref cleared, or fails it; a wrong ref or generation,
// or no ExpectedRef on a pending record, → ErrFenceLost.
func failExpectedRef(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("ext.fail", execution("rabbitmq", ""), retries(1)))
	ref1 := newRef("rabbitmq")
	setRef(t, b, rec.ID, ref1)
	_, err := settleCall(t, b, driver.Transition{ID: rec.ID, Error: "x", To: queuestype.StatusPending, Generation: 0, ExpectedRef: ptr(newRef("rabbitmq"))})
	wantFenceLost(t, "Settle(wrong ref)", err)
	_, err = settleCall(t, b, driver.Transition{ID: rec.ID, Error: "x", To: queuestype.StatusPending, Generation: 1, ExpectedRef: ptr(ref1)})
	wantFenceLost(t, "Settle(wrong generation)", err)
	_, err = settleCall(t, b, driver.Transition{ID: rec.ID, Error: "x", To: queuestype.StatusPending, Generation: 0})
	wantFenceLost(t, "Settle(pending, no ExpectedRef)", err)
	got := get(t, b, rec.ID)
	wantInt(t, "retry_count after lost fails", got.RetryCount, 0)
	wantString(t, "ref after lost fails", got.ExecutionRef, ref1)

	msg1 := "external execution " + ref1 + " not found"
	got, err = settleCall(t, b, driver.Transition{ID: rec.ID, Error: msg1, To: queuestype.StatusPending, Generation: 0, ExpectedRef: ptr(ref1)})
	wantNoErr(t, "Settle(retry, right ref)", err)
	wantStatus(t, "requeued record", got, queues.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantString(t, "execution_ref", got.ExecutionRef, "")
	wantString(t, "error", got.Error, msg1)
	wantStored(t, b, "requeued record", got)

	ref2 := newRef("rabbitmq")
	setRef(t, b, rec.ID, ref2)
	msg2 := "external execution " + ref2 + " failed"
	got, err = settleCall(t, b, driver.Transition{ID: rec.ID, Error: msg2, To: queuestype.StatusFailed, Generation: 1, ExpectedRef: ptr(ref2)})
	wantNoErr(t, "Settle(failed, right ref)", err)
	wantStatus(t, "failed record", got, queues.StatusFailed)
	wantString(t, "error", got.Error, msg2)
	if got.CompletedAt.IsZero() {
		t.Fatal("failed record has no completed_at")
	}
	wantStored(t, b, "failed record", got)
}

// A transition with ExpectedRef also settles a running record holding the ref.
func failExpectedRefOnRunning(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("ext.run.fail", execution("cloudrun", ""), retries(2)))
	ref := newRef("cloudrun")
	setRef(t, b, rec.ID, ref)
	run := claimByID(t, b, rec.ID, workerA)
	got, err := settleCall(t, b, driver.Transition{ID: run.ID, Error: "died", To: queuestype.StatusPending, Generation: 0, ExpectedRef: ptr(ref)})
	wantNoErr(t, "Settle(running, right ref)", err)
	wantStatus(t, "requeued record", got, queues.StatusPending)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantString(t, "execution_ref", got.ExecutionRef, "")
	wantString(t, "worker_id", got.WorkerID, "")
}

// Releasing with an
// execution backend re-routes the record and clears the marker.
func releaseDispatchReroutes(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("fallback", execution("cloudrun", "gpu")))
	m := newMarker(time.Now().Add(15 * time.Minute))
	reserve(t, b, rec.ID, m)
	got, err := disp(t, b).ReleaseDispatch(t.Context(), driver.ReleaseDispatchParams{ID: rec.ID, Marker: m, ExecutionBackend: "local", ExecutionProfile: "cpu"})
	wantNoErr(t, "ReleaseDispatch(re-route)", err)
	wantString(t, "execution_backend", got.ExecutionBackend, "local")
	wantString(t, "execution_profile", got.ExecutionProfile, "cpu")
	wantString(t, "execution_ref", got.ExecutionRef, "")
	wantStored(t, b, "re-routed record", got)
	res := claimMany(t, b, driver.ClaimParams{Limit: 5, ExecutionBackend: "local", WorkerID: workerA})
	wantIDs(t, "local claim after re-route", res.Claimed, rec.ID)
}

// Re-routes a pending/scheduled record and
// clears its ref; running or terminal → ErrFenceLost.
func setExecutionBackendReroutes(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b,
		item("sb.pending", execution("cloudrun", "gpu")),
		item("sb.running", execution("cloudrun", "gpu")),
		item("sb.done", execution("cloudrun", "gpu")),
	)
	setRef(t, b, recs[0].ID, newRef("cloudrun"))
	got, err := disp(t, b).SetExecutionBackend(t.Context(), recs[0].ID, "nats", "small")
	wantNoErr(t, "SetExecutionBackend(pending)", err)
	wantString(t, "execution_backend", got.ExecutionBackend, "nats")
	wantString(t, "execution_profile", got.ExecutionProfile, "small")
	wantString(t, "execution_ref", got.ExecutionRef, "")
	wantStatus(t, "re-routed record", got, queues.StatusPending)
	wantStored(t, b, "re-routed record", got)

	claimByID(t, b, recs[1].ID, workerA)
	_, err = disp(t, b).SetExecutionBackend(t.Context(), recs[1].ID, "nats", "")
	wantFenceLost(t, "SetExecutionBackend(running)", err)
	wantString(t, "running record backend", get(t, b, recs[1].ID).ExecutionBackend, "cloudrun")
	complete(t, b, claimByID(t, b, recs[2].ID, workerA))
	_, err = disp(t, b).SetExecutionBackend(t.Context(), recs[2].ID, "nats", "")
	wantFenceLost(t, "SetExecutionBackend(completed)", err)
}

// A terminal record →
// ErrFenceLost and its ref is unchanged; a missing one is not found or fenced.
func setExecutionRefTerminal(t *testing.T, b driver.Backend) {
	done := completed(t, b, item("ref.done", execution("cloudrun", "")))
	_, err := disp(t, b).SetExecutionRef(t.Context(), done.ID, newRef("cloudrun"))
	wantFenceLost(t, "SetExecutionRef(completed)", err)
	wantString(t, "completed record ref", get(t, b, done.ID).ExecutionRef, "")
	_, err = disp(t, b).SetExecutionRef(t.Context(), uuid.New(), newRef("cloudrun"))
	wantFenceLostOrNotFound(t, "SetExecutionRef(missing)", err)
	// Running and scheduled records accept a ref.
	run := running(t, b, item("ref.running", execution("cloudrun", "")))
	setRef(t, b, run.ID, newRef("cloudrun"))
	sched := enqueueOne(t, b, item("ref.scheduled", execution("cloudrun", ""), scheduledAt(at(time.Hour))))
	got := setRef(t, b, sched.ID, newRef("cloudrun"))
	wantStatus(t, "scheduled record with a ref", got, queues.StatusScheduled)
}
