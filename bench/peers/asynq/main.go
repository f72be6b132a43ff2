// Command asynq is the Asynq side of the queues-vs-Asynq comparison (the
// queues side is BenchmarkEndToEnd / BenchmarkIdleLatency in
// backend/redis). It is a separate module so the main module never depends
// on Asynq.
//
// It enqueues -n no-op tasks (Asynq has no bulk enqueue, so -enqueuers
// goroutines enqueue concurrently), processes them with one server at
// -concurrency, then measures the idle enqueue-to-start latency of
// -samples single tasks. It uses its own Redis database (-db, default 15)
// and flushes only that database, before and after. By default it uses
// Asynq's defaults, where a task's data is deleted once it succeeds;
// -retention 24h keeps completed tasks, as queues always does until its
// terminal retention (on 2026-11-29 that cost Asynq 3–5% of its rate).
//
//	cd bench/peers/asynq && go run . [-json]
//
// Output lines:
//
//	INSERT <n> tasks in <d>: <x> jobs/s
//	WORK <n> tasks in <d>: <x> jobs/s
//	LATENCY p50 <d> p99 <d> (<samples> samples, task check interval <d>)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

type result struct {
	Tasks             int     `json:"tasks"`
	Concurrency       int     `json:"concurrency"`
	Retention         string  `json:"retention"`
	InsertSeconds     float64 `json:"insert_seconds"`
	InsertJobsPerSec  float64 `json:"insert_jobs_per_sec"`
	WorkSeconds       float64 `json:"work_seconds"`
	WorkJobsPerSec    float64 `json:"work_jobs_per_sec"`
	LatencySamples    int     `json:"latency_samples"`
	LatencyP50Ms      float64 `json:"latency_p50_ms"`
	LatencyP99Ms      float64 `json:"latency_p99_ms"`
	TaskCheckInterval string  `json:"task_check_interval"`
	// CPU microseconds per job of this process and of the Redis server
	// (INFO cpu), steadier than throughput on a shared machine.
	InsertClientCPUUs float64 `json:"insert_client_cpu_us_per_job"`
	InsertServerCPUUs float64 `json:"insert_server_cpu_us_per_job"`
	WorkClientCPUUs   float64 `json:"work_client_cpu_us_per_job"`
	WorkServerCPUUs   float64 `json:"work_server_cpu_us_per_job"`
}

type cpuSnapshot struct{ proc, server float64 }

func takeCPU(ctx context.Context, c *redis.Client) cpuSnapshot {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(v syscall.Timeval) float64 { return float64(v.Sec) + float64(v.Usec)/1e6 }
	s := cpuSnapshot{proc: tv(ru.Utime) + tv(ru.Stime)}
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		log.Fatalf("info cpu: %v", err)
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

func perJob(from, to cpuSnapshot, n int) (client, server float64) {
	return (to.proc - from.proc) * 1e6 / float64(n), (to.server - from.server) * 1e6 / float64(n)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "Redis address")
	db := flag.Int("db", 15, "Redis database used (and flushed) by this benchmark")
	n := flag.Int("n", 100_000, "tasks to enqueue and process")
	concurrency := flag.Int("concurrency", 100, "server concurrency")
	enqueuers := flag.Int("enqueuers", 64, "concurrent enqueuing goroutines")
	samples := flag.Int("samples", 200, "idle latency samples")
	checkInterval := flag.Duration("task-check-interval", 0, "Asynq TaskCheckInterval (0 = Asynq's default, 1s)")
	asJSON := flag.Bool("json", false, "print one JSON object instead of text lines")
	retention := flag.Duration("retention", 0, "asynq.Retention of the worked tasks (0 = Asynq's default: a task's data is deleted once it succeeds; queues keeps every record until terminal retention, so a positive value is the like-for-like setting)")
	flag.Parse()

	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: *addr, DB: *db})
	defer admin.Close()
	if err := admin.FlushDB(ctx).Err(); err != nil {
		log.Fatalf("flush db %d: %v", *db, err)
	}
	defer admin.FlushDB(ctx)

	opt := asynq.RedisClientOpt{Addr: *addr, DB: *db, PoolSize: *enqueuers + 10}
	client := asynq.NewClient(opt)
	defer client.Close()
	res := result{Tasks: *n, Concurrency: *concurrency, LatencySamples: *samples, Retention: retention.String()}

	// Insert.
	payload := []byte(`{"I":1}`)
	opts := []asynq.Option{asynq.MaxRetry(0)}
	if *retention > 0 {
		opts = append(opts, asynq.Retention(*retention))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu0 := takeCPU(ctx, admin)
	start := time.Now()
	for range *enqueuers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*n) {
				if _, err := client.Enqueue(asynq.NewTask("noop", payload), opts...); err != nil {
					log.Fatalf("enqueue: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	res.InsertSeconds, res.InsertJobsPerSec = d.Seconds(), float64(*n)/d.Seconds()
	cpu1 := takeCPU(ctx, admin)
	res.InsertClientCPUUs, res.InsertServerCPUUs = perJob(cpu0, cpu1, *n)

	// Work.
	var done atomic.Int64
	all := make(chan struct{})
	var started chan time.Time
	var startedMu sync.Mutex
	cfg := asynq.Config{Concurrency: *concurrency, TaskCheckInterval: *checkInterval, LogLevel: asynq.ErrorLevel}
	srv := asynq.NewServer(opt, cfg)
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(ctx context.Context, t *asynq.Task) error {
		if done.Add(1) == int64(*n) {
			close(all)
		}
		return nil
	})
	mux.HandleFunc("probe", func(ctx context.Context, t *asynq.Task) error {
		now := time.Now()
		startedMu.Lock()
		ch := started
		startedMu.Unlock()
		ch <- now
		return nil
	})
	cpu1 = takeCPU(ctx, admin)
	start = time.Now()
	if err := srv.Start(mux); err != nil {
		log.Fatalf("server start: %v", err)
	}
	select {
	case <-all:
	case <-time.After(10 * time.Minute):
		log.Fatalf("processed only %d of %d tasks", done.Load(), *n)
	}
	d = time.Since(start)
	res.WorkSeconds, res.WorkJobsPerSec = d.Seconds(), float64(*n)/d.Seconds()
	res.WorkClientCPUUs, res.WorkServerCPUUs = perJob(cpu1, takeCPU(ctx, admin), *n)

	// Idle latency: one task at a time into an idle server.
	startedMu.Lock()
	started = make(chan time.Time, 1)
	startedMu.Unlock()
	lat := make([]time.Duration, 0, *samples)
	for i := range *samples + 5 {
		time.Sleep(2 * time.Millisecond)
		t0 := time.Now()
		if _, err := client.Enqueue(asynq.NewTask("probe", payload), asynq.MaxRetry(0)); err != nil {
			log.Fatalf("enqueue probe: %v", err)
		}
		select {
		case t1 := <-started:
			if i >= 5 {
				lat = append(lat, t1.Sub(t0))
			}
		case <-time.After(30 * time.Second):
			log.Fatal("probe task did not start")
		}
	}
	srv.Shutdown()
	slices.Sort(lat)
	p50, p99 := lat[int(float64(len(lat)-1)*0.5)], lat[int(float64(len(lat)-1)*0.99)]
	res.LatencyP50Ms = float64(p50.Microseconds()) / 1000
	res.LatencyP99Ms = float64(p99.Microseconds()) / 1000
	res.TaskCheckInterval = "1s (default)"
	if *checkInterval > 0 {
		res.TaskCheckInterval = checkInterval.String()
	}

	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	fmt.Printf("INSERT %d tasks in %.2fs: %.0f jobs/s (%d concurrent enqueuers; cpu µs/job client %.1f server %.1f)\n",
		*n, res.InsertSeconds, res.InsertJobsPerSec, *enqueuers, res.InsertClientCPUUs, res.InsertServerCPUUs)
	fmt.Printf("WORK %d tasks in %.2fs: %.0f jobs/s (concurrency %d; retention %s; cpu µs/job client %.1f server %.1f)\n",
		*n, res.WorkSeconds, res.WorkJobsPerSec, *concurrency, res.Retention, res.WorkClientCPUUs, res.WorkServerCPUUs)
	fmt.Printf("LATENCY p50 %.2fms p99 %.2fms (%d samples, task check interval %s)\n", res.LatencyP50Ms, res.LatencyP99Ms, len(lat), res.TaskCheckInterval)
}
