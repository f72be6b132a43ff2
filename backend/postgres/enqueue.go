package postgres

import (
	"context"
	"encoding/json"
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
	tags    [][]byte // JSON arrays, nil for none
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
	r.tags = append(r.tags, tagsJSON(p.Tags))
}

// tagsJSON encodes tags for the insert, which expands the JSON array into
// the text[] column; nil for none.
func tagsJSON(tags []string) []byte {
	if len(tags) == 0 {
		return nil
	}
	b, _ := json.Marshal(tags) // strings always encode
	return b
}

func (r *insertRows) argsList() []any {
	return []any{r.ids, r.names, r.args, r.queues, r.ebs, r.eps, r.prios, r.maxr, r.sched, r.exp, r.keys, r.metas, r.forever, r.pols}
}

// Enqueue inserts the items atomically and returns one outcome per item in
// input order, in one round trip (once the statements are prepared on the
// connection).
//
// Items without identity keys go out as one INSERT … SELECT FROM unnest(…)
// statement pipelined with the wakeup pg_notify: one implicit transaction,
// one coalesced hint when any new record is due.
//
// With keys, one pipeline (one implicit transaction) releases the keys of
// the records that no longer hold them under the items' key rules
// (driver.KeyRule: by default, terminal records), then one statement (enqueueKeyedSQL) reads the
// active holders and forever reservations, inserts the records and
// reservations the reads leave free, returns what it read and inserted,
// and sends the hint. A concurrent writer that took a key in between makes
// the statement fail with a unique violation, which rolls the whole call
// back; it is retried (another round trip), up to 8 attempts.
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

var _ driver.TxEnqueuer[pgx.Tx] = (*Backend)(nil)

// EnqueueTx is Enqueue inside the caller's transaction, a pgx.Tx (from
// pool.Begin, conn.Begin or a savepoint of either) on this backend's
// database; a nil tx returns an error matching queuestype.ErrConfig. The
// records, any forever reservations and the wakeup NOTIFY become visible
// only when the caller commits; a rollback leaves nothing. The call is one
// round trip, as Enqueue's: its statements are pipelined between a
// SAVEPOINT and its RELEASE, and a failure (an ID that already exists, a
// lost race for a key, which is retried) rolls back to the savepoint, so
// the caller's transaction stays usable. Keyed items need READ COMMITTED
// (the default): at a stricter isolation level a lost race repeats until
// the attempts run out.
func (b *Backend) EnqueueTx(ctx context.Context, tx pgx.Tx, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if tx == nil {
		return nil, &queuestype.ConfigError{Field: "tx", Problem: "is nil"}
	}
	return b.enqueue(ctx, tx, items)
}

func (b *Backend) enqueue(ctx context.Context, tx pgx.Tx, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if empty, done, err := driver.NoItems[driver.EnqueueOutcome](ctx, len(items)); done {
		return empty, err
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
		outs, err := b.enqueueKeyed(ctx, tx, ps, metas)
		if err == nil {
			return outs, nil
		}
		if !b.lostRace(err) && !retryable(err) {
			return nil, b.wrap("enqueue", err)
		}
		lastErr = err
	}
	return nil, b.wrap("enqueue", fmt.Errorf("identity keys kept changing under concurrent writers (%d attempts): %w", maxKeyedAttempts, lastErr))
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
	notify := wake && b.hints
	var recs []*queuestype.Record
	err := b.pipeline(ctx, tx, func(batch *pgx.Batch) {
		batch.Queue(b.q.insert, append(rows.argsList(), rows.tags)...)
		if notify {
			batch.Queue(b.q.notify, b.chTasks, wakePayload)
		}
	}, func(br pgx.BatchResults) error {
		var err error
		recs, err = collectRecords(br.Query())
		if err == nil && notify {
			_, err = br.Exec()
		}
		return err
	})
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

// enqueueKeyed runs the keyed path in one round trip (keyedRoundTrip) and
// resolves every item from what it read, as its statement decided the
// inserts: driver.KeyFolder decides from the same holders and reservations.
func (b *Backend) enqueueKeyed(ctx context.Context, tx pgx.Tx, ps []driver.EnqueueParams, metas [][]byte) ([]driver.EnqueueOutcome, error) {
	view, err := b.keyedRoundTrip(ctx, tx, ps, metas)
	if err != nil {
		return nil, err
	}
	folder := driver.NewKeyFolder(
		func(key string) (*queuestype.Reservation, error) { return view.reserved[key], nil },
		func(key string) (driver.KeyHolder[*queuestype.Record], bool, error) {
			h := view.holder[key]
			if h == nil {
				return driver.KeyHolder[*queuestype.Record]{}, false, nil
			}
			return driver.KeyHolder[*queuestype.Record]{Rec: h, ID: h.ID, Status: h.Status, CreatedAt: h.CreatedAt, Forever: isForeverRecord(h)}, true, nil
		})
	plans := make([]keyPlan, len(ps))
	planned, found := 0, 0
	for i := range ps {
		plans[i], _ = folder.DecideRule(i, ps[i].Key, ps[i].Forever, driver.RuleOf(&ps[i]), view.now) // the lookups read maps
		if plans[i].TakeOver {
			// releaseKeys already cleared every key its holder gave up.
			return nil, fmt.Errorf("record holding key %q gives it up after the release", ps[i].Key)
		}
		if plans[i].Action == driver.KeyInsert {
			planned++
			if view.inserted[ps[i].ID] != nil {
				found++
			}
		}
	}
	if found != len(view.inserted) || found != planned {
		// The statement and the planner decide from the same reads: they
		// cannot disagree unless one of them is wrong.
		return nil, fmt.Errorf("postgres: enqueue: %d records inserted, %d planned", len(view.inserted), found)
	}
	return driver.KeyOutcomes(plans,
		func(j int) *queuestype.Record { return view.inserted[ps[j].ID] },
		func(h *queuestype.Record) (*queuestype.Record, error) { return h.Clone(), nil })
}

// isForeverRecord reports whether r holds a forever identity (its policy
// says the key outlives it).
func isForeverRecord(r *queuestype.Record) bool { return r.Policy.Forever() }
