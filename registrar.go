package queues

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/queuesgo/queues/driver"
)

// Workers lists the live workers registered in the store (up to 1000),
// ordered by ID: each entry's ID, host, PID, queues, execution backend,
// concurrency, running count, start time and version, with the store's
// SeenAt and ExpiresAt. A worker registers when Run starts, refreshes its entry
// every HeartbeatInterval (idle or not) and removes it when it stops; the
// entry of a worker that was killed vanishes three missed ticks after its
// last refresh (3 × HeartbeatInterval × (1 + HeartbeatJitterFraction)). It
// returns an error matching ErrUnsupported when the store keeps no
// registry.
func (s *Service) Workers(ctx context.Context) ([]driver.WorkerInfo, error) {
	reg, ok := s.backend.(driver.WorkerRegistry)
	if !ok {
		return nil, fmt.Errorf("%w: %s backend keeps no registry of workers", ErrUnsupported, s.backend.Name())
	}
	ws, err := reg.ListWorkers(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return ws, nil
}

// registryTTLTicks is how many heartbeat ticks a registry entry outlives
// its last refresh: a worker that misses this many (killed, frozen, cut
// off from the store) is no longer listed, while one slow write or a
// jittered tick does not make a live worker vanish.
const registryTTLTicks = 3

// registrar keeps a worker's entry in the store's registry of live workers:
// registered when Run starts, refreshed every heartbeat interval whether or
// not attempts run, removed when Run returns. The heartbeater writes only
// while records run, so the registrar ticks on its own timer. Registry
// writes never fail the worker: a failure is logged once per streak.
type registrar struct {
	w    *Worker
	reg  driver.WorkerRegistry
	info driver.WorkerInfo
	ttl  time.Duration

	stop chan struct{}
	done chan struct{}
	once sync.Once

	failing bool // the last write failed (only the run goroutine touches it)
}

// newRegistrar returns the worker's registrar, or nil when the store keeps
// no registry (said once, at debug level).
func newRegistrar(w *Worker) *registrar {
	reg, ok := w.svc.backend.(driver.WorkerRegistry)
	if !ok {
		w.svc.logger.Debug("Queue worker registry unsupported by the store; the worker is not listed",
			"worker_id", w.cfg.ID, "backend", w.svc.backend.Name())
		return nil
	}
	host, _ := os.Hostname()
	cfg := w.cfg
	return &registrar{
		w: w, reg: reg,
		info: driver.WorkerInfo{
			ID: cfg.ID, Host: host, PID: os.Getpid(), Queues: slices.Clone(cfg.Queues),
			ExecutionBackend: w.svc.cfg.ExecutionBackend, Concurrency: cfg.MaxConcurrency,
			StartedAt: time.Now().UTC(), Version: moduleVersion(),
		},
		ttl:  registryTTL(cfg),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// registryTTL is how long an entry stays listed after a refresh: registryTTLTicks
// of the longest jittered heartbeat interval.
func registryTTL(cfg WorkerConfig) time.Duration {
	return time.Duration(float64(registryTTLTicks) * float64(cfg.HeartbeatInterval) * (1 + cfg.HeartbeatJitterFraction))
}

// start registers the worker at once and then refreshes it every
// heartbeat interval until halt or remove.
func (r *registrar) start() {
	go r.run()
}

func (r *registrar) run() {
	defer close(r.done)
	r.refresh()
	t := time.NewTimer(r.interval())
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.refresh()
			t.Reset(r.interval())
		}
	}
}

func (r *registrar) interval() time.Duration {
	cfg := r.w.cfg
	return time.Duration(float64(cfg.HeartbeatInterval) * (1 + rand.Float64()*cfg.HeartbeatJitterFraction))
}

// refresh writes the entry with the current running count.
func (r *registrar) refresh() {
	info := r.info
	info.Running = r.w.InFlight()
	ctx, cancel := context.WithTimeout(context.Background(), r.writeTimeout())
	err := r.reg.RegisterWorker(ctx, info, r.ttl)
	cancel()
	switch {
	case err != nil && !r.failing:
		r.failing = true
		r.w.svc.logger.Warn("Queue worker registry write failed; the worker keeps running and tries again every heartbeat",
			"worker_id", r.info.ID, "error", err)
	case err == nil && r.failing:
		r.failing = false
		r.w.svc.logger.Info("Queue worker registry write recovered", "worker_id", r.info.ID)
	}
}

func (r *registrar) writeTimeout() time.Duration {
	return min(max(r.w.cfg.HeartbeatInterval, time.Second), 5*time.Second)
}

// halt stops refreshing without touching the entry.
func (r *registrar) halt() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

// remove stops refreshing and deletes the entry: the worker stopped.
func (r *registrar) remove() {
	r.halt()
	ctx, cancel := context.WithTimeout(context.Background(), r.writeTimeout())
	defer cancel()
	if err := r.reg.RemoveWorker(ctx, r.info.ID); err != nil {
		r.w.svc.logger.Warn("Queue worker registry entry not removed; it expires by itself",
			"worker_id", r.info.ID, "expires_in", r.ttl, "error", err)
	}
}

// modulePath is this module's path, looked up in the build information.
const modulePath = "github.com/queuesgo/queues"

// moduleVersion is the version of this module the binary was built with,
// or "devel" for a build from a working tree.
var moduleVersion = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := ""
	if bi.Main.Path == modulePath {
		v = bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			v = d.Version
			if d.Replace != nil {
				v = d.Replace.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
})
