package backendtest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// testIdentity covers forever reservations and keyed enqueue.
func testIdentity(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"ReserveIdentityOnce", reserveIdentityOnce},
		{"ResetIdentity", resetIdentity},
		{"ReservationSurvivesCleanup", reservationSurvivesCleanup},
		{"ConcurrentReservers", concurrentReservers},
		{"KeyedEnqueueTerminalLifetime", keyedEnqueueTerminal},
		{"KeyHeldByScheduledAndRunning", keyHeldByScheduledAndRunning},
		{"ForeverEnqueueReserves", foreverEnqueueReserves},
		{"ForeverKeyHeldByNonForeverRecord", foreverConflict},
		{"BatchKeyedEnqueue", batchKeyedEnqueue},
	})
}

// reserveKey reserves key for id and requires the win.
func reserveKey(t *testing.T, b driver.Backend, key string, id uuid.UUID, task string) {
	t.Helper()
	owner, err := b.ReserveIdentity(t.Context(), queues.Reservation{Key: key, TaskID: id, TaskName: task})
	wantNoErr(t, "ReserveIdentity", err)
	if owner != nil {
		t.Fatalf("ReserveIdentity(%s) lost to %+v; want the win", key, owner)
	}
}

func identity(t *testing.T, b driver.Backend, key string) *queues.Reservation {
	t.Helper()
	r, err := b.GetIdentity(t.Context(), key)
	wantNoErr(t, "GetIdentity", err)
	return r
}

// Reserve wins once; GetIdentity returns the owner (key, task ID,
// task name, UTC created_at); a conflicting reserve returns the first owner.
func reserveIdentityOnce(t *testing.T, b driver.Backend) {
	key := newKey("task")
	id1, id2 := uuid.New(), uuid.New()
	before := time.Now()
	reserveKey(t, b, key, id1, "task.one")
	after := time.Now()
	got := identity(t, b, key)
	if got == nil {
		t.Fatal("GetIdentity after a reservation = nil")
	}
	wantString(t, "key", got.Key, key)
	if got.TaskID != id1 {
		t.Fatalf("owner task id = %s, want %s", got.TaskID, id1)
	}
	wantString(t, "task name", got.TaskName, "task.one")
	wantBetween(t, "created_at", got.CreatedAt, before, after)
	if got.CreatedAt.Location() != time.UTC {
		t.Fatalf("created_at location = %s, want UTC", got.CreatedAt.Location())
	}
	owner, err := b.ReserveIdentity(t.Context(), queues.Reservation{Key: key, TaskID: id2, TaskName: "task.two"})
	wantNoErr(t, "conflicting ReserveIdentity", err)
	if owner == nil || owner.TaskID != id1 || owner.TaskName != "task.one" || owner.Key != key {
		t.Fatalf("conflicting ReserveIdentity returned owner %+v, want the first owner %s", owner, id1)
	}
	if again := identity(t, b, key); again.TaskID != id1 {
		t.Fatalf("owner after a conflicting reserve = %s, want %s", again.TaskID, id1)
	}
	if missing := identity(t, b, newKey("task")); missing != nil {
		t.Fatalf("GetIdentity(missing) = %+v, want nil", missing)
	}
}

// Reset with a wrong expected owner → false; right owner → true;
// unconditional reset of a missing key → false; a fresh reservation then succeeds.
func resetIdentity(t *testing.T, b driver.Backend) {
	key := newKey("arguments")
	id1, id3 := uuid.New(), uuid.New()
	reserveKey(t, b, key, id1, "task.one")
	ok, err := b.ResetIdentity(t.Context(), key, uuid.New())
	wantNoErr(t, "ResetIdentity(wrong owner)", err)
	wantBool(t, "ResetIdentity(wrong owner)", ok, false)
	if got := identity(t, b, key); got == nil || got.TaskID != id1 {
		t.Fatalf("reservation after a wrong reset = %+v, want owner %s", got, id1)
	}
	ok, err = b.ResetIdentity(t.Context(), key, id1)
	wantNoErr(t, "ResetIdentity(right owner)", err)
	wantBool(t, "ResetIdentity(right owner)", ok, true)
	if got := identity(t, b, key); got != nil {
		t.Fatalf("reservation after reset = %+v, want nil", got)
	}
	ok, err = b.ResetIdentity(t.Context(), key, uuid.Nil)
	wantNoErr(t, "ResetIdentity(missing)", err)
	wantBool(t, "ResetIdentity(missing)", ok, false)
	reserveKey(t, b, key, id3, "task.three")
	ok, err = b.ResetIdentity(t.Context(), key, uuid.Nil)
	wantNoErr(t, "ResetIdentity(unconditional)", err)
	wantBool(t, "ResetIdentity(unconditional)", ok, true)
	if got := identity(t, b, key); got != nil {
		t.Fatalf("reservation after an unconditional reset = %+v, want nil", got)
	}
}

// A reservation survives its record completing and being
// deleted by terminal cleanup, and keeps blocking forever enqueues.
func reservationSurvivesCleanup(t *testing.T, b driver.Backend) {
	key := newKey("task")
	rec := enqueueOne(t, b, item("forever.task", foreverKey(key)))
	complete(t, b, claimByID(t, b, rec.ID, workerA))
	n, err := b.CleanupTerminal(t.Context(), driver.CleanupAll(time.Now().Add(time.Hour), 100))
	wantNoErr(t, "CleanupTerminal", err)
	wantInt(t, "deleted", n, 1)
	wantGone(t, b, rec.ID)
	got := identity(t, b, key)
	if got == nil || got.TaskID != rec.ID || got.TaskName != "forever.task" {
		t.Fatalf("reservation after cleanup = %+v, want owner %s", got, rec.ID)
	}
	out := enqueueOutcomes(t, b, item("forever.task", foreverKey(key)))[0]
	if out.Err != nil || out.Record != nil || out.Owner == nil || out.Owner.TaskID != rec.ID {
		t.Fatalf("forever enqueue after deletion = %s; want the owner %s and no record", describeOutcome(out), rec.ID)
	}
	wantInt(t, "records after the blocked enqueue", stats(t, b, "").Total, 0)
}

// 8 concurrent reservers → exactly one winner; all losers see the winner.
func concurrentReservers(t *testing.T, b driver.Backend) {
	const n = 8
	key := newKey("task")
	ids := make([]uuid.UUID, n)
	owners := make([]*queues.Reservation, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = uuid.New()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			owners[i], errs[i] = b.ReserveIdentity(t.Context(), queues.Reservation{Key: key, TaskID: ids[i], TaskName: fmt.Sprintf("reserver.%d", i)})
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent ReserveIdentity: %v", err)
	}
	winner := -1
	for i, o := range owners {
		if o == nil {
			if winner >= 0 {
				t.Fatalf("reservers %d and %d both won", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no reserver won")
	}
	for i, o := range owners {
		if i != winner && (o.TaskID != ids[winner] || o.TaskName != fmt.Sprintf("reserver.%d", winner)) {
			t.Fatalf("loser %d sees owner %+v, want winner %d (%s)", i, o, winner, ids[winner])
		}
	}
	if got := identity(t, b, key); got == nil || got.TaskID != ids[winner] {
		t.Fatalf("GetIdentity = %+v, want winner %s", got, ids[winner])
	}
}

// A second enqueue with the key returns
// the active record (Existing); a terminal record frees the key.
func keyedEnqueueTerminal(t *testing.T, b driver.Backend) {
	k := newKey("task")
	a := enqueueOne(t, b, item("keyed", key(k)))
	wantString(t, "key", a.Key, k)
	out := enqueueOutcomes(t, b, item("keyed", key(k), priority(5)))[0]
	if out.Err != nil || !out.Existing || out.Owner != nil || out.Record == nil || out.Record.ID != a.ID {
		t.Fatalf("duplicate keyed enqueue = %s; want the existing record %s", describeOutcome(out), a.ID)
	}
	wantInt(t, "existing record priority (unchanged)", out.Record.Priority, 0)
	wantStatus(t, "existing record", out.Record, queues.StatusPending)

	complete(t, b, claimByID(t, b, a.ID, workerA))
	bRec := enqueueOne(t, b, item("keyed", key(k)))
	if bRec.ID == a.ID {
		t.Fatal("enqueue after completion returned the completed record")
	}
	wantString(t, "new record key", bRec.Key, k)
	byKey, err := b.GetTaskByKey(t.Context(), k)
	wantNoErr(t, "GetTaskByKey", err)
	if byKey.ID != bRec.ID {
		t.Fatalf("GetTaskByKey = %s, want the new record %s", byKey.ID, bRec.ID)
	}
	wantStatus(t, "completed record", get(t, b, a.ID), queues.StatusCompleted)

	_, err = b.Cancel(t.Context(), driver.CancelParams{ID: bRec.ID})
	wantNoErr(t, "Cancel", err)
	c := enqueueOne(t, b, item("keyed", key(k)))
	if c.ID == bRec.ID || c.ID == a.ID {
		t.Fatal("enqueue after cancellation returned an old record")
	}
	wantInt(t, "records", stats(t, b, "").Total, 3)
	if id := identity(t, b, k); id != nil {
		t.Fatalf("a terminal-lifetime key created a reservation: %+v", id)
	}
}

// Scheduled and running records hold their key too.
func keyHeldByScheduledAndRunning(t *testing.T, b driver.Backend) {
	ks, kr := newKey("task"), newKey("task")
	sched := enqueueOne(t, b, item("keyed.sched", key(ks), scheduledAt(at(time.Hour))))
	run := running(t, b, item("keyed.run", key(kr)))
	outs := enqueueOutcomes(t, b, item("keyed.sched", key(ks)), item("keyed.run", key(kr)))
	for i, want := range []*queues.Record{sched, run} {
		o := outs[i]
		if o.Err != nil || !o.Existing || o.Record == nil || o.Record.ID != want.ID {
			t.Fatalf("enqueue with a key held by a %s record = %s; want existing %s", want.Status, describeOutcome(o), want.ID)
		}
		wantStatus(t, "existing record", o.Record, want.Status)
	}
	wantInt(t, "records", stats(t, b, "").Total, 2)
}

// A forever item reserves its key in the same
// step; later forever enqueues resolve to the owner while it is active too.
func foreverEnqueueReserves(t *testing.T, b driver.Backend) {
	k := newKey("arguments")
	before := time.Now()
	rec := enqueueOne(t, b, item("forever.once", foreverKey(k)))
	after := time.Now()
	wantString(t, "key", rec.Key, k)
	res := identity(t, b, k)
	if res == nil || res.TaskID != rec.ID || res.TaskName != "forever.once" || res.Key != k {
		t.Fatalf("reservation after a forever enqueue = %+v, want owner %s", res, rec.ID)
	}
	wantBetween(t, "reservation created_at", res.CreatedAt, before, after)
	out := enqueueOutcomes(t, b, item("forever.once", foreverKey(k)))[0]
	if out.Err != nil || resolvedID(out) != rec.ID || (out.Record != nil && !out.Existing) {
		t.Fatalf("second forever enqueue while active = %s; want owner/existing %s", describeOutcome(out), rec.ID)
	}
	wantInt(t, "records", stats(t, b, "").Total, 1)
}

// A forever key held by an active non-forever record
// → per-item ErrIdentityConflict and no reservation left behind; once the
// holder is terminal the forever enqueue succeeds.
func foreverConflict(t *testing.T, b driver.Backend) {
	k := newKey("task")
	holder := enqueueOne(t, b, item("plain.holder", key(k)))
	out := enqueueOutcomes(t, b, item("forever.want", foreverKey(k)))[0]
	if !errors.Is(out.Err, queues.ErrIdentityConflict) {
		t.Fatalf("forever enqueue over a non-forever holder = %s; want ErrIdentityConflict", describeOutcome(out))
	}
	if got := identity(t, b, k); got != nil {
		t.Fatalf("conflicting forever enqueue left a reservation: %+v", got)
	}
	wantSameRecord(t, "holder", get(t, b, holder.ID), holder)
	wantInt(t, "records", stats(t, b, "").Total, 1)

	complete(t, b, claimByID(t, b, holder.ID, workerA))
	rec := enqueueOne(t, b, item("forever.want", foreverKey(k)))
	if got := identity(t, b, k); got == nil || got.TaskID != rec.ID {
		t.Fatalf("reservation after the holder completed = %+v, want %s", got, rec.ID)
	}
}

// One Enqueue call with keys:
// duplicates inside the batch resolve to the first item's record, duplicates
// of active records return them, forever keys reserve atomically, a forever
// key with a reservation returns the owner, a forever key held by an active
// non-forever record is a per-item ErrIdentityConflict, outcomes come back in
// input order, and a Waker gets exactly one hint.
func batchKeyedEnqueue(t *testing.T, b driver.Backend) {
	k1, k2, k3, k4, k5 := newKey("task"), newKey("task"), newKey("task"), newKey("task"), newKey("task")
	active := enqueueOne(t, b, item("pre.active", key(k3)))
	plain := enqueueOne(t, b, item("pre.plain", key(k5)))
	oldOwner := uuid.New()
	reserveKey(t, b, k4, oldOwner, "pre.reserved")

	var hints <-chan struct{}
	if w, ok := b.(driver.Waker); ok {
		hints, _ = subscribe(t, w)
	}
	items := []driver.EnqueueParams{
		item("batch.0", key(k1)),        // new
		item("batch.1", foreverKey(k2)), // new + reservation
		item("batch.2", key(k1)),        // duplicate of item 0
		item("batch.3"),                 // new, unkeyed
		item("batch.4", key(k3)),        // existing active record
		item("batch.5", foreverKey(k2)), // duplicate forever of item 1
		item("batch.6", foreverKey(k4)), // reserved by an older owner
		item("batch.7", foreverKey(k5)), // held by an active non-forever record
	}
	outs := enqueueOutcomes(t, b, items...)
	isNew := func(i int) *queues.Record {
		t.Helper()
		o := outs[i]
		if o.Err != nil || o.Record == nil || o.Existing || o.Owner != nil || o.Record.TaskName != items[i].TaskName {
			t.Fatalf("outcome %d = %s; want a new %s record", i, describeOutcome(o), items[i].TaskName)
		}
		return o.Record
	}
	r0, r1, r3 := isNew(0), isNew(1), isNew(3)
	wantString(t, "item 0 key", r0.Key, k1)
	if o := outs[2]; o.Err != nil || o.Record == nil || o.Record.ID != r0.ID || !o.Existing {
		t.Fatalf("outcome 2 (in-batch duplicate) = %s; want existing %s", describeOutcome(o), r0.ID)
	}
	if o := outs[4]; o.Err != nil || o.Record == nil || o.Record.ID != active.ID || !o.Existing {
		t.Fatalf("outcome 4 (active duplicate) = %s; want existing %s", describeOutcome(o), active.ID)
	}
	if o := outs[5]; o.Err != nil || resolvedID(o) != r1.ID || (o.Record != nil && !o.Existing) {
		t.Fatalf("outcome 5 (in-batch forever duplicate) = %s; want %s", describeOutcome(o), r1.ID)
	}
	if o := outs[6]; o.Err != nil || o.Record != nil || o.Owner == nil || o.Owner.TaskID != oldOwner || o.Owner.TaskName != "pre.reserved" {
		t.Fatalf("outcome 6 (reserved key) = %s; want owner %s", describeOutcome(o), oldOwner)
	}
	if o := outs[7]; !errors.Is(o.Err, queues.ErrIdentityConflict) {
		t.Fatalf("outcome 7 (forever over non-forever) = %s; want ErrIdentityConflict", describeOutcome(o))
	}
	if got := identity(t, b, k2); got == nil || got.TaskID != r1.ID || got.TaskName != "batch.1" {
		t.Fatalf("reservation of the forever item = %+v, want %s", got, r1.ID)
	}
	if got := identity(t, b, k4); got == nil || got.TaskID != oldOwner {
		t.Fatalf("older reservation = %+v, want it unchanged (%s)", got, oldOwner)
	}
	if got := identity(t, b, k5); got != nil {
		t.Fatalf("conflicting item left a reservation: %+v", got)
	}
	wantSameRecord(t, "non-forever holder", get(t, b, plain.ID), plain)
	wantString(t, "unkeyed record key", r3.Key, "")
	wantInt(t, "records (2 before + 3 new)", stats(t, b, "").Total, 5)
	if hints != nil {
		expectHint(t, hints, "batch enqueue")
		expectNoHint(t, hints, "after the one batch hint")
	}
}
