package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// releaseKeysSQL clears the key of every record that has one of the keys
// ($1) but no longer holds it under the rule of the call's first item with
// that key: its period in microseconds ($2, 0 = none) and the statuses in
// which a holder holds it ($3, comma-separated). It is driver.KeyRule.Holds
// in SQL, at the transaction's now(), the time the keyed statement stamps
// and returns to the planner; the planner applies Holds to the holders left
// and fails the call if the two ever disagree.
const releaseKeysSQL = `UPDATE {t} t SET task_key = NULL
FROM unnest($1::text[], $2::bigint[], $3::text[]) AS k(task_key, period, states)
WHERE t.task_key = k.task_key
  AND NOT (t.status = ANY(string_to_array(k.states, ','))
       AND (k.period = 0 OR t.created_at + k.period * interval '1 microsecond' > now()))`

// enqueueKeyedSQL decides and writes a keyed Enqueue in one statement, run
// right after releaseKeys in the same transaction. Its items are the unnest
// arrays of insertRows ($1–$14, forever true only for keyed forever items,
// and $17, the tags); $15 and $16 are the wakeup channel and payload (a
// null channel sends none).
//
// It reads the records holding the items' keys (h) and the reservations of
// the forever items' keys (r) and inserts exactly what the keyed planner
// (enqueueKeyed) decides from those two reads: every unkeyed item, and per
// key the first item, in input order, that finds no holder and, if forever,
// no reservation — with its reservation when forever. Neither insert has
// ON CONFLICT: a key or reservation a concurrent writer took after the
// reads fails the statement with a unique violation, which rolls the
// transaction back and is retried (lostRace). It returns the inserted
// records (kind 'i'), the holders ('h') and the reservations ('r', as
// record columns: task_id, task_name, created_at and the key in task_key),
// the transaction's now() ('t', in created_at), the kind in a trailing
// column, and sends the wakeup NOTIFY when a new
// record is pending ('n', ignored).
const enqueueKeyedSQL = `WITH u AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::text[], $6::text[], $7::int[], $8::int[],
        $9::timestamptz[], $10::timestamptz[], $11::text[], $12::jsonb[], $13::bool[], $14::jsonb[], $17::jsonb[])
        WITH ORDINALITY AS u(id, task_name, args, queue, eb, ep, priority, max_retries, scheduled_at, expires_at, task_key, metadata, forever, policy, tags, ord)
), h AS (
    SELECT {cols} FROM {t} WHERE task_key IN (SELECT u.task_key FROM u WHERE u.task_key IS NOT NULL)
), r AS (
    SELECT identity_key, task_id, task_name, created_at FROM {res}
    WHERE identity_key IN (SELECT u.task_key FROM u WHERE u.forever)
), c AS (
    SELECT u.*, row_number() OVER (PARTITION BY u.task_key ORDER BY u.ord) AS rn FROM u
    WHERE u.task_key IS NULL
       OR (NOT EXISTS (SELECT 1 FROM h WHERE h.task_key = u.task_key)
           AND (NOT u.forever OR NOT EXISTS (SELECT 1 FROM r WHERE r.identity_key = u.task_key)))
), reserve AS (
    INSERT INTO {res} (identity_key, task_id, task_name, created_at)
    SELECT c.task_key, c.id, c.task_name, now() FROM c WHERE c.forever AND c.rn = 1
), ins AS (
    INSERT INTO {t} (id, task_name, args, queue, execution_backend, execution_profile, status, priority, max_retries,
        retry_count, scheduled_at, expires_at, created_at, queued_at, task_key, metadata, policy, tags)
    SELECT c.id, c.task_name, c.args, c.queue, c.eb, c.ep,
        CASE WHEN c.scheduled_at > now() THEN 'scheduled' ELSE 'pending' END,
        c.priority, c.max_retries, 0, c.scheduled_at, c.expires_at, now(), now(), c.task_key, c.metadata, c.policy,
        ARRAY(SELECT jsonb_array_elements_text(c.tags))
    FROM c WHERE c.task_key IS NULL OR c.rn = 1
    ORDER BY c.ord
    RETURNING {cols}
)
SELECT {cols}, 'i' FROM ins
UNION ALL
SELECT {cols}, 'h' FROM h
UNION ALL
SELECT r.task_id, r.task_name, NULL::jsonb, ''::text, ''::text, NULL::text, NULL::text, NULL::text, ''::text, 0, 0, 0,
    NULL::timestamptz, NULL::timestamptz, r.created_at, r.created_at, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz,
    NULL::jsonb, NULL::text, r.identity_key, '{}'::jsonb, '{}'::jsonb, 0, NULL::timestamptz, 0, NULL::jsonb, '{}'::text[], 'r' FROM r
UNION ALL
SELECT '00000000-0000-0000-0000-000000000000'::uuid, '', NULL::jsonb, '', '', NULL, NULL, NULL, '', 0, 0, 0,
    NULL, NULL, now(), now(), NULL, NULL, NULL, NULL, NULL, NULL, '{}'::jsonb, '{}'::jsonb, 0, NULL, 0, NULL, '{}'::text[], 't'
UNION ALL
SELECT '00000000-0000-0000-0000-000000000000'::uuid, '', NULL::jsonb, '', '', NULL, NULL, NULL, '', 0, 0, 0,
    NULL, NULL, now(), now(), NULL, NULL, NULL, NULL, NULL, NULL, '{}'::jsonb, '{}'::jsonb, 0, NULL, 0, NULL, '{}'::text[], 'n'
FROM (SELECT pg_notify($15::text, $16::text) FROM ins WHERE $15::text IS NOT NULL AND ins.status = 'pending' LIMIT 1) n`

// keyedView is what one keyed round trip read and wrote: the records
// holding the items' keys, the forever reservations, and the inserted
// records by ID.
type keyedView struct {
	holder   map[string]*queuestype.Record
	reserved map[string]*queuestype.Reservation
	inserted map[uuid.UUID]*queuestype.Record
	now      time.Time // the transaction's now()
}

// keyedRoundTrip runs a keyed Enqueue of the prepared items as one
// pipeline, one round trip: releaseKeys then enqueueKeyedSQL, in one
// transaction (see pipeline).
func (b *Backend) keyedRoundTrip(ctx context.Context, tx pgx.Tx, ps []driver.EnqueueParams, metas [][]byte) (*keyedView, error) {
	var rows insertRows
	rows.metas = metas
	// The rule of each key is its first item's (see driver.KeyFolder).
	var keys, states []string
	var periods []int64
	seen := map[string]bool{}
	for i := range ps {
		rows.add(&ps[i], ps[i].Forever && ps[i].Key != "")
		if k := ps[i].Key; k != "" && !seen[k] {
			seen[k] = true
			rule := driver.RuleOf(&ps[i])
			keys, periods, states = append(keys, k), append(periods, rule.PeriodMicros()), append(states, rule.StatesText())
		}
	}
	var channel *string
	if b.hints {
		channel = &b.chTasks
	}
	args := append(rows.argsList(), channel, wakePayload, rows.tags)

	var view *keyedView
	err := b.pipeline(ctx, tx, func(batch *pgx.Batch) {
		batch.Queue(b.q.releaseKeys, keys, periods, states)
		batch.Queue(b.q.enqueueKeyed, args...)
	}, func(br pgx.BatchResults) error {
		_, err := br.Exec()
		if err == nil {
			view, err = readKeyedView(br)
		}
		return err
	})
	return view, err
}

// pipeline sends the statements queue adds as one pipeline, one round
// trip, and reads their results with read. Without tx the pipeline is one
// implicit transaction. With tx it runs inside a savepoint of tx, SAVEPOINT
// and RELEASE in the same pipeline; when a statement fails, a second round
// trip rolls back to the savepoint, so the caller's transaction stays
// usable and holds nothing of the failed call.
func (b *Backend) pipeline(ctx context.Context, tx pgx.Tx, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	batch := &pgx.Batch{}
	var run txRunner = b.pool
	if tx != nil {
		run = tx
		batch.Queue(savepointSQL)
	}
	queue(batch)
	if tx != nil {
		batch.Queue(releaseSavepointSQL)
	}
	br := run.SendBatch(ctx, batch)
	var err error
	if tx != nil {
		_, err = br.Exec()
	}
	if err == nil {
		err = read(br)
	}
	if err == nil && tx != nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil && tx != nil {
		if _, rbErr := tx.Exec(context.WithoutCancel(ctx), rollbackSavepointSQL); rbErr != nil {
			return errors.Join(err, rbErr)
		}
	}
	return err
}

// The savepoint of an enqueue inside a caller's transaction.
const (
	savepointSQL         = `SAVEPOINT queues_enqueue`
	releaseSavepointSQL  = `RELEASE SAVEPOINT queues_enqueue`
	rollbackSavepointSQL = `ROLLBACK TO SAVEPOINT queues_enqueue; RELEASE SAVEPOINT queues_enqueue`
)

// readKeyedView reads the rows of enqueueKeyedSQL.
func readKeyedView(br pgx.BatchResults) (*keyedView, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	v := &keyedView{
		holder:   map[string]*queuestype.Record{},
		reserved: map[string]*queuestype.Reservation{},
		inserted: map[uuid.UUID]*queuestype.Record{},
	}
	for rows.Next() {
		kr := kindRows{rows}
		kind := kr.kind()
		if kind == "n" {
			continue
		}
		rec, err := scanRecord(kr)
		if err != nil {
			return nil, err
		}
		switch kind {
		case "i":
			v.inserted[rec.ID] = rec
		case "h":
			v.holder[rec.Key] = rec
		case "t":
			v.now = rec.CreatedAt
		case "r":
			v.reserved[rec.Key] = &queuestype.Reservation{Key: rec.Key, TaskID: rec.ID, TaskName: rec.TaskName, CreatedAt: rec.CreatedAt.UTC()}
		}
	}
	return v, rows.Err()
}

// kindRows presents the record columns of a row whose last column is its
// kind, so scanRecord reads it as a record.
type kindRows struct{ pgx.Rows }

func (k kindRows) FieldDescriptions() []pgconn.FieldDescription {
	f := k.Rows.FieldDescriptions()
	return f[:len(f)-1]
}

func (k kindRows) RawValues() [][]byte {
	v := k.Rows.RawValues()
	return v[:len(v)-1]
}

func (k kindRows) Scan(dest ...any) error {
	var kind string
	return k.Rows.Scan(append(dest, &kind)...)
}

// kind returns the row's kind (a text column: the same bytes in either format).
func (k kindRows) kind() string {
	v := k.Rows.RawValues()
	return string(v[len(v)-1])
}

// lostRace reports a unique violation of a key or a reservation: a
// concurrent writer took a key after the keyed statement read it. (A
// violation of the primary key is an ID that already exists: final.)
func (b *Backend) lostRace(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		return false
	}
	return pe.ConstraintName == shorten(b.n.prefix+"queue_task_key") || pe.TableName == shorten(b.n.prefix+"queue_task_reservation")
}
