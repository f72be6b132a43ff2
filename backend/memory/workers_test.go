package memory

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
)

// Entries live until the store clock passes SeenAt + ttl; a refresh moves
// them on; the listing is ordered by ID and drops what expired.
func TestWorkerRegistryOnStoreClock(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	reg := func(id string, ttl time.Duration) {
		t.Helper()
		if err := b.RegisterWorker(ctx, driver.WorkerInfo{ID: id, Queues: []string{"q"}, SeenAt: time.Unix(1, 0)}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	ids := func() []string {
		t.Helper()
		ws, err := b.ListWorkers(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}
	reg("b", 3*time.Second)
	reg("a", time.Second)
	ws, _ := b.ListWorkers(ctx, 0)
	if got := ids(); !slices.Equal(got, []string{"a", "b"}) || !ws[0].SeenAt.Equal(clk.Now()) || !ws[0].ExpiresAt.Equal(clk.Now().Add(time.Second)) {
		t.Fatalf("listing = %v %+v", got, ws)
	}
	ws[0].Queues[0] = "changed" // callers get copies
	if ws, _ := b.ListWorkers(ctx, 1); len(ws) != 1 || ws[0].Queues[0] != "q" {
		t.Fatalf("limit 1 / copy: %+v", ws)
	}
	clk.Add(time.Second) // a expires exactly now
	if got := ids(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after a's ttl: %v", got)
	}
	reg("b", 3*time.Second) // a refresh
	clk.Add(2 * time.Second)
	if got := ids(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after a refresh: %v", got)
	}
	if err := b.RemoveWorker(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveWorker(ctx, "missing"); err != nil {
		t.Fatal(err)
	}
	if got := ids(); len(got) != 0 {
		t.Fatalf("after remove: %v", got)
	}
	if err := b.RegisterWorker(ctx, driver.WorkerInfo{ID: "x"}, 0); err == nil {
		t.Fatal("ttl 0 accepted")
	}
}

// CountBacklog counts due and later records per (queue, execution backend),
// without reserved, running or terminal ones.
func TestCountBacklog(t *testing.T) {
	clk := newClock()
	b := New(Options{Now: clk.Now})
	ctx := context.Background()
	later := clk.Now().Add(time.Hour)
	enqueue(t, b,
		driver.EnqueueParams{TaskName: "t", Queue: "q1", ExecutionBackend: "local"},
		driver.EnqueueParams{TaskName: "t", Queue: "q1", ExecutionBackend: "local"},
		driver.EnqueueParams{TaskName: "t", Queue: "q1", ExecutionBackend: "local", ScheduledAt: later},
		driver.EnqueueParams{TaskName: "t", Queue: "q1", ExecutionBackend: "nats"},
		driver.EnqueueParams{TaskName: "t", Queue: "q2", ExecutionBackend: "local"},
	)
	if _, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 1, Queues: []string{"q2"}, WorkerID: "w"}); err != nil {
		t.Fatal(err)
	}
	count := func() map[string]driver.BacklogCount {
		t.Helper()
		cs, err := b.CountBacklog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]driver.BacklogCount{}
		for _, c := range cs {
			m[c.Queue+"/"+c.ExecutionBackend] = c
		}
		return m
	}
	want := map[string]driver.BacklogCount{
		"q1/local": {Queue: "q1", ExecutionBackend: "local", Due: 2, Later: 1},
		"q1/nats":  {Queue: "q1", ExecutionBackend: "nats", Due: 1},
	}
	if got := count(); !maps.Equal(got, want) {
		t.Fatalf("backlog = %v, want %v", got, want)
	}
	clk.Add(2 * time.Hour) // the scheduled record is due now
	want["q1/local"] = driver.BacklogCount{Queue: "q1", ExecutionBackend: "local", Due: 3}
	if got := count(); !maps.Equal(got, want) {
		t.Fatalf("backlog after the due time = %v, want %v", got, want)
	}
}
