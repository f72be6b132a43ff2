package redis

import (
	"context"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
)

// TestWorkerKeys checks the documented keys of the registry: a registered
// entry is a hash <p>:worker:<id> with a ttl, indexed in <p>:workers by its
// expiry (µs) and in <p>:workerids; once it expires, a listing deletes the
// hash and both index entries, and RemoveWorker does the same for a live one.
func TestWorkerKeys(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := t.Context()
	w := driver.WorkerInfo{ID: "w-1", Host: "h", PID: 7, ExecutionBackend: "local", StartedAt: time.Now()}
	if err := b.RegisterWorker(ctx, w, 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	w.ID = "w-2"
	if err := b.RegisterWorker(ctx, w, time.Minute); err != nil {
		t.Fatal(err)
	}
	hk := b.prefix + ":worker:w-1"
	if ttl, err := admin.PTTL(ctx, hk).Result(); err != nil || ttl <= 0 || ttl > 150*time.Millisecond {
		t.Fatalf("PTTL %s = %v, %v; want the 150ms ttl", hk, ttl, err)
	}
	if host, err := admin.HGet(ctx, hk, "host").Result(); err != nil || host != "h" {
		t.Fatalf("HGET %s host = %q, %v", hk, host, err)
	}
	score, err := admin.ZScore(ctx, b.prefix+":workers", "w-1").Result()
	if err != nil {
		t.Fatal(err)
	}
	exp, err := admin.HGet(ctx, hk, "expires_at").Int64()
	if err != nil || int64(score) != exp {
		t.Fatalf("<p>:workers score %v; want the hash's expires_at %d (%v)", score, exp, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws, err := b.ListWorkers(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) == 1 && ws[0].ID == "w-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("w-1 still listed after 5s: %+v", ws)
		}
		time.Sleep(10 * time.Millisecond)
	}
	gone := func(id string) {
		t.Helper()
		if n, _ := admin.Exists(ctx, b.prefix+":worker:"+id).Result(); n != 0 {
			t.Errorf("hash of %s left", id)
		}
		for _, k := range []string{":workers", ":workerids"} {
			if err := admin.ZScore(ctx, b.prefix+k, id).Err(); err == nil {
				t.Errorf("%s still indexes %s", k, id)
			}
		}
	}
	gone("w-1")
	if err := b.RemoveWorker(context.Background(), "w-2"); err != nil {
		t.Fatal(err)
	}
	gone("w-2")
}
