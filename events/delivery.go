package events

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
)

// Message is one delivery: the envelope JSON (Data) addressed to a channel.
type Message struct {
	Channel string
	Data    []byte
}

// Broker delivers messages live to subscribers. Implementations:
// MemoryBroker (in-process), PostgreSQL and Redis.
type Broker interface {
	// Publish delivers msgs to the current subscribers of their channels.
	Publish(ctx context.Context, msgs []Message) error
	// Subscribe opens a subscription to the given channels. It ends when ctx
	// ends or Close is called.
	Subscribe(ctx context.Context, channels ...string) (Subscription, error)
}

// Subscription is an open subscription. C is closed when the subscription
// ends.
type Subscription interface {
	// C returns the channel delivering messages; it is closed when the
	// subscription ends.
	C() <-chan Message
	// Close ends the subscription. It is idempotent.
	Close() error
}

// Sink is an extra output that receives every delivered message.
type Sink interface {
	// Publish hands msgs to the sink.
	Publish(ctx context.Context, msgs []Message) error
}

// ErrBrokerClosed is returned by MemoryBroker.Publish and Subscribe after Close.
var ErrBrokerClosed = errors.New("events: broker closed")

// errNoChannels is returned by Subscribe without channels.
var errNoChannels = errors.New("events: subscribe needs at least one channel")

// DefaultSubscriptionBuffer is the per-subscription buffer of MemoryBroker
// when MemoryBrokerOptions.Buffer is 0.
const DefaultSubscriptionBuffer = 256

// MemoryBrokerOptions configures NewMemoryBroker.
type MemoryBrokerOptions struct {
	// Replay > 0 keeps, per channel, the last Replay messages and delivers
	// them (oldest first) to every new subscription of that channel before
	// live messages.
	Replay int
	// Buffer is the capacity of each subscription's channel (default 256).
	// A subscriber whose buffer is full misses messages (see Dropped);
	// replayed messages are delivered in addition to this capacity.
	Buffer int
}

var (
	_ Broker       = (*MemoryBroker)(nil)
	_ Subscription = (*memorySubscription)(nil)
	_ Sink         = (*MemorySink)(nil)
)

// MemoryBroker is an in-process Broker fanning messages out to subscribers.
// Publishers never wait for subscribers: when a subscription's buffer is
// full the message is dropped for that subscription and counted in Dropped.
// It is safe for concurrent use.
type MemoryBroker struct {
	replay  int
	buffer  int
	dropped atomic.Int64

	mu     sync.Mutex
	closed bool
	seq    uint64
	subs   map[string]map[*memorySubscription]struct{}
	rings  map[string]*ring
}

// NewMemoryBroker returns an in-process broker.
func NewMemoryBroker(opts MemoryBrokerOptions) *MemoryBroker {
	buf := opts.Buffer
	if buf <= 0 {
		buf = DefaultSubscriptionBuffer
	}
	return &MemoryBroker{
		replay: max(opts.Replay, 0),
		buffer: buf,
		subs:   make(map[string]map[*memorySubscription]struct{}),
		rings:  make(map[string]*ring),
	}
}

// Dropped returns how many deliveries were dropped because a subscriber's
// buffer was full (one per message and subscriber).
func (b *MemoryBroker) Dropped() int64 { return b.dropped.Load() }

// Publish delivers each message to the subscribers of its channel and
// records it in the channel's replay ring. It never blocks on subscribers,
// so ctx is not consulted. The message data is copied once.
func (b *MemoryBroker) Publish(_ context.Context, msgs []Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrBrokerClosed
	}
	for _, m := range msgs {
		m.Data = slices.Clone(m.Data)
		b.seq++
		if b.replay > 0 {
			r := b.rings[m.Channel]
			if r == nil {
				r = &ring{buf: make([]ringEntry, 0, b.replay)}
				b.rings[m.Channel] = r
			}
			r.push(ringEntry{seq: b.seq, msg: m}, b.replay)
		}
		for s := range b.subs[m.Channel] {
			select {
			case s.ch <- m:
			default:
				b.dropped.Add(1)
			}
		}
	}
	return nil
}

// Subscribe opens a subscription to channels (duplicates ignored). With
// replay enabled, the retained messages of those channels are queued first,
// oldest first across all of them. The subscription ends when ctx ends or
// Close is called.
func (b *MemoryBroker) Subscribe(ctx context.Context, channels ...string) (Subscription, error) {
	if len(channels) == 0 {
		return nil, errNoChannels
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	chans := make([]string, 0, len(channels))
	for _, c := range channels {
		if !slices.Contains(chans, c) {
			chans = append(chans, c)
		}
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrBrokerClosed
	}
	var backlog []ringEntry
	for _, c := range chans {
		if r := b.rings[c]; r != nil {
			backlog = r.appendTo(backlog)
		}
	}
	slices.SortFunc(backlog, func(x, y ringEntry) int {
		switch {
		case x.seq < y.seq:
			return -1
		case x.seq > y.seq:
			return 1
		}
		return 0
	})
	s := &memorySubscription{b: b, channels: chans, ch: make(chan Message, b.buffer+len(backlog))}
	for _, e := range backlog {
		s.ch <- e.msg
	}
	for _, c := range chans {
		set := b.subs[c]
		if set == nil {
			set = make(map[*memorySubscription]struct{})
			b.subs[c] = set
		}
		set[s] = struct{}{}
	}
	b.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	b.mu.Lock()
	if s.closed {
		b.mu.Unlock()
		stop()
	} else {
		s.stop = stop
		b.mu.Unlock()
	}
	return s, nil
}

// Close ends every subscription and makes further Publish and Subscribe
// calls fail with ErrBrokerClosed. It is idempotent.
func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var stops []func() bool
	for _, set := range b.subs {
		for s := range set {
			if s.closeLocked() && s.stop != nil {
				stops = append(stops, s.stop)
			}
		}
	}
	clear(b.subs)
	clear(b.rings)
	b.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	return nil
}

// memorySubscription is a MemoryBroker subscription. Its fields other than
// ch and b are guarded by b.mu; ch is sent to and closed only under b.mu.
type memorySubscription struct {
	b        *MemoryBroker
	channels []string
	ch       chan Message
	closed   bool
	stop     func() bool
}

// C returns the delivery channel; it is closed when the subscription ends.
func (s *memorySubscription) C() <-chan Message { return s.ch }

// Close unregisters the subscription and closes C. It is idempotent.
func (s *memorySubscription) Close() error {
	s.b.mu.Lock()
	closedNow := s.closeLocked()
	stop := s.stop
	s.b.mu.Unlock()
	if closedNow && stop != nil {
		stop()
	}
	return nil
}

// closeLocked unregisters the subscription and closes its channel; it
// reports whether this call closed it. The caller holds b.mu.
func (s *memorySubscription) closeLocked() bool {
	if s.closed {
		return false
	}
	s.closed = true
	for _, c := range s.channels {
		if set := s.b.subs[c]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(s.b.subs, c)
			}
		}
	}
	close(s.ch)
	return true
}

type ringEntry struct {
	seq uint64
	msg Message
}

// ring keeps the last n entries of a channel.
type ring struct {
	buf   []ringEntry
	start int // index of the oldest entry once the ring is full
}

func (r *ring) push(e ringEntry, n int) {
	if len(r.buf) < n {
		r.buf = append(r.buf, e)
		return
	}
	r.buf[r.start] = e
	r.start = (r.start + 1) % n
}

// appendTo appends the entries oldest first.
func (r *ring) appendTo(dst []ringEntry) []ringEntry {
	dst = append(dst, r.buf[r.start:]...)
	return append(dst, r.buf[:r.start]...)
}

// MemorySink records every delivered message, for tests. The zero value is
// ready to use and it is safe for concurrent use.
//
// Messages returns every message; Events returns each distinct event once
// (an event published on several channels is one event — messages with the
// same non-empty ID are collapsed to the first); EventsFor returns the
// events delivered on one channel.
type MemorySink struct {
	mu      sync.Mutex
	records []sinkRecord
	notify  chan struct{} // closed and cleared on every Publish; created by waiters
}

type sinkRecord struct {
	msg Message
	ev  Event
	ok  bool // ev decoded
}

// NewMemorySink returns an empty MemorySink.
func NewMemorySink() *MemorySink { return &MemorySink{} }

// Publish records msgs (data copied). It never blocks, so ctx is not
// consulted. Messages whose data does not decode as an Event are still
// recorded (see Messages) and reported in the returned error.
func (s *MemorySink) Publish(_ context.Context, msgs []Message) error {
	var errs []error
	recs := make([]sinkRecord, 0, len(msgs))
	for _, m := range msgs {
		m.Data = slices.Clone(m.Data)
		r := sinkRecord{msg: m}
		if err := r.ev.UnmarshalJSON(m.Data); err != nil {
			errs = append(errs, err)
		} else {
			r.ok = true
		}
		recs = append(recs, r)
	}
	s.mu.Lock()
	s.records = append(s.records, recs...)
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Messages returns a copy of every recorded message in delivery order.
func (s *MemorySink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.records))
	for i, r := range s.records {
		out[i] = r.msg
	}
	return out
}

// Events returns the distinct decoded events in order of first delivery.
func (s *MemorySink) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eventsLocked()
}

func (s *MemorySink) eventsLocked() []Event {
	out := make([]Event, 0, len(s.records))
	seen := make(map[string]struct{}, len(s.records))
	for _, r := range s.records {
		if !r.ok {
			continue
		}
		if r.ev.ID != "" {
			if _, dup := seen[r.ev.ID]; dup {
				continue
			}
			seen[r.ev.ID] = struct{}{}
		}
		out = append(out, r.ev)
	}
	return out
}

// EventsFor returns the decoded events delivered on channel, in delivery order.
func (s *MemorySink) EventsFor(channel string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, r := range s.records {
		if r.ok && r.msg.Channel == channel {
			out = append(out, r.ev)
		}
	}
	return out
}

// Reset forgets every recorded message.
func (s *MemorySink) Reset() {
	s.mu.Lock()
	s.records = nil
	s.mu.Unlock()
}

// WaitFor blocks until pred holds for the current Events (evaluated now and
// after every Publish) and returns nil, or returns ctx.Err() when ctx ends
// first. pred runs without the sink's lock held and receives its own copy.
func (s *MemorySink) WaitFor(ctx context.Context, pred func([]Event) bool) error {
	for {
		s.mu.Lock()
		evs := s.eventsLocked()
		if s.notify == nil {
			s.notify = make(chan struct{})
		}
		ch := s.notify
		s.mu.Unlock()
		if pred(evs) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
