package queues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/queuesgo/queues/driver"
)

// EnqueueTx enqueues args for task inside tx, a transaction the application
// opened on the store's own database, so that the record exists only if tx
// commits: the application's rows and the task records commit or roll back
// together. Tx is the transaction type the store takes:
//
//   - PostgreSQL (backend/postgres): pgx.Tx, the interface, as returned by
//     pgxpool.Pool.Begin or pgx.Conn.Begin. The wakeup NOTIFY is sent with
//     the commit.
//   - SQLite (backend/sqlite): *sql.Tx on the same file, opened through
//     database/sql with the modernc.org/sqlite driver ("sqlite"), begun
//     IMMEDIATE and with a busy_timeout; see the package doc of
//     backend/sqlite for how it shares the file with the store's writer.
//     Workers learn of the commit from the store's change poll.
//
// Tx is inferred from the static type of tx; a value of a concrete type
// that implements the store's interface type needs an explicit type
// argument (queues.EnqueueTx[pgx.Tx](…)). A store that does not take Tx
// (a *sql.Tx on PostgreSQL, any transaction on the memory or Redis stores)
// returns an error matching ErrUnsupported that names both types, and
// writes nothing. A nil tx is an error matching ErrConfig. The immediate
// execution backend cannot be combined with a transaction.
//
// Keys, forever reservations and validation work as in Task.Enqueue, read
// and written inside tx. Unlike Task.Enqueue, a record already expired at
// enqueue is not expired on the spot: the expiry sweep takes it after commit.
func EnqueueTx[Tx, A, R any](ctx context.Context, s *Service, tx Tx, task *Task[A, R], args A, opts ...EnqueueOptions) (*TaskResult[R], error) {
	p, err := s.prepare(ctx, task.entry, args, nil, task.options(opts), false)
	if err != nil {
		return nil, err
	}
	res, err := insertTx(ctx, s, tx, []prepared{p})
	if err != nil {
		return nil, err
	}
	return retype[R](res[0]), nil
}

// EnqueueManyTx is Service.EnqueueMany inside tx: every request is
// validated first (an invalid one returns *BatchError and writes nothing),
// then all records are written in tx and exist only if it commits. Tx and
// its errors are as for EnqueueTx.
func EnqueueManyTx[Tx any](ctx context.Context, s *Service, tx Tx, reqs []EnqueueRequest) ([]*TaskResult[json.RawMessage], error) {
	ps, err := s.prepareMany(ctx, reqs)
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	return insertTx(ctx, s, tx, ps)
}

// txEnqueuer returns s's store as a driver.TxEnqueuer[Tx], or an error
// matching ErrUnsupported naming Tx and the transaction type the store takes.
func txEnqueuer[Tx any](s *Service, tx Tx) (driver.TxEnqueuer[Tx], error) {
	txe, ok := s.backend.(driver.TxEnqueuer[Tx])
	if !ok {
		given := reflect.TypeFor[Tx]().String()
		if takes := txTypeOf(s.backend); takes != "" {
			return nil, fmt.Errorf("%w: the %s backend enqueues inside a %s, not a %s", ErrUnsupported, s.backend.Name(), takes, given)
		}
		return nil, fmt.Errorf("%w: the %s backend cannot enqueue inside a transaction (got a %s)", ErrUnsupported, s.backend.Name(), given)
	}
	if isNil(tx) {
		return nil, configErr("tx", "is nil")
	}
	return txe, nil
}

// txTypeOf names the transaction type of b's EnqueueTx method, or "" when it has none.
func txTypeOf(b driver.Backend) string {
	m := reflect.ValueOf(b).MethodByName("EnqueueTx")
	if !m.IsValid() || m.Type().NumIn() != 3 {
		return ""
	}
	return m.Type().In(1).String()
}

// isNil reports a nil interface, pointer, map, slice, channel or function.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func:
		return rv.IsNil()
	}
	return false
}

// insertTx writes ps through the store's EnqueueTx inside tx.
func insertTx[Tx any](ctx context.Context, s *Service, tx Tx, ps []prepared) ([]*TaskResult[json.RawMessage], error) {
	txe, err := txEnqueuer(s, tx)
	if err != nil {
		return nil, err
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
	// No expiry at enqueue: the records are not visible before the commit,
	// so the expiry sweep takes an already-expired one afterwards.
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
