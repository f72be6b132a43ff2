// Package hub is the in-process hint fan-out shared by the embedded backends:
// subscribers get coalescing channels (buffer 1) per key, closed when their
// ctx ends or the hub is closed. Hints are lossy by design: a pending hint
// absorbs further ones.
package hub

import (
	"context"
	"sync"
)

// Hub fans hints out to subscribers by key. The zero value is ready to use.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
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
		h.subs = map[string]map[chan struct{}]struct{}{}
	}
	m := h.subs[key]
	if m == nil {
		m = map[chan struct{}]struct{}{}
		h.subs[key] = m
	}
	m[ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		m := h.subs[key]
		if _, ok := m[ch]; ok {
			delete(m, ch)
			if len(m) == 0 {
				delete(h.subs, key)
			}
			close(ch)
		}
	})
	return ch, nil
}

// Notify sends one hint to every subscriber of key without blocking.
func (h *Hub) Notify(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[key] {
		select {
		case ch <- struct{}{}:
		default: // a hint is already pending: coalesce
		}
	}
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
	for _, m := range h.subs {
		for ch := range m {
			close(ch)
		}
	}
	clear(h.subs)
}
