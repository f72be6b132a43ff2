package driver_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

func TestCheckRegisterWorker(t *testing.T) {
	ok := driver.WorkerInfo{ID: "w-ü-1", Host: "host", Queues: []string{"a", "b"}, ExecutionBackend: "local", Version: "v1"}
	if err := driver.CheckRegisterWorker(t.Context(), ok, time.Second); err != nil {
		t.Fatalf("valid worker: %v", err)
	}
	// Only the ID is required; the other text fields may be empty.
	if err := driver.CheckRegisterWorker(t.Context(), driver.WorkerInfo{ID: "w", Queues: []string{""}}, time.Second); err != nil {
		t.Fatalf("worker with empty optional fields: %v", err)
	}
	many := make([]string, driver.MaxWorkerQueues+1)
	for i := range many {
		many[i] = "q"
	}
	cases := []struct {
		name  string
		edit  func(w *driver.WorkerInfo)
		field string
		large bool
	}{
		{"empty id", func(w *driver.WorkerInfo) { w.ID = "" }, "worker.id", false},
		{"long id", func(w *driver.WorkerInfo) { w.ID = strings.Repeat("x", driver.MaxWorkerText+1) }, "worker.id", true},
		{"invalid utf-8 host", func(w *driver.WorkerInfo) { w.Host = "h\xff" }, "worker.host", false},
		{"nul in version", func(w *driver.WorkerInfo) { w.Version = "v\x00" }, "worker.version", false},
		{"newline in backend", func(w *driver.WorkerInfo) { w.ExecutionBackend = "a\nb" }, "worker.execution_backend", false},
		{"control in queue", func(w *driver.WorkerInfo) { w.Queues = []string{"ok", "q\x7f"} }, "worker.queues[1]", false},
		{"negative running", func(w *driver.WorkerInfo) { w.Running = -1 }, "worker.running", false},
		{"huge concurrency", func(w *driver.WorkerInfo) { w.Concurrency = 1 << 40 }, "worker.concurrency", false},
		{"too many queues", func(w *driver.WorkerInfo) { w.Queues = many }, "worker.queues", true},
	}
	for _, c := range cases {
		w := ok
		c.edit(&w)
		err := driver.CheckRegisterWorker(t.Context(), w, time.Second)
		var le *queuestype.LimitError
		if !errors.As(err, &le) || le.Field != c.field || le.TooLarge != c.large || !errors.Is(err, queuestype.ErrConfig) {
			t.Errorf("%s: %v (%+v); want a LimitError on %s (TooLarge %v)", c.name, err, le, c.field, c.large)
		}
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := driver.CheckRegisterWorker(t.Context(), ok, ttl); !errors.Is(err, queuestype.ErrConfig) {
			t.Errorf("ttl %s: %v; want ErrConfig", ttl, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := driver.CheckRegisterWorker(ctx, ok, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("ended ctx: %v", err)
	}
	if n, err := driver.WorkerListLimit(t.Context(), 0); n != driver.DefaultWorkerLimit || err != nil {
		t.Errorf("WorkerListLimit(0) = %d, %v", n, err)
	}
	if n, err := driver.WorkerListLimit(t.Context(), 7); n != 7 || err != nil {
		t.Errorf("WorkerListLimit(7) = %d, %v", n, err)
	}
}
