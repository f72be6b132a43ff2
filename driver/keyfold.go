package driver

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/queuestype"
)

// PrepareEnqueue validates item i of an Enqueue call and returns a copy of it
// with the defaults every store applies: a new UUIDv7 when ID is zero,
// queuestype.DefaultQueue for an empty Queue, queuestype.ExecutionLocal for
// an empty ExecutionBackend, ScheduledAt and ExpiresAt in UTC (a zero time
// stays zero), and Forever only together with a Key. Args and Metadata are
// shared with the caller's item, not copied.
//
// It then checks the item against the hard limits every store enforces
// (queuestype.DefaultLimits, see CheckEnqueueLimits): a violation returns a
// *queuestype.LimitError naming items[i].<field> (matching
// queuestype.ErrLimit and queuestype.ErrConfig), and the store fails the
// whole call and writes nothing. Due and expiry times are checked against
// the process clock; a store with a clock of its own uses PrepareEnqueueAt.
func PrepareEnqueue(i int, p EnqueueParams) (EnqueueParams, error) {
	return PrepareEnqueueAt(i, p, time.Now())
}

// PrepareEnqueueAt is PrepareEnqueue checking due and expiry times against
// now, the store's clock.
func PrepareEnqueueAt(i int, p EnqueueParams, now time.Time) (EnqueueParams, error) {
	if p.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return p, fmt.Errorf("queues: generate task id: %w", err)
		}
		p.ID = id
	}
	if p.Queue == "" {
		p.Queue = queuestype.DefaultQueue
	}
	if p.ExecutionBackend == "" {
		p.ExecutionBackend = queuestype.ExecutionLocal
	}
	p.ScheduledAt, p.ExpiresAt = InUTC(p.ScheduledAt), InUTC(p.ExpiresAt)
	p.Forever = p.Forever && p.Key != ""
	p.Tags = queuestype.NormalizeTags(p.Tags)
	if err := checkKeyRule(fmt.Sprintf("items[%d].", i), &p); err != nil {
		return p, err
	}
	if err := CheckEnqueueLimits(hardLimits, fmt.Sprintf("items[%d].", i), p, now); err != nil {
		return p, err
	}
	return p, nil
}

// InUTC returns t in UTC without its monotonic clock reading; the zero time
// stays the zero time.
func InUTC(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// KeyHolder is the stored record that holds an identity key, as a store
// reports it to a KeyFolder. Rec is the store's own handle on the record.
type KeyHolder[H any] struct {
	Rec H
	ID  uuid.UUID
	// Status and CreatedAt decide, with the new item's KeyRule, whether the
	// holder still holds the key (KeyRule.Holds); a holder that does not
	// gives it up to the new record.
	Status    queuestype.Status
	CreatedAt time.Time
	// Forever is true when the record was enqueued with a forever identity:
	// once its reservation is reset, it still keeps its key against forever
	// items while active.
	Forever bool
}

// KeyAction is how one Enqueue item resolves.
type KeyAction int

// Key actions.
const (
	// KeyInsert inserts the item as a new record.
	KeyInsert KeyAction = iota
	// KeyStaged: an earlier item of the call (KeyDecision.Of) inserts the
	// key; the item returns that item's record with Existing set.
	KeyStaged
	// KeyExisting: a stored record (KeyDecision.Holder) holds the key under
	// the item's KeyRule (by default: it is not terminal); the item returns
	// it with Existing set.
	KeyExisting
	// KeyOwner: a forever reservation holds the key, stored
	// (KeyDecision.Owner) or created by an earlier item of the call
	// (KeyDecision.Of); the item returns the reservation with Record nil and
	// Existing set.
	KeyOwner
	// KeyConflict: the item fails on its own with KeyDecision.Err, which
	// matches queuestype.ErrIdentityConflict.
	KeyConflict
)

// KeyDecision is a KeyFolder's resolution of one Enqueue item.
type KeyDecision[H any] struct {
	Action KeyAction
	// Reserve (KeyInsert) says the insert creates a forever reservation of
	// the key in the same atomic step.
	Reserve bool
	// TakeOver (KeyInsert) says a stored record, Holder, has the key but no
	// longer holds it under the item's KeyRule (by default: it is
	// terminal); the store clears that record's key as the new record takes
	// it.
	TakeOver bool
	// Holder is the holder that keeps the key (KeyExisting) or the one that
	// gives it up (KeyInsert with TakeOver).
	Holder H
	// Of is the earlier item of the call (KeyStaged, or KeyOwner of a
	// reservation created in this call); -1 otherwise.
	Of int
	// Owner is the stored reservation (KeyOwner), nil when Of names the
	// item that creates it.
	Owner *queuestype.Reservation
	// Err is the per-item error (KeyConflict).
	Err error
}

// KeyFolder resolves the items of one Enqueue call, in input order, against
// the store's identity keys and forever reservations and against the
// earlier items of the same call (in-call duplicate keys fold into the
// first item that holds the key):
//
//   - an item without a key is inserted;
//   - a keyed item whose key an earlier item of the call inserts resolves
//     to that item (KeyStaged); else it returns the stored record holding
//     the key under the item's KeyRule (KeyExisting); else it is inserted,
//     taking the key over from a stored record that no longer holds it;
//   - a forever item (EnqueueParams.Forever with a key) whose key is
//     reserved, by a stored reservation or an earlier forever item of the
//     call, returns the owner (KeyOwner); one whose key an earlier
//     non-forever item inserts, or an active non-forever record holds,
//     fails with an error matching queuestype.ErrIdentityConflict
//     (KeyConflict); one whose key an active forever record holds after
//     its reservation was reset returns that record (KeyExisting);
//     otherwise it is inserted with a reservation (Reserve).
//
// A store that decides on one consistent view of its state (under a lock or
// inside a transaction) creates one KeyFolder per call and calls Decide for
// every item, then writes the inserts; KeyOutcomes turns the decisions into
// the call's outcomes. Create it with NewKeyFolder.
type KeyFolder[H any] struct {
	reservation func(key string) (*queuestype.Reservation, error)
	holder      func(key string) (KeyHolder[H], bool, error)
	staged      map[string]int     // key → earlier item whose insert holds it
	rules       map[string]KeyRule // key → rule of the call's first item with it
	reserved    map[string]int     // key → earlier forever item that reserves it
}

// NewKeyFolder returns a KeyFolder for one Enqueue call. reservation returns
// the stored forever reservation of a key (nil when there is none); holder
// returns the stored record holding a key (false when none does). The
// folder calls them only for keys the earlier items of the call do not
// decide, reservation only for forever items.
func NewKeyFolder[H any](
	reservation func(key string) (*queuestype.Reservation, error),
	holder func(key string) (KeyHolder[H], bool, error),
) KeyFolder[H] {
	return KeyFolder[H]{reservation: reservation, holder: holder}
}

// Decide resolves item i of the call with the default key rule: DecideRule
// with a zero KeyRule.
func (f *KeyFolder[H]) Decide(i int, key string, forever bool) (KeyDecision[H], error) {
	return f.DecideRule(i, key, forever, KeyRule{}, time.Time{})
}

// DecideRule resolves item i of the call, with its key, whether it is a
// forever item (see PrepareEnqueue: forever only with a key) and its key
// rule, at now, the store's clock inside the atomic step. Items must be
// decided in input order. Whether a stored holder still holds a key is
// KeyRule.Holds under the rule of the first item of the call with that key
// (later items of the key fold into what it decided), so a store deciding
// per key in one statement agrees with the folder. A holder that no longer
// holds the key, terminal or not, gives it up: the item is inserted with
// TakeOver. An error is the store's lookup error; the call fails with it.
func (f *KeyFolder[H]) DecideRule(i int, key string, forever bool, rule KeyRule, now time.Time) (KeyDecision[H], error) {
	d := KeyDecision[H]{Of: -1}
	if key == "" {
		return d, nil
	}
	if r, ok := f.rules[key]; ok {
		rule = r
	} else {
		if f.rules == nil {
			f.rules = make(map[string]KeyRule)
		}
		f.rules[key] = rule
	}
	if forever {
		if done, err := f.decideReserved(&d, key); done || err != nil {
			return d, err
		}
	} else if j, ok := f.staged[key]; ok {
		d.Action, d.Of = KeyStaged, j
		return d, nil
	}
	h, found, err := f.holder(key)
	if err != nil {
		return d, err
	}
	holds := found && rule.Holds(h.Status, h.CreatedAt, now)
	switch {
	case holds && forever && !h.Forever:
		d.Action, d.Err = KeyConflict, IdentityHeld(key, h.ID.String())
		return d, nil
	case holds:
		d.Action, d.Holder = KeyExisting, h.Rec
		return d, nil
	case found:
		d.TakeOver, d.Holder = true, h.Rec
	}
	d.Reserve = forever
	f.stage(i, key, d.Reserve)
	return d, nil
}

// decideReserved resolves a forever item against the reservations of the
// call and of the store and the keys earlier items insert. done is false
// when the key's holder decides.
func (f *KeyFolder[H]) decideReserved(d *KeyDecision[H], key string) (done bool, err error) {
	if j, ok := f.reserved[key]; ok {
		d.Action, d.Of = KeyOwner, j
		return true, nil
	}
	res, err := f.reservation(key)
	if err != nil {
		return true, err
	}
	if res != nil {
		d.Action, d.Owner = KeyOwner, res
		return true, nil
	}
	if _, ok := f.staged[key]; ok {
		// An earlier item of this call (not forever) inserts the key.
		d.Action, d.Err = KeyConflict, IdentityConflict(key)
		return true, nil
	}
	return false, nil
}

// stage records that item i inserts key (and reserves it when reserve).
func (f *KeyFolder[H]) stage(i int, key string, reserve bool) {
	if f.staged == nil {
		f.staged = make(map[string]int)
	}
	f.staged[key] = i
	if reserve {
		if f.reserved == nil {
			f.reserved = make(map[string]int)
		}
		f.reserved[key] = i
	}
}

// KeyOutcomes builds the outcomes of an Enqueue call from its decisions
// (one per item, in input order) once the inserts are written. inserted(j) returns the record item j
// inserted, as the caller receives it; existing(h) returns a caller-owned
// copy of an active holder's record. An item resolved to an earlier one gets
// a clone of that item's record, and an item resolved to a reservation
// created in this call gets a reservation built from the record that
// created it.
func KeyOutcomes[H any](ds []KeyDecision[H], inserted func(j int) *queuestype.Record,
	existing func(h H) (*queuestype.Record, error)) ([]EnqueueOutcome, error) {
	outs := make([]EnqueueOutcome, len(ds))
	for i := range ds {
		d, out := &ds[i], &outs[i]
		switch d.Action {
		case KeyInsert:
			out.Record = inserted(i)
		case KeyStaged:
			out.Record, out.Existing = inserted(d.Of).Clone(), true
		case KeyExisting:
			rec, err := existing(d.Holder)
			if err != nil {
				return nil, err
			}
			out.Record, out.Existing = rec, true
		case KeyOwner:
			out.Owner, out.Existing = ownerOf(d, inserted), true
		default:
			out.Err = d.Err
		}
	}
	return outs, nil
}

// ownerOf returns a caller-owned copy of the reservation a KeyOwner decision names.
func ownerOf[H any](d *KeyDecision[H], inserted func(j int) *queuestype.Record) *queuestype.Reservation {
	if d.Owner != nil {
		o := *d.Owner
		return &o
	}
	r := inserted(d.Of)
	return &queuestype.Reservation{Key: r.Key, TaskID: r.ID, TaskName: r.TaskName, CreatedAt: r.CreatedAt}
}
