package main

import (
	"context"
	"encoding/json"
	"github.com/queuesgo/queues/internal/testservice"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
)

// TestKilledWorkerLeavesRegistry starts `queues run` on each store, waits
// until `queues workers --json` lists it, SIGKILLs it and waits until the
// entry is gone: a killed worker disappears within the documented time,
// three heartbeat intervals plus jitter after its last refresh. A store
// that does not keep the registry yet is skipped with a message.
func TestKilledWorkerLeavesRegistry(t *testing.T) {
	stores := []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", nil},
		{"postgres", livePostgresDSN},
		{"redis", liveRedisDSN},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			e := newEnv(t)
			if st.dsn != nil {
				e.extra = append(e.extra, "QUEUES_BACKEND="+st.dsn(t))
			}
			if st.name == "redis" {
				// The shared Redis has no schema per test: a namespace of
				// its own keeps this worker off other tests' records.
				e.extra = append(e.extra, "QUEUES_NAMESPACE=e2e_"+strings.ReplaceAll(uuid.NewString()[:8], "-", ""))
			}
			if st.name != "redis" { // redis has no schema
				e.mustRun("migrate")
			}
			if code, _, stderr := e.run("workers", "--json"); code != 0 {
				if strings.Contains(stderr, "keeps no registry of workers") {
					t.Skipf("the %s store does not keep the registry of workers yet: %s", st.name, strings.TrimSpace(stderr))
				}
				t.Fatalf("workers --json: exit %d: %s", code, stderr)
			}
			killedWorkerLeaves(t, e)
		})
	}
}

func killedWorkerLeaves(t *testing.T, e *env) {
	const hb = 200 * time.Millisecond
	ttl := 3 * hb * 11 / 10 // registry TTL: 3 × interval × (1 + default jitter 0.1)
	id := "e2e-" + uuid.NewString()[:8]
	p := e.start("run", "--worker-id", id, "--heartbeat-interval", hb.String())
	listed := func() (driver.WorkerInfo, bool) {
		t.Helper()
		code, out, stderr := e.run("workers", "--json")
		if code != 0 {
			t.Fatalf("workers --json: exit %d: %s", code, stderr)
		}
		var ws []driver.WorkerInfo
		if err := json.Unmarshal([]byte(out), &ws); err != nil {
			t.Fatalf("workers --json: %v: %q", err, out)
		}
		for _, w := range ws {
			if w.ID == id {
				return w, true
			}
		}
		return driver.WorkerInfo{}, false
	}
	deadline := time.Now().Add(10 * time.Second)
	var w driver.WorkerInfo
	for ok := false; !ok; w, ok = listed() {
		if time.Now().After(deadline) {
			t.Fatalf("worker %s not listed within 10s\nstderr: %s", id, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if w.PID != p.cmd.Process.Pid || w.Concurrency != 10 || w.ExecutionBackend != queues.ExecutionLocal {
		t.Errorf("listed entry = %+v (pid %d)", w, p.cmd.Process.Pid)
	}

	p.signal(t, syscall.SIGKILL)
	p.wait(t, 5*time.Second)
	killed := time.Now()
	// Within the TTL of the last refresh, plus what a poll of the CLI costs.
	limit := ttl + 2*time.Second
	for _, ok := listed(); ok; _, ok = listed() {
		if time.Since(killed) > limit {
			t.Fatalf("killed worker %s still listed %s after SIGKILL (ttl %s)", id, time.Since(killed).Round(time.Millisecond), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("killed worker left the registry %s after SIGKILL (ttl %s)", time.Since(killed).Round(time.Millisecond), ttl)
}

// livePostgresDSN returns a DSN of the test PostgreSQL whose search_path
// is a fresh schema, dropped when the test ends.
func livePostgresDSN(t *testing.T) string {
	dsn, _ := testservice.PostgresSchema(t, "queues_e2e")
	return dsn
}

// liveRedisDSN returns the test Redis URL (the test's worker ID is its own,
// so other tests' entries do not matter); it skips when Redis is not reachable.
func liveRedisDSN(t *testing.T) string {
	dsn := os.Getenv("QUEUES_TEST_REDIS_URL")
	if dsn == "" {
		dsn = "redis://127.0.0.1:6379/0"
	}
	opts, err := goredis.ParseURL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	requireServer(t, "Redis (QUEUES_TEST_REDIS_URL)", c.Ping(ctx).Err())
	return dsn
}
