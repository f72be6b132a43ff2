package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// maxKeyedAttempts bounds the retries of a keyed enqueue that lost a race
// with a concurrent writer of the same key.
const maxKeyedAttempts = 8

// insertRows holds the column arrays of one unnest insert.
type insertRows struct {
	ids     [][16]byte
	names   []string
	args    [][]byte
	queues  []string
	ebs     []string
	eps     []pgtype.Text
	prios   []int32
	maxr    []int32
	sched   []pgtype.Timestamptz
	exp     []pgtype.Timestamptz
	keys    []pgtype.Text
	metas   [][]byte
	forever []bool
	pols    [][]byte
	// reservation arrays (keyed path)
	resKeys  []string
	resIDs   [][16]byte
	resNames []string
}

func (r *insertRows) add(p *driver.EnqueueParams, forever bool) {
	r.ids = append(r.ids, [16]byte(p.ID))
	r.names = append(r.names, p.TaskName)
	if p.Args == nil {
		r.args = append(r.args, nil)
	} else {
		r.args = append(r.args, []byte(p.Args))
	}
	r.queues = append(r.queues, p.Queue)
	r.ebs = append(r.ebs, p.ExecutionBackend)
	r.eps = append(r.eps, text(p.ExecutionProfile))
	r.prios = append(r.prios, int32(p.Priority))
	r.maxr = append(r.maxr, int32(p.MaxRetries))
	r.sched = append(r.sched, ts(p.ScheduledAt))
	r.exp = append(r.exp, ts(p.ExpiresAt))
	r.keys = append(r.keys, text(p.Key))
	r.forever = append(r.forever, forever)
	r.pols = append(r.pols, policyJSON(p.Policy))
	if forever {
		r.resKeys = append(r.resKeys, p.Key)
		r.resIDs = append(r.resIDs, [16]byte(p.ID))
		r.resNames = append(r.resNames, p.TaskName)
	}
}

func (r *insertRows) argsList() []any {
	return []any{r.ids, r.names, r.args, r.queues, r.ebs, r.eps, r.prios, r.maxr, r.sched, r.exp, r.keys, r.metas, r.forever, r.pols}
}

// Enqueue inserts the items atomically and returns one outcome per item in
// input order.
//
// Items without identity keys go out as one INSERT … SELECT FROM unnest(…)
// statement pipelined with the wakeup pg_notify: one round trip, one
// implicit transaction, one coalesced hint when any new record is due.
//
// With keys, one transaction releases keys held by terminal records, reads
// the active holders and forever reservations, then inserts the
// reservations and records in one statement (ON CONFLICT DO NOTHING on both)
// and, when a concurrent writer won a key in between, rolls back and retries.
// A keyed item whose key is held by an active record returns it (Existing);
// a forever item whose key is reserved returns the owner; a forever item
// whose key is held by an active non-forever record gets a per-item error
// matching queuestype.ErrIdentityConflict; items repeating a key of an earlier
// item of the same call resolve to that item. A priority outside
// queuestype.MinPriority..queuestype.MaxPriority fails the call with an error
// matching queuestype.ErrConfig; an ID that already exists fails the call; either
// writes nothing.
func (b *Backend) Enqueue(ctx context.Context, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	return b.enqueue(ctx, nil, items)
}

// EnqueueTx is Enqueue inside the caller's transaction, which must be a
// pgx.Tx (for example from pool.Begin) on this backend's database; anything
// else returns an error matching queuestype.ErrConfig. The records, any forever
// reservations and the wakeup NOTIFY become visible only when the caller
// commits; a rollback leaves nothing. The keyed path runs inside a
// savepoint of tx so a lost race can be retried without aborting the
// caller's transaction. Keyed items need READ COMMITTED (the default).
func (b *Backend) EnqueueTx(ctx context.Context, tx any, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	ptx, ok := tx.(pgx.Tx)
	if !ok || ptx == nil {
		return nil, &queuestype.ConfigError{Field: "tx", Problem: fmt.Sprintf("the postgres backend needs a pgx.Tx, got %T", tx)}
	}
	return b.enqueue(ctx, ptx, items)
}

func (b *Backend) enqueue(ctx context.Context, tx pgx.Tx, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []driver.EnqueueOutcome{}, nil
	}
	ps, metas, keyed, err := prepareItems(items)
	if err != nil {
		return nil, err
	}
	if !keyed {
		return b.enqueuePlain(ctx, tx, ps, metas)
	}
	var lastErr error
	for attempt := 0; attempt < maxKeyedAttempts; attempt++ {
		outs, again, err := b.keyedAttempt(ctx, tx, ps, metas)
		if !again {
			if err != nil {
				return nil, b.wrap("enqueue", err)
			}
			return outs, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("identity keys kept changing under concurrent writers")
	}
	return nil, b.wrap("enqueue", lastErr)
}

// prepareItems validates the items and applies the defaults
// (driver.PrepareEnqueue), encodes their metadata, and reports whether any
// item is keyed.
func prepareItems(items []driver.EnqueueParams) (ps []driver.EnqueueParams, metas [][]byte, keyed bool, err error) {
	ps = make([]driver.EnqueueParams, len(items))
	metas = make([][]byte, len(items))
	for i := range items {
		if ps[i], err = driver.PrepareEnqueue(i, items[i]); err != nil {
			return nil, nil, false, err
		}
		if metas[i], err = metadataJSON(ps[i].Metadata); err != nil {
			return nil, nil, false, fmt.Errorf("postgres: enqueue item %d: encode metadata: %w", i, err)
		}
		keyed = keyed || ps[i].Key != ""
	}
	return ps, metas, keyed, nil
}

// keyedAttempt runs the keyed path once, in a transaction of its own (a
// savepoint of tx when tx is set). again reports that the attempt changed
// nothing and may be retried: it lost a race for a key (err nil) or failed
// with a deadlock or serialization failure (err). Otherwise err is final.
func (b *Backend) keyedAttempt(ctx context.Context, tx pgx.Tx, ps []driver.EnqueueParams, metas [][]byte) (outs []driver.EnqueueOutcome, again bool, err error) {
	var sub pgx.Tx
	if tx != nil {
		sub, err = tx.Begin(ctx) // a savepoint
	} else {
		sub, err = b.pool.Begin(ctx)
	}
	if err != nil {
		return nil, false, err
	}
	outs, lost, err := b.enqueueKeyed(ctx, sub, ps, metas)
	if err != nil || lost {
		_ = sub.Rollback(context.WithoutCancel(ctx))
		return nil, err == nil || retryable(err), err
	}
	if err := sub.Commit(ctx); err != nil {
		return nil, retryable(err), err
	}
	return outs, false, nil
}

// retryable reports deadlocks and serialization failures.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// enqueuePlain inserts unkeyed items in one statement.
func (b *Backend) enqueuePlain(ctx context.Context, tx pgx.Tx, ps []driver.EnqueueParams, metas [][]byte) ([]driver.EnqueueOutcome, error) {
	var rows insertRows
	rows.metas = metas
	wake := false
	now := time.Now()
	for i := range ps {
		rows.add(&ps[i], false)
		if ps[i].ScheduledAt.IsZero() || !ps[i].ScheduledAt.After(now) {
			wake = true
		}
	}
	var run txRunner = b.pool
	if tx != nil {
		run = tx
	}
	batch := &pgx.Batch{}
	batch.Queue(b.q.insert, rows.argsList()...)
	if wake && b.hints {
		batch.Queue(b.q.notify, b.chTasks, wakePayload)
	}
	br := run.SendBatch(ctx, batch)
	recs, err := collectRecords(br.Query())
	if err == nil && wake && b.hints {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, b.wrap("enqueue", err)
	}
	byID := make(map[uuid.UUID]*queuestype.Record, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	outs := make([]driver.EnqueueOutcome, len(ps))
	for i := range ps {
		r := byID[ps[i].ID]
		if r == nil {
			return nil, fmt.Errorf("postgres: enqueue: record %s was not returned", ps[i].ID)
		}
		outs[i].Record = r
	}
	return outs, nil
}

// keyPlan is the decision for one keyed-path item. Its Holder is the active
// record holding the key.
type keyPlan = driver.KeyDecision[*queuestype.Record]

// enqueueKeyed runs the keyed path inside tx. lost reports a lost race: a
// concurrent writer took a key between the read and the insert.
func (b *Backend) enqueueKeyed(ctx context.Context, tx pgx.Tx, ps []driver.EnqueueParams, metas [][]byte) (outs []driver.EnqueueOutcome, lost bool, err error) {
	holder, reserved, err := b.readKeys(ctx, tx, ps)
	if err != nil {
		return nil, false, err
	}
	folder := driver.NewKeyFolder(
		func(key string) (*queuestype.Reservation, error) { return reserved[key], nil },
		func(key string) (driver.KeyHolder[*queuestype.Record], bool, error) {
			h := holder[key]
			if h == nil {
				return driver.KeyHolder[*queuestype.Record]{}, false, nil
			}
			return driver.KeyHolder[*queuestype.Record]{Rec: h, ID: h.ID, Active: true, Forever: isForeverRecord(h)}, true, nil
		})
	plans := make([]keyPlan, len(ps))
	var rows insertRows
	for i := range ps {
		plans[i], _ = folder.Decide(i, ps[i].Key, ps[i].Forever) // the lookups read maps
		if plans[i].Action == driver.KeyInsert {
			rows.add(&ps[i], plans[i].Reserve)
			rows.metas = append(rows.metas, metas[i])
		}
	}
	inserted, lost, err := b.insertKeyed(ctx, tx, &rows)
	if err != nil || lost {
		return nil, lost, err
	}
	outs, err = driver.KeyOutcomes(plans,
		func(j int) *queuestype.Record { return inserted[ps[j].ID] },
		func(h *queuestype.Record) (*queuestype.Record, error) { return h.Clone(), nil })
	return outs, false, err
}

// readKeys releases the keys of the items that terminal records hold, then
// reads the active records holding them and the forever reservations of the
// forever items' keys, all in one round trip.
func (b *Backend) readKeys(ctx context.Context, tx pgx.Tx, ps []driver.EnqueueParams) (
	holder map[string]*queuestype.Record, reserved map[string]*queuestype.Reservation, err error) {
	keys, foreverKeys := itemKeys(ps)
	batch := &pgx.Batch{}
	batch.Queue(b.q.releaseKeys, keys)
	batch.Queue(b.q.holders, keys)
	if len(foreverKeys) > 0 {
		batch.Queue(b.q.reservations, foreverKeys)
	}
	br := tx.SendBatch(ctx, batch)
	_, err = br.Exec()
	var holders []*queuestype.Record
	if err == nil {
		holders, err = collectRecords(br.Query())
	}
	reserved = map[string]*queuestype.Reservation{}
	if err == nil && len(foreverKeys) > 0 {
		err = scanReservations(br, reserved)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	holder = make(map[string]*queuestype.Record, len(holders))
	for _, h := range holders {
		holder[h.Key] = h
	}
	return holder, reserved, nil
}

// itemKeys lists the distinct keys of the items, and those of the forever items.
func itemKeys(ps []driver.EnqueueParams) (keys, foreverKeys []string) {
	seen := map[string]bool{}
	seenF := map[string]bool{}
	for i := range ps {
		k := ps[i].Key
		if k == "" {
			continue
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		if ps[i].Forever && !seenF[k] {
			seenF[k] = true
			foreverKeys = append(foreverKeys, k)
		}
	}
	return keys, foreverKeys
}

// scanReservations reads the next result of br, reservation rows, into into.
func scanReservations(br pgx.BatchResults, into map[string]*queuestype.Reservation) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	for rows.Next() {
		var r queuestype.Reservation
		if err = rows.Scan(&r.Key, &r.TaskID, &r.TaskName, &r.CreatedAt); err != nil {
			break
		}
		r.CreatedAt = r.CreatedAt.UTC()
		into[r.Key] = &r
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	return err
}

// insertKeyed inserts the planned records and reservations in one statement
// (ON CONFLICT DO NOTHING on both) and sends the wakeup hint when a new
// record is due. lost reports that a concurrent writer took a key: fewer
// records came back than were planned.
func (b *Backend) insertKeyed(ctx context.Context, tx pgx.Tx, rows *insertRows) (inserted map[uuid.UUID]*queuestype.Record, lost bool, err error) {
	inserted = map[uuid.UUID]*queuestype.Record{}
	if len(rows.ids) == 0 {
		return inserted, false, nil
	}
	wake := false
	args := append(rows.argsList(), rows.resKeys, rows.resIDs, rows.resNames)
	recs, err := collectRecords(tx.Query(ctx, b.q.insertKeyed, args...))
	if err != nil {
		return nil, false, err
	}
	for _, r := range recs {
		inserted[r.ID] = r
		wake = wake || r.Status == queuestype.StatusPending
	}
	if len(recs) != len(rows.ids) {
		return nil, true, nil // a concurrent writer took a key: retry
	}
	if wake && b.hints {
		if _, err := tx.Exec(ctx, b.q.notify, b.chTasks, wakePayload); err != nil {
			return nil, false, err
		}
	}
	return inserted, false, nil
}

// isForeverRecord reports whether r holds a forever identity (its policy
// says the key outlives it).
func isForeverRecord(r *queuestype.Record) bool { return r.Policy.Forever() }
