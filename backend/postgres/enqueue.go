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

// EnqueueTx is Enqueue inside the caller's transaction, a pgx.Tx (from
// pool.Begin, conn.Begin or a savepoint of either) on this backend's
// database; a nil tx returns an error matching queuestype.ErrConfig. The
// records, any forever reservations and the wakeup NOTIFY become visible
// only when the caller commits; a rollback leaves nothing. The keyed path
// runs inside a savepoint of tx so a lost race can be retried without
// aborting the caller's transaction. Keyed items need READ COMMITTED (the
// default).
var _ driver.TxEnqueuer[pgx.Tx] = (*Backend)(nil)

func (b *Backend) EnqueueTx(ctx context.Context, tx pgx.Tx, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if tx == nil {
		return nil, &queuestype.ConfigError{Field: "tx", Problem: "is nil"}
	}
	return b.enqueue(ctx, tx, items)
}

func (b *Backend) enqueue(ctx context.Context, tx pgx.Tx, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []driver.EnqueueOutcome{}, nil
	}
	ps := make([]driver.EnqueueParams, len(items))
	metas := make([][]byte, len(items))
	keyed := false
	for i := range items {
		p := items[i]
		if p.Priority < queuestype.MinPriority || p.Priority > queuestype.MaxPriority {
			return nil, &queuestype.ConfigError{
				Field:   fmt.Sprintf("items[%d].Priority", i),
				Problem: fmt.Sprintf("%d is outside %d..%d", p.Priority, queuestype.MinPriority, queuestype.MaxPriority),
			}
		}
		if p.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("postgres: generate task id: %w", err)
			}
			p.ID = id
		}
		if p.Queue == "" {
			p.Queue = queuestype.DefaultQueue
		}
		if p.ExecutionBackend == "" {
			p.ExecutionBackend = "local"
		}
		p.ScheduledAt, p.ExpiresAt = utc(p.ScheduledAt), utc(p.ExpiresAt)
		m, err := metadataJSON(p.Metadata)
		if err != nil {
			return nil, fmt.Errorf("postgres: enqueue item %d: encode metadata: %w", i, err)
		}
		metas[i] = m
		if p.Key != "" {
			keyed = true
		}
		ps[i] = p
	}
	if !keyed {
		return b.enqueuePlain(ctx, tx, ps, metas)
	}
	var lastErr error
	for attempt := 0; attempt < maxKeyedAttempts; attempt++ {
		var sub pgx.Tx
		var err error
		if tx != nil {
			sub, err = tx.Begin(ctx) // a savepoint
		} else {
			sub, err = b.pool.Begin(ctx)
		}
		if err != nil {
			return nil, b.wrap("enqueue", err)
		}
		outs, retry, err := b.enqueueKeyed(ctx, sub, ps, metas)
		if err != nil || retry {
			_ = sub.Rollback(context.WithoutCancel(ctx))
			if err != nil && !retryable(err) {
				return nil, b.wrap("enqueue", err)
			}
			lastErr = err
			continue
		}
		if err := sub.Commit(ctx); err != nil {
			if retryable(err) {
				lastErr = err
				continue
			}
			return nil, b.wrap("enqueue", err)
		}
		return outs, nil
	}
	if lastErr == nil {
		lastErr = errors.New("identity keys kept changing under concurrent writers")
	}
	return nil, b.wrap("enqueue", lastErr)
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

// keyPlan is the decision for one keyed-path item.
type keyPlan struct {
	insert   bool
	reserve  bool
	existing *queuestype.Record
	staged   int // earlier item whose insert holds the key, else -1
	owner    *queuestype.Reservation
	ownerOf  int // earlier forever item that reserves the key, else -1
	err      error
}

// enqueueKeyed runs the keyed path inside tx. retry reports a lost race.
func (b *Backend) enqueueKeyed(ctx context.Context, tx pgx.Tx, ps []driver.EnqueueParams, metas [][]byte) ([]driver.EnqueueOutcome, bool, error) {
	var keys, foreverKeys []string
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
	batch := &pgx.Batch{}
	batch.Queue(b.q.releaseKeys, keys)
	batch.Queue(b.q.holders, keys)
	if len(foreverKeys) > 0 {
		batch.Queue(b.q.reservations, foreverKeys)
	}
	br := tx.SendBatch(ctx, batch)
	_, err := br.Exec()
	var holders []*queuestype.Record
	if err == nil {
		holders, err = collectRecords(br.Query())
	}
	reserved := map[string]*queuestype.Reservation{}
	if err == nil && len(foreverKeys) > 0 {
		var rows pgx.Rows
		rows, err = br.Query()
		if err == nil {
			for rows.Next() {
				var r queuestype.Reservation
				if err = rows.Scan(&r.Key, &r.TaskID, &r.TaskName, &r.CreatedAt); err != nil {
					break
				}
				r.CreatedAt = r.CreatedAt.UTC()
				reserved[r.Key] = &r
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, err
	}
	holder := make(map[string]*queuestype.Record, len(holders))
	for _, h := range holders {
		holder[h.Key] = h
	}

	plans := make([]keyPlan, len(ps))
	stagedKeys := map[string]int{}
	stagedRes := map[string]int{}
	var rows insertRows
	for i := range ps {
		p := &ps[i]
		pl := &plans[i]
		pl.staged, pl.ownerOf = -1, -1
		key := p.Key
		if key != "" {
			if p.Forever {
				if j, ok := stagedRes[key]; ok {
					pl.ownerOf = j
					continue
				}
				if res := reserved[key]; res != nil {
					pl.owner = res
					continue
				}
				if _, ok := stagedKeys[key]; ok {
					pl.err = fmt.Errorf("%w: key %q", queuestype.ErrIdentityConflict, key)
					continue
				}
				if h := holder[key]; h != nil {
					if isForeverRecord(h) {
						pl.existing = h
					} else {
						pl.err = fmt.Errorf("%w: key %q is held by task %s", queuestype.ErrIdentityConflict, key, h.ID)
					}
					continue
				}
				pl.reserve = true
			} else {
				if j, ok := stagedKeys[key]; ok {
					pl.staged = j
					continue
				}
				if h := holder[key]; h != nil {
					pl.existing = h
					continue
				}
			}
			stagedKeys[key] = i
			if pl.reserve {
				stagedRes[key] = i
			}
		}
		pl.insert = true
		rows.add(p, pl.reserve)
		rows.metas = append(rows.metas, metas[i])
	}

	inserted := map[uuid.UUID]*queuestype.Record{}
	wake := false
	if len(rows.ids) > 0 {
		args := append(rows.argsList(), rows.resKeys, rows.resIDs, rows.resNames)
		recs, err := collectRecords(tx.Query(ctx, b.q.insertKeyed, args...))
		if err != nil {
			return nil, false, err
		}
		for _, r := range recs {
			inserted[r.ID] = r
			if r.Status == queuestype.StatusPending {
				wake = true
			}
		}
		if len(recs) != len(rows.ids) {
			return nil, true, nil // a concurrent writer took a key: retry
		}
	}
	if wake && b.hints {
		if _, err := tx.Exec(ctx, b.q.notify, b.chTasks, wakePayload); err != nil {
			return nil, false, err
		}
	}
	outs := make([]driver.EnqueueOutcome, len(ps))
	for i := range ps {
		pl := &plans[i]
		out := &outs[i]
		switch {
		case pl.insert:
			out.Record = inserted[ps[i].ID]
		case pl.staged >= 0:
			out.Record = inserted[ps[pl.staged].ID].Clone()
			out.Existing = true
		case pl.existing != nil:
			out.Record = pl.existing.Clone()
			out.Existing = true
		case pl.ownerOf >= 0:
			r := inserted[ps[pl.ownerOf].ID]
			out.Owner = &queuestype.Reservation{Key: r.Key, TaskID: r.ID, TaskName: r.TaskName, CreatedAt: r.CreatedAt}
			out.Existing = true
		case pl.owner != nil:
			o := *pl.owner
			out.Owner = &o
			out.Existing = true
		default:
			out.Err = pl.err
		}
	}
	return outs, false, nil
}

// isForeverRecord reports whether r holds a forever identity (its policy
// says the key outlives it).
func isForeverRecord(r *queuestype.Record) bool { return r.Policy.Forever() }
