package queues

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/queuesgo/queues/driver"
)

// A sweeper is one periodic duty of a worker that is not claiming: the
// expiry sweep, stale recovery, the reconcile of external executions and
// maintenance (retention; next: the schedule keeper). Each one runs on a
// goroutine of its own with its own jittered timer, from Worker.Run until the worker
// starts shutting down, so a busy or an idle claim loop never delays it
// and a failing sweep never stops claiming. Before each sweep it takes the
// fleet lock named after it (driver.Locker), so one worker of the fleet
// sweeps per interval; without a Locker every worker sweeps (the writes are
// fenced, so that costs work, not correctness).
type sweeper struct {
	// name names the sweeper in logs and its fleet lock.
	name     string
	interval time.Duration
	// holdUntil, when set, returns the time before which a due sweep is
	// put off (stale recovery waits out this process's store errors).
	holdUntil func() time.Time
	// sweep runs one pass and returns how many records it changed.
	sweep func(ctx context.Context) (int, error)
}

// sweeperDuties builds the sweepers of a worker; each constructor returns
// nil when its duty is off for that worker. A new duty is a constructor
// listed here.
var sweeperDuties = []func(w *Worker) *sweeper{
	expirySweeper,
	staleSweeper,
	scheduleKeeper,
	func(w *Worker) *sweeper {
		if w.disp == nil {
			return nil
		}
		return w.disp.reconcileSweeper()
	},
	maintenanceSweeper,
}

// expirySweeper expires records whose not-started deadline passed, with
// task.expired, including records of queues no worker claims from.
func expirySweeper(w *Worker) *sweeper {
	if w.cfg.ExpiryCheckInterval <= 0 {
		return nil
	}
	return &sweeper{name: "expiry_sweep", interval: w.cfg.ExpiryCheckInterval,
		sweep: func(ctx context.Context) (int, error) {
			return w.svc.expireOverdue(ctx, w.cfg.BatchSize*10, w.cfg.ID)
		}}
}

// staleSweeper requeues or fails the running records whose heartbeat is
// older than StaleAfter (a crashed or hung worker's).
func staleSweeper(w *Worker) *sweeper {
	if w.cfg.StaleAfter <= 0 {
		return nil
	}
	return &sweeper{name: "stale_recovery", interval: w.cfg.StaleCheckInterval,
		// While this process could not reach the store, neither could the
		// workers whose heartbeats look old now: an outage is not a crash.
		// Recover nothing until the store has answered for one StaleAfter,
		// so live workers have heartbeated again.
		holdUntil: func() time.Time {
			since, answering := w.svc.storeQuietSince()
			if !answering {
				// Wait for the claim loop or a heartbeat to reach the store.
				return time.Now().Add(min(w.cfg.StaleAfter, time.Second))
			}
			return since.Add(w.cfg.StaleAfter)
		},
		sweep: func(ctx context.Context) (int, error) {
			res, err := w.svc.recoverStale(ctx, StaleOptions{StaleAfter: w.cfg.StaleAfter, Limit: w.cfg.BatchSize * 10}, w.cfg.ID)
			return res.Requeued + res.Failed, err
		}}
}

// startSweepers starts the worker's sweepers. They stop when a stop is
// requested; a sweep in progress then finishes, or ends with ctx. The
// returned group is done when every sweeper has returned.
func (w *Worker) startSweepers(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, duty := range sweeperDuties {
		if sw := duty(w); sw != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sw.run(ctx, w)
			}()
		}
	}
	return &wg
}

// sweepJitter spreads each wait by ±this fraction of the interval, so the
// workers of a fleet started together do not race for the lock in step.
const sweepJitter = 0.1

// jittered is d spread by ±sweepJitter.
func jittered(d time.Duration) time.Duration {
	spread := time.Duration(float64(d) * sweepJitter)
	return d - spread + rand.N(2*spread+1)
}

// run sweeps every interval until w's stop is requested. The first sweep
// runs soon after the start (within a tenth of the interval, at most a
// second). A failed sweep is paced and logged like the claim loop's
// failures (storeBackoff): it is tried again after the interval, or after
// the backoff when that is longer, and logged on its first failure, each
// time the backoff grows and then at most once a minute. A sweeper never
// gives up: the claim loop decides when the store is broken.
func (sw *sweeper) run(ctx context.Context, w *Worker) {
	stop := w.stop.done()
	t := time.NewTimer(rand.N(min(sw.interval/10, time.Second) + 1))
	defer t.Stop()
	policy := w.backoff
	policy.giveUpAfter, policy.floor = 0, sw.interval
	bo := storeBackoff{policy: policy}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if w.stop.fired() {
			return
		}
		if sw.holdUntil != nil {
			if d := time.Until(sw.holdUntil()); d > 0 {
				t.Reset(d)
				continue
			}
		}
		next := jittered(sw.interval)
		n, err := sw.once(ctx, w)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			class := driver.Classify(w.svc.backend, err)
			w.svc.noteStoreError(err)
			step := bo.fail(time.Now(), class)
			next = max(next, step.pause)
			if step.log {
				w.svc.logger.Log(ctx, errorLevel(class), "Queue sweep failed", "sweep", sw.name, "worker_id", w.cfg.ID,
					"failures", bo.failures, "error_class", class.String(), "retry_in", next, "error", err)
			}
		default:
			w.svc.noteStoreAnswered()
			if failed := bo.succeed(); failed > 0 {
				w.svc.logger.Info("Queue sweep recovered", "sweep", sw.name, "worker_id", w.cfg.ID, "failures", failed)
			}
			if n > 0 {
				w.svc.logger.Debug("Queue sweep done", "sweep", sw.name, "worker_id", w.cfg.ID, "changed", n)
			}
		}
		t.Reset(next)
	}
}

// once runs one sweep under the fleet lock. After a store error the
// worker's running records are heartbeated first: a store that answers
// again gets them before any sweep (as before any claim).
func (sw *sweeper) once(ctx context.Context, w *Worker) (int, error) {
	if err := w.hb.catchUp(); err != nil {
		return 0, fmt.Errorf("heartbeat: %w", err)
	}
	got, err := acquireFleetLock(ctx, w.svc, sw.name, sw.interval)
	if err != nil {
		return 0, fmt.Errorf("fleet lock %s: %w", sw.name, err)
	}
	if !got {
		return 0, nil // another worker of the fleet sweeps this interval
	}
	return sw.sweep(ctx)
}

// acquireFleetLock takes the named fleet lock with a fresh token so one
// worker of the fleet runs the sweep; it is never released and expires by
// TTL (the interval, at least a second). Without a Locker every worker
// holds it (fences keep the sweeps correct).
func acquireFleetLock(ctx context.Context, svc *Service, name string, interval time.Duration) (bool, error) {
	l, ok := svc.backend.(driver.Locker)
	if !ok {
		return true, nil
	}
	var b [16]byte
	_, _ = crand.Read(b[:])
	return l.AcquireLock(ctx, svc.cfg.Namespace+":"+name, hex.EncodeToString(b[:]), max(interval, time.Second))
}
