package backendtest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// firstPartyRegistries names (by Backend.Name) the stores of this module
// that must keep the registry of live workers and count their backlog: for
// them a missing driver.WorkerRegistry or driver.BacklogCounter fails the
// Workers or Backlog group instead of skipping it.
var firstPartyRegistries = map[string]bool{
	"sqlite":   true,
	"postgres": true,
	"redis":    true,
	"memory":   true,
}

// workerTTL is the ttl of entries that must stay live while a case runs.
const workerTTL = time.Minute

// shortWorkerTTL is the ttl of entries that must expire while a case runs.
const shortWorkerTTL = 300 * time.Millisecond

// testWorkers covers the optional driver.WorkerRegistry: the registry of
// live workers.
func testWorkers(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"RegisterAndList", workersRegisterAndList},
		{"RegisterAgainRefreshes", workersRefresh},
		{"Remove", workersRemove},
		{"ExpiredEntriesVanish", workersExpire},
		{"Limit", workersLimit},
		{"UnicodeIDsInByteOrder", workersUnicode},
		{"InvalidEntriesRefused", workersInvalid},
	})
}

// registry returns b's WorkerRegistry; a store that lacks it skips the
// case, unless it is one of this module's stores, which fails it.
func registry(t *testing.T, b driver.Backend) driver.WorkerRegistry {
	t.Helper()
	r, ok := b.(driver.WorkerRegistry)
	if !ok && firstPartyRegistries[b.Name()] {
		t.Fatalf("%s does not implement driver.WorkerRegistry; every store of this module must", b.Name())
	}
	if !ok {
		t.Skipf("%s does not implement driver.WorkerRegistry", b.Name())
	}
	return r
}

// sampleWorker returns a fully populated entry for id.
func sampleWorker(id string) driver.WorkerInfo {
	return driver.WorkerInfo{
		ID:               id,
		Host:             "host-" + id,
		PID:              4242,
		Queues:           []string{"default", "emails", "ünïcode"},
		ExecutionBackend: "local",
		Concurrency:      8,
		Running:          3,
		StartedAt:        at(-time.Hour),
		Version:          "v1.2.3",
	}
}

func registerWorker(t *testing.T, r driver.WorkerRegistry, w driver.WorkerInfo, ttl time.Duration) {
	t.Helper()
	wantNoErr(t, fmt.Sprintf("RegisterWorker(%q)", w.ID), r.RegisterWorker(t.Context(), w, ttl))
}

func listWorkers(t *testing.T, r driver.WorkerRegistry, limit int) []driver.WorkerInfo {
	t.Helper()
	ws, err := r.ListWorkers(t.Context(), limit)
	wantNoErr(t, "ListWorkers", err)
	return ws
}

func workerIDs(ws []driver.WorkerInfo) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.ID
	}
	return out
}

// checkWorker compares the worker's own fields of got with want and checks
// that the store stamped SeenAt near now and ExpiresAt at SeenAt + ttl.
func checkWorker(t *testing.T, got, want driver.WorkerInfo, ttl time.Duration) {
	t.Helper()
	if got.ID != want.ID || got.Host != want.Host || got.PID != want.PID || !slices.Equal(got.Queues, want.Queues) ||
		got.ExecutionBackend != want.ExecutionBackend || got.Concurrency != want.Concurrency ||
		got.Running != want.Running || got.Version != want.Version {
		t.Errorf("worker %q = %+v; want %+v", want.ID, got, want)
	}
	if d := got.StartedAt.Sub(want.StartedAt).Abs(); d > storeTolerance {
		t.Errorf("worker %q StartedAt = %v; want %v", want.ID, got.StartedAt, want.StartedAt)
	}
	if d := time.Since(got.SeenAt).Abs(); got.SeenAt.IsZero() || d > clockTolerance {
		t.Errorf("worker %q SeenAt = %v; want the store's now (within %s of %v)", want.ID, got.SeenAt, clockTolerance, time.Now())
	}
	if d := got.ExpiresAt.Sub(got.SeenAt.Add(ttl)).Abs(); d > storeTolerance {
		t.Errorf("worker %q ExpiresAt = %v; want SeenAt %v + ttl %s", want.ID, got.ExpiresAt, got.SeenAt, ttl)
	}
}

// Two entries are listed in ID order with every field as registered and
// their times stamped by the store.
func workersRegisterAndList(t *testing.T, b driver.Backend) {
	r := registry(t, b)
	if ws := listWorkers(t, r, 0); len(ws) != 0 {
		t.Fatalf("empty registry lists %v", workerIDs(ws))
	}
	wb, wa := sampleWorker("worker-b"), sampleWorker("worker-a")
	wa.Queues, wa.Running, wa.PID = nil, 0, 1 // every queue, idle
	registerWorker(t, r, wb, workerTTL)
	registerWorker(t, r, wa, 2*workerTTL)
	ws := listWorkers(t, r, 0)
	if got := workerIDs(ws); !slices.Equal(got, []string{"worker-a", "worker-b"}) {
		t.Fatalf("ListWorkers = %v; want [worker-a worker-b]", got)
	}
	checkWorker(t, ws[0], wa, 2*workerTTL)
	checkWorker(t, ws[1], wb, workerTTL)
}

// Registering an ID again replaces its fields and moves its expiry.
func workersRefresh(t *testing.T, b driver.Backend) {
	r := registry(t, b)
	w := sampleWorker("worker-r")
	registerWorker(t, r, w, workerTTL)
	first := listWorkers(t, r, 0)
	if len(first) != 1 {
		t.Fatalf("ListWorkers = %v; want [worker-r]", workerIDs(first))
	}
	w.Running, w.Queues, w.Host, w.Version, w.ExecutionBackend = 7, []string{"other"}, "host-2", "v2", "cloudrun"
	registerWorker(t, r, w, 2*workerTTL)
	second := listWorkers(t, r, 0)
	if len(second) != 1 {
		t.Fatalf("ListWorkers after the refresh = %v; want one entry", workerIDs(second))
	}
	checkWorker(t, second[0], w, 2*workerTTL)
	if second[0].SeenAt.Before(first[0].SeenAt) || !second[0].ExpiresAt.After(first[0].ExpiresAt) {
		t.Errorf("refresh: SeenAt %v → %v, ExpiresAt %v → %v; want both later",
			first[0].SeenAt, second[0].SeenAt, first[0].ExpiresAt, second[0].ExpiresAt)
	}
}

// RemoveWorker deletes one entry; a missing ID is not an error.
func workersRemove(t *testing.T, b driver.Backend) {
	r := registry(t, b)
	registerWorker(t, r, sampleWorker("worker-1"), workerTTL)
	registerWorker(t, r, sampleWorker("worker-2"), workerTTL)
	wantNoErr(t, "RemoveWorker(worker-1)", r.RemoveWorker(t.Context(), "worker-1"))
	if got := workerIDs(listWorkers(t, r, 0)); !slices.Equal(got, []string{"worker-2"}) {
		t.Fatalf("ListWorkers after RemoveWorker = %v; want [worker-2]", got)
	}
	wantNoErr(t, "RemoveWorker again", r.RemoveWorker(t.Context(), "worker-1"))
	wantNoErr(t, "RemoveWorker of an ID never registered", r.RemoveWorker(t.Context(), "no-such-worker"))
	if got := workerIDs(listWorkers(t, r, 0)); !slices.Equal(got, []string{"worker-2"}) {
		t.Fatalf("ListWorkers after removing missing IDs = %v; want [worker-2]", got)
	}
	// A removed ID registers again like a new one.
	registerWorker(t, r, sampleWorker("worker-1"), workerTTL)
	if got := workerIDs(listWorkers(t, r, 0)); !slices.Equal(got, []string{"worker-1", "worker-2"}) {
		t.Fatalf("ListWorkers after registering again = %v", got)
	}
}

// An entry that is not refreshed within its ttl stops being listed; the
// others stay; the ID registers again afterwards.
func workersExpire(t *testing.T, b driver.Backend) {
	r := registry(t, b)
	registerWorker(t, r, sampleWorker("worker-live"), workerTTL)
	start := time.Now()
	registerWorker(t, r, sampleWorker("worker-short"), shortWorkerTTL)
	ws := listWorkers(t, r, 0)
	// Listed while live — unless this process stalled past half the ttl
	// (a loaded machine), when the entry may already be gone.
	if got := workerIDs(ws); !slices.Equal(got, []string{"worker-live", "worker-short"}) && time.Since(start) < shortWorkerTTL/2 {
		t.Fatalf("ListWorkers right after registering = %v; want [worker-live worker-short]", got)
	}
	eventually(t, "the short-lived entry to expire", func() bool {
		return slices.Equal(workerIDs(listWorkers(t, r, 0)), []string{"worker-live"})
	})
	if waited := time.Since(start); waited < shortWorkerTTL-clockTolerance {
		t.Errorf("the entry vanished after %s, before its ttl %s", waited, shortWorkerTTL)
	}
	registerWorker(t, r, sampleWorker("worker-short"), workerTTL)
	if got := workerIDs(listWorkers(t, r, 0)); !slices.Equal(got, []string{"worker-live", "worker-short"}) {
		t.Fatalf("ListWorkers after registering the expired ID again = %v", got)
	}
}

// ListWorkers returns at most limit entries, the first in ID order.
func workersLimit(t *testing.T, b driver.Backend) {
	r := registry(t, b)
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("worker-%02d", 5-i)
		registerWorker(t, r, sampleWorker(id), workerTTL)
		want = append(want, id)
	}
	slices.Sort(want)
	if got := workerIDs(listWorkers(t, r, 3)); !slices.Equal(got, want[:3]) {
		t.Fatalf("ListWorkers(3) = %v; want %v", got, want[:3])
	}
	if got := workerIDs(listWorkers(t, r, 0)); !slices.Equal(got, want) {
		t.Fatalf("ListWorkers(0) = %v; want %v", got, want)
	}
	if got := workerIDs(listWorkers(t, r, 1)); !slices.Equal(got, want[:1]) {
		t.Fatalf("ListWorkers(1) = %v; want %v", got, want[:1])
	}
}

// IDs and fields in any script round-trip, and the order is byte-wise
// (upper case before lower case, ASCII before the rest), the same on
// every store whatever its collation.
func workersUnicode(t *testing.T, b driver.Backend) {
	r := registry(t, b)
	ids := []string{"wörker-ß", "工人-1", "Zebra", "apple", "émile", "worker 😀", "Ärger"}
	registered := map[string]driver.WorkerInfo{}
	for _, id := range ids {
		w := sampleWorker(id)
		w.Queues = []string{"キュー", "ąę"}
		registerWorker(t, r, w, workerTTL)
		registered[id] = w
	}
	want := slices.Clone(ids)
	slices.Sort(want)
	ws := listWorkers(t, r, 0)
	if got := workerIDs(ws); !slices.Equal(got, want) {
		t.Fatalf("ListWorkers = %q; want %q", got, want)
	}
	for _, w := range ws {
		checkWorker(t, w, registered[w.ID], workerTTL)
	}
}

// Entries the shared check refuses are refused by the store, and nothing
// is written.
func workersInvalid(t *testing.T, b driver.Backend) {
	r := registry(t, b)
	bad := []struct {
		name string
		w    driver.WorkerInfo
		ttl  time.Duration
	}{
		{"empty ID", sampleWorker(""), workerTTL},
		{"zero ttl", sampleWorker("worker-ttl"), 0},
		{"NUL in the ID", sampleWorker("worker-\x00"), workerTTL},
		{"invalid UTF-8 host", func() driver.WorkerInfo { w := sampleWorker("worker-host"); w.Host = "\xff"; return w }(), workerTTL},
	}
	for _, c := range bad {
		err := r.RegisterWorker(t.Context(), c.w, c.ttl)
		if !errors.Is(err, queuestype.ErrConfig) {
			t.Errorf("%s: RegisterWorker = %v; want an error matching ErrConfig", c.name, err)
		}
	}
	if ws := listWorkers(t, r, 0); len(ws) != 0 {
		t.Fatalf("refused entries are listed: %v", workerIDs(ws))
	}
}
