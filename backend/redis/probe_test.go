package redis

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/queuesgo/queues"
)

func TestProbe(t *testing.T) {
	be := newTestBackend(t, Options{})
	ctx := context.Background()
	items := make([]queues.EnqueueParams, 1000)
	for i := range items {
		items[i] = queues.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{"I":1}`), Queue: queues.DefaultQueue, ExecutionBackend: "local"}
	}
	for k := 0; k < 20; k++ {
		t0 := time.Now()
		if _, err := be.Enqueue(ctx, items); err != nil {
			t.Fatal(err)
		}
		if k == 0 { t.Logf("enqueue 1000: %s", time.Since(t0)) }
	}
	for k := 0; k < 5; k++ {
		t0 := time.Now()
		res, err := be.ClaimMany(ctx, queues.ClaimParams{Limit: 100, WorkerID: "w", ExecutionBackend: "local", ExpireOverdue: true})
		if err != nil {
			t.Fatal(err)
		}
		d1 := time.Since(t0)
		var ob opBuilder
		for _, r := range res.Claimed {
			ob.add("complete", r.ID, "0", "1", "{}")
		}
		t0 = time.Now()
		if _, err := be.batch.do(ctx, ob.req()); err != nil {
			t.Fatal(err)
		}
		t.Logf("claim 100: %s, complete 100: %s", d1, time.Since(t0))
	}
}
