package queues_test

import (
	"context"
	"testing"
	"time"

	"github.com/queuesgo/queues"
)

// BenchmarkEnqueue measures one Task.Enqueue per operation on the memory backend.
func BenchmarkEnqueue(b *testing.B) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "noop", func(ctx context.Context, a struct{ I int }) (empty, error) { return empty{}, nil })
	svc := quietService(b, reg)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := task.Enqueue(ctx, svc, struct{ I int }{i}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkEnqueueMany measures bulk enqueue in batches of 100 records.
func BenchmarkEnqueueMany(b *testing.B) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "noop", func(ctx context.Context, a struct{ I int }) (empty, error) { return empty{}, nil })
	svc := quietService(b, reg)
	ctx := context.Background()
	reqs := make([]queues.EnqueueRequest, 100)
	for i := range reqs {
		reqs[i] = task.Request(struct{ I int }{i})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := svc.EnqueueMany(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(reqs))/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkEndToEnd enqueues b.N no-op records, then measures a worker with
// MaxConcurrency 50 claiming, running and completing all of them.
func BenchmarkEndToEnd(b *testing.B) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "noop", func(ctx context.Context, a struct{ I int }) (empty, error) { return empty{}, nil })
	svc := quietService(b, reg)
	ctx := context.Background()
	for start := 0; start < b.N; start += 1000 {
		reqs := make([]queues.EnqueueRequest, 0, 1000)
		for i := start; i < start+1000 && i < b.N; i++ {
			reqs = append(reqs, task.Request(struct{ I int }{i}))
		}
		if _, err := svc.EnqueueMany(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	runWorker(b, svc, queues.WorkerConfig{MaxConcurrency: 50, BatchSize: 50, PollInterval: time.Millisecond})
	for {
		st, err := svc.Statistics(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		if st.Completed == b.N {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}
