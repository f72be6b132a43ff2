package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// sqlInsertTask inserts a record; a trigger of migration 0007 indexes its tags.
const sqlInsertTask = `INSERT INTO queue_task (` + taskColumns + `, tags)
VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, 0, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, ?, ?, ?, 0, ?)`

// candidate is one Enqueue item prepared outside the writer.
type candidate struct {
	id          uuid.UUID
	idText      string
	taskName    string
	args        json.RawMessage
	argsText    any
	queue       string
	backend     string
	profile     string
	priority    int
	maxRetries  int
	scheduledAt time.Time
	expiresAt   time.Time
	key         string
	forever     bool
	rule        driver.KeyRule
	metadata    map[string]any
	metaText    string
	policy      queuestype.Policy
	policyText  string
	tags        []string
	tagsText    any // JSON array, or nil for no tags
}

// enqueuePlan is the decision for one item, made inside the transaction.
// Its Holder is the stored record the key resolves to.
type enqueuePlan = driver.KeyDecision[*rawRec]

// Enqueue inserts the items atomically, in one transaction, and returns one
// outcome per item in input order. Keys, forever reservations and repeated
// keys within the call resolve as driver.KeyFolder describes, each item's
// key rule applied at the store's clock inside the writer transaction; a
// holder that no longer holds its key (terminal, or outside the item's
// period or states) has it cleared as the new record takes it over. A record ID that
// already exists fails the whole call and writes nothing, as does a priority
// outside queuestype.MinPriority..queuestype.MaxPriority (an error matching
// queuestype.ErrConfig). One wakeup hint is sent when any new record is due.
func (b *Backend) Enqueue(ctx context.Context, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if empty, done, err := driver.NoItems[driver.EnqueueOutcome](ctx, len(items)); done {
		return empty, err
	}
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	cands, err := newCandidates(items, b.now())
	if err != nil {
		return nil, err
	}
	plans := make([]enqueuePlan, len(cands))
	var now time.Time
	err = w.do(ctx, true, func(tx *wtx) error {
		now = b.now()
		return enqueueTx(tx, cands, plans, now)
	})
	if err != nil {
		return nil, err
	}
	outcomes, err := enqueueOutcomes(cands, plans, now)
	if err != nil {
		return nil, err
	}
	for i := range plans {
		if plans[i].Action == driver.KeyInsert && !cands[i].scheduledAt.After(now) {
			b.wake()
			break
		}
	}
	return outcomes, nil
}

// newCandidates validates the items and prepares them for the insert
// outside any transaction, with now the store clock's time.
func newCandidates(items []driver.EnqueueParams, now time.Time) ([]candidate, error) {
	cands := make([]candidate, len(items))
	for i := range items {
		p, err := driver.PrepareEnqueueAt(i, items[i], now)
		if err != nil {
			return nil, err
		}
		if err := cands[i].prepare(&p); err != nil {
			return nil, fmt.Errorf("sqlite: enqueue item %d: %w", i, err)
		}
	}
	return cands, nil
}

// prepare fills c from a prepared item, encoding its stored texts.
func (c *candidate) prepare(p *driver.EnqueueParams) error {
	*c = candidate{
		id: p.ID, idText: p.ID.String(), taskName: p.TaskName,
		queue: p.Queue, backend: p.ExecutionBackend, profile: p.ExecutionProfile,
		priority: p.Priority, maxRetries: p.MaxRetries,
		scheduledAt: truncUTC(p.ScheduledAt), expiresAt: truncUTC(p.ExpiresAt),
		key: p.Key, forever: p.Forever, rule: driver.RuleOf(p),
		metadata: queuestype.NormalizeMetadata(p.Metadata),
		tags:     slices.Clone(p.Tags),
	}
	if len(c.tags) > 0 {
		b, err := json.Marshal(c.tags)
		if err != nil {
			return fmt.Errorf("tags: %w", err)
		}
		c.tagsText = string(b)
	}
	if p.Args != nil {
		c.args = append(json.RawMessage(nil), p.Args...)
		c.argsText = string(p.Args)
	}
	var err error
	if c.metaText, err = encodeMetadata(c.metadata); err != nil {
		return err
	}
	// The returned record carries the policy as reads decode it from the
	// stored text (durations are kept as seconds).
	c.policyText = "{}"
	if !p.Policy.IsZero() {
		c.policyText = queuestype.EncodePolicy(p.Policy)
		if c.policy, err = decodePolicy(c.policyText); err != nil {
			return fmt.Errorf("policy: %w", err)
		}
	}
	return nil
}

// enqueueOutcomes builds the outcome of each item from the decisions
// enqueueTx made at now.
func enqueueOutcomes(cands []candidate, plans []enqueuePlan, now time.Time) ([]driver.EnqueueOutcome, error) {
	return driver.KeyOutcomes(plans,
		func(j int) *queuestype.Record { return cands[j].record(now) },
		func(h *rawRec) (*queuestype.Record, error) { return h.record() })
}

// enqueueConn is what enqueueTx reads and writes through: the writer's
// group transaction (*wtx) or a caller's *sql.Tx (callerTx).
type enqueueConn interface {
	exec(query string, args ...any) (int64, error)
	record(query string, args ...any) (rawRec, bool, error)
	queryRow(query string, args []any, dest ...any) (bool, error)
}

// enqueueTx runs inside the writer transaction (in a savepoint) or a
// caller's transaction: it decides every item against the stored keys and
// reservations and writes each insert as it is decided.
func enqueueTx(tx enqueueConn, cands []candidate, plans []enqueuePlan, now time.Time) error {
	folder := driver.NewKeyFolder(
		func(key string) (*queuestype.Reservation, error) { return getReservation(tx, key) },
		func(key string) (driver.KeyHolder[*rawRec], bool, error) { return keyHolder(tx, key) })
	for i := range cands {
		c := &cands[i]
		pl, err := folder.DecideRule(i, c.key, c.forever, c.rule, now)
		if err != nil {
			return err
		}
		plans[i] = pl
		if pl.Action == driver.KeyInsert {
			if err := insertCandidate(tx, i, c, &pl, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// insertCandidate writes the insert of item i at now: it releases the key
// of a holder that gave it up, inserts the record and, when planned, its
// reservation.
func insertCandidate(tx enqueueConn, i int, c *candidate, pl *enqueuePlan, now time.Time) error {
	if pl.TakeOver {
		if _, err := tx.exec(`UPDATE queue_task SET task_key = NULL WHERE id = ?`, pl.Holder.ID); err != nil {
			return err
		}
	}
	nowMicros := micros(now)
	_, err := tx.exec(sqlInsertTask,
		c.idText, c.taskName, c.argsText, c.queue, c.backend, nullStr(c.profile),
		string(c.status(now)), c.priority, c.maxRetries, nullMicros(c.scheduledAt), nullMicros(c.expiresAt),
		nowMicros, nowMicros, nullStr(c.key), c.metaText, c.policyText, c.tagsText)
	if err != nil {
		if isConstraint(err) {
			return fmt.Errorf("sqlite: enqueue item %d: task %s already exists: %w", i, c.id, err)
		}
		return err
	}
	if pl.Reserve {
		_, err = tx.exec(`INSERT INTO queue_task_reservation (identity_key, task_id, task_name, created_at) VALUES (?, ?, ?, ?)`,
			c.key, c.idText, c.taskName, nowMicros)
	}
	return err
}

// keyHolder reads the record holding key inside the transaction.
func keyHolder(tx enqueueConn, key string) (driver.KeyHolder[*rawRec], bool, error) {
	h, found, err := tx.record(`SELECT `+recordColumns+` FROM queue_task WHERE task_key = ?`, key)
	if err != nil || !found {
		return driver.KeyHolder[*rawRec]{}, false, err
	}
	id, err := uuid.Parse(h.ID)
	if err != nil {
		return driver.KeyHolder[*rawRec]{}, false, fmt.Errorf("sqlite: record %q holding key %q: %w", h.ID, key, err)
	}
	st := queuestype.Status(h.Status)
	return driver.KeyHolder[*rawRec]{Rec: &h, ID: id, Status: st, CreatedAt: fromMicros(h.CreatedAt),
		Forever: !st.IsTerminal() && holderIsForever(&h)}, true, nil
}

// holderIsForever reports whether an active record holding a key was
// enqueued with a forever identity (its policy says unique_until=forever):
// after its reservation was reset, it keeps the key for forever enqueues.
func holderIsForever(r *rawRec) bool {
	p, err := decodePolicy(r.Policy)
	return err == nil && p.Forever()
}

// status is the status of a candidate inserted at now.
func (c *candidate) status(now time.Time) queuestype.Status {
	if c.scheduledAt.After(now) {
		return queuestype.StatusScheduled
	}
	return queuestype.StatusPending
}

// record builds the stored form of a candidate inserted at now.
func (c *candidate) record(now time.Time) *queuestype.Record {
	rec := &queuestype.Record{
		ID:               c.id,
		TaskName:         c.taskName,
		Args:             append(json.RawMessage(nil), c.args...),
		Queue:            c.queue,
		ExecutionBackend: c.backend,
		ExecutionProfile: c.profile,
		Status:           c.status(now),
		Priority:         c.priority,
		MaxRetries:       c.maxRetries,
		ScheduledAt:      c.scheduledAt,
		ExpiresAt:        c.expiresAt,
		CreatedAt:        now,
		QueuedAt:         now,
		Key:              c.key,
		Metadata:         queuestype.CloneMetadata(c.metadata),
		Policy:           clonePolicy(c.policy),
		Tags:             slices.Clone(c.tags),
	}
	if c.args == nil {
		rec.Args = nil
	}
	return rec
}

// truncUTC converts a caller time to UTC at the stored precision, keeping
// the zero value zero.
func truncUTC(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// isConstraint reports a SQLITE_CONSTRAINT error (any extended code).
func isConstraint(err error) bool {
	var ce interface{ Code() int }
	return errors.As(err, &ce) && ce.Code()&0xff == 19
}

// getReservation reads the reservation of key inside the transaction.
func getReservation(tx enqueueConn, key string) (*queuestype.Reservation, error) {
	var (
		taskID, taskName string
		created          int64
	)
	ok, err := tx.queryRow(`SELECT task_id, task_name, created_at FROM queue_task_reservation WHERE identity_key = ?`,
		[]any{key}, &taskID, &taskName, &created)
	if err != nil || !ok {
		return nil, err
	}
	id, err := uuid.Parse(taskID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reservation %q task id: %w", key, err)
	}
	return &queuestype.Reservation{Key: key, TaskID: id, TaskName: taskName, CreatedAt: fromMicros(created)}, nil
}
