package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/queuesgo/queues/driver"
	hubs "github.com/queuesgo/queues/internal/hub"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
)

// The hub owns the process's one subscription connection for a backend:
// wakeups, worker-control hints and completion announcements. It starts on
// first use. When the connection breaks, every wakeup and control channel
// handed out is closed (the worker resubscribes and re-polls, so a lost
// hint costs latency only), completion waiters return so their callers
// re-read the record, and the hub reconnects with backoff.

const (
	// subscribeWait bounds how long a caller waits for the subscription.
	subscribeWait = 5 * time.Second
	// healthEvery is the idle time after which the connection is pinged.
	healthEvery = 15 * time.Second
)

var errHubClosed = errors.New("redis: backend closed")

type hub struct {
	b    *Backend
	name string // CLIENT SETNAME of the subscription connection

	mu      sync.Mutex
	running bool
	closed  bool
	up      bool
	ready   chan struct{} // closed when subscribed; replaced after a break
	stop    chan struct{}
	done    chan struct{}
	ps      *goredis.PubSub
	breaks  int // subscriptions lost so far

	wake  hubs.Set
	ctl   hubs.Keyed
	waits hubs.Keyed
}

func newHub(b *Backend) *hub {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return &hub{
		b:     b,
		name:  "queues-sub-" + hex.EncodeToString(r[:]),
		ready: make(chan struct{}),
		wake:  hubs.Set{},
		ctl:   hubs.Keyed{},
		waits: hubs.Keyed{},
	}
}

func (h *hub) channels() []string {
	chans := []string{h.b.ctlCh, h.b.doneCh}
	if h.b.wakeCh != "" {
		chans = append(chans, h.b.wakeCh)
	}
	return chans
}

// ensure starts the subscription if needed and waits until it is up.
func (h *hub) ensure(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errHubClosed
	}
	if !h.running {
		h.running = true
		h.stop = make(chan struct{})
		h.done = make(chan struct{})
		go h.loop(h.stop, h.done)
	}
	ready := h.ready
	h.mu.Unlock()
	t := time.NewTimer(subscribeWait)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("redis: subscription not ready")
	}
}

// loop subscribes and dispatches messages until stop, reconnecting after a break.
func (h *hub) loop(stop, done chan struct{}) {
	defer close(done)
	backoff := 20 * time.Millisecond
	for {
		select {
		case <-stop:
			return
		default:
		}
		if h.session(stop) {
			backoff = 20 * time.Millisecond
		}
		h.broken()
		select {
		case <-stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// session runs one subscription until it breaks; it reports whether it was
// ever up.
func (h *hub) session(stop chan struct{}) bool {
	ctx := context.Background()
	ps := h.b.client.Subscribe(ctx)
	h.mu.Lock()
	select {
	case <-stop:
		h.mu.Unlock()
		_ = ps.Close()
		return false
	default:
	}
	h.ps = ps
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.ps = nil
		h.mu.Unlock()
		_ = ps.Close()
	}()
	_ = ps.ClientSetName(ctx, h.name)
	chans := h.channels()
	if err := ps.Subscribe(ctx, chans...); err != nil {
		return false
	}
	confirmed := 0
	wasUp := false
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthEvery)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				pinged = true
				if ps.Ping(ctx) == nil {
					continue
				}
			}
			return wasUp
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				confirmed++
				if confirmed == len(chans) {
					wasUp = true
					h.mu.Lock()
					h.up = true
					close(h.ready)
					h.mu.Unlock()
				}
			}
		case *goredis.Message:
			h.dispatch(m)
		}
	}
}

// broken closes every hint channel and releases completion waiters.
func (h *hub) broken() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.up {
		h.breaks++
		h.ready = make(chan struct{})
	}
	h.up = false
	h.wake.Close()
	h.ctl.Close()
	h.waits.Close()
}

func (h *hub) dispatch(m *goredis.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch m.Channel {
	case h.b.wakeCh:
		h.wake.Notify()
	case h.b.ctlCh:
		if len(h.ctl) == 0 {
			return
		}
		var msg struct {
			WorkerID string `json:"worker_id"`
		}
		if json.Unmarshal([]byte(m.Payload), &msg) != nil {
			return
		}
		h.ctl[msg.WorkerID].Notify()
	case h.b.doneCh:
		if len(h.waits) == 0 {
			return
		}
		for id := range strings.SplitSeq(m.Payload, ",") {
			h.waits.CloseKey(id)
		}
	}
}

// close stops the subscription and closes every channel. The hub may be
// reopened.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	running, done, ps := h.running, h.done, h.ps
	if running {
		close(h.stop)
	}
	h.running = false
	h.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
	if running {
		<-done
	}
	h.broken()
}

func (h *hub) reopen() {
	h.mu.Lock()
	h.closed = false
	h.mu.Unlock()
}

// register adds ch to a subscriber set while the subscription is up.
func (h *hub) register(add func()) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.up {
		return errors.New("redis: subscription lost")
	}
	add()
	return nil
}

var _ driver.Waker = (*Backend)(nil)

// Wakeups returns a coalescing hint channel (buffer 1) that receives a value
// when a record becomes claimable now: an enqueue of due records (one hint
// per call), a retry or stale requeue without delay, an interruption,
// ClearExecutionRef, SetExecutionBackend and ReleaseDispatch, from any
// process on this namespace. It is closed when ctx ends, the backend is
// closed, or the subscription breaks (subscribe again). With
// Options.Wakeups off it never receives anything.
func (b *Backend) Wakeups(ctx context.Context) (<-chan struct{}, error) {
	if b.wakeCh == "" {
		// Wakeups are off (Options.Wakeups): a channel that never fires.
		ch := make(chan struct{})
		context.AfterFunc(ctx, func() { close(ch) })
		return ch, nil
	}
	h := b.hub
	if err := h.ensure(ctx); err != nil {
		return nil, err
	}
	ch := make(chan struct{}, 1)
	if err := h.register(func() { h.wake[ch] = struct{}{} }); err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.wake.Drop(ch)
	})
	return ch, nil
}

var _ driver.WorkerController = (*Backend)(nil)

// NotifyWorkerControl publishes a control hint for workerID on
// "<ns>:worker_control".
func (b *Backend) NotifyWorkerControl(ctx context.Context, workerID string) error {
	payload, _ := json.Marshal(struct {
		Event    string `json:"event"`
		WorkerID string `json:"worker_id"`
	}{"worker_control", workerID})
	if err := b.client.Publish(ctx, b.ctlCh, payload).Err(); err != nil {
		return fmt.Errorf("redis: publish control hint: %w", err)
	}
	return nil
}

// WorkerControl returns a coalescing control-hint channel (buffer 1) for
// workerID. It is closed when ctx ends, the backend is closed, or the
// subscription breaks.
func (b *Backend) WorkerControl(ctx context.Context, workerID string) (<-chan struct{}, error) {
	h := b.hub
	if err := h.ensure(ctx); err != nil {
		return nil, err
	}
	ch := make(chan struct{}, 1)
	err := h.register(func() { h.ctl.Add(workerID, ch) })
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.ctl.Drop(workerID, ch)
	})
	return ch, nil
}

var _ driver.CompletionWaiter = (*Backend)(nil)

// WaitForCompletion blocks until the record is announced terminal on
// "<p>:completions", and returns nil; it returns at once when the record is
// already terminal or missing, and also (nil) when the subscription breaks,
// so the caller re-reads the record. It returns ctx.Err() when ctx ends first.
func (b *Backend) WaitForCompletion(ctx context.Context, id uuid.UUID) error {
	h := b.hub
	if err := h.ensure(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	ch := make(chan struct{})
	key := id.String()
	if err := h.register(func() { h.waits.Add(key, ch) }); err != nil {
		return nil
	}
	defer func() {
		h.mu.Lock()
		h.waits.Remove(key, ch)
		h.mu.Unlock()
	}()
	st, err := b.client.HGet(ctx, b.taskKey(id), "status").Result()
	switch {
	case isNil(err):
		return nil
	case err != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("redis: wait for completion: %w", err)
	case queuestype.Status(st).IsTerminal():
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
