package queues

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/queuestype"
)

// consumeOne implements execution.Host.ConsumeOne: it claims the record id
// by ID and runs it once in this process.
func (s *Service) consumeOne(ctx context.Context, id uuid.UUID, opts execution.ConsumeOptions) (execution.ExitCode, error) {
	workerID := firstNonZero(opts.WorkerID, s.cfg.Worker.ID)
	if _, err := s.backend.GetTask(ctx, id); err != nil {
		if errors.Is(err, ErrTaskNotFound) {
			return execution.ExitMissingRecord, fmt.Errorf("task %s: %w", id, ErrTaskNotFound)
		}
		return execution.ExitConfigError, fmt.Errorf("read task %s: %w", id, err)
	}
	rec, code, err := s.claimForConsume(ctx, id, workerID, opts)
	if rec == nil {
		return code, err
	}
	// A settle write is retried until it lands or the caller's ctx ends (a
	// one-shot process told to stop): the record is then left to stale
	// recovery, as a crash would leave it.
	env := attemptEnv{workerID: workerID, finalCancel: s.cfg.Worker.FinalCancelTimeout,
		requeueOnShutdown: s.cfg.Worker.RequeueOnShutdown, maxInterruptions: s.cfg.Worker.MaxInterruptions,
		settle: settleHooks{abort: ctx}}
	base, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	a := s.newAttempt(base, rec, workerID)
	stop := context.AfterFunc(ctx, func() { a.cancel(ErrShutdown) })
	defer stop()

	if e := s.registry.lookup(rec.TaskName); e == nil || !e.hasFunc {
		close(a.bodyDone)
		if err := a.failUnknown(); err != nil {
			if errors.Is(err, ErrFenceLost) {
				return execution.ExitClaimLost, err
			}
			return execution.ExitFailure, err
		}
		return execution.ExitUnknownTask, &UnknownTaskError{Name: rec.TaskName}
	}

	interval := firstNonZero(opts.HeartbeatInterval, s.cfg.Worker.HeartbeatInterval)
	var lost bool
	hbDone := make(chan struct{})
	hbStop := make(chan struct{})
	go func() {
		defer close(hbDone)
		lost = s.oneShotHeartbeats(a, interval, hbStop)
	}()
	env.beforeSettle = func(*attempt) {
		close(hbStop)
		<-hbDone
	}
	// While a settle write is retried, the record keeps its heartbeat; the
	// retry loop, not a missed touch, decides whether the claim is lost.
	var keepStop, keepDone chan struct{}
	env.settle.retrying = func(a *attempt) {
		keepStop, keepDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(keepDone)
			s.keepBeating(a, interval, keepStop)
		}()
	}
	env.settle.ended = func(*attempt, bool) {
		close(keepStop)
		<-keepDone
	}
	a.run(env)
	// Whatever happened, leave no heartbeat behind for this generation.
	_ = s.backend.NullHeartbeats(context.WithoutCancel(ctx), []queuestype.Fence{a.fence()})
	if lost {
		return execution.ExitClaimLost, ErrClaimLost
	}
	final, err := s.backend.GetTask(context.WithoutCancel(ctx), id)
	if err != nil {
		return execution.ExitFailure, err
	}
	switch final.Status {
	case StatusCompleted:
		return execution.ExitSuccess, nil
	case StatusCancelled:
		return execution.ExitCancelled, ErrCancelled
	}
	if ctx.Err() != nil {
		return execution.ExitFailure, fmt.Errorf("attempt interrupted: %w", ctx.Err())
	}
	if final.Error != "" {
		return execution.ExitFailure, errors.New(final.Error)
	}
	return execution.ExitFailure, fmt.Errorf("task ended %s", final.Status)
}

// claimForConsume claims id, retrying while a dispatch marker is still on the
// record. A nil record comes with the exit code to return.
func (s *Service) claimForConsume(ctx context.Context, id uuid.UUID, workerID string, opts execution.ConsumeOptions) (*Record, execution.ExitCode, error) {
	deadline := time.Now().Add(firstNonZero(opts.MarkerWait, 10*time.Second))
	for {
		res, err := s.backend.ClaimByID(ctx, driver.ClaimByIDParams{ID: id, WorkerID: workerID,
			ExpectedRetryCount: opts.ExpectedRetryCount, ExpectedRef: opts.ExpectedRef})
		if err != nil && !errors.Is(err, ErrFenceLost) {
			return nil, execution.ExitConfigError, fmt.Errorf("claim task %s: %w", id, err)
		}
		if len(res.Expired) > 0 {
			s.publishExpired(ctx, res.Expired, workerID)
			return nil, execution.ExitClaimLost, fmt.Errorf("task %s expired before execution", id)
		}
		if len(res.Claimed) > 0 {
			return res.Claimed[0], execution.ExitSuccess, nil
		}
		cur, err := s.backend.GetTask(ctx, id)
		if err != nil {
			return nil, execution.ExitMissingRecord, err
		}
		if !cur.DispatchUntil.IsZero() && !cur.IsTerminal() && time.Now().Before(deadline) {
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, execution.ExitClaimLost, ctx.Err()
			case <-t.C:
			}
			continue
		}
		a := &attempt{rec: cur, workerID: workerID}
		expected := cur.RetryCount
		if opts.ExpectedRetryCount != nil {
			expected = *opts.ExpectedRetryCount
		}
		payload := map[string]any{"phase": "claim", "expected_retry_count": expected,
			"current_status": string(cur.Status), "current_retry_count": cur.RetryCount}
		s.lifecycle(ctx, events.TypeClaimLost, a.rec, workerID, "Queue task ownership lost", payload, nil)
		return nil, execution.ExitClaimLost, fmt.Errorf("task %s is %s and could not be claimed", id, cur.Status)
	}
}

// oneShotHeartbeats touches the attempt's record every interval until stop
// closes. The first miss means the claim is lost: the attempt is cancelled
// with ErrClaimLost and task.claim_lost published; it then reports true.
func (s *Service) oneShotHeartbeats(a *attempt, interval time.Duration, stop <-chan struct{}) bool {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return false
		case <-t.C:
		}
		gen := a.rec.RetryCount
		touch := driver.HeartbeatTouch{ID: a.rec.ID, ExpectedRetryCount: &gen}
		beat := a.beat.Load()
		if beat != nil {
			touch.MetadataPatch = map[string]any{queuestype.MetaProgressDetail: *beat}
		}
		res, err := s.backend.TouchHeartbeats(context.Background(), []driver.HeartbeatTouch{touch})
		if err != nil {
			// Not a miss: the store did not answer; the next tick tries again.
			s.noteStoreError(err)
			s.logger.Warn("Queue heartbeat failed", "task_id", a.rec.ID, "error", err)
			continue
		}
		if len(res.Touched) > 0 {
			if beat != nil {
				a.beat.CompareAndSwap(beat, nil)
			}
			continue
		}
		a.claimLost(context.Background(), "heartbeat")
		a.cancel(ErrClaimLost)
		return true
	}
}

// keepBeating touches the attempt's record every interval until stop
// closes, whatever the answer: the attempt's settle write is being retried.
func (s *Service) keepBeating(a *attempt, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	gen := a.rec.RetryCount
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := s.backend.TouchHeartbeats(context.Background(), []driver.HeartbeatTouch{{ID: a.rec.ID, ExpectedRetryCount: &gen}}); err != nil {
			s.noteStoreError(err)
		}
	}
}
