package backendtest

import (
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
)

// testExpiry covers the not-started deadline.
func testExpiry(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"ClaimByIDExpiresOverdue", claimByIDExpiresOverdue},
		{"ExpireOverdue", expireOverdue},
		{"ExpireOverdueBoundedOldestFirst", expireOverdueBounded},
		{"ExpireOverdueSkipsLiveAndReferenced", expireOverdueSkips},
		{"ClaimManyExpireOverdue", claimManyExpireOverdue},
		{"ClaimManyWithoutExpireOverdue", claimManyWithoutExpire},
		{"RetryKeepsFirstDeadline", retryKeepsDeadline},
		{"FutureDeadlineClaimable", futureDeadlineClaimable},
	})
}

// wantExpired checks what an expiry writes on a stored record.
func wantExpired(t *testing.T, b driver.Backend, what string, rec *queues.Record, before, after time.Time) *queues.Record {
	t.Helper()
	got := get(t, b, rec.ID)
	wantStatus(t, what, got, queues.StatusExpired)
	wantBetween(t, what+" completed_at", got.CompletedAt, before, after)
	wantZeroTime(t, what+" heartbeat_at", got.HeartbeatAt)
	wantZeroTime(t, what+" started_at", got.StartedAt)
	wantString(t, what+" worker_id", got.WorkerID, "")
	return got
}

// Claiming an overdue record by ID claims nothing and stores it
// expired; it is not listed pending; a live one remains.
func claimByIDExpiresOverdue(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("over", expiresAt(at(-time.Minute))), item("live", expiresAt(at(time.Hour))))
	before := time.Now()
	res, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: recs[0].ID, WorkerID: workerA})
	after := time.Now()
	wantNoErr(t, "ClaimByID(overdue)", err)
	wantInt(t, "claimed", len(res.Claimed), 0)
	wantIDs(t, "expired by the claim", res.Expired, recs[0].ID)
	wantStatus(t, "returned expired record", res.Expired[0], queues.StatusExpired)
	wantExpired(t, b, "overdue record", recs[0], before, after)
	pending := listPending(t, b)
	wantIDs(t, "ListPending", pending, recs[1].ID)
	wantStatus(t, "live record", get(t, b, recs[1].ID), queues.StatusPending)
	again, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: recs[0].ID, WorkerID: workerA})
	wantNothingClaimed(t, "second ClaimByID(expired)", again, err)
}

// ExpireOverdue expires all overdue records; statistics count
// them; cleanup deletes them.
func expireOverdue(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b,
		item("over.1", expiresAt(at(-3*time.Minute))),
		item("live", expiresAt(at(time.Hour))),
		item("over.2", expiresAt(at(-2*time.Minute)), scheduledAt(at(-5*time.Minute))),
		item("nodeadline"),
		item("over.3", expiresAt(at(-time.Minute)), inQueue("other")),
	)
	before := time.Now()
	got, err := b.ExpireOverdue(t.Context(), 100)
	after := time.Now()
	wantNoErr(t, "ExpireOverdue", err)
	wantIDSet(t, "expired", idsOf(got), recs[0].ID, recs[2].ID, recs[4].ID)
	for _, r := range got {
		wantStatus(t, "returned record", r, queues.StatusExpired)
		wantSameRecord(t, "returned expired record", r, wantExpired(t, b, r.TaskName, r, before, after))
	}
	if st, want := stats(t, b, ""), (queues.Statistics{Pending: 2, Expired: 3, Total: 5}); st != want {
		t.Fatalf("Statistics = %+v, want %+v", st, want)
	}
	again, err := b.ExpireOverdue(t.Context(), 100)
	wantNoErr(t, "second ExpireOverdue", err)
	wantInt(t, "expired by a second sweep", len(again), 0)
	n, err := b.CleanupTerminal(t.Context(), driver.CleanupAll(time.Now().Add(time.Hour), 100))
	wantNoErr(t, "CleanupTerminal", err)
	wantInt(t, "deleted", n, 3)
	for _, i := range []int{0, 2, 4} {
		wantGone(t, b, recs[i].ID)
	}
}

// The sweep is bounded and takes the oldest deadline first.
func expireOverdueBounded(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b,
		item("over.mid", expiresAt(at(-2*time.Minute))),
		item("over.oldest", expiresAt(at(-3*time.Minute))),
		item("over.newest", expiresAt(at(-time.Minute))),
	)
	for _, want := range []int{1, 0, 2} {
		got, err := b.ExpireOverdue(t.Context(), 1)
		wantNoErr(t, "ExpireOverdue(1)", err)
		wantIDs(t, "ExpireOverdue(1)", got, recs[want].ID)
	}
	got, err := b.ExpireOverdue(t.Context(), 5)
	wantNoErr(t, "ExpireOverdue(5)", err)
	wantInt(t, "expired after all were swept", len(got), 0)
}

// The sweep leaves live, running and ref-holding records alone.
func expireOverdueSkips(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b,
		item("over.ref", expiresAt(at(-time.Minute)), execution("cloudrun", "")),
		item("live.future", expiresAt(at(time.Hour)), scheduledAt(at(30*time.Minute))),
		item("live.running", expiresAt(at(time.Hour))),
	)
	setRef(t, b, recs[0].ID, newRef("cloudrun"))
	claimByID(t, b, recs[2].ID, workerA)
	got, err := b.ExpireOverdue(t.Context(), 100)
	wantNoErr(t, "ExpireOverdue", err)
	wantInt(t, "expired", len(got), 0)
	wantStatus(t, "overdue record holding a ref", get(t, b, recs[0].ID), queues.StatusPending)
	wantStatus(t, "future record", get(t, b, recs[1].ID), queues.StatusScheduled)
	wantStatus(t, "running record", get(t, b, recs[2].ID), queues.StatusRunning)
}

// ClaimMany(limit=1, ExpireOverdue) returns the live record as
// claimed and the overdue one as expired.
func claimManyExpireOverdue(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("over", priority(10), expiresAt(at(-time.Minute))), item("live"))
	before := time.Now()
	res := claimMany(t, b, driver.ClaimParams{Limit: 1, WorkerID: workerA, ExpireOverdue: true})
	after := time.Now()
	wantIDs(t, "claimed", res.Claimed, recs[1].ID)
	wantIDs(t, "expired", res.Expired, recs[0].ID)
	wantStatus(t, "returned claimed record", res.Claimed[0], queues.StatusRunning)
	wantStatus(t, "returned expired record", res.Expired[0], queues.StatusExpired)
	wantExpired(t, b, "overdue record", recs[0], before, after)
	wantStored(t, b, "claimed record", res.Claimed[0])
}

// Without ExpireOverdue, an overdue record is not claimed and not expired.
func claimManyWithoutExpire(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("over", priority(10), expiresAt(at(-time.Minute))), item("live"))
	res := claimMany(t, b, driver.ClaimParams{Limit: 5, WorkerID: workerA})
	wantIDs(t, "claimed", res.Claimed, recs[1].ID)
	wantInt(t, "expired", len(res.Expired), 0)
	wantStatus(t, "overdue record", get(t, b, recs[0].ID), queues.StatusPending)
}

// A retried record keeps its first expires_at; after the
// deadline the retry's claim fails and the record becomes expired.
func retryKeepsDeadline(t *testing.T, b driver.Backend) {
	deadline := at(shortDeadline)
	rec := enqueueOne(t, b, item("retry.deadline", retries(3), expiresAt(deadline)))
	run := claimByID(t, b, rec.ID, workerA)
	retried := failRetry(t, b, run, "boom")
	wantStatus(t, "retried", retried, queues.StatusPending)
	wantNear(t, "expires_at after retry", retried.ExpiresAt, deadline, storeTolerance)
	waitOverdue(t, b, deadline, rec.ID)

	none := claimMany(t, b, driver.ClaimParams{Limit: 5, WorkerID: workerB})
	wantInt(t, "claimed after the deadline", len(none.Claimed), 0)
	before := time.Now()
	res, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: rec.ID, WorkerID: workerB})
	after := time.Now()
	wantNoErr(t, "ClaimByID after the deadline", err)
	wantInt(t, "claimed", len(res.Claimed), 0)
	wantIDs(t, "expired by the claim", res.Expired, rec.ID)
	got := wantExpired(t, b, "retried record", rec, before, after)
	wantInt(t, "retry_count", got.RetryCount, 1)
	wantString(t, "error kept", got.Error, "boom")
	wantNear(t, "expires_at", got.ExpiresAt, deadline, storeTolerance)
}

// A record with a future deadline can be claimed and completed.
func futureDeadlineClaimable(t *testing.T, b driver.Backend) {
	deadline := at(time.Hour)
	rec := enqueueOne(t, b, item("deadline.future", expiresAt(deadline)))
	res := claimMany(t, b, driver.ClaimParams{Limit: 5, WorkerID: workerA, ExpireOverdue: true})
	wantIDs(t, "claimed", res.Claimed, rec.ID)
	wantInt(t, "expired", len(res.Expired), 0)
	done := complete(t, b, res.Claimed[0])
	wantNear(t, "expires_at", done.ExpiresAt, deadline, storeTolerance)
	wantStored(t, b, "completed record", done)
}
