package queues

import (
	"context"
	"fmt"

	"github.com/queuesgo/queues/driver"
)

// runImmediate executes a pending record inline (execution backend
// "immediate"), running retries at once until the record is terminal, and
// returns its final state. If the caller's ctx ends mid-attempt, the attempt
// is cancelled with ErrShutdown, the record fails terminally and the ctx
// error is returned.
func (s *Service) runImmediate(ctx context.Context, rec *Record) (*Record, error) {
	// A settle write is retried until it lands or the caller's ctx ends.
	env := attemptEnv{workerID: s.cfg.Worker.ID, finalCancel: s.cfg.Worker.FinalCancelTimeout, maxInterruptions: s.cfg.Worker.MaxInterruptions,
		settle: settleHooks{abort: ctx}}
	for {
		gen := rec.RetryCount
		res, err := s.backend.ClaimByID(ctx, driver.ClaimByIDParams{ID: rec.ID, WorkerID: env.workerID, ExpectedRetryCount: &gen})
		if err != nil {
			return rec, fmt.Errorf("immediate claim: %w", err)
		}
		s.publishExpired(ctx, res.Expired, env.workerID)
		if len(res.Claimed) == 0 {
			return s.backend.GetTask(ctx, rec.ID)
		}
		base, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		a := s.newAttempt(base, res.Claimed[0], env.workerID)
		a.inline = true
		stop := context.AfterFunc(ctx, func() {
			a.callerErr = ctx.Err()
			a.cancel(ErrShutdown)
		})
		a.run(env)
		stop()
		cancel(nil)
		if ctx.Err() != nil {
			rec, _ = s.backend.GetTask(context.WithoutCancel(ctx), rec.ID)
			return rec, ctx.Err()
		}
		if rec, err = s.backend.GetTask(ctx, rec.ID); err != nil {
			return nil, err
		}
		if rec.Status == StatusPending {
			continue
		}
		return rec, nil
	}
}
