package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

const sqlInsertTask = `INSERT INTO queue_task (` + taskColumns + `)
VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, 0, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, ?, ?, ?, 0)`

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
	metadata    map[string]any
	metaText    string
	policy      queuestype.Policy
	policyText  string
}

// enqueueResult is the decision for one item, made inside the transaction.
type enqueueResult struct {
	inserted bool
	status   queuestype.Status
	staged   int     // index of an earlier item of this call whose insert holds the key, else -1
	existing *rawRec // stored active record holding the key
	owner    *queuestype.Reservation
	err      error
}

// Enqueue inserts the items atomically, in one transaction, and returns one
// outcome per item in input order.
//
// A keyed item whose key is held by an active record returns that record with
// Existing set; a key held by a terminal record is taken over (the terminal
// record's key is cleared). A forever item whose key is reserved returns the
// owner reservation (Record nil, Existing set); one whose key is held by an
// active non-forever record gets a per-item error matching
// queuestype.ErrIdentityConflict; otherwise the insert and its reservation happen
// together. Items repeating a key of an earlier item of the same call
// resolve to that item's outcome. A record ID that already exists fails the
// whole call and writes nothing, as does a priority outside
// queuestype.MinPriority..queuestype.MaxPriority (an error matching queuestype.ErrConfig).
// One wakeup hint is sent when any new record is due.
func (b *Backend) Enqueue(ctx context.Context, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []driver.EnqueueOutcome{}, nil
	}
	w, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	cands, err := newCandidates(items)
	if err != nil {
		return nil, err
	}
	results := make([]enqueueResult, len(cands))
	var now time.Time
	err = w.do(ctx, true, func(tx *wtx) error {
		now = b.now()
		return enqueueTx(tx, cands, results, now)
	})
	if err != nil {
		return nil, err
	}
	outcomes, err := enqueueOutcomes(cands, results, now)
	if err != nil {
		return nil, err
	}
	for i := range results {
		if results[i].inserted && results[i].status == queuestype.StatusPending {
			b.wake()
			break
		}
	}
	return outcomes, nil
}

// newCandidates validates the items and prepares them for the insert
// outside any transaction.
func newCandidates(items []driver.EnqueueParams) ([]candidate, error) {
	var err error
	cands := make([]candidate, len(items))
	for i := range items {
		p := &items[i]
		if p.Priority < queuestype.MinPriority || p.Priority > queuestype.MaxPriority {
			return nil, &queuestype.ConfigError{
				Field:   fmt.Sprintf("items[%d].Priority", i),
				Problem: fmt.Sprintf("%d is outside %d..%d", p.Priority, queuestype.MinPriority, queuestype.MaxPriority),
			}
		}
		c := &cands[i]
		c.id = p.ID
		if c.id == uuid.Nil {
			if c.id, err = uuid.NewV7(); err != nil {
				return nil, fmt.Errorf("sqlite: generate task id: %w", err)
			}
		}
		c.idText = c.id.String()
		c.taskName = p.TaskName
		if p.Args != nil {
			c.args = append(json.RawMessage(nil), p.Args...)
			c.argsText = string(p.Args)
		}
		c.queue = p.Queue
		if c.queue == "" {
			c.queue = queuestype.DefaultQueue
		}
		c.backend = p.ExecutionBackend
		if c.backend == "" {
			c.backend = queuestype.ExecutionLocal
		}
		c.profile = p.ExecutionProfile
		c.priority, c.maxRetries = p.Priority, p.MaxRetries
		c.scheduledAt = truncUTC(p.ScheduledAt)
		c.expiresAt = truncUTC(p.ExpiresAt)
		c.key = p.Key
		c.forever = p.Forever && p.Key != ""
		c.metadata = queuestype.NormalizeMetadata(p.Metadata)
		if c.metaText, err = encodeMetadata(c.metadata); err != nil {
			return nil, fmt.Errorf("sqlite: enqueue item %d: %w", i, err)
		}
		// The returned record carries the policy as reads decode it from
		// the stored text (durations are kept as seconds).
		if p.Policy.IsZero() {
			c.policyText = "{}"
		} else {
			c.policyText = queuestype.EncodePolicy(p.Policy)
			if c.policy, err = decodePolicy(c.policyText); err != nil {
				return nil, fmt.Errorf("sqlite: enqueue item %d: policy: %w", i, err)
			}
		}
	}
	return cands, nil
}

// enqueueOutcomes builds the outcome of each item from the decisions
// enqueueTx made at now.
func enqueueOutcomes(cands []candidate, results []enqueueResult, now time.Time) ([]driver.EnqueueOutcome, error) {
	var err error
	outcomes := make([]driver.EnqueueOutcome, len(cands))
	for i := range results {
		res := &results[i]
		out := &outcomes[i]
		switch {
		case res.inserted:
			out.Record = cands[i].record(res.status, now)
		case res.staged >= 0:
			out.Record = cands[res.staged].record(results[res.staged].status, now)
			out.Existing = true
		case res.existing != nil:
			if out.Record, err = res.existing.record(); err != nil {
				return nil, err
			}
			out.Existing = true
		case res.owner != nil:
			out.Owner = res.owner
			out.Existing = true
		default:
			out.Err = res.err
		}
	}
	return outcomes, nil
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
// reservations, then writes.
func enqueueTx(tx enqueueConn, cands []candidate, results []enqueueResult, now time.Time) error {
	var (
		stagedKeys map[string]int
		stagedRes  map[string]*queuestype.Reservation
	)
	if len(cands) > 1 {
		stagedKeys = make(map[string]int)
		stagedRes = make(map[string]*queuestype.Reservation)
	}
	nowMicros := micros(now)
	for i := range cands {
		c := &cands[i]
		res := &results[i]
		*res = enqueueResult{staged: -1}
		reserve := false
		if c.key != "" {
			if c.forever {
				if r := stagedRes[c.key]; r != nil {
					o := *r
					res.owner = &o
					continue
				}
				owner, err := getReservation(tx, c.key)
				if err != nil {
					return err
				}
				if owner != nil {
					res.owner = owner
					continue
				}
				if _, ok := stagedKeys[c.key]; ok {
					res.err = fmt.Errorf("%w: key %q", queuestype.ErrIdentityConflict, c.key)
					continue
				}
			} else if j, ok := stagedKeys[c.key]; ok {
				res.staged = j
				continue
			}
			holder, found, err := tx.record(`SELECT `+recordColumns+` FROM queue_task WHERE task_key = ?`, c.key)
			if err != nil {
				return err
			}
			if found && !holder.CompletedAt.Valid {
				// An active record holds the key.
				if c.forever && !holderIsForever(&holder) {
					res.err = fmt.Errorf("%w: key %q is held by task %s", queuestype.ErrIdentityConflict, c.key, holder.ID)
					continue
				}
				h := holder
				res.existing = &h
				continue
			}
			if found {
				// A terminal record holds the key: the new record takes it over.
				if _, err := tx.exec(`UPDATE queue_task SET task_key = NULL WHERE id = ?`, holder.ID); err != nil {
					return err
				}
			}
			reserve = c.forever
		}
		status := queuestype.StatusPending
		if c.scheduledAt.After(now) {
			status = queuestype.StatusScheduled
		}
		_, err := tx.exec(sqlInsertTask,
			c.idText, c.taskName, c.argsText, c.queue, c.backend, nullStr(c.profile),
			string(status), c.priority, c.maxRetries, nullMicros(c.scheduledAt), nullMicros(c.expiresAt),
			nowMicros, nowMicros, nullStr(c.key), c.metaText, c.policyText)
		if err != nil {
			if isConstraint(err) {
				return fmt.Errorf("sqlite: enqueue item %d: task %s already exists: %w", i, c.id, err)
			}
			return err
		}
		if reserve {
			if _, err := tx.exec(`INSERT INTO queue_task_reservation (identity_key, task_id, task_name, created_at) VALUES (?, ?, ?, ?)`,
				c.key, c.idText, c.taskName, nowMicros); err != nil {
				return err
			}
			if stagedRes != nil {
				stagedRes[c.key] = &queuestype.Reservation{Key: c.key, TaskID: c.id, TaskName: c.taskName, CreatedAt: now}
			}
		}
		if c.key != "" && stagedKeys != nil {
			stagedKeys[c.key] = i
		}
		res.inserted, res.status = true, status
	}
	return nil
}

// holderIsForever reports whether an active record holding a key was
// enqueued with a forever identity (its policy says unique_until=forever):
// after its reservation was reset, it keeps the key for forever enqueues.
func holderIsForever(r *rawRec) bool {
	p, err := decodePolicy(r.Policy)
	return err == nil && p.Forever()
}

// record builds the stored form of a candidate inserted at now with status.
func (c *candidate) record(status queuestype.Status, now time.Time) *queuestype.Record {
	rec := &queuestype.Record{
		ID:               c.id,
		TaskName:         c.taskName,
		Args:             append(json.RawMessage(nil), c.args...),
		Queue:            c.queue,
		ExecutionBackend: c.backend,
		ExecutionProfile: c.profile,
		Status:           status,
		Priority:         c.priority,
		MaxRetries:       c.maxRetries,
		ScheduledAt:      c.scheduledAt,
		ExpiresAt:        c.expiresAt,
		CreatedAt:        now,
		QueuedAt:         now,
		Key:              c.key,
		Metadata:         queuestype.CloneMetadata(c.metadata),
		Policy:           clonePolicy(c.policy),
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
