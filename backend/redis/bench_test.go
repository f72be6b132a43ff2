package redis

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues"
)

type noopArgs struct{ I int }
type noopResult struct{}

// benchService starts a quiet service on a fresh prefix.
func benchService(t testing.TB, reg *queues.Registry) (*queues.Service, *Backend) {
	t.Helper()
	be := newTestBackend(t, Options{})
	svc, err := queues.New(queues.Config{Backend: be, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc, be
}

// startWorker runs a worker until the test ends.
func startWorker(t testing.TB, svc *queues.Service, cfg queues.WorkerConfig) *queues.Worker {
	t.Helper()
	w, err := svc.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(context.Background()) }()
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("worker not ready")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = w.Stop(ctx, true)
		<-done
	})
	return w
}

// cpuSnapshot holds the CPU seconds used so far by this process and by the
// Redis server (INFO cpu), so a benchmark can report CPU cost per job, which
// is steadier than throughput on a shared machine.
type cpuSnapshot struct{ proc, server float64 }

func takeCPU(t testing.TB) cpuSnapshot {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(v syscall.Timeval) float64 { return float64(v.Sec) + float64(v.Usec)/1e6 }
	s := cpuSnapshot{proc: tv(ru.Utime) + tv(ru.Stime)}
	info, err := admin.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			s.server += f
		}
	}
	return s
}

// reportCPU reports process and server CPU microseconds per job since from.
func reportCPU(b *testing.B, from cpuSnapshot, jobs int, prefix string) {
	to := takeCPU(b)
	b.ReportMetric((to.proc-from.proc)*1e6/float64(jobs), prefix+"client-cpu-us/job")
	b.ReportMetric((to.server-from.server)*1e6/float64(jobs), prefix+"server-cpu-us/job")
}

// benchJobs is the number of jobs of BenchmarkEndToEnd (env QUEUES_BENCH_JOBS).
func benchJobs() int {
	if n, err := strconv.Atoi(os.Getenv("QUEUES_BENCH_JOBS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// BenchmarkEndToEnd enqueues 100,000 no-op jobs with EnqueueMany in batches
// of 1000 (reported as insert-jobs/s), then measures one worker
// (MaxConcurrency 100, BatchSize 100) claiming, running and completing all
// of them (jobs/s).
func BenchmarkEndToEnd(b *testing.B) {
	total := benchJobs()
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
		cpu0 := takeCPU(b)
		enqStart := time.Now()
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
		enq := time.Since(enqStart)
		b.ReportMetric(float64(total)/enq.Seconds(), "insert-jobs/s")
		reportCPU(b, cpu0, total, "insert-")
		cpu1 := takeCPU(b)
		b.StartTimer()
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
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(total)/elapsed.Seconds(), "jobs/s")
		reportCPU(b, cpu1, total, "work-")
	}
}

// BenchmarkClaimComplete measures the backend alone: ClaimMany(100) then 100
// concurrent Settle calls of one completed transition each, carrying the
// claimed record as the worker does (coalesced into luaComplete calls), over
// pre-enqueued records.
func BenchmarkClaimComplete(b *testing.B) {
	be := newTestBackend(b, Options{})
	ctx := context.Background()
	items := make([]driver.EnqueueParams, 0, 1000)
	for start := 0; start < b.N; start += 1000 {
		items = items[:0]
		for i := start; i < min(start+1000, b.N); i++ {
			items = append(items, driver.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{"I":1}`), Queue: queues.DefaultQueue, ExecutionBackend: "local"})
		}
		if _, err := be.Enqueue(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	result := json.RawMessage(`{}`)
	cpu0 := takeCPU(b)
	b.ResetTimer()
	done := 0
	var wg sync.WaitGroup
	var claimServer, completeServer float64 // server CPU seconds in each phase
	for done < b.N {
		c0 := takeCPU(b)
		res, err := be.ClaimMany(ctx, driver.ClaimParams{Limit: 100, WorkerID: "bench", ExecutionBackend: "local", ExpireOverdue: true})
		c1 := takeCPU(b)
		claimServer += c1.server - c0.server
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
				rs, err := be.Settle(ctx, []driver.Transition{{ID: rec.ID, Generation: rec.RetryCount, To: queues.StatusCompleted, Result: result, Claimed: rec}})
				if err != nil {
					b.Error(err)
				} else if rs[0].Err != nil {
					b.Error(rs[0].Err)
				}
			}()
		}
		wg.Wait()
		completeServer += takeCPU(b).server - c1.server
		done += len(res.Claimed)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	reportCPU(b, cpu0, b.N, "")
	b.ReportMetric(claimServer*1e6/float64(b.N), "claim-server-cpu-us/job")
	b.ReportMetric(completeServer*1e6/float64(b.N), "complete-server-cpu-us/job")
}

// BenchmarkClaimSettle is BenchmarkClaimComplete over records that carry a
// task policy: "each" settles every record with its own concurrent call
// (BenchmarkClaimComplete's shape), "batch" settles the 100 claimed records
// in one call.
func BenchmarkClaimSettle(b *testing.B) {
	for _, mode := range []string{"each", "batch"} {
		b.Run(mode, func(b *testing.B) {
			be := newTestBackend(b, Options{})
			ctx := context.Background()
			pol := queuestype.Policy{Timeout: time.Minute, RetryBackoff: queuestype.RetryBackoff{InitialDelay: time.Second, Multiplier: 2}}
			items := make([]driver.EnqueueParams, 0, 1000)
			for start := 0; start < b.N; start += 1000 {
				items = items[:0]
				for i := start; i < min(start+1000, b.N); i++ {
					items = append(items, driver.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{"I":1}`), Queue: queues.DefaultQueue,
						ExecutionBackend: "local", Policy: pol})
				}
				if _, err := be.Enqueue(ctx, items); err != nil {
					b.Fatal(err)
				}
			}
			result := json.RawMessage(`{}`)
			cpu0 := takeCPU(b)
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
				ts := make([]driver.Transition, len(res.Claimed))
				for i, rec := range res.Claimed {
					ts[i] = driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queues.StatusCompleted, Result: result, Claimed: rec}
				}
				check := func(rs []driver.SettleResult, err error) {
					if err != nil {
						b.Error(err)
					}
					for _, r := range rs {
						if r.Err != nil {
							b.Error(r.Err)
						}
					}
				}
				if mode == "batch" {
					check(be.Settle(ctx, ts))
				} else {
					for i := range ts {
						wg.Add(1)
						go func() {
							defer wg.Done()
							check(be.Settle(ctx, ts[i:i+1]))
						}()
					}
					wg.Wait()
				}
				done += len(res.Claimed)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			reportCPU(b, cpu0, b.N, "")
		})
	}
}

// BenchmarkEnqueue measures single-record Enqueue calls from 8 goroutines.
func BenchmarkEnqueue(b *testing.B) {
	be := newTestBackend(b, Options{})
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

// percentile returns the p-th percentile of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// measureLatency enqueues n jobs one at a time into an idle worker (waiting
// on its wakeup subscription) and returns the enqueue-to-start latencies.
func measureLatency(t testing.TB, n int) []time.Duration {
	started := make(chan time.Time, 1)
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "noop", func(ctx context.Context, a noopArgs) (noopResult, error) {
		started <- time.Now()
		return noopResult{}, nil
	})
	svc, _ := benchService(t, reg)
	startWorker(t, svc, queues.WorkerConfig{MaxConcurrency: 10, PollBackoffMax: 5 * time.Second})
	ctx := context.Background()
	out := make([]time.Duration, 0, n)
	for i := range n + 5 {
		time.Sleep(2 * time.Millisecond) // let the worker go idle
		t0 := time.Now()
		if _, err := task.Enqueue(ctx, svc, noopArgs{i}); err != nil {
			t.Fatal(err)
		}
		select {
		case t1 := <-started:
			if i >= 5 { // warm-up
				out = append(out, t1.Sub(t0))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("job %d did not start", i)
		}
	}
	return out
}

// BenchmarkIdleLatency reports the idle enqueue-to-start latency (p50, p99)
// of single enqueues into a waiting worker woken by pub/sub.
func BenchmarkIdleLatency(b *testing.B) {
	for range b.N {
		lat := measureLatency(b, 500)
		b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	}
}

// TestIdleLatency checks that an idle worker starts a job within a few
// milliseconds of its enqueue (the wakeup hint, not the poll interval).
func TestIdleLatency(t *testing.T) {
	lat := measureLatency(t, 50)
	p50 := percentile(lat, 0.50)
	t.Logf("idle enqueue-to-start latency: p50 %s, p99 %s", p50, percentile(lat, 0.99))
	if p50 > 50*time.Millisecond {
		t.Fatalf("p50 latency %s: wakeups do not reach the worker", p50)
	}
}
