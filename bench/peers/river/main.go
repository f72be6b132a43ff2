// Command river is the River peer of `queues bench`: it runs
// River (github.com/riverqueue/river, riverpgxv5) with the settings of
// River's own benchmark — one queue, a no-op worker, MaxWorkers 2000,
// FetchCooldown 2ms, FetchPollInterval 20ms, jobs inserted with InsertMany in
// batches of 5,000 before the client starts, a job counted when its
// completion is written (EventKindJobCompleted, emitted after the batch
// completer's write) — and prints the same lines as `queues bench`:
//
//	INSERT jobs=… batch_size=… elapsed=… rate=… jobs/s backend=river
//	WORK jobs=… workers=… elapsed=… rate=… jobs/s
//	VACUUM river_job elapsed=…
//	LATENCY samples=… p50=…ms p95=…ms p99=…ms max=…ms
//
// Like `queues bench`, it vacuums the job table between WORK and LATENCY
// (-no-vacuum skips it; autovacuum is off on the test server). It prints
// one JSON object with --json. River's tables live in their own schema
// (--schema, default river_bench), dropped and re-created with rivermigrate
// at the start of every run.
//
// It is a separate module so the queues module never depends on River:
//
//	cd bench/peers/river && go run . --url postgres://postgres@127.0.0.1:5432/test?sslmode=disable
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// NoopArgs is the benchmark job.
type NoopArgs struct{}

// Kind names the job kind.
func (NoopArgs) Kind() string { return "bench_noop" }

// NoopWorker does nothing.
type NoopWorker struct{ river.WorkerDefaults[NoopArgs] }

// Work returns at once.
func (NoopWorker) Work(ctx context.Context, job *river.Job[NoopArgs]) error { return nil }

// LatencyArgs is the latency probe job.
type LatencyArgs struct{}

// Kind names the job kind.
func (LatencyArgs) Kind() string { return "bench_latency" }

// LatencyWorker records when it starts.
type LatencyWorker struct {
	river.WorkerDefaults[LatencyArgs]
	started chan time.Time
}

// Work reports its start time.
func (w LatencyWorker) Work(ctx context.Context, job *river.Job[LatencyArgs]) error {
	select {
	case w.started <- time.Now():
	default:
	}
	return nil
}

// report mirrors queuescli.BenchReport.
type report struct {
	Backend          string  `json:"backend"`
	Jobs             int     `json:"jobs"`
	Workers          int     `json:"workers"`
	BatchSize        int     `json:"batch_size"`
	InsertSeconds    float64 `json:"insert_seconds"`
	InsertJobsPerSec float64 `json:"insert_jobs_per_sec"`
	WorkSeconds      float64 `json:"work_seconds"`
	WorkJobsPerSec   float64 `json:"work_jobs_per_sec"`
	Vacuumed         bool    `json:"vacuumed"`
	LatencyMS        struct {
		P50 float64 `json:"p50"`
		P95 float64 `json:"p95"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latency_ms"`
	Samples int `json:"samples"`
}

func main() {
	def := os.Getenv("QUEUES_TEST_POSTGRES_URL")
	if def == "" {
		def = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	url := flag.String("url", def, "PostgreSQL URL (env QUEUES_TEST_POSTGRES_URL)")
	schema := flag.String("schema", "river_bench", "schema for River's tables (dropped and re-created)")
	jobs := flag.Int("jobs", 100_000, "jobs to insert and work")
	batch := flag.Int("batch-size", 5_000, "jobs per InsertMany call")
	workers := flag.Int("workers", 2_000, "MaxWorkers of the queue")
	samples := flag.Int("samples", 200, "latency samples")
	conns := flag.Int("conns", 8, "pool size (MaxConns)")
	asJSON := flag.Bool("json", false, "print one JSON object")
	noVacuum := flag.Bool("no-vacuum", false, "do not vacuum river_job between WORK and LATENCY")
	flag.Parse()
	if err := run(*url, *schema, *jobs, *batch, *workers, *samples, *conns, *asJSON, !*noVacuum); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(url, schema string, jobs, batch, workers, samples, conns int, asJSON, vacuum bool) error {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse url: %w", err)
	}
	cfg.MaxConns = int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return err
	}
	driver := riverpgxv5.New(pool)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mig, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema, Logger: quiet})
	if err != nil {
		return err
	}
	if _, err := mig.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrate: %w", err)
	}

	started := make(chan time.Time, 1)
	ws := river.NewWorkers()
	river.AddWorker(ws, NoopWorker{})
	river.AddWorker(ws, LatencyWorker{started: started})
	client, err := river.NewClient(driver, &river.Config{
		Schema:            schema,
		Logger:            quiet,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
		Workers:           ws,
		FetchCooldown:     2 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	events, cancelSub := client.SubscribeConfig(&river.SubscribeConfig{
		Kinds: []river.EventKind{river.EventKindJobCompleted}, ChanSize: jobs + samples + 1000,
	})
	defer cancelSub()

	rep := report{Backend: "river", Jobs: jobs, Workers: workers, BatchSize: batch}

	// Start from a fresh checkpoint, as the queues benchmark does (best
	// effort: needs superuser or pg_checkpoint).
	_, _ = pool.Exec(ctx, "CHECKPOINT")

	// INSERT: before the client starts.
	params := make([]river.InsertManyParams, 0, batch)
	t0 := time.Now()
	for left := jobs; left > 0; {
		n := min(batch, left)
		params = params[:0]
		for range n {
			params = append(params, river.InsertManyParams{Args: NoopArgs{}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		left -= n
	}
	insert := time.Since(t0)
	rep.InsertSeconds, rep.InsertJobsPerSec = insert.Seconds(), float64(jobs)/insert.Seconds()
	if !asJSON {
		fmt.Printf("INSERT jobs=%d batch_size=%d elapsed=%s rate=%.0f jobs/s backend=river\n",
			jobs, batch, insert.Round(100*time.Microsecond), rep.InsertJobsPerSec)
	}

	// WORK: from client start until every completion is written.
	c0 := takeCPU()
	t1 := time.Now()
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()
	timeout := time.After(10 * time.Minute)
	for done := 0; done < jobs; {
		select {
		case ev := <-events:
			if ev.Job.Kind == (NoopArgs{}).Kind() {
				done++
			}
		case <-timeout:
			return fmt.Errorf("only %d of %d jobs completed", done, jobs)
		}
	}
	work := time.Since(t1)
	c1 := takeCPU()
	rep.WorkSeconds, rep.WorkJobsPerSec = work.Seconds(), float64(jobs)/work.Seconds()
	if !asJSON {
		fmt.Printf("WORK jobs=%d workers=%d elapsed=%s rate=%.0f jobs/s\n",
			jobs, workers, work.Round(100*time.Microsecond), rep.WorkJobsPerSec)
	}

	// As `queues bench` does on PostgreSQL: vacuum the job table first (what
	// autovacuum does on a default server), so idle fetches do not step
	// over the dead index entries WORK left behind.
	if vacuum {
		t := time.Now()
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+pgx.Identifier{schema, "river_job"}.Sanitize()); err != nil {
			return fmt.Errorf("vacuum: %w", err)
		}
		rep.Vacuumed = true
		if !asJSON {
			fmt.Printf("VACUUM river_job elapsed=%s (-no-vacuum skips it)\n", time.Since(t).Round(100*time.Microsecond))
		}
	}

	// LATENCY: the same client, now idle; one job at a time.
	time.Sleep(100 * time.Millisecond)
	var lat []time.Duration
	for range samples {
		select {
		case <-started:
		default:
		}
		t := time.Now()
		if _, err := client.Insert(ctx, LatencyArgs{}, nil); err != nil {
			return fmt.Errorf("latency insert: %w", err)
		}
		select {
		case s := <-started:
			lat = append(lat, s.Sub(t))
		case <-time.After(10 * time.Second):
			return fmt.Errorf("a latency job did not start within 10s")
		}
		// Wait for its completion write, then let the client idle again.
		wait := time.After(10 * time.Second)
	drain:
		for {
			select {
			case ev := <-events:
				if ev.Job.Kind == (LatencyArgs{}).Kind() {
					break drain
				}
			case <-wait:
				return fmt.Errorf("a latency job did not complete within 10s")
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	rep.Samples = len(lat)
	rep.LatencyMS.P50, rep.LatencyMS.P95, rep.LatencyMS.P99, rep.LatencyMS.Max =
		pct(lat, 50), pct(lat, 95), pct(lat, 99), pct(lat, 100)
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(rep)
	}
	defer fmt.Printf("CPU work: postgres %.1fµs/job, client %.1fµs/job\n",
		float64((c1.pg-c0.pg).Microseconds())/float64(jobs), float64((c1.self-c0.self).Microseconds())/float64(jobs))
	fmt.Printf("LATENCY samples=%d p50=%.3fms p95=%.3fms p99=%.3fms max=%.3fms\n",
		rep.Samples, rep.LatencyMS.P50, rep.LatencyMS.P95, rep.LatencyMS.P99, rep.LatencyMS.Max)
	return nil
}

// pct returns the nearest-rank percentile p (0..100) of ds in ms.
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := max(0, min(int(math.Ceil(p/100*float64(len(s))))-1, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}
