package memory

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// enqueuePlan is the decision for one Enqueue item, made before anything is written.
type enqueuePlan struct {
	insert   bool   // insert the item's candidate entry
	existing *entry // stored active record holding the key
	staged   int    // index of an earlier item of this call whose insert holds the key, else -1
	clear    *entry // terminal record whose key the insert takes over
	reserve  bool   // create a forever reservation with the insert
	owner    *queues.Reservation
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
// queues.ErrIdentityConflict; otherwise the insert and its reservation happen
// together. Items repeating a key of an earlier item of the same call resolve
// to that item's outcome. A record ID that already exists fails the whole
// call and writes nothing, as does a priority outside
// queues.MinPriority..queues.MaxPriority (an error matching queues.ErrConfig).
// One wakeup hint is sent when any new record is due.
func (b *Backend) Enqueue(ctx context.Context, items []queues.EnqueueParams) ([]queues.EnqueueOutcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []queues.EnqueueOutcome{}, nil
	}
	// Build the candidate records outside the lock.
	cands := make([]*entry, len(items))
	for i := range items {
		p := &items[i]
		if p.Priority < queues.MinPriority || p.Priority > queues.MaxPriority {
			return nil, &queues.ConfigError{
				Field:   fmt.Sprintf("items[%d].Priority", i),
				Problem: fmt.Sprintf("%d is outside %d..%d", p.Priority, queues.MinPriority, queues.MaxPriority),
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
		e.rec = queues.Record{
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
			Metadata:         queues.NormalizeMetadata(p.Metadata),
		}
		if p.Args == nil {
			e.rec.Args = nil
		}
		if e.rec.Queue == "" {
			e.rec.Queue = queues.DefaultQueue
		}
		if e.rec.ExecutionBackend == "" {
			e.rec.ExecutionBackend = "local"
		}
		e.forever = p.Forever && p.Key != ""
		cands[i] = e
	}

	plans := make([]enqueuePlan, len(items))
	outcomes := make([]queues.EnqueueOutcome, len(items))
	wake := false

	b.mu.Lock()
	now := b.now()
	var (
		stagedKeys map[string]int
		stagedRes  map[string]*queues.Reservation
		stagedIDs  map[uuid.UUID]struct{}
	)
	if len(items) > 1 {
		stagedKeys = make(map[string]int)
		stagedRes = make(map[string]*queues.Reservation)
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
					pl.err = fmt.Errorf("%w: key %q", queues.ErrIdentityConflict, key)
					continue
				}
				if h := b.byKey[key]; h != nil && !h.rec.IsTerminal() {
					if isForeverRecord(h) {
						// The reservation was reset while its record is still
						// active: the active record keeps the key.
						pl.existing = h
					} else {
						pl.err = fmt.Errorf("%w: key %q is held by task %s", queues.ErrIdentityConflict, key, h.rec.ID)
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
				stagedRes[key] = &queues.Reservation{Key: key, TaskID: id, TaskName: e.rec.TaskName, CreatedAt: now}
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
			r.Status = queues.StatusScheduled
		} else {
			r.Status = queues.StatusPending
			wake = true
		}
		b.records[r.ID] = e
		if r.Key != "" {
			b.byKey[r.Key] = e
		}
		if pl.reserve {
			b.reservations[r.Key] = queues.Reservation{Key: r.Key, TaskID: r.ID, TaskName: r.TaskName, CreatedAt: now}
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

// isForeverRecord reports whether e was inserted with a forever identity.
func isForeverRecord(e *entry) bool {
	if e.forever {
		return true
	}
	s, _ := e.rec.Metadata[queues.MetaUniqueUntil].(string)
	return s == string(queues.UniqueUntilForever)
}
