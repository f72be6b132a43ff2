package backendtest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// testClaiming covers ClaimMany, ClaimByID and ListPending: claim order,
// filters, per-queue caps, exactly-once claims and the claim guard.
func testClaiming(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"LimitOneClaimsHighestPriority", claimHighestPriority},
		{"FollowingClaimsInPriorityOrder", claimRestInPriorityOrder},
		{"QueueFilter", claimQueueFilter},
		{"ExecutionBackendFilter", claimExecutionBackendFilter},
		{"FutureScheduledNeverClaimed", claimSkipsFutureScheduled},
		{"EmptyStoreAndZeroLimit", claimEmpty},
		{"ConcurrentClaimers2", concurrentClaimers(2)},
		{"ConcurrentClaimers4", concurrentClaimers(4)},
		{"ListPendingExecutionBackendFilter", listPendingExecutionBackendFilter},
		{"ListPendingOrderAndFilters", listPendingOrderAndFilters},
		{"PerQueueCap", queueCapSingle},
		{"PerQueueCapsMultipleQueues", queueCapsMultiple},
		{"PerQueueCapZero", queueCapZero},
		{"PriorityOutOfRange", priorityOutOfRange},
		{"EqualPriorityFIFO", equalPriorityFIFO},
		{"RetryQueuesBehindWaitingRecords", retryQueuesBehind},
		{"ClaimByIDSetsOwner", claimByIDSetsOwner},
		{"ClaimByIDOnlyDuePendingRecords", claimByIDOnlyDuePending},
	})
}

// ClaimMany(limit=1) returns the highest-priority due record,
// running, with started_at, heartbeat_at and worker_id set by that one call.
func claimHighestPriority(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("prio.low", priority(1)), item("prio.high", priority(10)), item("prio.mid", priority(5)))
	before := time.Now()
	res := claimMany(t, b, driver.ClaimParams{Limit: 1, WorkerID: workerA})
	after := time.Now()
	wantIDs(t, "claimed", res.Claimed, recs[1].ID)
	wantInt(t, "expired count", len(res.Expired), 0)
	got := res.Claimed[0]
	wantStatus(t, "claimed record", got, queues.StatusRunning)
	wantString(t, "worker_id", got.WorkerID, workerA)
	wantBetween(t, "started_at", got.StartedAt, before, after)
	wantBetween(t, "heartbeat_at", got.HeartbeatAt, before, after)
	if d := got.HeartbeatAt.Sub(got.StartedAt); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("heartbeat_at %s and started_at %s differ by %s; the claim sets both in one write", got.HeartbeatAt, got.StartedAt, d)
	}
	wantInt(t, "retry_count", got.RetryCount, 0)
	wantStored(t, b, "claimed record", got)
	for _, r := range []*queues.Record{recs[0], recs[2]} {
		g := get(t, b, r.ID)
		wantStatus(t, "unclaimed "+r.TaskName, g, queues.StatusPending)
		wantString(t, "unclaimed worker_id", g.WorkerID, "")
		wantZeroTime(t, "unclaimed started_at", g.StartedAt)
	}
}

// Following claims return the rest in priority order (10, 5, 1);
// short batches are normal.
func claimRestInPriorityOrder(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("prio.one", priority(1)), item("prio.ten", priority(10)), item("prio.five", priority(5)))
	first := claimMany(t, b, driver.ClaimParams{Limit: 1, WorkerID: workerA})
	wantIDs(t, "first claim", first.Claimed, recs[1].ID)
	rest := claimMany(t, b, driver.ClaimParams{Limit: 5, WorkerID: workerB})
	wantIDs(t, "second claim (short batch)", rest.Claimed, recs[2].ID, recs[0].ID)
	for _, r := range rest.Claimed {
		wantString(t, "worker_id", r.WorkerID, workerB)
		wantStatus(t, "claimed", r, queues.StatusRunning)
	}
	none := claimMany(t, b, driver.ClaimParams{Limit: 5, WorkerID: workerB})
	wantInt(t, "third claim", len(none.Claimed), 0)
}

// The queue filter is honoured.
func claimQueueFilter(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b,
		item("q.alpha1", inQueue("alpha"), priority(5)),
		item("q.beta", inQueue("beta")),
		item("q.alpha2", inQueue("alpha")),
		item("q.gamma", inQueue("gamma"), priority(9)),
	)
	none := claimMany(t, b, driver.ClaimParams{Limit: 10, Queues: []string{"nope"}, WorkerID: workerA})
	wantInt(t, "claim from an empty queue", len(none.Claimed), 0)
	beta := claimMany(t, b, driver.ClaimParams{Limit: 10, Queues: []string{"beta"}, WorkerID: workerA})
	wantIDs(t, "claim from beta", beta.Claimed, recs[1].ID)
	both := claimMany(t, b, driver.ClaimParams{Limit: 10, Queues: []string{"alpha", "beta"}, WorkerID: workerA})
	wantIDs(t, "claim from alpha+beta", both.Claimed, recs[0].ID, recs[2].ID)
	wantStatus(t, "gamma record", get(t, b, recs[3].ID), queues.StatusPending)
}

// The execution-backend filter is honoured; a cloudrun record is
// claimable only with that filter.
func claimExecutionBackendFilter(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("eb.cloud", execution("cloudrun", "gpu"), priority(10)), item("eb.local"))
	local := claimMany(t, b, driver.ClaimParams{Limit: 10, ExecutionBackend: "local", WorkerID: workerA})
	wantIDs(t, "local claim", local.Claimed, recs[1].ID)
	wantStatus(t, "cloudrun record after a local claim", get(t, b, recs[0].ID), queues.StatusPending)
	other := claimMany(t, b, driver.ClaimParams{Limit: 10, ExecutionBackend: "nats", WorkerID: workerA})
	wantInt(t, "nats claim", len(other.Claimed), 0)
	cloud := claimMany(t, b, driver.ClaimParams{Limit: 10, ExecutionBackend: "cloudrun", WorkerID: workerB})
	wantIDs(t, "cloudrun claim", cloud.Claimed, recs[0].ID)
	wantString(t, "claimed execution_profile", cloud.Claimed[0].ExecutionProfile, "gpu")
}

// Future-scheduled records are never claimed and stay scheduled.
func claimSkipsFutureScheduled(t *testing.T, b driver.Backend) {
	future := at(time.Hour)
	recs := enqueue(t, b, item("sched.future", scheduledAt(future), priority(100)), item("sched.due"))
	res := claimMany(t, b, driver.ClaimParams{Limit: 10, WorkerID: workerA, ExpireOverdue: true})
	wantIDs(t, "claimed", res.Claimed, recs[1].ID)
	again := claimMany(t, b, driver.ClaimParams{Limit: 10, WorkerID: workerA, ExpireOverdue: true})
	wantInt(t, "second claim", len(again.Claimed), 0)
	got := get(t, b, recs[0].ID)
	wantStatus(t, "future record", got, queues.StatusScheduled)
	wantNear(t, "future scheduled_at", got.ScheduledAt, future, storeTolerance)
	wantString(t, "future worker_id", got.WorkerID, "")
	if containsID(listPending(t, b), recs[0].ID) {
		t.Fatal("ListPending lists a future-scheduled record")
	}
}

// An empty store claims nothing; Limit=0 claims nothing.
func claimEmpty(t *testing.T, b driver.Backend) {
	res := claimMany(t, b, driver.ClaimParams{Limit: 10, WorkerID: workerA, ExpireOverdue: true})
	if len(res.Claimed) != 0 || len(res.Expired) != 0 {
		t.Fatalf("claim from an empty store: claimed %v, expired %v", idsOf(res.Claimed), idsOf(res.Expired))
	}
	rec := enqueueOne(t, b, item("limit.zero"))
	zero := claimMany(t, b, driver.ClaimParams{Limit: 0, WorkerID: workerA})
	wantInt(t, "claimed with Limit 0", len(zero.Claimed), 0)
	wantStatus(t, "record after a Limit 0 claim", get(t, b, rec.ID), queues.StatusPending)
}

// N concurrent ClaimMany callers never claim the same
// record; each record is claimed exactly once, with the claimer's worker_id.
func concurrentClaimers(n int) func(t *testing.T, b driver.Backend) {
	return func(t *testing.T, b driver.Backend) {
		const total = 200
		items := make([]driver.EnqueueParams, total)
		for i := range items {
			items[i] = item("concurrent", priority(i%3))
		}
		recs := enqueue(t, b, items...)

		ctx := t.Context()
		claimed := make([][]*queues.Record, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				worker := fmt.Sprintf("worker-%d", w)
				for {
					res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 7, WorkerID: worker})
					if err != nil {
						errs[w] = err
						return
					}
					if len(res.Claimed) == 0 {
						return
					}
					claimed[w] = append(claimed[w], res.Claimed...)
				}
			}()
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent ClaimMany: %v", err)
		}

		owner := map[uuid.UUID]string{}
		for w, list := range claimed {
			worker := fmt.Sprintf("worker-%d", w)
			for _, r := range list {
				if prev, dup := owner[r.ID]; dup {
					t.Fatalf("record %s claimed twice: by %s and %s", r.ID, prev, worker)
				}
				owner[r.ID] = worker
				if r.WorkerID != worker || r.Status != queues.StatusRunning {
					t.Fatalf("record %s claimed by %s returned worker_id %q status %s", r.ID, worker, r.WorkerID, r.Status)
				}
			}
		}
		if len(owner) != total {
			t.Fatalf("%d records claimed, want each of %d exactly once", len(owner), total)
		}
		stored, err := b.GetTasks(ctx, idsOf(recs))
		wantNoErr(t, "GetTasks", err)
		wantInt(t, "stored records", len(stored), total)
		for _, r := range stored {
			if r.Status != queues.StatusRunning || r.WorkerID != owner[r.ID] {
				t.Fatalf("stored record %s: status %s worker_id %q, want running by %s", r.ID, r.Status, r.WorkerID, owner[r.ID])
			}
		}
		wantInt(t, "running count", stats(t, b, "").Running, total)
	}
}

// ListPending and claims respect the execution-backend filter;
// the profile is persisted; execution_ref starts null.
func listPendingExecutionBackendFilter(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("lp.local"), item("lp.cloud", execution("cloudrun", "gpu-large")))
	cloud, err := b.ListPending(t.Context(), driver.ListPendingParams{Limit: 10, ExecutionBackend: "cloudrun"})
	wantNoErr(t, "ListPending(cloudrun)", err)
	wantIDs(t, "ListPending(cloudrun)", cloud, recs[1].ID)
	wantString(t, "listed execution_profile", cloud[0].ExecutionProfile, "gpu-large")
	wantString(t, "listed execution_ref", cloud[0].ExecutionRef, "")
	local, err := b.ListPending(t.Context(), driver.ListPendingParams{Limit: 10, ExecutionBackend: "local"})
	wantNoErr(t, "ListPending(local)", err)
	wantIDs(t, "ListPending(local)", local, recs[0].ID)
	res := claimMany(t, b, driver.ClaimParams{Limit: 10, ExecutionBackend: "cloudrun", WorkerID: workerA})
	wantIDs(t, "claim(cloudrun)", res.Claimed, recs[1].ID)
	wantString(t, "claimed execution_backend", res.Claimed[0].ExecutionBackend, "cloudrun")
	wantString(t, "claimed execution_profile", res.Claimed[0].ExecutionProfile, "gpu-large")
	wantString(t, "claimed execution_ref", res.Claimed[0].ExecutionRef, "")
	wantStatus(t, "local record", get(t, b, recs[0].ID), queues.StatusPending)
}

// ListPending lists due, unexpired, unreserved pending/scheduled
// records in claim order, honouring queue filter and limit.
func listPendingOrderAndFilters(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b,
		item("lp.p1", priority(1)),
		item("lp.p9", priority(9)),
		item("lp.p5", priority(5), inQueue("other")),
		item("lp.future", scheduledAt(at(time.Hour)), priority(100)),
		item("lp.overdue", expiresAt(at(-time.Minute)), priority(100)),
		item("lp.reserved", priority(100)),
		item("lp.running", priority(100)),
		item("lp.pastdue", scheduledAt(at(-time.Minute)), priority(3)),
	)
	reserve(t, b, recs[5].ID, newMarker(time.Now().Add(15*time.Minute)))
	claimByID(t, b, recs[6].ID, workerA)

	all := listPending(t, b)
	wantIDs(t, "ListPending", all, recs[1].ID, recs[2].ID, recs[7].ID, recs[0].ID)
	for _, r := range all {
		wantStored(t, b, "listed record", r)
	}
	limited, err := b.ListPending(t.Context(), driver.ListPendingParams{Limit: 2})
	wantNoErr(t, "ListPending(limit 2)", err)
	wantIDs(t, "ListPending(limit 2)", limited, recs[1].ID, recs[2].ID)
	other, err := b.ListPending(t.Context(), driver.ListPendingParams{Limit: 10, Queues: []string{"other"}})
	wantNoErr(t, "ListPending(other)", err)
	wantIDs(t, "ListPending(queue other)", other, recs[2].ID)
	def, err := b.ListPending(t.Context(), driver.ListPendingParams{Limit: 10, Queues: []string{queues.DefaultQueue, "missing"}})
	wantNoErr(t, "ListPending(default)", err)
	wantIDs(t, "ListPending(queue default)", def, recs[1].ID, recs[7].ID, recs[0].ID)
	// Listing changes nothing.
	wantStatus(t, "listed record", get(t, b, recs[1].ID), queues.StatusPending)
}

func countQueue(recs []*queues.Record, q string) int {
	n := 0
	for _, r := range recs {
		if r.Queue == q {
			n++
		}
	}
	return n
}

// With caps {a:1}, a claim of 5 returns at most 1 record of a.
func queueCapSingle(t *testing.T, b driver.Backend) {
	enqueue(t, b,
		item("cap.a1", inQueue("a"), priority(10)), item("cap.a2", inQueue("a"), priority(10)), item("cap.a3", inQueue("a"), priority(10)),
		item("cap.b1", inQueue("b")), item("cap.b2", inQueue("b")),
	)
	res := claimMany(t, b, driver.ClaimParams{Limit: 5, QueueLimits: map[string]int{"a": 1}, WorkerID: workerA})
	wantInt(t, "records of a claimed under cap 1", countQueue(res.Claimed, "a"), 1)
	wantInt(t, "records of uncapped b claimed", countQueue(res.Claimed, "b"), 2)
	wantIDs(t, "claim order", res.Claimed, sortedIDs(res.Claimed, claimOrder)...)
	again := claimMany(t, b, driver.ClaimParams{Limit: 5, QueueLimits: map[string]int{"a": 1}, WorkerID: workerA})
	wantInt(t, "records of a in the next capped claim", countQueue(again.Claimed, "a"), 1)
	wantInt(t, "records claimed in the next capped claim", len(again.Claimed), 1)
}

// Caps apply per queue; uncapped queues fill the rest.
func queueCapsMultiple(t *testing.T, b driver.Backend) {
	var items []driver.EnqueueParams
	for _, q := range []string{"a", "b", "c"} {
		for i := range 3 {
			items = append(items, item(fmt.Sprintf("caps.%s%d", q, i), inQueue(q)))
		}
	}
	enqueue(t, b, items...)
	res := claimMany(t, b, driver.ClaimParams{Limit: 10, QueueLimits: map[string]int{"a": 1, "b": 2}, WorkerID: workerA})
	wantInt(t, "records of a (cap 1)", countQueue(res.Claimed, "a"), 1)
	wantInt(t, "records of b (cap 2)", countQueue(res.Claimed, "b"), 2)
	wantInt(t, "records of c (uncapped)", countQueue(res.Claimed, "c"), 3)
	limited := claimMany(t, b, driver.ClaimParams{Limit: 1, QueueLimits: map[string]int{"a": 5, "b": 5}, WorkerID: workerA})
	wantInt(t, "claim with Limit 1 under large caps", len(limited.Claimed), 1)
}

// Per-queue limits (max(0, cap − in flight)): a cap of 0 claims nothing from that queue.
func queueCapZero(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("zero.a", inQueue("a"), priority(10)), item("zero.b", inQueue("b")))
	res := claimMany(t, b, driver.ClaimParams{Limit: 5, QueueLimits: map[string]int{"a": 0}, WorkerID: workerA})
	wantIDs(t, "claimed with cap a:0", res.Claimed, recs[1].ID)
	wantStatus(t, "capped record", get(t, b, recs[0].ID), queues.StatusPending)
}

// A priority outside −1000..1000 → ErrConfig and nothing is written.
func priorityOutOfRange(t *testing.T, b driver.Backend) {
	for _, p := range []int{queues.MaxPriority + 1, queues.MinPriority - 1} {
		_, err := b.Enqueue(t.Context(), []driver.EnqueueParams{item("prio.ok"), item("prio.bad", priority(p))})
		if !errors.Is(err, queues.ErrConfig) {
			t.Fatalf("Enqueue with priority %d: err = %v, want ErrConfig", p, err)
		}
	}
	wantInt(t, "records after rejected enqueues", stats(t, b, "").Total, 0)
	recs := enqueue(t, b, item("prio.max", priority(queues.MaxPriority)), item("prio.min", priority(queues.MinPriority)))
	wantInt(t, "max priority", recs[0].Priority, queues.MaxPriority)
	wantInt(t, "min priority", recs[1].Priority, queues.MinPriority)
	res := claimMany(t, b, driver.ClaimParams{Limit: 2, WorkerID: workerA})
	wantIDs(t, "claim order at the bounds", res.Claimed, recs[0].ID, recs[1].ID)
}

// Equal priority claims FIFO by queued_at (then created_at, id).
func equalPriorityFIFO(t *testing.T, b driver.Backend) {
	// IDs descend while enqueue order ascends, so an ID-only order would be reversed.
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return compareUUID(b, a) })
	var recs []*queues.Record
	for i, id := range ids {
		recs = append(recs, enqueueOne(t, b, item(fmt.Sprintf("fifo.%d", i), priority(2), withID(id))))
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].QueuedAt.Before(recs[i-1].QueuedAt) {
			t.Fatalf("queued_at went backwards between successive enqueues: %s then %s", recs[i-1].QueuedAt, recs[i].QueuedAt)
		}
	}
	res := claimMany(t, b, driver.ClaimParams{Limit: 10, WorkerID: workerA})
	wantIDs(t, "claim order", res.Claimed, sortedIDs(recs, claimOrder)...)
	if recs[len(recs)-1].QueuedAt.After(recs[0].QueuedAt) {
		// The clock moved between the enqueues: FIFO must beat the ID order.
		if res.Claimed[0].ID != recs[0].ID {
			t.Fatalf("first claimed %s, want the oldest enqueue %s", res.Claimed[0].ID, recs[0].ID)
		}
	}
}

// A retried record
// queues behind records that waited since before the retry.
func retryQueuesBehind(t *testing.T, b driver.Backend) {
	first := running(t, b, item("behind.retried", retries(3)))
	waiting := enqueueOne(t, b, item("behind.waiting"))
	retried := failRetry(t, b, first, "boom")
	wantStatus(t, "retried record", retried, queues.StatusPending)
	wantNotBefore(t, "retried queued_at", retried.QueuedAt, waiting.QueuedAt)
	res := claimMany(t, b, driver.ClaimParams{Limit: 2, WorkerID: workerA})
	wantIDs(t, "claim order", res.Claimed, sortedIDs(storedAll(t, b, []*queues.Record{retried, waiting}), claimOrder)...)
	if retried.QueuedAt.After(waiting.QueuedAt) && res.Claimed[0].ID != waiting.ID {
		t.Fatalf("first claimed %s, want the record that waited (%s)", res.Claimed[0].ID, waiting.ID)
	}
}

// ClaimByID sets status, worker_id, started_at and heartbeat_at.
func claimByIDSetsOwner(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("byid.target"), item("byid.other", priority(50)))
	before := time.Now()
	res, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: recs[0].ID, WorkerID: workerB})
	after := time.Now()
	wantNoErr(t, "ClaimByID", err)
	wantIDs(t, "claimed", res.Claimed, recs[0].ID)
	got := res.Claimed[0]
	wantStatus(t, "claimed", got, queues.StatusRunning)
	wantString(t, "worker_id", got.WorkerID, workerB)
	wantBetween(t, "started_at", got.StartedAt, before, after)
	wantBetween(t, "heartbeat_at", got.HeartbeatAt, before, after)
	wantStored(t, b, "claimed by id", got)
	wantStatus(t, "other record", get(t, b, recs[1].ID), queues.StatusPending)
}

// ClaimByID claims only due pending/scheduled records.
func claimByIDOnlyDuePending(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("byid.future", scheduledAt(at(time.Hour))), item("byid.running"), item("byid.done"))
	res, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: recs[0].ID, WorkerID: workerA})
	wantNothingClaimed(t, "ClaimByID(future)", res, err)
	wantStatus(t, "future record", get(t, b, recs[0].ID), queues.StatusScheduled)

	claimByID(t, b, recs[1].ID, workerA)
	res, err = b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: recs[1].ID, WorkerID: workerB})
	wantNothingClaimed(t, "ClaimByID(running)", res, err)
	wantString(t, "running record worker_id", get(t, b, recs[1].ID).WorkerID, workerA)

	complete(t, b, claimByID(t, b, recs[2].ID, workerA))
	res, err = b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: recs[2].ID, WorkerID: workerB})
	wantNothingClaimed(t, "ClaimByID(completed)", res, err)
	wantStatus(t, "completed record", get(t, b, recs[2].ID), queues.StatusCompleted)

	res, err = b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: uuid.New(), WorkerID: workerB})
	if err != nil && !errors.Is(err, queues.ErrTaskNotFound) && !errors.Is(err, queues.ErrFenceLost) {
		t.Fatalf("ClaimByID(missing): err = %v, want nothing claimed", err)
	}
	if len(res.Claimed) != 0 || len(res.Expired) != 0 {
		t.Fatalf("ClaimByID(missing) returned records")
	}
}
