package queues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
)

// TaskResult is the handle returned by an enqueue: the record's ID, and ways
// to read it back and wait for its outcome.
type TaskResult[R any] struct {
	ID       uuid.UUID
	TaskName string
	// Deduplicated is true when an existing active record (or a forever
	// reservation's owner) was returned instead of a new record.
	Deduplicated bool

	svc    *Service
	record *Record
}

// WaitOptions tune TaskResult.Wait.
type WaitOptions struct {
	// PollInterval is the refresh cadence when the backend cannot announce
	// completions: 0 → 100ms.
	PollInterval time.Duration
}

func retype[R any](r *TaskResult[json.RawMessage]) *TaskResult[R] {
	return &TaskResult[R]{ID: r.ID, TaskName: r.TaskName, Deduplicated: r.Deduplicated, svc: r.svc, record: r.record}
}

// Record returns the record as of the last read; nil for a forever-owner handle.
func (r *TaskResult[R]) Record() *Record { return r.record.Clone() }

// Refresh re-reads the record from the backend.
func (r *TaskResult[R]) Refresh(ctx context.Context) (*Record, error) {
	rec, err := r.svc.backend.GetTask(ctx, r.ID)
	if err != nil {
		if errors.Is(err, ErrTaskNotFound) {
			return nil, fmt.Errorf("%w: task %s no longer exists in the queue backend", ErrTaskNotFound, r.ID)
		}
		return nil, err
	}
	r.record = rec
	return rec.Clone(), nil
}

// Wait blocks until the record is terminal and returns it. When ctx ends first
// it returns ctx.Err() and the task is untouched. A deleted record returns ErrTaskNotFound.
func (r *TaskResult[R]) Wait(ctx context.Context, opts ...WaitOptions) (*Record, error) {
	interval := 100 * time.Millisecond
	if len(opts) > 0 && opts[0].PollInterval > 0 {
		interval = opts[0].PollInterval
	}
	waiter, _ := r.svc.backend.(driver.CompletionWaiter)
	for {
		rec, err := r.Refresh(ctx)
		if err != nil {
			return nil, err
		}
		if rec.IsTerminal() {
			return rec, nil
		}
		if waiter != nil {
			// Bounded so a lost announcement costs at most a second.
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			err = waiter.WaitForCompletion(wctx, r.ID)
			cancel()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return nil, err
			}
			continue
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// Value decodes the result of a completed record. For any other status it
// returns a *TaskError with the status and stored error text.
func (r *TaskResult[R]) Value() (R, error) {
	var v R
	if r.record == nil {
		return v, &TaskError{Status: "", Message: "no record cached (forever-reservation owner handle)"}
	}
	if r.record.Status != StatusCompleted {
		return v, &TaskError{Status: r.record.Status, Message: r.record.Error}
	}
	if len(r.record.Result) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(r.record.Result, &v); err != nil {
		return v, fmt.Errorf("decode result: %w", err)
	}
	return v, nil
}
