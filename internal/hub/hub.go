// Package hub is the in-process hint fan-out shared by the backends:
// subscribers get coalescing channels (buffer 1) per key, closed when their
// ctx ends or the hub is closed. Hints are lossy by design: a pending hint
// absorbs further ones.
//
// Hub is the whole fan-out for a store whose hints stay in the process.
// Set and Keyed are the subscription sets alone, for transports that guard
// them with their own lock (a listener connection, a pub/sub subscription).
package hub

import (
	"context"
	"sync"
)

// Hub fans hints out to subscribers by key. The zero value is ready to use.
type Hub struct {
	mu   sync.Mutex
	subs Keyed
}

// Subscribe returns a new coalescing hint channel for key. It is closed when
// ctx ends or Close is called.
func (h *Hub) Subscribe(ctx context.Context, key string) (<-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = Keyed{}
	}
	h.subs.Add(key, ch)
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.subs.Drop(key, ch)
	})
	return ch, nil
}

// Notify sends one hint to every subscriber of key without blocking.
func (h *Hub) Notify(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[key].Notify()
}

// Send is Notify for a store call: it returns ctx's error, sending
// nothing, when ctx has ended.
func (h *Hub) Send(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.Notify(key)
	return nil
}

// Has reports whether key has any subscriber.
func (h *Hub) Has(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[key]) > 0
}

// Close closes every subscriber channel; later subscriptions work again.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs.Close()
}

// Set is a set of subscriber channels. It does no locking: its owner
// guards it. A nil Set is empty.
type Set map[chan struct{}]struct{}

// Notify sends one hint to every channel of s without blocking; a channel
// holding a hint already absorbs it.
func (s Set) Notify() {
	for ch := range s {
		select {
		case ch <- struct{}{}:
		default: // a hint is already pending: coalesce
		}
	}
}

// Drop removes ch from s and closes it. It reports false, closing nothing,
// when ch is not in s (it was dropped already).
func (s Set) Drop(ch chan struct{}) bool {
	if _, ok := s[ch]; !ok {
		return false
	}
	delete(s, ch)
	close(ch)
	return true
}

// Close closes every channel of s and empties it.
func (s Set) Close() {
	for ch := range s {
		close(ch)
	}
	clear(s)
}

// Keyed holds sets of subscriber channels by key (a worker ID, a record
// ID). It does no locking: its owner guards it. An empty set is removed.
type Keyed map[string]Set

// Add adds ch to the set of key.
func (k Keyed) Add(key string, ch chan struct{}) {
	s := k[key]
	if s == nil {
		s = Set{}
		k[key] = s
	}
	s[ch] = struct{}{}
}

// Remove removes ch from the set of key without closing it, and reports
// whether it was there.
func (k Keyed) Remove(key string, ch chan struct{}) bool {
	s := k[key]
	if _, ok := s[ch]; !ok {
		return false
	}
	delete(s, ch)
	if len(s) == 0 {
		delete(k, key)
	}
	return true
}

// Drop is Remove that also closes ch when it was there.
func (k Keyed) Drop(key string, ch chan struct{}) bool {
	if !k.Remove(key, ch) {
		return false
	}
	close(ch)
	return true
}

// NotifyAll sends one hint to every channel of every set.
func (k Keyed) NotifyAll() {
	for _, s := range k {
		s.Notify()
	}
}

// CloseKey closes every channel of the set of key and removes the set.
func (k Keyed) CloseKey(key string) {
	if s, ok := k[key]; ok {
		s.Close()
		delete(k, key)
	}
}

// Close closes every channel of every set and empties k.
func (k Keyed) Close() {
	for _, s := range k {
		s.Close()
	}
	clear(k)
}
