package queues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/queuestype"
)

// Service is the public entry point: it enqueues, reads, cancels and runs
// tasks on one backend. Create it with New, open it with Start, and stop it
// with Close. A Service is safe for concurrent use.
type Service struct {
	cfg      Config
	backend  driver.Backend
	dispatch driver.Dispatcher // nil when the store has no external execution
	registry *Registry
	logger   *slog.Logger
	pub      *publisher
	// executors are the configured external transports by name; execOrder
	// keeps Config.Executors order for Open (and reverse for Close).
	executors map[string]execution.Transport
	execOrder []execution.Transport
	host      *host // what the transports see of the service
	// knownExec holds every execution backend a record may be enqueued
	// for (see checkExecutionBackend); knownExecList lists them sorted.
	knownExec     map[string]bool
	knownExecList string

	// storeErrAt is when a store call of the engine (a settle write, a
	// heartbeat, a claim) last failed, in Unix nanoseconds; 0 = never.
	// storeDown is set by a failure and cleared by the next call that
	// succeeds, which stamps storeBackAt.
	storeErrAt  atomic.Int64
	storeDown   atomic.Bool
	storeBackAt atomic.Int64

	// clock, when set, replaces time.Now for computing schedule
	// occurrences (tests drive it).
	clock func() time.Time
	// dueCh is closed (and replaced) when this process enqueued a schedule
	// occurrence, so its idle workers clamp their wait to it.
	dueMu sync.Mutex
	dueCh chan struct{}

	mu      sync.Mutex
	started bool
	inApp   *Worker
	inAppCh chan error
}

// New validates cfg and returns a service. It opens nothing; call Start.
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, backend: cfg.Backend, registry: cfg.Registry, logger: cfg.Logger,
		executors: map[string]execution.Transport{}}
	s.host = &host{s: s}
	s.dispatch, _ = cfg.Backend.(driver.Dispatcher)
	if len(cfg.Executors) > 0 && s.dispatch == nil {
		return nil, configErr("Executors", "the %s backend does not support external execution", cfg.Backend.Name())
	}
	for _, ex := range cfg.Executors {
		s.executors[ex.Name()] = ex
		s.execOrder = append(s.execOrder, ex)
	}
	s.knownExec, s.knownExecList = knownExecutionBackends(cfg)
	s.pub = newPublisher(cfg.Namespace, cfg.Events, cfg.Logger)
	return s, nil
}

// Start opens the backend, then the external execution backends
// (Config.Executors, in order) and, with PlacementInApp, starts the in-app
// worker. A failure rolls back what started, in reverse.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return nil
	}
	if err := s.backend.Open(ctx); err != nil {
		return fmt.Errorf("open %s backend: %w", s.backend.Name(), err)
	}
	for i, ex := range s.execOrder {
		if err := ex.Open(ctx); err != nil {
			s.closeExecutors(context.WithoutCancel(ctx), s.execOrder[:i])
			_ = s.backend.Close(context.WithoutCancel(ctx))
			return fmt.Errorf("open %s execution backend: %w", ex.Name(), err)
		}
	}
	rollback := func() {
		s.closeExecutors(context.Background(), s.execOrder)
		_ = s.backend.Close(context.Background())
	}
	if s.cfg.Worker.Placement == PlacementInApp {
		w, err := s.NewWorker(s.cfg.Worker)
		if err != nil {
			rollback()
			return err
		}
		s.inApp = w
		s.inAppCh = make(chan error, 1)
		go func() {
			err := w.Run(context.Background())
			if errors.Is(err, ErrStoreBroken) {
				// Nobody reads an in-app worker's error until Close: say
				// now that this process no longer runs tasks.
				s.logger.Error("Queue in-app worker stopped: the store reports itself broken", "worker_id", w.cfg.ID, "error", err)
			}
			s.inAppCh <- err
		}()
		select {
		case <-w.Ready():
		case err := <-s.inAppCh:
			s.inApp = nil
			rollback()
			return fmt.Errorf("start in-app worker: %w", err)
		case <-ctx.Done():
			_, _ = w.Stop(context.Background(), true)
			s.inApp = nil
			rollback()
			return ctx.Err()
		}
	}
	s.started = true
	return nil
}

// closeExecutors closes execs in reverse order and returns their errors.
func (s *Service) closeExecutors(ctx context.Context, execs []execution.Transport) []error {
	var errs []error
	for i := len(execs) - 1; i >= 0; i-- {
		if err := execs[i].Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close %s execution backend: %w", execs[i].Name(), err))
		}
	}
	return errs
}

// Close drains the in-app worker through the shutdown ladder, closes the
// external execution backends (reverse order) and closes the backend. It
// returns ErrEscalated (wrapped) when the drain had to cancel attempts.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	s.started = false
	var errs []error
	if s.inApp != nil {
		if _, err := s.inApp.Stop(ctx, false); err != nil {
			errs = append(errs, err)
		}
		s.inApp = nil
	}
	errs = append(errs, s.closeExecutors(ctx, s.execOrder)...)
	if err := s.backend.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close %s backend: %w", s.backend.Name(), err))
	}
	return errors.Join(errs...)
}

// Backend returns the queue backend.
func (s *Service) Backend() driver.Backend { return s.backend }

// Registry returns the task registry.
func (s *Service) Registry() *Registry { return s.registry }

// Namespace returns the configured namespace root.
func (s *Service) Namespace() string { return s.cfg.Namespace }

// EventBroker returns the broker events are delivered to, or nil when events
// are not configured. Subscribe to it for live events.
func (s *Service) EventBroker() events.Broker {
	if !s.pub.enabled {
		return nil
	}
	return s.pub.broker
}

// InAppWorker returns the in-app worker while the service runs with
// PlacementInApp, else nil.
func (s *Service) InAppWorker() *Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inApp
}

// EnqueueRaw enqueues a registered task by name with JSON arguments. The name
// must be registered (else ErrUnknownTask) and args must decode into the
// task's argument type (else ErrInvalidArgs).
func (s *Service) EnqueueRaw(ctx context.Context, task string, args json.RawMessage, opts EnqueueOptions) (*TaskResult[json.RawMessage], error) {
	e := s.registry.lookup(task)
	if e == nil {
		return nil, &UnknownTaskError{Name: task}
	}
	return s.enqueueOne(ctx, e, nil, args, opts)
}

func (s *Service) enqueueOne(ctx context.Context, e *taskEntry, typed any, raw json.RawMessage, opts EnqueueOptions) (*TaskResult[json.RawMessage], error) {
	p, err := s.prepare(ctx, e, typed, raw, opts, typed == nil)
	if err != nil {
		return nil, err
	}
	res, err := s.insert(ctx, []prepared{p})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// EnqueueMany enqueues several records in one backend round trip, running the
// same pipeline as Enqueue for each. Every request is validated first: an
// invalid one returns *BatchError and writes nothing. Results come back in input order.
func (s *Service) EnqueueMany(ctx context.Context, reqs []EnqueueRequest) ([]*TaskResult[json.RawMessage], error) {
	ps, err := s.prepareMany(ctx, reqs)
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	return s.insert(ctx, ps)
}

// prepareMany validates every request (all-or-nothing) and runs the pipeline for each.
func (s *Service) prepareMany(ctx context.Context, reqs []EnqueueRequest) ([]prepared, error) {
	ps := make([]prepared, len(reqs))
	for i, r := range reqs {
		e := s.registry.lookup(r.Task)
		if e == nil {
			return nil, &BatchError{Index: i, Err: &UnknownTaskError{Name: r.Task}}
		}
		var err error
		if r.RawArgs != nil {
			ps[i], err = s.prepare(ctx, e, nil, r.RawArgs, r.Options, true)
		} else {
			ps[i], err = s.prepare(ctx, e, r.Args, nil, r.Options, false)
		}
		if err != nil {
			return nil, &BatchError{Index: i, Err: err}
		}
	}
	return ps, nil
}

type prepared struct {
	entry  *taskEntry
	params driver.EnqueueParams
}

// prepareItem validates one enqueue item and builds its store parameters:
// options, arguments, identity, due and expiry times, policy and metadata.
func (s *Service) prepareItem(ctx context.Context, e *taskEntry, typed any, raw json.RawMessage, o EnqueueOptions, isRaw bool) (prepared, error) {
	if err := o.validate(); err != nil {
		return prepared{}, err
	}
	var decoded any
	if isRaw {
		if len(raw) == 0 {
			raw = json.RawMessage("{}")
		}
		// Size and content first: nothing larger than the limit is parsed.
		if err := queuestype.CheckJSON("args", raw, s.cfg.Limits.ArgsBytes); err != nil {
			if len(raw) <= s.cfg.Limits.ArgsBytes && !json.Valid(raw) {
				return prepared{}, fmt.Errorf("%w: task %q: arguments are not valid JSON", ErrInvalidArgs, e.name)
			}
			return prepared{}, err
		}
		d, err := e.decode(raw)
		if err != nil {
			return prepared{}, fmt.Errorf("task %q: %w", e.name, err)
		}
		decoded = d
	} else {
		b, err := json.Marshal(typed)
		if err != nil {
			return prepared{}, fmt.Errorf("%w: task %q: encode arguments: %v", ErrInvalidArgs, e.name, err)
		}
		raw = b
		if err := queuestype.CheckJSON("args", raw, s.cfg.Limits.ArgsBytes); err != nil {
			return prepared{}, err
		}
		decoded = typed
		if !e.isArgs(typed) {
			// EnqueueMany items may carry any value (a map, say): it must decode into A.
			d, err := e.decode(raw)
			if err != nil {
				return prepared{}, fmt.Errorf("task %q: %w", e.name, err)
			}
			decoded = d
		}
	}
	id, err := s.resolveIdentity(e, o.Key, decoded)
	if err != nil {
		return prepared{}, fmt.Errorf("task %q: %w", e.name, err)
	}
	uniqueFor, uniqueWhile := firstNonZero(o.UniqueFor, e.opts.UniqueFor), o.UniqueWhile
	if uniqueWhile == nil {
		uniqueWhile = e.opts.UniqueWhile
	}
	if uniqueFor != 0 || len(uniqueWhile) > 0 {
		switch {
		case id.key == "":
			return prepared{}, configErr("UniqueFor", "a period or states need a key (Key, or the task's Key or UniqueBy)")
		case id.forever:
			return prepared{}, configErr("UniqueFor", "a forever key takes no period or states (it is held until ResetIdentity)")
		}
	}
	now := time.Now().UTC()
	var scheduledAt time.Time
	switch {
	case !o.ScheduledAt.IsZero():
		scheduledAt = o.ScheduledAt.UTC()
	case o.RunAfter > 0:
		scheduledAt = now.Add(o.RunAfter)
	case e.opts.RunAfter > 0:
		scheduledAt = now.Add(e.opts.RunAfter)
	}
	var expiresAt time.Time
	if !o.ExpiresAt.IsZero() {
		expiresAt = o.ExpiresAt.UTC()
	} else if in := firstNonZero(o.ExpiresIn, e.opts.ExpiresIn); in > 0 {
		base := now
		if !scheduledAt.IsZero() {
			base = scheduledAt
		}
		expiresAt = base.Add(in)
	}
	execBackend := firstNonZero(o.ExecutionBackend, e.opts.ExecutionBackend, s.cfg.ExecutionBackend)
	if execBackend == ExecutionImmediate && scheduledAt.After(now) {
		return prepared{}, configErr("ScheduledAt", "the immediate execution backend cannot run a record due in the future")
	}
	md := queuestype.CloneMetadata(o.Metadata)
	if md == nil {
		md = map[string]any{}
	}
	priority := e.opts.Priority
	if o.Priority != nil {
		priority = *o.Priority
	}
	retries := e.opts.Retries
	if o.Retries != nil {
		retries = *o.Retries
	}
	params := driver.EnqueueParams{
		ID: o.ID, TaskName: e.name, Queue: firstNonZero(o.Queue, e.opts.Queue, DefaultQueue),
		Priority: priority, MaxRetries: retries, ScheduledAt: scheduledAt, ExpiresAt: expiresAt,
		Key: id.key, Forever: id.forever, UniqueFor: uniqueFor, UniqueWhile: append([]Status(nil), uniqueWhile...),
		ExecutionBackend: execBackend,
		ExecutionProfile: firstNonZero(o.ExecutionProfile, e.opts.ExecutionProfile), Metadata: md,
		Policy: s.buildPolicy(ctx, e, o, id),
		Tags:   queuestype.NormalizeTags(append(append([]string(nil), e.opts.Tags...), o.Tags...)),
	}
	// The configured limits, before any store call (the arguments were
	// checked above and are not scanned again).
	if err := driver.CheckEnqueueLimits(s.cfg.Limits, "", params, now); err != nil {
		return prepared{}, err
	}
	params.Args = raw
	return prepared{entry: e, params: params}, nil
}

// buildPolicy layers the task's defaults, the enqueue options, the config
// log_success default, the identity and the caller's correlation ID into the
// record's typed policy.
func (s *Service) buildPolicy(ctx context.Context, e *taskEntry, o EnqueueOptions, id identity) queuestype.Policy {
	t := e.opts
	p := queuestype.Policy{
		Description: firstNonZero(o.Description, t.Description), LogLevel: firstNonZero(o.LogLevel, t.LogLevel),
		LogSuccess: s.cfg.LogSuccess, NoStaleRequeue: t.NoStaleRequeue, RequeueOnShutdown: t.RequeueOnShutdown,
		RetryBackoff: t.RetryBackoff, UniqueBy: id.by, UniqueUntil: id.until,
	}
	if id.by != "" || id.until != "" {
		p.UniqueVersion = identityVersion
	}
	if t.LogSuccess != nil {
		p.LogSuccess = *t.LogSuccess
	}
	if o.LogSuccess != nil {
		p.LogSuccess = *o.LogSuccess
	}
	if o.RequeueOnStale != nil {
		p.NoStaleRequeue = !*o.RequeueOnStale
	}
	if o.Timeout > 0 {
		p.Timeout = o.Timeout
	}
	if cid, ok := ctx.Value(correlationKey{}).(string); ok {
		p.CorrelationID = cid
	}
	if p.RequeueOnShutdown != nil {
		v := *p.RequeueOnShutdown
		p.RequeueOnShutdown = &v
	}
	return p
}

func firstNonZero[T comparable](vs ...T) T {
	var zero T
	for _, v := range vs {
		if v != zero {
			return v
		}
	}
	return zero
}

// insert runs pipeline step 9 (one backend call) and steps 11–12 per item.
func (s *Service) insert(ctx context.Context, ps []prepared) ([]*TaskResult[json.RawMessage], error) {
	params := make([]driver.EnqueueParams, len(ps))
	for i, p := range ps {
		params[i] = p.params
	}
	outs, err := s.backend.Enqueue(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	if len(outs) != len(ps) {
		return nil, fmt.Errorf("enqueue: backend returned %d outcomes for %d items", len(outs), len(ps))
	}
	results, itemErrs := s.resultsFrom(outs)
	now := time.Now()
	for i, r := range results {
		if r == nil || r.record == nil || r.Deduplicated {
			continue
		}
		rec := r.record
		if (rec.Status == StatusPending || rec.Status == StatusScheduled) && rec.IsExpired(now) {
			if _, err := s.ExpireOverdue(ctx, len(ps)); err != nil {
				s.logger.Warn("Queue expiry check after enqueue failed", "task_id", rec.ID, "error", err)
			}
			if fresh, err := s.backend.GetTask(ctx, rec.ID); err == nil {
				results[i].record = fresh
			}
		}
	}
	if len(itemErrs) > 0 {
		if len(ps) == 1 {
			return nil, errors.Unwrap(itemErrs[0])
		}
		return results, errors.Join(itemErrs...)
	}
	for _, r := range results {
		rec := r.record
		if rec == nil || rec.ExecutionBackend != ExecutionImmediate || r.Deduplicated || rec.Status != StatusPending {
			continue
		}
		final, err := s.runImmediate(ctx, rec)
		if err != nil {
			return results, err
		}
		r.record = final
	}
	return results, nil
}

// GetTask returns the record or ErrTaskNotFound.
func (s *Service) GetTask(ctx context.Context, id uuid.UUID) (*Record, error) {
	return s.backend.GetTask(ctx, id)
}

// Statistics counts records per status; queue "" counts every queue.
func (s *Service) Statistics(ctx context.Context, queue string) (Statistics, error) {
	return s.backend.Statistics(ctx, queue)
}

// ListTasks lists records newest first with filters and a keyset cursor. It
// needs a backend that implements Inspector (every built-in one does).
func (s *Service) ListTasks(ctx context.Context, f TaskFilter) (TaskPage, error) {
	in, ok := s.backend.(driver.Inspector)
	if !ok {
		return TaskPage{}, fmt.Errorf("%w: %s backend cannot list tasks", ErrUnsupported, s.backend.Name())
	}
	if f.Status != "" && !f.Status.IsValid() {
		return TaskPage{}, configErr("Status", "unknown status %q", f.Status)
	}
	return in.ListTasks(ctx, f)
}

// CancelOptions controls Service.Cancel.
type CancelOptions struct {
	// IncludeRunning also cancels a running record; its worker is told at once
	// and the attempt's ctx ends with cause ErrCancelled.
	IncludeRunning bool
	// Reason is the message of the task.cancelled event.
	Reason string
}

// Cancel cancels one record. It returns true only for the caller that wins
// the durable transition; repeats return false and publish nothing.
//
// When the record holds a provider execution ref (an external execution was
// dispatched), its execution backend is asked to stop it first: an
// execution.CancelRetryable answer publishes a task.event warning with phase
// "<backend>.cancel_failed" and returns false with the record untouched; any
// other answer lets the durable cancel proceed. When that execution backend
// is not configured in this process, the cancel proceeds without asking
// (logged at WARN); the execution then stops at its next fenced write.
func (s *Service) Cancel(ctx context.Context, id uuid.UUID, opts CancelOptions) (bool, error) {
	cur, err := s.backend.GetTask(ctx, id)
	if errors.Is(err, ErrTaskNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	cancellable := cur.Status == StatusPending || cur.Status == StatusScheduled ||
		(opts.IncludeRunning && cur.Status == StatusRunning)
	if !cancellable {
		return false, nil
	}
	if cur.ExecutionRef != "" && cur.DispatchUntil.IsZero() && !s.cancelExternal(ctx, cur) {
		return false, nil
	}
	rec, err := s.backend.Cancel(ctx, driver.CancelParams{ID: id, IncludeRunning: opts.IncludeRunning})
	if errors.Is(err, ErrFenceLost) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.afterCancel(ctx, rec, opts.IncludeRunning, opts.Reason, "", nil)
	return true, nil
}

func (s *Service) afterCancel(ctx context.Context, rec *Record, notify bool, reason, workerID string, seq *int) {
	s.lifecycle(ctx, events.TypeCancelled, rec, workerID, reason, statusPayload(rec), seq)
	s.logger.Info("Queue task cancelled", "task_id", rec.ID, "task_name", rec.TaskName, "queue", rec.Queue)
	if notify && rec.WorkerID != "" {
		if wc, ok := s.backend.(driver.WorkerController); ok {
			if err := wc.NotifyWorkerControl(context.WithoutCancel(ctx), rec.WorkerID); err != nil {
				s.logger.Warn("Queue worker control hint failed", "worker_id", rec.WorkerID, "error", err)
			}
		}
	}
}

// CancelSummary reports a CancelMatching call.
type CancelSummary struct {
	Cancelled []uuid.UUID
	// SkippedExternal counts matching records that hold an execution ref; cancel
	// them by ID so their provider is asked first.
	SkippedExternal int
}

// CancelMatching cancels every pending/scheduled record (and running ones with
// IncludeRunning) matching f, publishing task.cancelled for each.
func (s *Service) CancelMatching(ctx context.Context, f CancelFilter) (CancelSummary, error) {
	recs, err := s.backend.CancelMatching(ctx, f)
	if err != nil {
		return CancelSummary{}, err
	}
	var sum CancelSummary
	for _, rec := range recs {
		sum.Cancelled = append(sum.Cancelled, rec.ID)
		s.afterCancel(ctx, rec, f.IncludeRunning, "", "", nil)
	}
	sum.SkippedExternal = s.countExternalMatches(ctx, f)
	return sum, nil
}

// countExternalMatches counts records the bulk cancel skipped because they hold an execution ref.
func (s *Service) countExternalMatches(ctx context.Context, f CancelFilter) int {
	if s.dispatch == nil {
		return 0
	}
	recs, err := s.dispatch.ListRunningExternal(ctx, 10000)
	if err != nil {
		return 0
	}
	n := 0
	for _, r := range recs {
		if driver.MatchesFilter(r, f) && (r.Status != StatusRunning || f.IncludeRunning) {
			n++
		}
	}
	return n
}

// GetIdentity returns the forever reservation for key, or nil when there is none.
func (s *Service) GetIdentity(ctx context.Context, key string) (*Reservation, error) {
	return s.backend.GetIdentity(ctx, key)
}

// ResetIdentity deletes the forever reservation for key: the only way to free
// a forever key. It reports whether a reservation was deleted.
func (s *Service) ResetIdentity(ctx context.Context, key string) (bool, error) {
	return s.backend.ResetIdentity(ctx, key, uuid.Nil)
}

// ExpireOverdue expires up to limit overdue pending/scheduled records now and
// publishes task.expired for each. It returns how many expired.
func (s *Service) ExpireOverdue(ctx context.Context, limit int) (int, error) {
	return s.expireOverdue(ctx, limit, "")
}

func (s *Service) expireOverdue(ctx context.Context, limit int, workerID string) (int, error) {
	recs, err := s.backend.ExpireOverdue(ctx, limit)
	if err != nil {
		return 0, err
	}
	s.publishExpired(ctx, recs, workerID)
	return len(recs), nil
}

// StaleOptions controls Service.RecoverStale.
type StaleOptions struct {
	// StaleAfter is the heartbeat age that makes a running record stale (> 0).
	StaleAfter time.Duration
	// Limit bounds the records handled in one call: 0 → 100.
	Limit int
}

// StaleRecoveryResult reports a stale recovery pass.
type StaleRecoveryResult struct {
	Requeued, Failed, Skipped, HandlerNeeded int
	FailedTaskIDs, HandlerNeededTaskIDs      []uuid.UUID
}

// RecoverStale requeues or fails running records whose heartbeat is older
// than opts.StaleAfter, publishing task.stale_failed per failure and one
// worker.stale_recovery summary, and calling each task's OnStaleFailure hook.
func (s *Service) RecoverStale(ctx context.Context, opts StaleOptions) (StaleRecoveryResult, error) {
	if opts.StaleAfter <= 0 {
		return StaleRecoveryResult{}, configErr("StaleAfter", "must be positive")
	}
	return s.recoverStale(ctx, opts, "")
}

func (s *Service) recoverStale(ctx context.Context, opts StaleOptions, workerID string) (StaleRecoveryResult, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	cands, err := s.backend.ListStale(ctx, opts.StaleAfter, limit)
	if err != nil {
		return StaleRecoveryResult{}, err
	}
	var res StaleRecoveryResult
	handlerNeeded := map[uuid.UUID]bool{}
	ts := make([]driver.Transition, len(cands))
	now := time.Now()
	for i, c := range cands {
		var handler bool
		ts[i], handler = decideStale(c, opts.StaleAfter, s.cfg.StaleRequeuePriority, now)
		handlerNeeded[c.ID] = handler
	}
	var failed []*Record
	if len(ts) > 0 {
		results, err := s.backend.Settle(ctx, ts)
		if err != nil {
			return StaleRecoveryResult{}, err
		}
		for i, r := range results {
			switch {
			case r.Err != nil:
				// A heartbeat landed, or another sweeper or the attempt
				// itself settled the record first.
				res.Skipped++
			case ts[i].To == StatusPending:
				res.Requeued++
			default:
				res.Failed++
				failed = append(failed, r.Record)
				if handlerNeeded[r.Record.ID] {
					res.HandlerNeeded++
					res.HandlerNeededTaskIDs = append(res.HandlerNeededTaskIDs, r.Record.ID)
				}
			}
		}
	}
	for _, f := range failed {
		res.FailedTaskIDs = append(res.FailedTaskIDs, f.ID)
		requeueOnStale := !f.Policy.NoStaleRequeue
		payload := statusPayload(f)
		payload["max_retries"] = f.MaxRetries
		payload["requeue_on_stale"] = requeueOnStale
		payload["handler_needed"] = handlerNeeded[f.ID]
		msg := firstNonZero(f.Error, driver.StaleError)
		s.lifecycle(ctx, events.TypeStaleFailed, f, workerID, msg, payload, nil)
		s.logger.Error("Queue task failed after stale heartbeat", "task_id", f.ID, "task_name", f.TaskName, "queue", f.Queue)
		s.runStaleHook(ctx, f)
	}
	if res.Requeued+res.Failed+res.Skipped+res.HandlerNeeded > 0 {
		ev := events.Event{Type: events.TypeStaleRecovery, Scope: events.ScopeWorker, ScopeKey: workerID, WorkerID: workerID,
			Message: "Recovered stale running tasks", Level: "warning",
			Payload: map[string]any{"requeued": res.Requeued, "failed": res.Failed, "skipped": res.Skipped, "handler_needed": res.HandlerNeeded}}
		if err := s.pub.publish(context.WithoutCancel(ctx), ev); err != nil {
			s.logger.Warn("Queue event delivery failed", "event_type", ev.Type, "error", err)
		}
	}
	return res, nil
}

func (s *Service) runStaleHook(ctx context.Context, rec *Record) {
	e := s.registry.lookup(rec.TaskName)
	if e == nil {
		s.logger.Warn("Queue stale failure for an unknown task; no hook to run", "task_id", rec.ID, "task_name", rec.TaskName)
		return
	}
	if e.opts.OnStaleFailure == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("Queue stale failure hook panicked", "task_id", rec.ID, "panic", p)
		}
	}()
	e.opts.OnStaleFailure(ctx, rec.Clone())
}

type correlationKey struct{}

// WithCorrelationID returns ctx carrying a correlation ID. Enqueues made with
// it store the ID in metadata._correlation_id, and the task's attempts see it
// again through CorrelationID.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation ID carried by ctx, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}
