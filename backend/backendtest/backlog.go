package backendtest

import (
	"maps"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
)

// testBacklog covers driver.BacklogCounter: exact counts per (queue,
// execution backend) with the claim's own notion of "due".
func testBacklog(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"CountsByQueueAndBackend", backlogCounts},
		{"OverdueAfterPlacementNotDue", backlogOverdueAfterPlacement},
	})
}

// counter returns b's BacklogCounter; a store that lacks it skips the
// case, unless it is one of this module's stores, which must count its
// backlog exactly (the engine's sampled fallback is for other stores).
func counter(t *testing.T, b driver.Backend) driver.BacklogCounter {
	t.Helper()
	c, ok := b.(driver.BacklogCounter)
	if !ok && firstPartyRegistries[b.Name()] {
		t.Fatalf("%s does not implement driver.BacklogCounter; every store of this module must", b.Name())
	}
	if !ok {
		t.Skipf("%s does not implement driver.BacklogCounter", b.Name())
	}
	return c
}

// backlog returns b's counts keyed by "queue/execution backend", failing
// on a duplicate or an empty group.
func backlog(t *testing.T, c driver.BacklogCounter) map[string]driver.BacklogCount {
	t.Helper()
	cs, err := c.CountBacklog(t.Context())
	wantNoErr(t, "CountBacklog", err)
	m := make(map[string]driver.BacklogCount, len(cs))
	for _, x := range cs {
		k := x.Queue + "/" + x.ExecutionBackend
		if _, dup := m[k]; dup {
			t.Fatalf("CountBacklog returned %s twice: %v", k, cs)
		}
		if x.Due == 0 && x.Later == 0 {
			t.Fatalf("CountBacklog returned an empty group %+v", x)
		}
		m[k] = x
	}
	return m
}

func wantBacklog(t *testing.T, what string, got, want map[string]driver.BacklogCount) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("%s: CountBacklog = %v, want %v", what, got, want)
	}
}

// Two queues × two execution backends: due and later records are counted
// per group; expired, running and reserved records are not, and a group
// holding only those is left out.
func backlogCounts(t *testing.T, b driver.Backend) {
	c := counter(t, b)
	wantBacklog(t, "empty store", backlog(t, c), map[string]driver.BacklogCount{})
	later := scheduledAt(at(time.Hour))
	local, other := execution("local", ""), execution("other", "")
	qa, qb, qc := inQueue("bl.a"), inQueue("bl.b"), inQueue("bl.c")
	recs := enqueue(t, b,
		item("a.local.due1", qa, local),
		item("a.local.due2", qa, local, priority(5)),
		item("a.local.later", qa, local, later),
		item("a.local.expired", qa, local, expiresAt(at(-time.Minute))),
		item("a.local.running", qa, local),
		item("a.local.live-deadline", qa, local, expiresAt(at(time.Hour))),
		item("a.other.due", qa, other),
		item("a.other.reserved", qa, other),
		item("b.local.later", qb, local, later),
		item("b.local.later-expiring", qb, local, later, expiresAt(at(2*time.Hour))),
		item("b.other.due1", qb, other),
		item("b.other.due2", qb, other),
		item("b.other.due3", qb, other, scheduledAt(at(-time.Minute))),
		item("c.local.running", qc, local),
	)
	claimByID(t, b, recs[4].ID, workerA)
	claimByID(t, b, recs[13].ID, workerA)
	want := map[string]driver.BacklogCount{
		"bl.a/local": {Queue: "bl.a", ExecutionBackend: "local", Due: 3, Later: 1},
		"bl.a/other": {Queue: "bl.a", ExecutionBackend: "other", Due: 2},
		"bl.b/local": {Queue: "bl.b", ExecutionBackend: "local", Later: 2},
		"bl.b/other": {Queue: "bl.b", ExecutionBackend: "other", Due: 3},
	}
	if _, ok := b.(driver.Dispatcher); ok {
		reserve(t, b, recs[7].ID, newMarker(time.Now().Add(15*time.Minute)))
		want["bl.a/other"] = driver.BacklogCount{Queue: "bl.a", ExecutionBackend: "other", Due: 1}
	}
	wantBacklog(t, "mixed records", backlog(t, c), want)

	// What the claim takes leaves the due count, and nothing else changes.
	res := claimMany(t, b, driver.ClaimParams{Limit: 10, Queues: []string{"bl.b"}, ExecutionBackend: "other", WorkerID: workerA})
	wantInt(t, "claimed from bl.b/other", len(res.Claimed), 3)
	delete(want, "bl.b/other")
	wantBacklog(t, "after claiming bl.b/other", backlog(t, c), want)
}

// A record placed as claimable whose deadline passes afterwards is not due
// any more (the claim skips it), with or without an execution ref, before
// any sweep or claim has looked at it.
func backlogOverdueAfterPlacement(t *testing.T, b driver.Backend) {
	c := counter(t, b)
	deadline := at(1500 * time.Millisecond)
	q := inQueue("bl.over")
	recs := enqueue(t, b,
		item("probe", q, expiresAt(deadline)),
		item("referenced", q, expiresAt(deadline)),
		item("plain", q),
	)
	if _, ok := b.(driver.Dispatcher); ok {
		setRef(t, b, recs[1].ID, newRef("local"))
	}
	wantBacklog(t, "before the deadline", backlog(t, c), map[string]driver.BacklogCount{
		"bl.over/local": {Queue: "bl.over", ExecutionBackend: "local", Due: 3},
	})
	waitOverdue(t, b, deadline, recs[0].ID)
	wantBacklog(t, "after the deadline", backlog(t, c), map[string]driver.BacklogCount{
		"bl.over/local": {Queue: "bl.over", ExecutionBackend: "local", Due: 1},
	})
}
