package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// enqueuePlan is the decision for one Enqueue item, made before anything is
// written. Its Holder is the stored record the key resolves to.
type enqueuePlan = driver.KeyDecision[*entry]

// Enqueue inserts the items atomically: every item is decided under one hold
// of the mutex, then written, and one outcome per item is returned in input
// order. Keys, forever reservations and repeated keys within the call
// resolve as driver.KeyFolder describes, each item's key rule applied at
// the store's clock under the same hold; a holder that no longer holds its
// key (terminal, or outside the item's period or states) has it cleared as
// the new record takes it over. A record ID that already exists,
// or appears twice in the call, fails the whole call and writes nothing, as
// does a priority outside queuestype.MinPriority..queuestype.MaxPriority (an
// error matching queuestype.ErrConfig). One wakeup hint is sent when any new
// record is due.
func (b *Backend) Enqueue(ctx context.Context, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if empty, done, err := driver.NoItems[driver.EnqueueOutcome](ctx, len(items)); done {
		return empty, err
	}
	// Build the candidate records outside the lock.
	cands := make([]*entry, len(items))
	rules := make([]driver.KeyRule, len(items))
	for i := range items {
		p, err := driver.PrepareEnqueueAt(i, items[i], b.now())
		if err != nil {
			return nil, err
		}
		cands[i] = newCandidate(&p)
		rules[i] = driver.RuleOf(&p)
	}

	b.mu.Lock()
	now := b.now()
	plans, err := b.planEnqueue(cands, rules, now)
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	wake := b.commitEnqueue(cands, plans, now)
	outcomes, _ := driver.KeyOutcomes(plans,
		func(j int) *queuestype.Record { return cands[j].clone() },
		func(h *entry) (*queuestype.Record, error) { return h.clone(), nil })
	b.mu.Unlock()
	if wake {
		b.wake()
	}
	return outcomes, nil
}

// newCandidate builds the entry a prepared item inserts (stamps and status
// are set when it is committed).
func newCandidate(p *driver.EnqueueParams) *entry {
	e := newEntry()
	e.rec = queuestype.Record{
		ID:               p.ID,
		TaskName:         p.TaskName,
		Args:             append([]byte(nil), p.Args...),
		Queue:            p.Queue,
		ExecutionBackend: p.ExecutionBackend,
		ExecutionProfile: p.ExecutionProfile,
		Priority:         p.Priority,
		MaxRetries:       p.MaxRetries,
		ScheduledAt:      p.ScheduledAt,
		ExpiresAt:        p.ExpiresAt,
		Key:              p.Key,
		Metadata:         queuestype.NormalizeMetadata(p.Metadata),
		Policy:           storedPolicy(p.Policy),
		Tags:             slices.Clone(p.Tags),
	}
	e.forever = p.Forever
	return e
}

// planEnqueue decides every candidate, with its key rule, against the
// stored keys and reservations at now. Call it with the mutex held; it
// changes nothing.
func (b *Backend) planEnqueue(cands []*entry, rules []driver.KeyRule, now time.Time) ([]enqueuePlan, error) {
	folder := driver.NewKeyFolder(b.storedReservation, b.keyHolder)
	plans := make([]enqueuePlan, len(cands))
	var ids map[uuid.UUID]struct{} // IDs inserted by this call
	if len(cands) > 1 {
		ids = make(map[uuid.UUID]struct{}, len(cands))
	}
	for i, e := range cands {
		plans[i], _ = folder.DecideRule(i, e.rec.Key, e.forever, rules[i], now) // lookups never fail
		if plans[i].Action != driver.KeyInsert {
			continue
		}
		if err := b.checkNewID(i, e.rec.ID, ids); err != nil {
			return nil, err
		}
	}
	return plans, nil
}

// checkNewID refuses the ID of item i when a record has it or an earlier
// insert of the call (seen, nil for a one-item call) takes it.
func (b *Backend) checkNewID(i int, id uuid.UUID, seen map[uuid.UUID]struct{}) error {
	if _, ok := b.records[id]; ok {
		return fmt.Errorf("memory: enqueue item %d: task %s already exists", i, id)
	}
	if seen == nil {
		return nil
	}
	if _, ok := seen[id]; ok {
		return fmt.Errorf("memory: enqueue item %d: duplicate task id %s in one call", i, id)
	}
	seen[id] = struct{}{}
	return nil
}

// commitEnqueue writes the planned inserts at now and reports whether any
// new record is due. Nothing in it can fail. Call it with the mutex held.
func (b *Backend) commitEnqueue(cands []*entry, plans []enqueuePlan, now time.Time) (wake bool) {
	for i, e := range cands {
		pl := &plans[i]
		if pl.Action != driver.KeyInsert {
			continue
		}
		r := &e.rec
		if pl.TakeOver && b.byKey[r.Key] == pl.Holder {
			pl.Holder.rec.Key = ""
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
		for _, tag := range r.Tags {
			set := b.byTag[tag]
			if set == nil {
				set = make(map[uuid.UUID]*entry)
				b.byTag[tag] = set
			}
			set[r.ID] = e
		}
		if r.Key != "" {
			b.byKey[r.Key] = e
		}
		if pl.Reserve {
			b.reservations[r.Key] = queuestype.Reservation{Key: r.Key, TaskID: r.ID, TaskName: r.TaskName, CreatedAt: now}
		}
		b.sync(e, now)
	}
	return wake
}

// storedReservation returns a copy of the reservation of key, or nil.
func (b *Backend) storedReservation(key string) (*queuestype.Reservation, error) {
	if res, ok := b.reservations[key]; ok {
		return &res, nil
	}
	return nil, nil
}

// keyHolder returns the record holding key.
func (b *Backend) keyHolder(key string) (driver.KeyHolder[*entry], bool, error) {
	h := b.byKey[key]
	if h == nil {
		return driver.KeyHolder[*entry]{}, false, nil
	}
	return driver.KeyHolder[*entry]{Rec: h, ID: h.rec.ID, Status: h.rec.Status, CreatedAt: h.rec.CreatedAt, Forever: isForeverRecord(h)}, true, nil
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
