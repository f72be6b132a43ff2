package memory

import (
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// Index kinds. An entry records its position in each kind of heap it belongs to.
const (
	kReady    = iota // due, claimable candidates in claim order (per partition)
	kFuture          // not yet due, by scheduled_at (per partition)
	kExpiry          // pending/scheduled, no ref, with a deadline, by expires_at (per partition)
	kTerminal        // terminal records by completed_at (global)
	numKinds
)

// entry is the stored form of one record plus its index bookkeeping. Every
// field is guarded by Backend.mu.
type entry struct {
	rec     queuestype.Record
	forever bool // inserted by a forever-identity enqueue

	part *partition    // partition whose heaps hold the entry
	idx  [numKinds]int // position in each heap, -1 when absent

	// What the statistics and membership sets currently count for this entry.
	cQueue   string
	cStatus  queuestype.Status
	inRun    bool
	inRefSet bool

	waiters []chan struct{} // closed when the record becomes terminal
}

func newEntry() *entry {
	e := &entry{}
	for i := range e.idx {
		e.idx[i] = -1
	}
	return e
}

// partKey identifies a partition: records routed to one execution backend on one queue.
type partKey struct {
	backend string
	queue   string
}

// partition holds the per-(execution backend, queue) indexes.
type partition struct {
	key    partKey
	ready  entryHeap
	future entryHeap
	expiry entryHeap
}

func newPartition(k partKey) *partition {
	return &partition{
		key:    k,
		ready:  entryHeap{kind: kReady},
		future: entryHeap{kind: kFuture},
		expiry: entryHeap{kind: kExpiry},
	}
}

func (p *partition) heap(kind int) *entryHeap {
	switch kind {
	case kReady:
		return &p.ready
	case kFuture:
		return &p.future
	case kExpiry:
		return &p.expiry
	}
	panic("memory: unknown partition heap")
}

// claimLess is the claim order (driver.ClaimOrder) as a less function.
func claimLess(a, b *queuestype.Record) bool { return driver.ClaimOrder(a, b) < 0 }

// timeIDLess orders by a time, then created_at, then id.
func timeIDLess(ta, tb time.Time, a, b *queuestype.Record) bool {
	if c := ta.Compare(tb); c != 0 {
		return c < 0
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c < 0
	}
	return driver.CompareID(a.ID, b.ID) < 0
}

// entryHeap is a binary min-heap of entries that tracks each entry's position
// (entry.idx[kind]) so entries can be removed eagerly in O(log n).
type entryHeap struct {
	kind  int
	items []*entry
}

func (h *entryHeap) Len() int { return len(h.items) }

func (h *entryHeap) less(i, j int) bool {
	a, b := &h.items[i].rec, &h.items[j].rec
	switch h.kind {
	case kReady:
		return claimLess(a, b)
	case kFuture:
		if c := a.ScheduledAt.Compare(b.ScheduledAt); c != 0 {
			return c < 0
		}
		return claimLess(a, b)
	case kExpiry:
		return timeIDLess(a.ExpiresAt, b.ExpiresAt, a, b)
	default: // kTerminal
		if c := a.CompletedAt.Compare(b.CompletedAt); c != 0 {
			return c < 0
		}
		return driver.CompareID(a.ID, b.ID) < 0
	}
}

func (h *entryHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].idx[h.kind] = i
	h.items[j].idx[h.kind] = j
}

func (h *entryHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h *entryHeap) down(i int) bool {
	i0 := i
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h.less(r, l) {
			j = r
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}

// peek returns the minimum entry or nil.
func (h *entryHeap) peek() *entry {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

func (h *entryHeap) push(e *entry) {
	e.idx[h.kind] = len(h.items)
	h.items = append(h.items, e)
	h.up(len(h.items) - 1)
}

// remove takes e out of the heap; e must be in it.
func (h *entryHeap) remove(e *entry) {
	i := e.idx[h.kind]
	n := len(h.items) - 1
	if i != n {
		h.swap(i, n)
	}
	h.items[n] = nil
	h.items = h.items[:n]
	e.idx[h.kind] = -1
	if i != n {
		if !h.down(i) {
			h.up(i)
		}
	}
	// Give memory back after a large drain.
	if c := cap(h.items); c > 1024 && len(h.items) < c/4 {
		h.items = append(make([]*entry, 0, c/2), h.items...)
		for k, x := range h.items {
			x.idx[h.kind] = k
		}
	}
}
