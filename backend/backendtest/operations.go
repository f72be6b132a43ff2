package backendtest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// testOperations covers Statistics, ListCompletedByTask, CleanupTerminal and
// the maintenance lock.
func testOperations(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"StatisticsAndCompletedList", statisticsAndCompletedList},
		{"StatisticsPerStatusAndQueue", statisticsPerStatusAndQueue},
		{"ListCompletedByTaskLimitAndSince", listCompletedByTaskLimitSince},
		{"CleanupTerminalOnly", cleanupTerminalOnly},
		{"CleanupBounded", cleanupBounded},
		{"CleanupOldestFirst", cleanupOldestFirst},
		{"CleanupPerStatus", cleanupPerStatus},
		{"CleanupKeptStatusHidesNothing", cleanupKeptStatusHidesNothing},
		{"CleanupRefusesNonTerminal", cleanupRefusesNonTerminal},
		{"CleanupLargeBatch", cleanupLargeBatch},
		{"MaintenanceLock", maintenanceLock},
		{"MaintenanceLockExpires", maintenanceLockExpires},
	})
}

// newestFirst orders by completed_at DESC, then id DESC.
func newestFirst(a, b *queues.Record) int {
	if c := b.CompletedAt.Compare(a.CompletedAt); c != 0 {
		return c
	}
	return compareUUID(b.ID, a.ID)
}

// wantNewestFirst requires completed_at to be non-increasing.
func wantNewestFirst(t *testing.T, what string, recs []*queues.Record) {
	t.Helper()
	for i := 1; i < len(recs); i++ {
		if recs[i].CompletedAt.After(recs[i-1].CompletedAt) {
			t.Fatalf("%s not newest first: %s (%s) before %s (%s)", what, recs[i-1].ID, recs[i-1].CompletedAt, recs[i].ID, recs[i].CompletedAt)
		}
	}
}

// Statistics count completed and running; ListCompletedByTask
// lists completed records newest first.
func statisticsAndCompletedList(t *testing.T, b driver.Backend) {
	c1 := completed(t, b, item("report"))
	c2 := completed(t, b, item("report"))
	run := running(t, b, item("report"))
	enqueueOne(t, b, item("report"))
	st := stats(t, b, "")
	want := queues.Statistics{Pending: 1, Running: 1, Completed: 2, Total: 4}
	if st != want {
		t.Fatalf("Statistics = %+v, want %+v", st, want)
	}
	list, err := b.ListCompletedByTask(t.Context(), "report", time.Time{}, 0)
	wantNoErr(t, "ListCompletedByTask", err)
	wantIDSet(t, "completed records", idsOf(list), c1.ID, c2.ID)
	wantNewestFirst(t, "ListCompletedByTask", list)
	if c2.CompletedAt.After(c1.CompletedAt) {
		wantIDs(t, "ListCompletedByTask", list, c2.ID, c1.ID)
	}
	for _, r := range list {
		wantStatus(t, "listed record", r, queues.StatusCompleted)
		wantStored(t, b, "listed record", r)
	}
	if containsID(list, run.ID) {
		t.Fatal("ListCompletedByTask lists a running record")
	}
}

// populateStatuses creates one record of each of the seven statuses in queue q.
func populateStatuses(t *testing.T, b driver.Backend, q string) map[queues.Status]*queues.Record {
	t.Helper()
	out := map[queues.Status]*queues.Record{}
	out[queues.StatusPending] = enqueueOne(t, b, item("stat.pending", inQueue(q)))
	out[queues.StatusScheduled] = enqueueOne(t, b, item("stat.scheduled", inQueue(q), scheduledAt(at(time.Hour))))
	out[queues.StatusRunning] = running(t, b, item("stat.running", inQueue(q)))
	out[queues.StatusCompleted] = completed(t, b, item("stat.completed", inQueue(q)))
	failed := running(t, b, item("stat.failed", inQueue(q)))
	rec, err := settleCall(t, b, driver.Transition{ID: failed.ID, To: queuestype.StatusFailed, Error: "x"})
	wantNoErr(t, "Fail", err)
	out[queues.StatusFailed] = rec
	cancelled := enqueueOne(t, b, item("stat.cancelled", inQueue(q)))
	rec, err = b.Cancel(t.Context(), driver.CancelParams{ID: cancelled.ID})
	wantNoErr(t, "Cancel", err)
	out[queues.StatusCancelled] = rec
	expired := enqueueOne(t, b, item("stat.expired", inQueue(q), expiresAt(at(-time.Minute))))
	got, err := b.ExpireOverdue(t.Context(), 100)
	wantNoErr(t, "ExpireOverdue", err)
	wantIDs(t, "expired", got, expired.ID)
	out[queues.StatusExpired] = got[0]
	for st, r := range out {
		wantStatus(t, "set-up record", r, st)
	}
	return out
}

// Statistics counts each status per queue; "" means all queues.
func statisticsPerStatusAndQueue(t *testing.T, b driver.Backend) {
	populateStatuses(t, b, "a")
	enqueue(t, b, item("stat.b", inQueue("b")), item("stat.b", inQueue("b")))
	one := queues.Statistics{Pending: 1, Scheduled: 1, Running: 1, Completed: 1, Failed: 1, Cancelled: 1, Expired: 1, Total: 7}
	if st := stats(t, b, "a"); st != one {
		t.Fatalf("Statistics(a) = %+v, want %+v", st, one)
	}
	if st, want := stats(t, b, "b"), (queues.Statistics{Pending: 2, Total: 2}); st != want {
		t.Fatalf("Statistics(b) = %+v, want %+v", st, want)
	}
	all := one
	all.Pending += 2
	all.Total += 2
	if st := stats(t, b, ""); st != all {
		t.Fatalf("Statistics(all) = %+v, want %+v", st, all)
	}
	if st := stats(t, b, "missing"); st != (queues.Statistics{}) {
		t.Fatalf("Statistics(missing) = %+v, want zero", st)
	}
}

func listCompletedByTaskLimitSince(t *testing.T, b driver.Backend) {
	start := time.Now()
	var done []*queues.Record
	for range 12 {
		done = append(done, completed(t, b, item("canary")))
	}
	completed(t, b, item("other"))
	failed := running(t, b, item("canary"))
	_, err := settleCall(t, b, driver.Transition{ID: failed.ID, To: queuestype.StatusFailed, Error: "x"})
	wantNoErr(t, "Fail", err)
	want := sortedIDs(storedAll(t, b, done), newestFirst)

	def, err := b.ListCompletedByTask(t.Context(), "canary", time.Time{}, 0)
	wantNoErr(t, "ListCompletedByTask(limit 0)", err)
	wantInt(t, "default limit", len(def), 10)
	wantNewestFirst(t, "ListCompletedByTask(limit 0)", def)
	all, err := b.ListCompletedByTask(t.Context(), "canary", start.Add(-clockTolerance), 50)
	wantNoErr(t, "ListCompletedByTask(limit 50)", err)
	wantIDSet(t, "all completed canaries", idsOf(all), want...)
	wantNewestFirst(t, "ListCompletedByTask(limit 50)", all)
	three, err := b.ListCompletedByTask(t.Context(), "canary", time.Time{}, 3)
	wantNoErr(t, "ListCompletedByTask(limit 3)", err)
	wantInt(t, "limit 3", len(three), 3)
	wantNewestFirst(t, "ListCompletedByTask(limit 3)", three)
	// The three newest: none of the others completed later than the oldest of them.
	for _, r := range storedAll(t, b, done) {
		if !containsID(three, r.ID) && r.CompletedAt.After(three[2].CompletedAt) {
			t.Fatalf("ListCompletedByTask(limit 3) skipped %s completed at %s, after %s", r.ID, r.CompletedAt, three[2].CompletedAt)
		}
	}
	future, err := b.ListCompletedByTask(t.Context(), "canary", time.Now().Add(time.Hour), 50)
	wantNoErr(t, "ListCompletedByTask(since future)", err)
	wantInt(t, "completed since an hour from now", len(future), 0)
	none, err := b.ListCompletedByTask(t.Context(), "missing", time.Time{}, 50)
	wantNoErr(t, "ListCompletedByTask(missing task)", err)
	wantInt(t, "completed of a missing task", len(none), 0)
}

// CleanupTerminal(before) deletes only
// terminal records completed before before; running ones survive.
func cleanupTerminalOnly(t *testing.T, b driver.Backend) {
	recs := populateStatuses(t, b, "cleanup")
	n, err := b.CleanupTerminal(t.Context(), driver.CleanupAll(time.Now().Add(-time.Hour), 100))
	wantNoErr(t, "CleanupTerminal(an hour ago)", err)
	wantInt(t, "deleted before an hour ago", n, 0)
	n, err = b.CleanupTerminal(t.Context(), driver.CleanupAll(time.Now().Add(time.Hour), 100))
	wantNoErr(t, "CleanupTerminal", err)
	wantInt(t, "deleted", n, 4)
	for st, r := range recs {
		if st.IsTerminal() {
			wantGone(t, b, r.ID)
		} else {
			wantStatus(t, "surviving record", get(t, b, r.ID), st)
		}
	}
	want := queues.Statistics{Pending: 1, Scheduled: 1, Running: 1, Total: 3}
	if st := stats(t, b, ""); st != want {
		t.Fatalf("Statistics after cleanup = %+v, want %+v", st, want)
	}
}

// Bounded cleanup: 5 completed, limit 2 → 2, 2, 1, 0; statistics then show 0 completed.
func cleanupBounded(t *testing.T, b driver.Backend) {
	var recs []*queues.Record
	for range 5 {
		recs = append(recs, completed(t, b, item("cleanup.bounded")))
	}
	before := time.Now().Add(time.Hour)
	for i, want := range []int{2, 2, 1, 0} {
		n, err := b.CleanupTerminal(t.Context(), driver.CleanupAll(before, 2))
		wantNoErr(t, "CleanupTerminal", err)
		if n != want {
			t.Fatalf("CleanupTerminal pass %d deleted %d, want %d", i+1, n, want)
		}
	}
	if st := stats(t, b, ""); st.Completed != 0 || st.Total != 0 {
		t.Fatalf("Statistics after cleanup = %+v, want 0 completed", st)
	}
	for _, r := range recs {
		wantGone(t, b, r.ID)
	}
}

func cleanupOldestFirst(t *testing.T, b driver.Backend) {
	var recs []*queues.Record
	for i := range 3 {
		recs = append(recs, completed(t, b, item(fmt.Sprintf("cleanup.order.%d", i))))
	}
	stored := storedAll(t, b, recs)
	order := sortedIDs(stored, func(a, b *queues.Record) int { return -newestFirst(a, b) })
	for i := range order {
		n, err := b.CleanupTerminal(t.Context(), driver.CleanupAll(time.Now().Add(time.Hour), 1))
		wantNoErr(t, "CleanupTerminal(limit 1)", err)
		wantInt(t, "deleted", n, 1)
		wantGone(t, b, order[i])
		for _, id := range order[i+1:] {
			get(t, b, id)
		}
	}
}

// Each status has its own cutoff, and a status without one is kept.
func cleanupPerStatus(t *testing.T, b driver.Backend) {
	recs := populateStatuses(t, b, "cleanup.per")
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	n, err := b.CleanupTerminal(t.Context(), driver.CleanupParams{Limit: 100, Before: map[queuestype.Status]time.Time{
		queuestype.StatusCompleted: future, queuestype.StatusCancelled: future, queuestype.StatusFailed: past,
	}})
	wantNoErr(t, "CleanupTerminal(completed, cancelled)", err)
	wantInt(t, "deleted", n, 2)
	wantGone(t, b, recs[queues.StatusCompleted].ID)
	wantGone(t, b, recs[queues.StatusCancelled].ID)
	wantStatus(t, "failed record (cutoff before it completed)", get(t, b, recs[queues.StatusFailed].ID), queues.StatusFailed)
	wantStatus(t, "expired record (no cutoff)", get(t, b, recs[queues.StatusExpired].ID), queues.StatusExpired)
	n, err = b.CleanupTerminal(t.Context(), driver.CleanupParams{Limit: 100, Before: map[queuestype.Status]time.Time{
		queuestype.StatusFailed: future,
	}})
	wantNoErr(t, "CleanupTerminal(failed)", err)
	wantInt(t, "deleted", n, 1)
	wantGone(t, b, recs[queues.StatusFailed].ID)
	wantStatus(t, "expired record (no cutoff)", get(t, b, recs[queues.StatusExpired].ID), queues.StatusExpired)
	n, err = b.CleanupTerminal(t.Context(), driver.CleanupParams{Limit: 100})
	wantNoErr(t, "CleanupTerminal(no cutoffs)", err)
	wantInt(t, "deleted with no cutoffs", n, 0)
	if st, want := stats(t, b, ""), (queues.Statistics{Pending: 1, Scheduled: 1, Running: 1, Expired: 1, Total: 4}); st != want {
		t.Fatalf("Statistics after cleanup = %+v, want %+v", st, want)
	}
}

// Older records of a kept status never use up a bounded batch: the
// eligible records behind them are deleted at once.
func cleanupKeptStatusHidesNothing(t *testing.T, b driver.Backend) {
	var kept, gone []*queues.Record
	for range 3 {
		r := running(t, b, item("cleanup.kept"))
		rec, err := settleCall(t, b, driver.Transition{ID: r.ID, To: queuestype.StatusFailed, Error: "x"})
		wantNoErr(t, "Fail", err)
		kept = append(kept, rec)
	}
	for range 2 {
		gone = append(gone, completed(t, b, item("cleanup.gone")))
	}
	future := time.Now().Add(time.Hour)
	n, err := b.CleanupTerminal(t.Context(), driver.CleanupParams{Limit: 2, Before: map[queuestype.Status]time.Time{
		queuestype.StatusCompleted: future, queuestype.StatusFailed: time.Now().Add(-time.Hour),
	}})
	wantNoErr(t, "CleanupTerminal(limit 2)", err)
	wantInt(t, "deleted", n, 2)
	for _, r := range gone {
		wantGone(t, b, r.ID)
	}
	for _, r := range kept {
		wantStatus(t, "kept failed record", get(t, b, r.ID), queues.StatusFailed)
	}
}

// A batch larger than the pieces a store may write it in still deletes
// exactly its limit, then the rest.
func cleanupLargeBatch(t *testing.T, b driver.Backend) {
	const n = 250
	items := make([]driver.EnqueueParams, n)
	for i := range items {
		items[i] = item("cleanup.large", inQueue("cleanup-large"))
	}
	enqueue(t, b, items...)
	res, err := b.ClaimMany(t.Context(), driver.ClaimParams{Limit: n, Queues: []string{"cleanup-large"}, WorkerID: workerA})
	wantNoErr(t, "ClaimMany", err)
	wantInt(t, "claimed", len(res.Claimed), n)
	ts := make([]driver.Transition, n)
	for i, r := range res.Claimed {
		ts[i] = driver.Transition{ID: r.ID, To: queuestype.StatusCompleted, NoRecord: true}
	}
	out, err := b.Settle(t.Context(), ts)
	wantNoErr(t, "Settle", err)
	for _, r := range out {
		wantNoErr(t, "Settle item", r.Err)
	}
	for i, c := range []struct{ limit, want int }{{230, 230}, {1000, 20}, {1000, 0}} {
		got, err := b.CleanupTerminal(t.Context(), driver.CleanupAll(time.Now().Add(time.Hour), c.limit))
		wantNoErr(t, "CleanupTerminal", err)
		if got != c.want {
			t.Fatalf("CleanupTerminal pass %d (limit %d) deleted %d, want %d", i+1, c.limit, got, c.want)
		}
	}
}

// A cutoff for a status that is not terminal, or a zero cutoff, is a
// configuration error and deletes nothing.
func cleanupRefusesNonTerminal(t *testing.T, b driver.Backend) {
	rec := enqueueOne(t, b, item("cleanup.refuse"))
	for _, before := range []map[queuestype.Status]time.Time{
		{queuestype.StatusPending: time.Now().Add(time.Hour)},
		{queuestype.StatusCompleted: {}},
	} {
		_, err := b.CleanupTerminal(t.Context(), driver.CleanupParams{Before: before})
		if !errors.Is(err, queuestype.ErrConfig) {
			t.Fatalf("CleanupTerminal(%v) error = %v, want ErrConfig", before, err)
		}
	}
	wantStatus(t, "pending record", get(t, b, rec.ID), queues.StatusPending)
}

// Maintenance is advertised; a live lock denies another token; a
// wrong token cannot release; the owner releases; re-acquire works.
func maintenanceLock(t *testing.T, b driver.Backend) {
	l := require[driver.Locker](t, b)
	if !b.Capabilities().Maintenance {
		t.Fatal("backend implements driver.Locker but Capabilities().Maintenance is false")
	}
	ctx := t.Context()
	name := "queue-maintenance-" + uuid.NewString()[:8]
	other := "queues:stale_recovery:" + uuid.NewString()[:8]
	tokA, tokB := uuid.NewString(), uuid.NewString()
	acquire := func(name, token string, want bool) {
		t.Helper()
		ok, err := l.AcquireLock(ctx, name, token, 30*time.Second)
		wantNoErr(t, "AcquireLock", err)
		wantBool(t, fmt.Sprintf("AcquireLock(%s, %s)", name, token[:8]), ok, want)
	}
	release := func(name, token string, want bool) {
		t.Helper()
		ok, err := l.ReleaseLock(ctx, name, token)
		wantNoErr(t, "ReleaseLock", err)
		wantBool(t, fmt.Sprintf("ReleaseLock(%s, %s)", name, token[:8]), ok, want)
	}
	acquire(name, tokA, true)
	acquire(name, tokB, false)
	release(name, tokB, false)
	acquire(name, tokB, false) // still held by A after the wrong release
	acquire(other, tokB, true)
	release(name, tokA, true)
	release(name, tokA, false)
	acquire(name, tokB, true)
	acquire(name, tokA, false)
	release(name, tokB, true)
	release(other, tokB, true)
	release("never-held-"+uuid.NewString()[:8], tokA, false)
}

// An expired lock (50 ms TTL) can be taken by a new token; the old token then cannot release it.
func maintenanceLockExpires(t *testing.T, b driver.Backend) {
	l := require[driver.Locker](t, b)
	ctx := t.Context()
	name := "queue-maintenance-" + uuid.NewString()[:8]
	tokA, tokB := uuid.NewString(), uuid.NewString()
	ok, err := l.AcquireLock(ctx, name, tokA, 50*time.Millisecond)
	wantNoErr(t, "AcquireLock(50ms)", err)
	wantBool(t, "AcquireLock(50ms)", ok, true)
	start := time.Now()
	eventually(t, "the 50 ms lock to expire", func() bool {
		ok, err := l.AcquireLock(ctx, name, tokB, 30*time.Second)
		wantNoErr(t, "AcquireLock", err)
		return ok
	})
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("a 50 ms lock took %s to expire", elapsed)
	}
	ok, err = l.ReleaseLock(ctx, name, tokA)
	wantNoErr(t, "ReleaseLock(old token)", err)
	wantBool(t, "ReleaseLock(old token)", ok, false)
	ok, err = l.AcquireLock(ctx, name, tokA, 30*time.Second)
	wantNoErr(t, "AcquireLock(old token)", err)
	wantBool(t, "AcquireLock(old token) while the new one holds", ok, false)
}
