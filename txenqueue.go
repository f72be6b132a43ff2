package queues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/queuesgo/queues/driver"
)

// EnqueueTx enqueues args inside tx, a transaction of the backend's own kind
// (a pgx.Tx for PostgreSQL). The record exists only if tx commits. The
// immediate execution backend cannot be combined with a transaction.
func (t *Task[A, R]) EnqueueTx(ctx context.Context, s *Service, tx any, args A, opts ...EnqueueOptions) (*TaskResult[R], error) {
	p, err := s.prepare(ctx, t.entry, args, nil, t.options(opts), false)
	if err != nil {
		return nil, err
	}
	res, err := s.insertTx(ctx, tx, []prepared{p})
	if err != nil {
		return nil, err
	}
	return retype[R](res[0]), nil
}

// EnqueueManyTx is EnqueueMany inside the caller's transaction tx.
func (s *Service) EnqueueManyTx(ctx context.Context, tx any, reqs []EnqueueRequest) ([]*TaskResult[json.RawMessage], error) {
	ps, err := s.prepareMany(ctx, reqs)
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	return s.insertTx(ctx, tx, ps)
}

func (s *Service) insertTx(ctx context.Context, tx any, ps []prepared) ([]*TaskResult[json.RawMessage], error) {
	txe, ok := s.backend.(driver.TxEnqueuer)
	if !ok {
		return nil, fmt.Errorf("%w: the %s backend cannot enqueue inside a transaction", ErrUnsupported, s.backend.Name())
	}
	if tx == nil {
		return nil, configErr("tx", "is nil")
	}
	params := make([]driver.EnqueueParams, len(ps))
	for i, p := range ps {
		if p.params.ExecutionBackend == ExecutionImmediate {
			return nil, configErr("ExecutionBackend", "the immediate execution backend cannot run inside a transaction")
		}
		params[i] = p.params
	}
	outs, err := txe.EnqueueTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	if len(outs) != len(ps) {
		return nil, fmt.Errorf("enqueue: backend returned %d outcomes for %d items", len(outs), len(ps))
	}
	// Step 11 (expiry at enqueue) is skipped: the sweep catches expired records after commit.
	results, itemErrs := s.resultsFrom(outs)
	if len(itemErrs) > 0 {
		if len(ps) == 1 {
			return nil, errors.Unwrap(itemErrs[0])
		}
		return results, errors.Join(itemErrs...)
	}
	return results, nil
}

// resultsFrom maps backend outcomes to handles, collecting per-item errors as *BatchError.
func (s *Service) resultsFrom(outs []driver.EnqueueOutcome) ([]*TaskResult[json.RawMessage], []error) {
	results := make([]*TaskResult[json.RawMessage], len(outs))
	var itemErrs []error
	for i, out := range outs {
		switch {
		case out.Err != nil:
			itemErrs = append(itemErrs, &BatchError{Index: i, Err: out.Err})
		case out.Owner != nil:
			results[i] = &TaskResult[json.RawMessage]{ID: out.Owner.TaskID, TaskName: out.Owner.TaskName, Deduplicated: true, svc: s}
		default:
			results[i] = &TaskResult[json.RawMessage]{ID: out.Record.ID, TaskName: out.Record.TaskName, Deduplicated: out.Existing, svc: s, record: out.Record}
		}
	}
	return results, itemErrs
}
