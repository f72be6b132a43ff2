package sqlite

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

var _ driver.TxEnqueuer[*sql.Tx] = (*Backend)(nil)

// EnqueueTx is Enqueue inside the caller's transaction tx, a *sql.Tx on
// this backend's file opened through database/sql with the
// modernc.org/sqlite driver (driver name "sqlite"). It runs the same
// statements as Enqueue — validation, key takeover from terminal records,
// deduplication against active holders and forever reservations, all read
// inside tx — inside a savepoint of tx, so a failing call (an ID that
// already exists) undoes its own writes and leaves the caller's
// transaction usable. The records exist only if tx commits; a rollback
// leaves nothing. A nil tx returns an error matching queuestype.ErrConfig.
// A ctx that ends while a statement runs interrupts it; SQLite rolls back
// the whole transaction when it interrupts a write, so tx then fails too.
//
// The backend sends no wakeup hint: the records are invisible until the
// commit, which happens on another connection. The writer's change poll
// (PRAGMA data_version, every Options.PollInterval while a worker
// subscribes) sees that commit like any other process's and wakes the
// workers; with PollInterval negative they find the records at their
// durable poll.
//
// tx should be begun IMMEDIATE (the DSN option _txlock=immediate) on a
// connection with a busy_timeout (_pragma=busy_timeout(5000)): see the
// package doc, "Transactional enqueue".
func (b *Backend) EnqueueTx(ctx context.Context, tx *sql.Tx, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if tx == nil {
		return nil, &queuestype.ConfigError{Field: "tx", Problem: "is nil"}
	}
	if len(items) == 0 {
		return []driver.EnqueueOutcome{}, nil
	}
	cands, err := newCandidates(items, b.now())
	if err != nil {
		return nil, err
	}
	c := callerTx{ctx: ctx, tx: tx}
	if _, err := c.exec("SAVEPOINT queues_enqueue_tx"); err != nil {
		return nil, txErr(err)
	}
	plans := make([]enqueuePlan, len(cands))
	now := b.now()
	err = enqueueTx(c, cands, plans, now)
	// The savepoint ends even when ctx ended: one left open would commit
	// this call's writes with tx.
	u := callerTx{ctx: context.WithoutCancel(ctx), tx: tx}
	if err == nil {
		_, err = u.exec("RELEASE queues_enqueue_tx")
	}
	if err != nil {
		_, rbErr := u.exec("ROLLBACK TO queues_enqueue_tx")
		_, relErr := u.exec("RELEASE queues_enqueue_tx")
		return nil, txErr(errors.Join(err, rbErr, relErr))
	}
	return enqueueOutcomes(cands, plans, now)
}

// txErr wraps an error of a statement run in the caller's transaction,
// explaining SQLITE_BUSY: the write lock was not free within busy_timeout,
// or (SQLITE_BUSY_SNAPSHOT) a deferred transaction read before another
// connection committed and can no longer write.
func txErr(err error) error {
	if isBusy(err) {
		return fmt.Errorf("sqlite: enqueue in the caller's transaction: %w (begin it IMMEDIATE, e.g. with _txlock=immediate in the DSN, on a connection with a busy_timeout)", err)
	}
	return fmt.Errorf("sqlite: enqueue in the caller's transaction: %w", err)
}

// callerTx runs enqueueTx's statements in a caller's *sql.Tx.
type callerTx struct {
	ctx context.Context
	tx  *sql.Tx
}

func (c callerTx) exec(query string, args ...any) (int64, error) {
	res, err := c.tx.ExecContext(c.ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (c callerTx) record(query string, args ...any) (rawRec, bool, error) {
	rows, err := c.tx.QueryContext(c.ctx, query, args...)
	if err != nil {
		return rawRec{}, false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return rawRec{}, false, rows.Err()
	}
	cols, err := rows.Columns()
	if err != nil {
		return rawRec{}, false, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return rawRec{}, false, err
	}
	dv := make([]sqldriver.Value, len(vals))
	for i, v := range vals {
		dv[i] = v
	}
	var r rawRec
	if err := r.fromValues(dv); err != nil {
		return rawRec{}, false, err
	}
	return r, true, rows.Close()
}

func (c callerTx) queryRow(query string, args []any, dest ...any) (bool, error) {
	err := c.tx.QueryRowContext(c.ctx, query, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
