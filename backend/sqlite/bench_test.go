package sqlite_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/sqlite"
)

type noopArgs struct{ I int }
type noopResult struct{}

// benchService starts a quiet service on a fresh SQLite file.
func benchService(tb testing.TB, reg *queues.Registry) (*queues.Service, *sqlite.Backend) {
	tb.Helper()
	be := openTemp(tb, sqlite.Options{})
	svc, err := queues.New(queues.Config{Backend: be, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc, be
}

// startWorker runs a worker until the test ends.
func startWorker(tb testing.TB, svc *queues.Service, cfg queues.WorkerConfig) *queues.Worker {
	tb.Helper()
	w, err := svc.NewWorker(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(context.Background()) }()
	<-w.Ready()
	tb.Cleanup(func() {
		_, _ = w.Stop(context.Background(), true)
		<-done
	})
	return w
}

// benchTotal is the number of records of BenchmarkEndToEnd
// (QUEUES_BENCH_TOTAL overrides 100,000).
func benchTotal() int {
	if v, err := strconv.Atoi(os.Getenv("QUEUES_BENCH_TOTAL")); err == nil && v > 0 {
		return v
	}
	return 100_000
}

// benchConcurrency is the worker's MaxConcurrency and BatchSize in
// BenchmarkEndToEnd (QUEUES_BENCH_CONCURRENCY overrides 100).
func benchConcurrency() int {
	if v, err := strconv.Atoi(os.Getenv("QUEUES_BENCH_CONCURRENCY")); err == nil && v > 0 {
		return v
	}
	return 100
}

// cpuTime is the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEndToEnd enqueues 100,000 no-op records (outside the timer), then
// measures one worker (MaxConcurrency 100, BatchSize 100; the environment
// variables QUEUES_BENCH_TOTAL and QUEUES_BENCH_CONCURRENCY override both
// numbers) claiming, running
// and completing all of them on one SQLite file. Each iteration is one full
// run on a fresh file; use -benchtime=1x. It reports jobs/s, the process CPU
// time per job and the mean writer group size.
func BenchmarkEndToEnd(b *testing.B) {
	for range b.N {
		b.StopTimer()
		n := benchConcurrency()
		endToEnd(b, benchTotal(), queues.WorkerConfig{MaxConcurrency: n, BatchSize: n, PollInterval: 5 * time.Millisecond})
	}
}

// endToEnd runs one BenchmarkEndToEnd iteration; the timer is stopped on
// entry and on return.
func endToEnd(b *testing.B, total int, cfg queues.WorkerConfig) {
	var ran atomic.Int64
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "noop", func(ctx context.Context, a noopArgs) (noopResult, error) {
		ran.Add(1)
		return noopResult{}, nil
	})
	ctx := context.Background()
	be, err := sqlite.Open(filepath.Join(b.TempDir(), "queues.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := be.Open(ctx); err != nil {
		b.Fatal(err)
	}
	defer be.Close(ctx)
	svc, err := queues.New(queues.Config{Backend: be, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer svc.Close(ctx)
	reqs := make([]queues.EnqueueRequest, 0, 1000)
	for start := 0; start < total; start += 1000 {
		reqs = reqs[:0]
		for i := start; i < min(start+1000, total); i++ {
			reqs = append(reqs, task.Request(noopArgs{i}))
		}
		if _, err := svc.EnqueueMany(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
	w, err := svc.NewWorker(cfg)
	if err != nil {
		b.Fatal(err)
	}
	stats0, cpu0 := be.Stats(), cpuTime()
	b.StartTimer()
	start := time.Now()
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = w.Run(ctx) }()
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
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu, stats := cpuTime()-cpu0, be.Stats()
	_, _ = w.Stop(ctx, true)
	<-runDone
	b.ReportMetric(float64(total)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/job")
	b.ReportMetric(float64(stats.Writes-stats0.Writes)/float64(max(1, stats.Groups-stats0.Groups)), "writes/commit")
}

// BenchmarkClaimComplete measures the backend alone: ClaimMany(100), then 100
// concurrent completions (group-committed), over pre-enqueued records. Each
// completion is a one-transition Settle call shaped as the removed Complete
// method's calls were (generation and result only, the settled record
// returned), so its numbers compare with runs made before Complete went.
func BenchmarkClaimComplete(b *testing.B) {
	result := json.RawMessage(`{}`)
	benchClaimSettle(b, func(ctx context.Context, be *sqlite.Backend, rec *queues.Record) error {
		res, err := be.Settle(ctx, []driver.Transition{{ID: rec.ID, Generation: rec.RetryCount, To: queues.StatusCompleted, Result: result}})
		if err == nil {
			err = res[0].Err
		}
		return err
	})
}

// BenchmarkClaimSettle is BenchmarkClaimComplete with each transition
// carrying the claimed record (as the engine sends it), with and without
// NoRecord (the caller does not want the record back).
func BenchmarkClaimSettle(b *testing.B) {
	result := json.RawMessage(`{}`)
	for _, noRecord := range []bool{false, true} {
		b.Run("NoRecord="+strconv.FormatBool(noRecord), func(b *testing.B) {
			benchClaimSettle(b, func(ctx context.Context, be *sqlite.Backend, rec *queues.Record) error {
				res, err := be.Settle(ctx, []driver.Transition{{ID: rec.ID, Generation: rec.RetryCount, To: queues.StatusCompleted,
					Result: result, Claimed: rec, NoRecord: noRecord}})
				if err == nil {
					err = res[0].Err
				}
				return err
			})
		})
	}
}

// BenchmarkClaimSettleBatch completes each claimed batch of 100 with one
// Settle call of 100 transitions.
func BenchmarkClaimSettleBatch(b *testing.B) {
	be := openTemp(b, sqlite.Options{})
	ctx := context.Background()
	enqueueN(b, be, b.N)
	result := json.RawMessage(`{}`)
	b.ResetTimer()
	done := 0
	for done < b.N {
		res, err := be.ClaimMany(ctx, driver.ClaimParams{Limit: 100, WorkerID: "bench", ExecutionBackend: "local", ExpireOverdue: true})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Claimed) == 0 {
			b.Fatalf("claimed nothing after %d of %d", done, b.N)
		}
		ts := make([]driver.Transition, len(res.Claimed))
		for i, rec := range res.Claimed {
			ts[i] = driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queues.StatusCompleted, Result: result, Claimed: rec, NoRecord: true}
		}
		out, err := be.Settle(ctx, ts)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range out {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		done += len(res.Claimed)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// benchClaimSettle claims 100 records at a time and completes each with
// complete from its own goroutine (the writer group-commits them).
func benchClaimSettle(b *testing.B, complete func(ctx context.Context, be *sqlite.Backend, rec *queues.Record) error) {
	be := openTemp(b, sqlite.Options{})
	ctx := context.Background()
	enqueueN(b, be, b.N)
	b.ResetTimer()
	done := 0
	var wg sync.WaitGroup
	for done < b.N {
		res, err := be.ClaimMany(ctx, driver.ClaimParams{Limit: 100, WorkerID: "bench", ExecutionBackend: "local", ExpireOverdue: true})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Claimed) == 0 {
			b.Fatalf("claimed nothing after %d of %d", done, b.N)
		}
		for _, rec := range res.Claimed {
			wg.Go(func() {
				if err := complete(ctx, be, rec); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		done += len(res.Claimed)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// enqueueN inserts n due no-op records in batches of 1000.
func enqueueN(tb testing.TB, be *sqlite.Backend, n int) {
	tb.Helper()
	ctx := context.Background()
	items := make([]driver.EnqueueParams, 0, 1000)
	for start := 0; start < n; start += 1000 {
		items = items[:0]
		for i := start; i < min(start+1000, n); i++ {
			items = append(items, driver.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{"I":1}`), Queue: queues.DefaultQueue, ExecutionBackend: "local"})
		}
		if _, err := be.Enqueue(ctx, items); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkEnqueue measures single-record Enqueue calls from concurrent
// goroutines (4 per CPU), which the writer group-commits.
func BenchmarkEnqueue(b *testing.B) {
	be := openTemp(b, sqlite.Options{})
	ctx := context.Background()
	args := json.RawMessage(`{"I":1}`)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		item := []driver.EnqueueParams{{TaskName: "noop", Args: args, Queue: queues.DefaultQueue, ExecutionBackend: "local"}}
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
	items := make([]driver.EnqueueParams, 1000)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{"I":1}`), Queue: queues.DefaultQueue, ExecutionBackend: "local"}
	}
	for b.Loop() {
		if _, err := be.Enqueue(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkIdleLatency measures, in one process, the time from the start of
// an Enqueue call to the start of the task on an idle worker (default poll
// interval: the in-process wakeup hint does the work), one record at a time.
// It reports the 50th and 99th percentiles in milliseconds.
func BenchmarkIdleLatency(b *testing.B) {
	reg := queues.NewRegistry()
	started := make(chan time.Time, 1)
	task := queues.MustRegister(reg, "latency", func(ctx context.Context, a noopArgs) (noopResult, error) {
		started <- time.Now()
		return noopResult{}, nil
	})
	svc, _ := benchService(b, reg)
	startWorker(b, svc, queues.WorkerConfig{MaxConcurrency: 10})
	ctx := context.Background()
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		time.Sleep(2 * time.Millisecond) // let the worker go idle
		t0 := time.Now()
		if _, err := task.Enqueue(ctx, svc, noopArgs{i}); err != nil {
			b.Fatal(err)
		}
		select {
		case t1 := <-started:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(5 * time.Second):
			b.Fatal("task did not start within 5s")
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
