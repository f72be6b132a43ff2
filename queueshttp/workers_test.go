package queueshttp_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
)

// plainStore is a store without the optional capabilities of the memory store.
type plainStore struct{ driver.Backend }

func (f *fixture) workers() []driver.WorkerInfo {
	f.t.Helper()
	r := f.do("GET", "/q/api/workers", "")
	if r.status != 200 {
		f.t.Fatalf("workers: %d %s", r.status, r.raw)
	}
	var ws []driver.WorkerInfo
	if err := json.Unmarshal(r.raw, &ws); err != nil {
		f.t.Fatalf("workers is not a JSON array of workers: %v: %s", err, r.raw)
	}
	return ws
}

func TestWorkersRoute(t *testing.T) {
	f := newFixture(t, fixtureConfig{inApp: true})
	ws := f.workers()
	deadline := time.Now().Add(2 * time.Second)
	for len(ws) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		ws = f.workers()
	}
	if len(ws) != 1 || ws[0].PID != os.Getpid() || ws[0].Concurrency != 2 || ws[0].ExecutionBackend != "local" || ws[0].Running != 0 {
		t.Fatalf("workers = %+v", ws)
	}
	f.enqueue("test.block", echoArgs{"x"}, queues.EnqueueOptions{})
	<-f.started
	f.enqueue("test.echo", echoArgs{"later"}, queues.EnqueueOptions{RunAfter: time.Hour})
	// The in-app worker serves the default queue's local records.
	r := f.do("GET", "/q/api/queues", "")
	var qs []queues.Statistics
	var facts []struct {
		Queue             string
		Unserved          *int
		ExecutionBackends []struct {
			ExecutionBackend string `json:"execution_backend"`
			Due, Later       int
			Served           *bool
		} `json:"execution_backends"`
	}
	if err := json.Unmarshal(r.raw, &facts); err != nil || json.Unmarshal(r.raw, &qs) != nil || len(facts) != 1 {
		t.Fatalf("queues: %v %s", err, r.raw)
	}
	bl := facts[0].ExecutionBackends
	if facts[0].Unserved == nil || *facts[0].Unserved != 0 || len(bl) != 1 || bl[0].Later != 1 || bl[0].Served == nil || !*bl[0].Served || qs[0].Running != 1 {
		t.Errorf("queues with a live worker: %s", r.raw)
	}
}

// inspectOnly is a store with per-queue statistics but neither a registry
// of workers nor backlog counts.
type inspectOnly struct {
	driver.Backend
	driver.Inspector
}

func TestWorkersRouteUnsupported(t *testing.T) {
	f := newFixture(t, fixtureConfig{backend: plainStore{memory.New(memory.Options{})}})
	f.expectError("GET", "/q/api/workers", "", 501, "unsupported")
	f.expectError("GET", "/q/api/queues", "", 501, "unsupported")

	// Without a registry the facts that need it are null; without backlog
	// counts the due records are sampled.
	m := memory.New(memory.Options{})
	f = newFixture(t, fixtureConfig{backend: inspectOnly{m, m}})
	f.expectError("GET", "/q/api/workers", "", 501, "unsupported")
	f.enqueue("test.echo", echoArgs{"x"}, queues.EnqueueOptions{})
	f.enqueue("test.echo", echoArgs{"y"}, queues.EnqueueOptions{RunAfter: time.Hour})
	r := f.do("GET", "/q/api/queues", "")
	want := `[{"queue":"default","pending":1,"scheduled":1,"running":0,"completed":0,"failed":0,"cancelled":0,"expired":0,"total":2,` +
		`"execution_backends":[{"execution_backend":"local","due":1,"later":0,"served":null}],"unserved":null,"backlog_sampled":true}]`
	if r.status != 200 || string(r.raw) != want+"\n" {
		t.Errorf("queues without registry or backlog counts:\n got %d %s\nwant %s", r.status, r.raw, want)
	}
}
