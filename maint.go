package queues

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/maintenance"
	"github.com/queuesgo/queues/queuestype"
)

// MaintenanceConfig configures maintenance: the run that reconciles
// external executions, recovers stale records and deletes terminal records
// past their retention (Service.RunMaintenance, `queues run-maintenance`),
// and that every worker tries each Interval. Zero values mean the
// documented default.
//
// Retention is on by default: completed and cancelled records are deleted
// 24 hours after they ended, failed and expired ones after 7 days. A
// negative retention keeps that status forever; a negative Interval stops
// workers from running maintenance (run `queues run-maintenance` from a
// scheduler instead, or not at all). Forever-key reservations are never
// deleted, so a forever key stays taken after its record is gone.
type MaintenanceConfig struct {
	// Interval is how often each worker tries a run; one worker of the
	// fleet runs per interval, and runs never overlap (the maintenance
	// lock): 0 → 1m; negative = workers never run maintenance.
	Interval time.Duration
	// TimeBudget bounds a run: once it is spent, the phases not started are
	// reported partial, and the terminal phase stops deleting: 0 → 5m.
	TimeBudget time.Duration
	// CoordinationTimeout is the maintenance lock's TTL, and the most a run
	// may take (a run whose process dies holds the lock this long): 0 →
	// TimeBudget + 1m; it must exceed TimeBudget.
	CoordinationTimeout time.Duration
	// ExternalLimit bounds the records the external phase reconciles: 0 → 100.
	// The phase runs when the service's ExecutionBackend is an external transport.
	ExternalLimit int
	// StaleAfter turns on the stale phase: running records whose heartbeat
	// is older are requeued or failed, as a worker's stale recovery does
	// (for deployments whose workers do not sweep). 0 or negative = off.
	StaleAfter time.Duration
	// StaleLimit bounds the records the stale phase handles: 0 → 100.
	StaleLimit int
	// CompletedRetention, CancelledRetention, FailedRetention and
	// ExpiredRetention are how long a terminal record of that status is kept
	// after it ended (completed_at): 0 → 24h for completed and cancelled,
	// 7 days for failed and expired; negative = kept forever.
	CompletedRetention time.Duration
	CancelledRetention time.Duration
	FailedRetention    time.Duration
	ExpiredRetention   time.Duration
	// TerminalLimit is how many records one delete takes: 0 → 1000. The
	// terminal phase deletes batch after batch until nothing is past its
	// retention or the time budget is spent; each batch is one short write
	// that never waits on a record a claim holds.
	TerminalLimit int
}

// Maintenance defaults (MaintenanceConfig's field docs give them).
const (
	defaultMaintenanceInterval = time.Minute
	defaultMaintenanceBudget   = 5 * time.Minute
	defaultCoordinationMargin  = time.Minute
	defaultMaintenanceLimit    = 100
	defaultTerminalLimit       = 1000
	defaultShortRetention      = 24 * time.Hour
	defaultLongRetention       = 7 * 24 * time.Hour
	maintenanceLockDefaultName = "queue-maintenance"
)

func (c MaintenanceConfig) withDefaults() (MaintenanceConfig, error) {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Interval, defaultMaintenanceInterval)
	def(&c.CompletedRetention, defaultShortRetention)
	def(&c.CancelledRetention, defaultShortRetention)
	def(&c.FailedRetention, defaultLongRetention)
	def(&c.ExpiredRetention, defaultLongRetention)
	switch {
	case c.TimeBudget < 0:
		return c, configErr("Maintenance.TimeBudget", "must be positive")
	case c.TimeBudget == 0:
		c.TimeBudget = defaultMaintenanceBudget
	}
	switch {
	case c.CoordinationTimeout == 0:
		c.CoordinationTimeout = c.TimeBudget + defaultCoordinationMargin
	case c.CoordinationTimeout <= c.TimeBudget:
		return c, configErr("Maintenance.CoordinationTimeout", "must exceed TimeBudget (%s)", c.TimeBudget)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"ExternalLimit", &c.ExternalLimit, defaultMaintenanceLimit}, {"StaleLimit", &c.StaleLimit, defaultMaintenanceLimit},
		{"TerminalLimit", &c.TerminalLimit, defaultTerminalLimit}} {
		switch {
		case *f.v < 0:
			return c, configErr("Maintenance."+f.name, "must be positive")
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return c, nil
}

// retentions returns each terminal status's retention (≤ 0 = kept forever).
func (c MaintenanceConfig) retentions() map[queuestype.Status]time.Duration {
	return map[queuestype.Status]time.Duration{
		StatusCompleted: c.CompletedRetention, StatusCancelled: c.CancelledRetention,
		StatusFailed: c.FailedRetention, StatusExpired: c.ExpiredRetention,
	}
}

// RunMaintenance runs maintenance once under the fleet's maintenance lock:
// the selected phases, in the order external, stale, terminal, events, as
// Config.Maintenance configures them, within its time budget. A run that
// finds the lock held reports maintenance.OutcomeAlreadyRunning with every
// phase skipped. A phase that fails is reported failed and later phases
// still run. The error is for what prevented a run: a store without the
// maintenance capability or an unknown phase (ErrConfig), or a failed lock
// call.
func (s *Service) RunMaintenance(ctx context.Context, opts maintenance.Options) (maintenance.Report, error) {
	rep, _, err := s.runMaintenance(ctx, opts, "", func() bool { return false })
	return rep, err
}

// maintenanceLockName is the maintenance lock of namespace ns:
// queue-maintenance for the default namespace, <ns with dashes>-maintenance
// for the others.
func maintenanceLockName(ns string) string {
	if ns == defaultNamespace {
		return maintenanceLockDefaultName
	}
	return strings.ReplaceAll(ns, "_", "-") + "-maintenance"
}

// runMaintenance is RunMaintenance for a worker (workerID in events, a
// stop that ends the terminal phase early); it also returns the errors of
// the phases that failed, which the report words only as a kind.
func (s *Service) runMaintenance(ctx context.Context, opts maintenance.Options, workerID string, stopping func() bool) (maintenance.Report, []error, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	cfg := s.cfg.Maintenance
	selected := map[maintenance.Phase]bool{}
	for _, p := range opts.Phases {
		if _, err := maintenance.ParsePhase(string(p)); err != nil {
			return maintenance.Report{}, nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		selected[p] = true
	}
	var phases []maintenance.Phase
	for _, p := range maintenance.Phases {
		if len(selected) == 0 || selected[p] {
			phases = append(phases, p)
		}
	}
	l, ok := s.backend.(driver.Locker)
	if !ok || !s.backend.Capabilities().Maintenance {
		return maintenance.Report{}, nil, fmt.Errorf("%w: the %s backend does not support maintenance (no fleet lock)", ErrConfig, s.backend.Name())
	}
	start := now()
	rep := maintenance.Report{Phases: make([]maintenance.PhaseReport, 0, len(phases))}
	// The run ends with its lock: past CoordinationTimeout another run may
	// start, so no store call of this one may outlive it.
	ctx, cancel := context.WithTimeout(ctx, cfg.CoordinationTimeout)
	defer cancel()
	var tok [16]byte
	_, _ = crand.Read(tok[:])
	token, lock := hex.EncodeToString(tok[:]), maintenanceLockName(s.cfg.Namespace)
	got, err := l.AcquireLock(ctx, lock, token, cfg.CoordinationTimeout)
	if err != nil {
		return maintenance.Report{}, nil, fmt.Errorf("maintenance lock: %w", err)
	}
	if !got {
		rep.Outcome = maintenance.OutcomeAlreadyRunning
		for _, p := range phases {
			rep.Phases = append(rep.Phases, maintenance.PhaseReport{Phase: p, Status: maintenance.StatusSkipped})
		}
		rep.Duration = now().Sub(start)
		return rep, nil, nil
	}
	rep.Acquired = true
	defer func() {
		if _, err := l.ReleaseLock(context.WithoutCancel(ctx), lock, token); err != nil {
			// The lock expires after CoordinationTimeout anyway.
			s.logger.Warn("Queue maintenance lock release failed", "lock", lock, "error", err)
		}
	}()
	// Cutoffs are fixed at the start, so a long run deletes what was past
	// retention when it began, never what ages past it meanwhile.
	before := map[queuestype.Status]time.Time{}
	for st, keep := range cfg.retentions() {
		if keep > 0 {
			before[st] = start.Add(-keep)
		}
	}
	byTask := s.registry.retentionCutoffs(start, cfg.retentions())
	deadline := start.Add(cfg.TimeBudget)
	spent := false
	var errs []error
	for _, p := range phases {
		pr := maintenance.PhaseReport{Phase: p, Status: maintenance.StatusSkipped}
		var run func() (int, bool, error)
		switch p {
		case maintenance.External:
			if s.executors[s.cfg.ExecutionBackend] != nil {
				run = func() (int, bool, error) {
					r, err := s.reconcileExternal(ctx, cfg.ExternalLimit, workerID)
					return r.Repair.Changed + r.Completed + r.Failed + r.Cancelled + r.Expired, false, err
				}
			}
		case maintenance.Stale:
			if cfg.StaleAfter > 0 {
				run = func() (int, bool, error) {
					r, err := s.recoverStale(ctx, StaleOptions{StaleAfter: cfg.StaleAfter, Limit: cfg.StaleLimit}, workerID)
					return r.Requeued + r.Failed, false, err
				}
			}
		case maintenance.Terminal:
			if len(before) > 0 || anyCutoff(byTask) {
				run = func() (int, bool, error) {
					p := driver.CleanupParams{Before: before, ByTask: byTask, Limit: cfg.TerminalLimit}
					return s.deleteTerminal(ctx, p, deadline, now, stopping)
				}
			}
		case maintenance.Events:
			// The engine keeps no event history yet: nothing to delete.
		}
		if run != nil {
			if spent || !now().Before(deadline) || stopping() {
				spent = true
				pr.Status = maintenance.StatusPartial
			} else {
				t0 := now()
				n, more, err := run()
				pr.Changed, pr.Duration = n, now().Sub(t0)
				switch {
				case err != nil:
					pr.Status, pr.Error = maintenance.StatusFailed, maintenance.PhaseError(s.backend, err)
					errs = append(errs, fmt.Errorf("maintenance %s phase: %w", p, err))
				case more:
					pr.Status = maintenance.StatusPartial
				default:
					pr.Status = maintenance.StatusCompleted
				}
			}
		}
		rep.Phases = append(rep.Phases, pr)
	}
	rep.Outcome = maintenance.OutcomeCompleted
	for _, pr := range rep.Phases {
		if pr.Status == maintenance.StatusFailed {
			rep.Outcome = maintenance.OutcomeFailed
			break
		}
		if pr.Status == maintenance.StatusPartial {
			rep.Outcome = maintenance.OutcomePartial
		}
	}
	rep.Duration = now().Sub(start)
	return rep, errs, nil
}

// deleteTerminal deletes the terminal records past their retention in
// bounded batches, until a batch comes back short (nothing left), the
// budget is spent or the worker stops; more reports that it stopped with
// a full last batch (more may be left).
func (s *Service) deleteTerminal(ctx context.Context, p driver.CleanupParams,
	deadline time.Time, now func() time.Time, stopping func() bool) (total int, more bool, err error) {
	limit := p.Limit
	for {
		n, err := s.backend.CleanupTerminal(ctx, p)
		total += n
		if err != nil {
			return total, false, err
		}
		if n < limit {
			return total, false, nil
		}
		if !now().Before(deadline) || stopping() {
			return total, true, nil
		}
	}
}

// retentionCutoffs returns the cutoffs of the registered tasks whose
// Retention overrides the fleet's (fleet, per status; ≤ 0 = kept forever),
// as of start: each listed task's records follow its map only, a status
// it omits being kept forever. Nil when no task overrides it.
func (r *Registry) retentionCutoffs(start time.Time, fleet map[queuestype.Status]time.Duration) map[string]map[queuestype.Status]time.Time {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out map[string]map[queuestype.Status]time.Time
	for name, e := range r.tasks {
		rt := e.opts.Retention
		if rt == nil || *rt == (Retention{}) {
			continue
		}
		m := map[queuestype.Status]time.Time{}
		for st, own := range map[queuestype.Status]time.Duration{StatusCompleted: rt.Completed,
			StatusCancelled: rt.Cancelled, StatusFailed: rt.Failed, StatusExpired: rt.Expired} {
			keep := fleet[st]
			if own != 0 {
				keep = own
			}
			if keep > 0 {
				m[st] = start.Add(-keep)
			}
		}
		if out == nil {
			out = map[string]map[queuestype.Status]time.Time{}
		}
		out[name] = m
	}
	return out
}

// anyCutoff reports whether some task of byTask has a cutoff.
func anyCutoff(byTask map[string]map[queuestype.Status]time.Time) bool {
	for _, m := range byTask {
		if len(m) > 0 {
			return true
		}
	}
	return false
}

// maintenanceSweeper runs the retention phases of maintenance (terminal,
// events) every Maintenance.Interval on one worker of the fleet; off with a
// negative Interval, or on a store without the maintenance lock.
func maintenanceSweeper(w *Worker) *sweeper {
	cfg := w.svc.cfg.Maintenance
	if _, ok := w.svc.backend.(driver.Locker); !ok || cfg.Interval <= 0 || !w.svc.backend.Capabilities().Maintenance {
		return nil
	}
	return &sweeper{name: "maintenance", interval: cfg.Interval,
		sweep: func(ctx context.Context) (int, error) {
			// The worker's own sweepers already reconcile external
			// executions and recover stale records under their fleet
			// locks; its maintenance runs the retention phases only.
			opts := maintenance.Options{Phases: []maintenance.Phase{maintenance.Terminal, maintenance.Events}}
			rep, errs, err := w.svc.runMaintenance(ctx, opts, w.cfg.ID, w.stop.fired)
			if err != nil {
				return 0, err
			}
			n := 0
			for _, p := range rep.Phases {
				n += p.Changed
			}
			return n, errors.Join(errs...)
		}}
}
