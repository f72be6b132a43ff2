// Package backendtest is the shared contract suite that every queue
// backend — memory, SQLite, PostgreSQL, Redis — must pass unchanged.
//
// A backend package runs it from one of its own _test.go files with a Factory
// that returns a fresh, opened, empty backend per case:
//
//	func TestContract(t *testing.T) {
//		backendtest.Run(t, backendtest.Factory{
//			New: func(t *testing.T) driver.Backend {
//				b := memory.New(memory.Options{})
//				if err := b.Open(t.Context()); err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { _ = b.Close(context.Background()) })
//				return b
//			},
//		})
//	}
//
// Server-backed stores give every call of New its own schema, table prefix or
// key prefix, so cases never see each other's records: every case runs in
// parallel with the others. That isolation must extend to the hint channels
// (wakeups, worker control, completion announcements): several cases listen
// for silence and fail on a hint sent by another case's backend, so a factory
// for PostgreSQL or Redis also gives each backend its own channel namespace.
//
// The suite never controls the backend's clock (PostgreSQL and Redis use their
// own). Overdue records are created with an ExpiresAt in the past, future ones
// with a ScheduledAt an hour ahead, "everything is stale" is
// ListStale(-1) (and a transition with StaleAfter -1), and times are compared with a tolerance that
// allows for microsecond storage and a few seconds of clock skew between the
// test process and the store. Waits poll a condition with a deadline.
//
// Cases for an optional capability (Waker, WorkerController, DueTimer,
// CompletionWaiter, Locker, Inspector, Pinger, WorkerRegistry, BacklogCounter,
// SchedulePauser) are skipped only when the backend does not implement that
// interface; the stores of this module must implement WorkerRegistry,
// BacklogCounter and SchedulePauser, and fail their cases when they do not.
package backendtest

import (
	"testing"

	"github.com/queuesgo/queues/driver"
)

// Factory creates the backends the suite runs against.
type Factory struct {
	// New returns a fresh, opened, empty backend for one test (fresh
	// schema/prefix). Register cleanup with t.Cleanup. It is called from
	// parallel subtests, so it must be safe for concurrent use.
	New func(t *testing.T) driver.Backend
}

// group is one named set of cases.
type group struct {
	name string
	run  func(t *testing.T, f Factory)
}

// suites lists everything Run executes, one line per group. Service-level
// groups (cases that go through a queues.Service) are added here.
var suites = []group{
	{"Backend", RunBackend},
	{"Service", RunService},
}

// Run runs the whole contract suite: the backend-level cases and every
// service-level group, each as a subtest.
func Run(t *testing.T, f Factory) {
	t.Helper()
	checkFactory(t, f)
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(t, f)
		})
	}
}

// RunBackend runs only the backend-level cases: the Backend methods and the
// optional capability interfaces, called directly without a Service.
func RunBackend(t *testing.T, f Factory) {
	t.Helper()
	checkFactory(t, f)
	groups := []group{
		{"Ping", testPing},
		{"Records", testRecords},
		{"Claiming", testClaiming},
		{"Dispatch", testDispatch},
		{"Settling", testSettling},
		{"Transitions", testTransitions},
		{"HandlerOutcomes", testHandlerOutcomes},
		{"Heartbeats", testHeartbeats},
		{"Operations", testOperations},
		{"Retention", testRetention},
		{"Identity", testIdentity},
		{"Expiry", testExpiry},
		{"Hints", testHints},
		{"Inspector", testInspector},
		{"Workers", testWorkers},
		{"Schedules", testSchedules},
		{"Limits", testLimits},
		{"Backlog", testBacklog},
		{"Tags", testTags},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, f)
		})
	}
}

func checkFactory(t *testing.T, f Factory) {
	t.Helper()
	if f.New == nil {
		t.Fatal("backendtest: Factory.New is nil")
	}
}
