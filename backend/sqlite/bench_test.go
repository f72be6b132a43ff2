package sqlite_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/sqlite"
)

type noopArgs struct{ I int }
type noopResult struct{}

// benchService starts a quiet service on a fresh SQLite file.
func benchService(b testing.TB, reg *queues.Registry) (*queues.Service, *sqlite.Backend) {
	b.Helper()
	be := openTemp(b, sqlite.Options{})
	svc, err := queues.New(queues.Config{Backend: be, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc, be
}

// startWorker runs a worker until the test ends.
func startWorker(b testing.TB, svc *queues.Service, cfg queues.WorkerConfig) *queues.Worker {
	b.Helper()
	w, err := svc.NewWorker(cfg)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(context.Background()) }()
	<-w.Ready()
	b.Cleanup(func() {
		_, _ = w.Stop(context.Background(), true)
		<-done
	})
	return w
}

// BenchmarkEndToEnd enqueues 100,000 no-op records (b.N of them when
// -benchtime=Nx is larger), then measures one worker (MaxConcurrency 100,
// BatchSize 100) claiming, running and completing all of them on one SQLite
// file. It reports jobs/s.
func BenchmarkEndToEnd(b *testing.B) {
	total := benchTotal()
	for range b.N {
		b.StopTimer()
		var ran atomic.Int64
		reg := queues.NewRegistry()
		task := queues.MustRegister(reg, "noop", func(ctx context.Context, a noopArgs) (noopResult, error) {
			ran.Add(1)
			return noopResult{}, nil
		})
		svc, _ := benchService(b, reg)
		ctx := context.Background()
		enqStart := time.Now()
		reqs := make([]queues.EnqueueRequest, 0, 1000)
		for start := 0; start < total; start += 1000 {
			reqs = reqs[:0]
			for i := start; i < start+1000; i++ {
				reqs = append(reqs, task.Request(noopArgs{i}))
			}
			if _, err := svc.EnqueueMany(ctx, reqs); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("enqueued %d in %s", total, time.Since(enqStart))
		b.StartTimer()
		sqlite.DbgReset()
		start := time.Now()
		startWorker(b, svc, queues.WorkerConfig{MaxConcurrency: 100, BatchSize: 100, PollInterval: 5 * time.Millisecond})
		for ran.Load() < int64(total) {
			time.Sleep(time.Millisecond)
		}
		for {
			st, err := svc.Statistics(ctx, "")
			if err != nil {
				b.Fatal(err)
			}
			if st.Completed == total {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.Log(sqlite.DbgStats())
		b.StopTimer()
		b.ReportMetric(float64(total)/elapsed.Seconds(), "jobs/s")
	}
}

// BenchmarkClaimComplete measures the backend alone: ClaimMany(100) then 100
// concurrent Complete calls (group-committed), over pre-enqueued records.
func BenchmarkClaimComplete(b *testing.B) {
	be := openTemp(b, sqlite.Options{})
	ctx := context.Background()
	enqueueN(b, be, b.N)
	result := json.RawMessage(`{}`)
	b.ResetTimer()
	done := 0
	var wg sync.WaitGroup
	for done < b.N {
		res, err := be.ClaimMany(ctx, queues.ClaimParams{Limit: 100, WorkerID: "bench", ExecutionBackend: "local", ExpireOverdue: true})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Claimed) == 0 {
			b.Fatalf("claimed nothing after %d of %d", done, b.N)
		}
		for _, rec := range res.Claimed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := be.Complete(ctx, queues.CompleteParams{ID: rec.ID, ExpectedRetryCount: rec.RetryCount, Result: result}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		done += len(res.Claimed)
	}
	b.Log(sqlite.DbgStats())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// enqueueN inserts n due no-op records in batches of 1000.
func enqueueN(b testing.TB, be *sqlite.Backend, n int) {
	b.Helper()
	ctx := context.Background()
	items := make([]queues.EnqueueParams, 0, 1000)
	for start := 0; start < n; start += 1000 {
		items = items[:0]
		for i := start; i < min(start+1000, n); i++ {
			items = append(items, queues.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{"I":1}`), Queue: queues.DefaultQueue, ExecutionBackend: "local"})
		}
		if _, err := be.Enqueue(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueue measures single-record Enqueue calls from 8 concurrent
// goroutines (group-committed).
func BenchmarkEnqueue(b *testing.B) {
	be := openTemp(b, sqlite.Options{})
	ctx := context.Background()
	args := json.RawMessage(`{"I":1}`)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		item := []queues.EnqueueParams{{TaskName: "noop", Args: args, Queue: queues.DefaultQueue, ExecutionBackend: "local"}}
		for pb.Next() {
			if _, err := be.Enqueue(ctx, item); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkEnqueueMany measures bulk Enqueue calls of 1000 records.
func BenchmarkEnqueueMany(b *testing.B) {
	be := openTemp(b, sqlite.Options{})
	ctx := context.Background()
	items := make([]queues.EnqueueParams, 1000)
	for i := range items {
		items[i] = queues.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{"I":1}`), Queue: queues.DefaultQueue, ExecutionBackend: "local"}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := be.Enqueue(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "jobs/s")
}

// percentile returns the p-th percentile of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// benchTotal is the number of records of BenchmarkEndToEnd (QUEUES_BENCH_TOTAL overrides 100,000).
func benchTotal() int {
	if v, err := strconv.Atoi(os.Getenv("QUEUES_BENCH_TOTAL")); err == nil && v > 0 {
		return v
	}
	return 100_000
}
