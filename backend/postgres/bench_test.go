package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/postgres"
)

// benchConfig sizes one end-to-end run. Environment overrides (for manual
// runs): QUEUES_BENCH_JOBS, QUEUES_BENCH_BATCH, QUEUES_BENCH_WORKERS,
// QUEUES_BENCH_CLAIM, QUEUES_BENCH_SAMPLES, QUEUES_BENCH_CONNS.
type benchConfig struct {
	Jobs      int // records inserted and worked
	Batch     int // records per EnqueueMany call
	Workers   int // WorkerConfig.MaxConcurrency
	Claim     int // WorkerConfig.BatchSize (records per claim)
	Samples   int // latency samples
	PoolConns int // pool size
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func defaultBenchConfig() benchConfig {
	return benchConfig{
		Jobs:      envInt("QUEUES_BENCH_JOBS", 100_000),
		Batch:     envInt("QUEUES_BENCH_BATCH", 5_000),
		Workers:   envInt("QUEUES_BENCH_WORKERS", 2_000),
		Claim:     envInt("QUEUES_BENCH_CLAIM", 1_000),
		Samples:   envInt("QUEUES_BENCH_SAMPLES", 200),
		PoolConns: envInt("QUEUES_BENCH_CONNS", 8),
	}
}

// benchReport is what one run measured.
type benchReport struct {
	Insert, Work   time.Duration
	PGCPU, SelfCPU time.Duration // CPU spent during WORK by postgres and by this process
	Latencies      []time.Duration
}

// runBench runs the three phases of `queues bench` against a fresh schema:
// INSERT (bulk EnqueueMany in cfg.Batch batches before the worker starts),
// WORK (one worker, from its start until every completion is written), and
// LATENCY (idle worker, one enqueue at a time, enqueue call to the first
// line of the task function).
func runBench(tb testing.TB, cfg benchConfig) benchReport {
	tb.Helper()
	testPool(tb)
	opts := freshOptions(tb)
	pcfg, err := pgxpool.ParseConfig(testURL())
	if err != nil {
		tb.Fatal(err)
	}
	pcfg.MaxConns = int32(cfg.PoolConns)
	var qs *queryStats
	if os.Getenv("QUEUES_BENCH_TRACE") == "1" {
		qs = &queryStats{}
		pcfg.ConnConfig.Tracer = qs
		tb.Cleanup(qs.dump)
	}
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	be, err := postgres.New(pool, opts)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := be.Migrate(ctx, driver.MigrateOptions{}); err != nil {
		tb.Fatal(err)
	}

	var ran atomic.Int64
	started := make(chan time.Time, 1)
	reg := queues.NewRegistry()
	noop := queues.MustRegister(reg, "bench.noop", func(ctx context.Context, _ json.RawMessage) (struct{}, error) {
		ran.Add(1)
		return struct{}{}, nil
	})
	queues.MustRegister(reg, "bench.latency", func(ctx context.Context, _ json.RawMessage) (struct{}, error) {
		select {
		case started <- time.Now():
		default:
		}
		return struct{}{}, nil
	})
	svc, err := queues.New(queues.Config{Backend: be, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = svc.Close(context.Background()) })

	// Start from a fresh checkpoint (as bench/peers/river does), so full-page
	// writes of a checkpoint that happens to fall inside a run do not decide
	// the comparison. Needs superuser or pg_checkpoint; best effort.
	_, _ = pool.Exec(ctx, "CHECKPOINT")
	var rep benchReport
	reqs := make([]queues.EnqueueRequest, 0, cfg.Batch)
	t0 := time.Now()
	for left := cfg.Jobs; left > 0; {
		n := min(cfg.Batch, left)
		reqs = reqs[:0]
		for range n {
			reqs = append(reqs, noop.Request(json.RawMessage(`{}`)))
		}
		if _, err := svc.EnqueueMany(ctx, reqs); err != nil {
			tb.Fatal(err)
		}
		left -= n
	}
	rep.Insert = time.Since(t0)

	w, err := svc.NewWorker(queues.WorkerConfig{ID: "bench", MaxConcurrency: cfg.Workers, BatchSize: cfg.Claim,
		PollInterval: 20 * time.Millisecond, ExpiryCheckInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	c0 := takeCPU()
	t1 := time.Now()
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	tb.Cleanup(func() {
		_, _ = w.Stop(context.Background(), true)
		<-done
	})
	deadline := time.Now().Add(10 * time.Minute)
	for ran.Load() < int64(cfg.Jobs) {
		if time.Now().After(deadline) {
			tb.Fatalf("only %d of %d ran", ran.Load(), cfg.Jobs)
		}
		time.Sleep(time.Millisecond)
	}
	countSQL := `SELECT count(*) FROM ` + be.TaskTable() + ` WHERE status = 'completed'`
	for {
		var n int
		if err := pool.QueryRow(ctx, countSQL).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		if n >= cfg.Jobs {
			break
		}
		time.Sleep(500 * time.Microsecond)
	}
	rep.Work = time.Since(t1)
	c1 := takeCPU()
	rep.PGCPU, rep.SelfCPU = c1.pg-c0.pg, c1.self-c0.self

	// LATENCY: the same worker, now idle; let it settle into its idle wait.
	time.Sleep(100 * time.Millisecond)
	if qs != nil && os.Getenv("QUEUES_BENCH_TRACE_LAT") == "1" {
		qs.log.Store(true)
	}
	for range cfg.Samples {
		select {
		case <-started:
		default:
		}
		t := time.Now()
		if qs != nil && qs.log.Load() {
			fmt.Fprintf(os.Stderr, "%s ENQUEUE\n", t.Format("05.000000"))
		}
		res, err := svc.EnqueueRaw(ctx, "bench.latency", json.RawMessage(`{}`), queues.EnqueueOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		select {
		case s := <-started:
			rep.Latencies = append(rep.Latencies, s.Sub(t))
			if qs != nil && qs.log.Load() {
				fmt.Fprintf(os.Stderr, "%s STARTED %s\n", s.Format("05.000000"), s.Sub(t))
			}
		case <-time.After(10 * time.Second):
			tb.Fatal("a latency task did not start within 10s")
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = res.Wait(wctx, queues.WaitOptions{PollInterval: time.Millisecond})
		cancel()
		if err != nil {
			tb.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // idle again between samples
	}
	return rep
}

// percentileMS returns the nearest-rank percentile p (0..100) in ms.
func percentileMS(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := max(0, min(int(math.Ceil(p/100*float64(len(s))))-1, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// benchLines renders a report like `queues bench` does.
func benchLines(cfg benchConfig, rep benchReport) string {
	return fmt.Sprintf("INSERT jobs=%d batch_size=%d elapsed=%s rate=%.0f jobs/s backend=postgres\n"+
		"WORK jobs=%d workers=%d elapsed=%s rate=%.0f jobs/s\n"+
		"LATENCY samples=%d p50=%.3fms p95=%.3fms p99=%.3fms max=%.3fms\n",
		cfg.Jobs, cfg.Batch, rep.Insert.Round(100*time.Microsecond), rate(cfg.Jobs, rep.Insert),
		cfg.Jobs, cfg.Workers, rep.Work.Round(100*time.Microsecond), rate(cfg.Jobs, rep.Work),
		len(rep.Latencies), percentileMS(rep.Latencies, 50), percentileMS(rep.Latencies, 95),
		percentileMS(rep.Latencies, 99), percentileMS(rep.Latencies, 100))
}

// BenchmarkEndToEnd inserts 100,000 no-op records with EnqueueMany in
// batches of 5,000, then measures one worker (MaxConcurrency 2000, claims
// of up to 1000) from its start until every completion is written, and
// finally the idle enqueue-to-start latency. It reports jobs/s (work),
// insert_jobs/s, p50_ms and p99_ms, and logs the `queues bench` lines.
//
//	go test -run '^$' -bench EndToEnd -benchtime 1x ./backend/postgres/
func BenchmarkEndToEnd(b *testing.B) {
	cfg := defaultBenchConfig()
	for range b.N {
		rep := runBench(b, cfg)
		b.ReportMetric(rate(cfg.Jobs, rep.Work), "jobs/s")
		b.ReportMetric(rate(cfg.Jobs, rep.Insert), "insert_jobs/s")
		b.ReportMetric(percentileMS(rep.Latencies, 50), "p50_ms")
		b.ReportMetric(percentileMS(rep.Latencies, 99), "p99_ms")
		b.Log("\n" + benchLines(cfg, rep))
	}
}

// TestBenchLines prints the `queues bench` lines (INSERT, WORK, LATENCY)
// for a comparison with bench/peers/river; it runs only with
// QUEUES_BENCH=1 (QUEUES_BENCH_JSON=1 prints one JSON object instead).
func TestBenchLines(t *testing.T) {
	if os.Getenv("QUEUES_BENCH") != "1" {
		t.Skip("set QUEUES_BENCH=1 to run the end-to-end benchmark")
	}
	cfg := defaultBenchConfig()
	rep := runBench(t, cfg)
	if os.Getenv("QUEUES_BENCH_JSON") == "1" {
		out, _ := json.Marshal(map[string]any{
			"backend": "postgres", "jobs": cfg.Jobs, "workers": cfg.Workers, "batch_size": cfg.Batch,
			"insert_seconds": rep.Insert.Seconds(), "insert_jobs_per_sec": rate(cfg.Jobs, rep.Insert),
			"work_seconds": rep.Work.Seconds(), "work_jobs_per_sec": rate(cfg.Jobs, rep.Work),
			"latency_ms": map[string]float64{"p50": percentileMS(rep.Latencies, 50), "p95": percentileMS(rep.Latencies, 95),
				"p99": percentileMS(rep.Latencies, 99), "max": percentileMS(rep.Latencies, 100)},
			"samples": len(rep.Latencies),
		})
		fmt.Println(string(out))
		return
	}
	fmt.Print(benchLines(cfg, rep))
	fmt.Printf("CPU work: postgres %.1fµs/job, client %.1fµs/job\n",
		float64(rep.PGCPU.Microseconds())/float64(cfg.Jobs), float64(rep.SelfCPU.Microseconds())/float64(cfg.Jobs))
}
