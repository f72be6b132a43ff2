package queuescli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
	"github.com/spf13/cobra"
)

// BenchReport is the result of `bench` (printed with --json).
type BenchReport struct {
	Backend          string  `json:"backend"`
	Jobs             int     `json:"jobs"`
	Workers          int     `json:"workers"`
	Prefetch         int     `json:"prefetch"`
	BatchSize        int     `json:"batch_size"`
	InsertSeconds    float64 `json:"insert_seconds"`
	InsertJobsPerSec float64 `json:"insert_jobs_per_sec"`
	WorkSeconds      float64 `json:"work_seconds"`
	WorkJobsPerSec   float64 `json:"work_jobs_per_sec"`
	// WorkClientCPUMicros is this process's CPU time per worked job during
	// WORK, in µs (0 where the platform cannot tell): steadier than rates
	// on a shared machine, and what the peer harnesses print too.
	WorkClientCPUMicros float64 `json:"work_client_cpu_us_per_job"`
	// WorkServerCPUMicros is the server's CPU time per worked job during
	// WORK, in µs, where the backend can tell (Redis: INFO cpu); else 0.
	WorkServerCPUMicros float64 `json:"work_server_cpu_us_per_job,omitempty"`
	// Vacuumed says the task table was vacuumed between WORK and LATENCY
	// (PostgreSQL, unless --no-vacuum).
	Vacuumed  bool         `json:"vacuumed"`
	LatencyMS BenchLatency `json:"latency_ms"`
	Samples   int          `json:"samples"`
}

// BenchLatency holds enqueue-to-start percentiles in milliseconds.
type BenchLatency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

type benchFlags struct {
	jobs, workers, batch, samples int
	prefetch                      int
	duration                      time.Duration
	asJSON                        bool
	noVacuum                      bool
	cpuProfile                    string
}

func (c *cli) benchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure insert rate, work rate and enqueue-to-start latency",
		Long: `Benchmark the backend in this process, in three phases:

  INSERT   bulk-insert --jobs no-op records in batches of --batch-size (EnqueueMany)
  WORK     one worker with --workers concurrency works them down; the rate is
           jobs divided by the time from worker start to the last completion
  LATENCY  with the queue idle, enqueue one record at a time (up to --samples,
           or until --duration) and measure from before the enqueue call to the
           first line of the task function; p50/p95/p99/max in ms

On PostgreSQL the task table is vacuumed between WORK and LATENCY (what
autovacuum does on a default server), because each idle claim would otherwise
step over the dead index entries of every record WORK claimed; --no-vacuum
measures without it.

Backends: memory:, sqlite:PATH, postgres://… and redis://…. Without --backend
(or with "sqlite:"), a fresh temporary SQLite file is used and removed
afterwards; an explicit sqlite:PATH, a PostgreSQL database (migrated first) or
a Redis database is written to (records go to a queue of their own and are
left there). The Options.Config hook is not used: the numbers are the
library's.`,
		Example: `  queues bench --backend memory --jobs 100000 --workers 50
  queues bench --backend sqlite:/tmp/bench.db --jobs 100000 --workers 50 --json
  queues bench --backend redis://127.0.0.1:6379/3 --jobs 100000 --workers 100 --prefetch 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.bench(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.jobs, "jobs", 10000, "records to insert and work")
	fl.IntVar(&f.workers, "workers", 50, "worker concurrency (most attempts in flight)")
	fl.IntVar(&f.prefetch, "prefetch", 0, "claimed records the worker may hold beyond --workers (WorkerConfig.Prefetch)")
	fl.IntVar(&f.batch, "batch-size", 1000, "records per EnqueueMany call; the worker claims up to min(batch-size, workers) per poll")
	fl.IntVar(&f.samples, "samples", 200, "latency samples")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "time limit of the latency phase")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON object")
	fl.BoolVar(&f.noVacuum, "no-vacuum", false, "PostgreSQL: do not vacuum the task table before LATENCY")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	return cmd
}

func (c *cli) bench(cmd *cobra.Command, f benchFlags) (err error) {
	switch {
	case f.jobs < 1:
		return fmt.Errorf("--jobs must be at least 1 (got %d)", f.jobs)
	case f.workers < 1:
		return fmt.Errorf("--workers must be at least 1 (got %d)", f.workers)
	case f.batch < 1:
		return fmt.Errorf("--batch-size must be at least 1 (got %d)", f.batch)
	case f.prefetch < 0:
		return fmt.Errorf("--prefetch must not be negative (got %d)", f.prefetch)
	case f.samples < 0:
		return fmt.Errorf("--samples must not be negative (got %d)", f.samples)
	case f.duration <= 0:
		return fmt.Errorf("--duration must be positive (got %s)", f.duration)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	raw, isDefault, err := resolveDSN(cmd)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.lastDSN = raw
	c.mu.Unlock()
	norm := strings.ToLower(strings.TrimSpace(raw))
	temp := isDefault || norm == "sqlite:" || norm == "sqlite://"
	if temp {
		dir, err := os.MkdirTemp("", "queues-bench-")
		if err != nil {
			return fmt.Errorf("bench: temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "bench.db")
		raw = "sqlite:" + path
		fmt.Fprintf(c.opts.Stderr, "bench: using a temporary SQLite file %s (removed afterwards)\n", path)
	}
	d, err := dsn.Parse(raw)
	if err != nil {
		return err
	}
	if d.Scheme == dsn.SchemeSQLite && !temp {
		fmt.Fprintf(c.opts.Stderr, "bench: writing %d benchmark records to %s\n", f.jobs+f.samples, d.Path)
	}
	logger, err := c.logger(cmd)
	if err != nil {
		return err
	}
	b, err := d.Open(ctx)
	if err != nil {
		return fmt.Errorf("open backend: %w", err)
	}
	if m, ok := b.(driver.Migrator); ok && (d.Scheme == dsn.SchemePostgres || d.Scheme == dsn.SchemeRedis) {
		// A benchmark is a development tool: bring the schema up to date first.
		if _, err := m.Migrate(ctx, driver.MigrateOptions{}); err != nil {
			return fmt.Errorf("migrate backend: %w", err)
		}
	}

	queue := "bench_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	var done atomic.Int64
	allDone := make(chan struct{})
	total := int64(f.jobs)
	started := make(chan time.Time, 1)
	reg := queues.NewRegistry()
	if _, err := queues.Register(reg, "bench.noop", func(ctx context.Context, _ json.RawMessage) (struct{}, error) {
		if done.Add(1) == total {
			close(allDone)
		}
		return struct{}{}, nil
	}, queues.TaskOptions{Queue: queue}); err != nil {
		return err
	}
	if _, err := queues.Register(reg, "bench.latency", func(ctx context.Context, _ json.RawMessage) (struct{}, error) {
		select {
		case started <- time.Now():
		default:
		}
		return struct{}{}, nil
	}, queues.TaskOptions{Queue: queue}); err != nil {
		return err
	}
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, Logger: logger})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = svc.Close(context.WithoutCancel(ctx)) }()

	rep := BenchReport{Backend: b.Name(), Jobs: f.jobs, Workers: f.workers, Prefetch: f.prefetch, BatchSize: f.batch}

	// INSERT
	reqs := make([]queues.EnqueueRequest, 0, min(f.batch, f.jobs))
	t0 := time.Now()
	for left := f.jobs; left > 0; {
		n := min(f.batch, left)
		reqs = reqs[:0]
		for range n {
			reqs = append(reqs, queues.EnqueueRequest{Task: "bench.noop", RawArgs: json.RawMessage("{}")})
		}
		if _, err := svc.EnqueueMany(ctx, reqs); err != nil {
			return fmt.Errorf("bench insert: %w", err)
		}
		left -= n
	}
	insert := time.Since(t0)
	rep.InsertSeconds = insert.Seconds()
	rep.InsertJobsPerSec = rate(f.jobs, insert)
	if !f.asJSON {
		fmt.Fprintf(c.opts.Stdout, "INSERT jobs=%d batch_size=%d elapsed=%s rate=%.0f jobs/s backend=%s\n",
			f.jobs, f.batch, round(insert), rep.InsertJobsPerSec, rep.Backend)
	}

	// WORK
	wcfg := queues.WorkerConfig{ID: fmt.Sprintf("bench-%d", os.Getpid()), Queues: []string{queue},
		MaxConcurrency: f.workers, Prefetch: f.prefetch, BatchSize: min(f.batch, f.workers+f.prefetch), ExpiryCheckInterval: -1}
	w, err := svc.NewWorker(wcfg)
	if err != nil {
		return err
	}
	cpu0, cpuOK := processCPU()
	srv, srvOK := b.(serverCPUer)
	var srv0 time.Duration
	if srvOK {
		var serr error
		if srv0, serr = srv.ServerCPU(ctx); serr != nil {
			srvOK = false // the figure is left out, the bench goes on
		}
	}
	t1 := time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	select {
	case <-allDone:
	case err := <-runErr:
		return fmt.Errorf("bench worker stopped: %v", err)
	case <-ctx.Done():
		_, _ = w.Stop(context.Background(), true)
		return ctx.Err()
	}
	// The functions have all returned; wait for the last completion write.
	for {
		st, err := svc.Statistics(ctx, queue)
		if err != nil {
			return fmt.Errorf("bench statistics: %w", err)
		}
		if st.Completed >= f.jobs {
			break
		}
		if st.Failed+st.Cancelled+st.Expired > 0 {
			return fmt.Errorf("bench: %d records did not complete", st.Failed+st.Cancelled+st.Expired)
		}
		time.Sleep(500 * time.Microsecond)
	}
	work := time.Since(t1)
	rep.WorkSeconds = work.Seconds()
	rep.WorkJobsPerSec = rate(f.jobs, work)
	if cpu1, ok := processCPU(); ok && cpuOK {
		rep.WorkClientCPUMicros = float64((cpu1 - cpu0).Microseconds()) / float64(f.jobs)
	}
	serverCPU := ""
	if srvOK {
		if srv1, err := srv.ServerCPU(ctx); err == nil {
			rep.WorkServerCPUMicros = float64((srv1 - srv0).Microseconds()) / float64(f.jobs)
			serverCPU = fmt.Sprintf(" server_cpu=%.1fµs/job", rep.WorkServerCPUMicros)
		}
	}
	if !f.asJSON {
		fmt.Fprintf(c.opts.Stdout, "WORK jobs=%d workers=%d elapsed=%s rate=%.0f jobs/s client_cpu=%.1fµs/job%s\n",
			f.jobs, f.workers, round(work), rep.WorkJobsPerSec, rep.WorkClientCPUMicros, serverCPU)
	}

	if v, ok := b.(vacuumer); ok && !f.noVacuum {
		t := time.Now()
		if err := v.Vacuum(ctx); err != nil {
			return fmt.Errorf("bench vacuum: %w", err)
		}
		rep.Vacuumed = true
		if !f.asJSON {
			fmt.Fprintf(c.opts.Stdout, "VACUUM task table elapsed=%s (--no-vacuum skips it)\n", round(time.Since(t)))
		}
	}

	// LATENCY: the same worker, now idle.
	var lat []time.Duration
	deadline := time.Now().Add(f.duration)
	for i := 0; i < f.samples && time.Now().Before(deadline); i++ {
		select {
		case <-started:
		default:
		}
		t := time.Now()
		res, err := svc.EnqueueRaw(ctx, "bench.latency", json.RawMessage("{}"), queues.EnqueueOptions{})
		if err != nil {
			return fmt.Errorf("bench latency enqueue: %w", err)
		}
		wait := time.NewTimer(max(time.Until(deadline), 0) + 5*time.Second)
		select {
		case s := <-started:
			lat = append(lat, s.Sub(t))
		case <-wait.C:
			return errors.New("bench: a latency task did not start within the time limit")
		case <-ctx.Done():
			wait.Stop()
			return ctx.Err()
		}
		wait.Stop()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = res.Wait(wctx, queues.WaitOptions{PollInterval: time.Millisecond})
		cancel()
		if err != nil {
			return fmt.Errorf("bench latency wait: %w", err)
		}
	}
	if _, err := w.Stop(context.Background(), false); err != nil {
		return err
	}
	<-runErr
	rep.Samples = len(lat)
	rep.LatencyMS = percentiles(lat)
	if f.asJSON {
		return writeJSON(c.opts.Stdout, rep)
	}
	fmt.Fprintf(c.opts.Stdout, "LATENCY samples=%d p50=%.3fms p95=%.3fms p99=%.3fms max=%.3fms\n",
		rep.Samples, rep.LatencyMS.P50, rep.LatencyMS.P95, rep.LatencyMS.P99, rep.LatencyMS.Max)
	return nil
}

// serverCPUer is a backend that can report its server's CPU time
// (redis.Backend).
type serverCPUer interface {
	ServerCPU(ctx context.Context) (time.Duration, error)
}

// vacuumer is a backend whose store needs vacuuming (postgres.Backend).
type vacuumer interface {
	Vacuum(ctx context.Context) error
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return math.Round(float64(n)/d.Seconds()*10) / 10
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond / 10) }

// percentiles returns nearest-rank percentiles in milliseconds.
func percentiles(ds []time.Duration) BenchLatency {
	if len(ds) == 0 {
		return BenchLatency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		i = max(0, min(i, len(s)-1))
		return ms(s[i])
	}
	return BenchLatency{P50: at(50), P95: at(95), P99: at(99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000 }
