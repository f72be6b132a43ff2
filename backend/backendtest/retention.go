package backendtest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// testRetention covers CleanupTerminal's per-task cutoffs
// (CleanupParams.ByTask).
func testRetention(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"LongerRetentionKeeps", retentionLongerKeeps},
		{"ShorterRetentionDeletesEarlier", retentionShorterDeletes},
		{"KeepForever", retentionKeepForever},
		{"CombinedWithPerStatusCutoffs", retentionCombined},
		{"ReservationSurvives", retentionReservationSurvives},
		{"RefusesBadCutoffs", retentionRefuses},
	})
}

// terminalSet makes one completed, one failed and one cancelled record of
// task, in that order.
func terminalSet(t *testing.T, b driver.Backend, task string) map[queues.Status]*queues.Record {
	t.Helper()
	out := map[queues.Status]*queues.Record{}
	out[queues.StatusCompleted] = completed(t, b, item(task))
	r := running(t, b, item(task))
	rec, err := settleCall(t, b, driver.Transition{ID: r.ID, To: queuestype.StatusFailed, Error: "x"})
	wantNoErr(t, "Fail", err)
	out[queues.StatusFailed] = rec
	c := enqueueOne(t, b, item(task))
	rec, err = b.Cancel(t.Context(), driver.CancelParams{ID: c.ID})
	wantNoErr(t, "Cancel", err)
	out[queues.StatusCancelled] = rec
	return out
}

func allCutoffs(at time.Time) map[queuestype.Status]time.Time {
	return driver.CleanupAll(at, 0).Before
}

func idsOfSet(set map[queues.Status]*queues.Record) []uuid.UUID {
	var out []uuid.UUID
	for _, r := range set {
		out = append(out, r.ID)
	}
	return out
}

func wantKept(t *testing.T, b driver.Backend, what string, ids []uuid.UUID) {
	t.Helper()
	for _, id := range ids {
		if _, err := b.GetTask(t.Context(), id); err != nil {
			t.Fatalf("%s record %s: %v, want kept", what, id, err)
		}
	}
}

// A task whose retention is longer keeps its records while every other
// task's are deleted, and its older kept records never use up a bounded
// batch: the others' records behind them go in full batches.
func retentionLongerKeeps(t *testing.T, b driver.Backend) {
	long1, long2 := terminalSet(t, b, "ret.long"), terminalSet(t, b, "ret.long")
	other := terminalSet(t, b, "ret.other")
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	p := driver.CleanupParams{Limit: 2, Before: allCutoffs(future),
		ByTask: map[string]map[queuestype.Status]time.Time{"ret.long": allCutoffs(past)}}
	for i, want := range []int{2, 1, 0} {
		n, err := b.CleanupTerminal(t.Context(), p)
		wantNoErr(t, "CleanupTerminal", err)
		if n != want {
			t.Fatalf("CleanupTerminal pass %d deleted %d, want %d", i+1, n, want)
		}
	}
	for _, id := range idsOfSet(other) {
		wantGone(t, b, id)
	}
	wantKept(t, b, "longer-retention", append(idsOfSet(long1), idsOfSet(long2)...))
}

// A task whose retention is shorter loses its records while the others,
// within the fleet's retention, are kept; oldest first.
func retentionShorterDeletes(t *testing.T, b driver.Backend) {
	short := terminalSet(t, b, "ret.short")
	other := terminalSet(t, b, "ret.kept")
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	p := driver.CleanupParams{Limit: 1, Before: allCutoffs(past),
		ByTask: map[string]map[queuestype.Status]time.Time{"ret.short": allCutoffs(future)}}
	stored := storedAll(t, b, []*queues.Record{short[queues.StatusCompleted], short[queues.StatusFailed], short[queues.StatusCancelled]})
	order := sortedIDs(stored, func(a, b *queues.Record) int { return -newestFirst(a, b) })
	for i, id := range order {
		n, err := b.CleanupTerminal(t.Context(), p)
		wantNoErr(t, "CleanupTerminal(limit 1)", err)
		wantInt(t, "deleted", n, 1)
		wantGone(t, b, id)
		wantKept(t, b, "not yet deleted", order[i+1:])
	}
	n, err := b.CleanupTerminal(t.Context(), p)
	wantNoErr(t, "CleanupTerminal", err)
	wantInt(t, "deleted once the short task's records are gone", n, 0)
	wantKept(t, b, "fleet-retention", idsOfSet(other))
}

// A task listed with no cutoff keeps its records forever.
func retentionKeepForever(t *testing.T, b driver.Backend) {
	forever := terminalSet(t, b, "ret.forever")
	other := terminalSet(t, b, "ret.gone")
	p := driver.CleanupParams{Limit: 100, Before: allCutoffs(time.Now().Add(time.Hour)),
		ByTask: map[string]map[queuestype.Status]time.Time{"ret.forever": {}}}
	n, err := b.CleanupTerminal(t.Context(), p)
	wantNoErr(t, "CleanupTerminal", err)
	wantInt(t, "deleted", n, 3)
	for _, id := range idsOfSet(other) {
		wantGone(t, b, id)
	}
	wantKept(t, b, "kept-forever", idsOfSet(forever))
	// Only the kept-forever task listed, no defaults: nothing to delete.
	n, err = b.CleanupTerminal(t.Context(), driver.CleanupParams{ByTask: p.ByTask})
	wantNoErr(t, "CleanupTerminal(only a kept-forever task)", err)
	wantInt(t, "deleted", n, 0)
	wantKept(t, b, "kept-forever", idsOfSet(forever))
}

// A task's own map is per status: a status it omits is kept for that task
// even when the fleet default deletes it, and the reverse.
func retentionCombined(t *testing.T, b driver.Backend) {
	mix := terminalSet(t, b, "ret.mix")
	other := terminalSet(t, b, "ret.plain")
	future := time.Now().Add(time.Hour)
	p := driver.CleanupParams{Limit: 100,
		Before: map[queuestype.Status]time.Time{queuestype.StatusFailed: future},
		ByTask: map[string]map[queuestype.Status]time.Time{"ret.mix": {
			queuestype.StatusCompleted: future, queuestype.StatusCancelled: time.Now().Add(-time.Hour),
		}}}
	n, err := b.CleanupTerminal(t.Context(), p)
	wantNoErr(t, "CleanupTerminal", err)
	wantInt(t, "deleted", n, 2)
	wantGone(t, b, mix[queues.StatusCompleted].ID)
	wantGone(t, b, other[queues.StatusFailed].ID)
	wantKept(t, b, "mix failed (its task omits failed) and cancelled (cutoff before it)",
		[]uuid.UUID{mix[queues.StatusFailed].ID, mix[queues.StatusCancelled].ID})
	wantKept(t, b, "plain completed and cancelled (no default cutoff)",
		[]uuid.UUID{other[queues.StatusCompleted].ID, other[queues.StatusCancelled].ID})
}

// A task's shorter retention deletes its record, never its forever
// reservation.
func retentionReservationSurvives(t *testing.T, b driver.Backend) {
	k := newKey("ret")
	rec := enqueueOne(t, b, item("ret.reserved", foreverKey(k)))
	complete(t, b, claimByID(t, b, rec.ID, workerA))
	n, err := b.CleanupTerminal(t.Context(), driver.CleanupParams{Limit: 100,
		ByTask: map[string]map[queuestype.Status]time.Time{"ret.reserved": allCutoffs(time.Now().Add(time.Hour))}})
	wantNoErr(t, "CleanupTerminal", err)
	wantInt(t, "deleted", n, 1)
	wantGone(t, b, rec.ID)
	if got := identity(t, b, k); got == nil || got.TaskID != rec.ID {
		t.Fatalf("reservation after cleanup = %+v, want owner %s", got, rec.ID)
	}
}

// A per-task cutoff for a status that is not terminal, a zero one, or one
// for an empty task name is a configuration error and deletes nothing.
func retentionRefuses(t *testing.T, b driver.Backend) {
	rec := completed(t, b, item("ret.refuse"))
	future := time.Now().Add(time.Hour)
	for _, by := range []map[string]map[queuestype.Status]time.Time{
		{"ret.refuse": {queuestype.StatusPending: future}},
		{"ret.refuse": {queuestype.StatusCompleted: {}}},
		{"": {queuestype.StatusCompleted: future}},
	} {
		_, err := b.CleanupTerminal(t.Context(), driver.CleanupParams{Before: allCutoffs(future), ByTask: by})
		if !errors.Is(err, queuestype.ErrConfig) {
			t.Fatalf("CleanupTerminal(ByTask %v) error = %v, want ErrConfig", by, err)
		}
	}
	wantStatus(t, "completed record", get(t, b, rec.ID), queues.StatusCompleted)
}
