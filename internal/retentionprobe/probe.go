// Package retentionprobe measures what retention costs claims: with many
// terminal records past their retention in a store, a worker runs no-op
// tasks while maintenance deletes them, and the probe reports the
// enqueue-to-start latency of those tasks before and during the deletion
// and the rows deleted per second. It is a measurement run by hand (each
// store's RetentionMeasure test, with QUEUES_RETENTION_MEASURE=1), not a CI
// check.
package retentionprobe

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/maintenance"
)

// Env is the variable that turns the measurement on.
const Env = "QUEUES_RETENTION_MEASURE"

// Skip skips t unless Env is 1.
func Skip(t *testing.T) {
	t.Helper()
	if os.Getenv(Env) != "1" {
		t.Skipf("retention measurement: set %s=1 to run it (it inserts many records and takes minutes)", Env)
	}
}

// SeedCompleted writes n completed records through b's contract, in
// batches of 1000 (enqueue, claim, settle). They are not old: Measure
// moves the maintenance clock forward instead.
func SeedCompleted(ctx context.Context, b driver.Backend, n int) error {
	for done := 0; done < n; {
		k := min(1000, n-done)
		items := make([]driver.EnqueueParams, k)
		for i := range items {
			items[i] = driver.EnqueueParams{TaskName: "measure.old", Args: json.RawMessage(`{}`), Queue: "seed", ExecutionBackend: "local"}
		}
		if _, err := b.Enqueue(ctx, items); err != nil {
			return fmt.Errorf("seed enqueue: %w", err)
		}
		res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: k, Queues: []string{"seed"}, WorkerID: "seed"})
		if err != nil {
			return fmt.Errorf("seed claim: %w", err)
		}
		ts := make([]driver.Transition, len(res.Claimed))
		for i, r := range res.Claimed {
			ts[i] = driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queues.StatusCompleted, NoRecord: true}
		}
		if _, err := b.Settle(ctx, ts); err != nil {
			return fmt.Errorf("seed settle: %w", err)
		}
		done += len(ts)
	}
	return nil
}

// Result is what Measure saw.
type Result struct {
	Before, During   []time.Duration // enqueue-to-start latencies
	Deleted          int
	Elapsed          time.Duration
	Batches, Runs    int
	TerminalLeft     int
	ProbesCompleted  int
	MaintenanceError string
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// String is the one-line summary for the closing note.
func (r Result) String() string {
	return fmt.Sprintf("before: n=%d p50=%s p99=%s; during: n=%d p50=%s p99=%s; deleted %d in %s (%.0f rows/s, %d runs)",
		len(r.Before), pct(r.Before, .5).Round(10*time.Microsecond), pct(r.Before, .99).Round(10*time.Microsecond),
		len(r.During), pct(r.During, .5).Round(10*time.Microsecond), pct(r.During, .99).Round(10*time.Microsecond),
		r.Deleted, r.Elapsed.Round(time.Millisecond), float64(r.Deleted)/r.Elapsed.Seconds(), r.Runs)
}

// Measure runs a worker of no-op tasks on b (opened) and probes its
// latency (one task every 10 ms) for before, then runs maintenance's
// terminal phase until it deletes nothing, with its clock 25 hours ahead
// so every seeded completed record is past the default 24 h retention,
// and keeps probing meanwhile.
func Measure(t *testing.T, b driver.Backend, before time.Duration) Result {
	t.Helper()
	ctx := context.Background()
	reg := queues.NewRegistry()
	var (
		mu     sync.Mutex
		during bool
		res    Result
	)
	type probe struct {
		At int64 `json:"at"`
	}
	task := queues.MustRegister(reg, "measure.noop", func(ctx context.Context, p probe) (struct{}, error) {
		lat := time.Since(time.Unix(0, p.At))
		mu.Lock()
		if during {
			res.During = append(res.During, lat)
		} else {
			res.Before = append(res.Before, lat)
		}
		mu.Unlock()
		return struct{}{}, nil
	})
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, Logger: slog.New(slog.DiscardHandler),
		Maintenance: queues.MaintenanceConfig{Interval: -1, TimeBudget: 30 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := svc.NewWorker(queues.WorkerConfig{ID: "measure", MaxConcurrency: 4, Queues: []string{"probe"}})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- w.Run(ctx) }()
	<-w.Ready()
	stop := make(chan struct{})
	probes := make(chan struct{})
	go func() {
		defer close(probes)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := task.Enqueue(ctx, svc, probe{At: time.Now().UnixNano()}, queues.EnqueueOptions{Queue: "probe"}); err != nil {
				t.Errorf("probe enqueue: %v", err)
				return
			}
		}
	}()
	time.Sleep(before) // the probe collects meanwhile; nothing to wait for
	mu.Lock()
	during = true
	mu.Unlock()
	start := time.Now()
	ahead := func() time.Time { return time.Now().Add(25 * time.Hour) }
	for {
		rep, err := svc.RunMaintenance(ctx, maintenance.Options{Now: ahead, Phases: []maintenance.Phase{maintenance.Terminal}})
		if err != nil {
			t.Fatalf("RunMaintenance: %v", err)
		}
		res.Runs++
		p := rep.Phases[0]
		res.Deleted += p.Changed
		if p.Error != "" {
			res.MaintenanceError = p.Error
			break
		}
		if p.Status == maintenance.StatusCompleted {
			break
		}
	}
	res.Elapsed = time.Since(start)
	close(stop)
	<-probes
	if _, err := w.Stop(ctx, false); err != nil {
		t.Logf("stop: %v", err)
	}
	<-runDone
	mu.Lock()
	defer mu.Unlock()
	return res
}
