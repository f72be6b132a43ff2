package memory

import (
	"context"
	"fmt"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// enqueuePlan is the decision for one Enqueue item, made before anything is written.
type enqueuePlan struct {
	insert   bool   // insert the item's candidate entry
	existing *entry // stored active record holding the key
	staged   int    // index of an earlier item of this call whose insert holds the key, else -1
	clear    *entry // terminal record whose key the insert takes over
	reserve  bool   // create a forever reservation with the insert
	owner    *queuestype.Reservation
	err      error
}

// Enqueue inserts the items atomically and returns one outcome per item in
// input order.
//
// A keyed item whose key is held by an active record returns that record with
// Existing set; a key held by a terminal record is taken over (the terminal
// record's key is cleared). A forever item whose key is reserved returns the
// owner reservation (Record nil, Existing set); one whose key is held by an
// active non-forever record gets a per-item error matching
// queuestype.ErrIdentityConflict; otherwise the insert and its reservation happen
// together. Items repeating a key of an earlier item of the same call resolve
// to that item's outcome. A record ID that already exists fails the whole
// call and writes nothing, as does a priority outside
// queuestype.MinPriority..queuestype.MaxPriority (an error matching queuestype.ErrConfig).
// One wakeup hint is sent when any new record is due.
func (b *Backend) Enqueue(ctx context.Context, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []driver.EnqueueOutcome{}, nil
	}
	// Build the candidate records outside the lock.
	cands := make([]*entry, len(items))
	for i := range items {
		p := &items[i]
		if p.Priority < queuestype.MinPriority || p.Priority > queuestype.MaxPriority {
			return nil, &queuestype.ConfigError{
				Field:   fmt.Sprintf("items[%d].Priority", i),
				Problem: fmt.Sprintf("%d is outside %d..%d", p.Priority, queuestype.MinPriority, queuestype.MaxPriority),
			}
		}
		id := p.ID
		if id == uuid.Nil {
			var err error
			if id, err = uuid.NewV7(); err != nil {
				return nil, fmt.Errorf("memory: generate task id: %w", err)
			}
		}
		e := newEntry()
		e.rec = queuestype.Record{
			ID:               id,
			TaskName:         p.TaskName,
			Args:             append([]byte(nil), p.Args...),
			Queue:            p.Queue,
			ExecutionBackend: p.ExecutionBackend,
			ExecutionProfile: p.ExecutionProfile,
			Priority:         p.Priority,
			MaxRetries:       p.MaxRetries,
			ScheduledAt:      utc(p.ScheduledAt),
			ExpiresAt:        utc(p.ExpiresAt),
			Key:              p.Key,
			Metadata:         queuestype.NormalizeMetadata(p.Metadata),
			Policy:           storedPolicy(p.Policy),
		}
		if p.Args == nil {
			e.rec.Args = nil
		}
		if e.rec.Queue == "" {
			e.rec.Queue = queuestype.DefaultQueue
		}
		if e.rec.ExecutionBackend == "" {
			e.rec.ExecutionBackend = "local"
		}
		e.forever = p.Forever && p.Key != ""
		cands[i] = e
	}

	plans := make([]enqueuePlan, len(items))
	outcomes := make([]driver.EnqueueOutcome, len(items))
	wake := false

	b.mu.Lock()
	now := b.now()
	var (
		stagedKeys map[string]int
		stagedRes  map[string]*queuestype.Reservation
		stagedIDs  map[uuid.UUID]struct{}
	)
	if len(items) > 1 {
		stagedKeys = make(map[string]int)
		stagedRes = make(map[string]*queuestype.Reservation)
		stagedIDs = make(map[uuid.UUID]struct{}, len(items))
	}
	for i, e := range cands {
		pl := &plans[i]
		pl.staged = -1
		key := e.rec.Key
		if key != "" {
			if e.forever {
				if res := stagedRes[key]; res != nil {
					pl.owner = res
					continue
				}
				if res, ok := b.reservations[key]; ok {
					pl.owner = &res
					continue
				}
				if _, ok := stagedKeys[key]; ok {
					// An earlier item of this call (not forever) inserts the key.
					pl.err = fmt.Errorf("%w: key %q", queuestype.ErrIdentityConflict, key)
					continue
				}
				if h := b.byKey[key]; h != nil && !h.rec.IsTerminal() {
					if isForeverRecord(h) {
						// The reservation was reset while its record is still
						// active: the active record keeps the key.
						pl.existing = h
					} else {
						pl.err = fmt.Errorf("%w: key %q is held by task %s", queuestype.ErrIdentityConflict, key, h.rec.ID)
					}
					continue
				}
				pl.reserve = true
			} else {
				if j, ok := stagedKeys[key]; ok {
					pl.staged = j
					continue
				}
				if h := b.byKey[key]; h != nil && !h.rec.IsTerminal() {
					pl.existing = h
					continue
				}
			}
			if h := b.byKey[key]; h != nil {
				pl.clear = h // terminal holder
			}
		}
		// Insert.
		id := e.rec.ID
		if _, ok := b.records[id]; ok {
			b.mu.Unlock()
			return nil, fmt.Errorf("memory: enqueue item %d: task %s already exists", i, id)
		}
		if stagedIDs != nil {
			if _, ok := stagedIDs[id]; ok {
				b.mu.Unlock()
				return nil, fmt.Errorf("memory: enqueue item %d: duplicate task id %s in one call", i, id)
			}
			stagedIDs[id] = struct{}{}
		}
		pl.insert = true
		if key != "" && stagedKeys != nil {
			stagedKeys[key] = i
			if pl.reserve {
				stagedRes[key] = &queuestype.Reservation{Key: key, TaskID: id, TaskName: e.rec.TaskName, CreatedAt: now}
			}
		}
	}

	// Commit: nothing below can fail.
	for i, e := range cands {
		pl := &plans[i]
		if !pl.insert {
			continue
		}
		r := &e.rec
		if pl.clear != nil && b.byKey[r.Key] == pl.clear {
			pl.clear.rec.Key = ""
			delete(b.byKey, r.Key)
		}
		r.CreatedAt, r.QueuedAt = now, now
		if r.ScheduledAt.After(now) {
			r.Status = queuestype.StatusScheduled
		} else {
			r.Status = queuestype.StatusPending
			wake = true
		}
		b.records[r.ID] = e
		if r.Key != "" {
			b.byKey[r.Key] = e
		}
		if pl.reserve {
			b.reservations[r.Key] = queuestype.Reservation{Key: r.Key, TaskID: r.ID, TaskName: r.TaskName, CreatedAt: now}
		}
		b.sync(e, now)
	}
	for i := range plans {
		pl := &plans[i]
		out := &outcomes[i]
		switch {
		case pl.insert:
			out.Record = cands[i].clone()
		case pl.staged >= 0:
			out.Record = cands[pl.staged].clone()
			out.Existing = true
		case pl.existing != nil:
			out.Record = pl.existing.clone()
			out.Existing = true
		case pl.owner != nil:
			o := *pl.owner
			out.Owner = &o
			out.Existing = true
		default:
			out.Err = pl.err
		}
	}
	b.mu.Unlock()
	if wake {
		b.wake()
	}
	return outcomes, nil
}

// isForeverRecord reports whether e was inserted with a forever identity
// (the Forever flag, or a policy whose key is held forever).
func isForeverRecord(e *entry) bool {
	return e.forever || e.rec.Policy.Forever()
}

// storedPolicy is the policy as the store keeps it: what its stored JSON
// form (queuestype.EncodePolicy) decodes to, so a record reads back the same
// policy from this store as from the stores that keep the JSON, and shares
// no pointer with the caller's value.
func storedPolicy(p queuestype.Policy) queuestype.Policy {
	if p.IsZero() {
		return queuestype.Policy{}
	}
	raw, err := p.MarshalJSON()
	var out queuestype.Policy
	if err == nil {
		err = out.UnmarshalJSON(raw)
	}
	if err != nil {
		// A value JSON cannot hold (a NaN or infinite multiplier, which
		// configuration validation rejects): keep a private copy as given.
		out = p
		if v := p.RequeueOnShutdown; v != nil {
			c := *v
			out.RequeueOnShutdown = &c
		}
	}
	return out
}
