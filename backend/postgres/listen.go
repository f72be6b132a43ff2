package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/internal/hub"

	"github.com/jackc/pgx/v5"
)

// Listener reconnect backoff.
const (
	listenBackoffMin = 50 * time.Millisecond
	listenBackoffMax = 5 * time.Second
	// firstConnectWait bounds how long a first subscription waits for the
	// listener connection.
	firstConnectWait = 10 * time.Second
)

// controlMessage is the payload of a worker-control NOTIFY: event
// "worker_control" and the ID of the worker to wake.
type controlMessage struct {
	Event    string `json:"event"`
	WorkerID string `json:"worker_id"`
}

// listener owns the dedicated LISTEN connection of one backend. It listens
// on <ns>_tasks and <ns>_worker_control and fans notifications out to
// in-process subscribers. When the connection breaks, every subscription
// channel is closed (so workers notice, resubscribe and poll meanwhile)
// and the listener reconnects with backoff; on reconnect every subscriber
// gets a hint, since notifications sent during the outage were lost.
type listener struct {
	b      *Backend
	cfg    *pgx.ConnConfig
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	connected bool
	ever      bool          // connected at least once
	firstDone chan struct{} // closed after the first connection attempt
	firstErr  error
	pid       uint32
	wake      hub.Set
	ctl       hub.Keyed
}

// listenerFor returns the running listener, starting it on first use.
func (b *Backend) listenerFor() (*listener, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lis != nil {
		return b.lis, nil
	}
	var cfg *pgx.ConnConfig
	if b.opts.ListenConnString != "" {
		c, err := pgx.ParseConfig(b.opts.ListenConnString)
		if err != nil {
			return nil, fmt.Errorf("postgres: listener: cannot parse Options.ListenConnString")
		}
		cfg = c
	} else {
		cfg = b.pool.Config().ConnConfig.Copy()
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "queues-listener:" + b.ns
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{
		b: b, cfg: cfg, cancel: cancel, done: make(chan struct{}), firstDone: make(chan struct{}),
		wake: hub.Set{}, ctl: hub.Keyed{},
	}
	b.lis = l
	go l.run(ctx)
	return l, nil
}

// run connects, listens and dispatches until ctx ends.
func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	backoff := listenBackoffMin
	first := true
	for ctx.Err() == nil {
		conn, err := l.connect(ctx)
		reconnect := false
		if err == nil {
			l.mu.Lock()
			reconnect = l.ever
			l.connected, l.ever, l.pid = true, true, conn.PgConn().PID()
			l.mu.Unlock()
		}
		if first {
			l.mu.Lock()
			l.firstErr = err
			l.mu.Unlock()
			close(l.firstDone)
			first = false
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.b.logger.Warn("Queue listener cannot connect; workers poll until it does",
				"component", l.b.ns+".postgres.listener", "error", err, "retry_in", backoff)
			sleepCtx(ctx, backoff)
			backoff = min(backoff*2, listenBackoffMax)
			continue
		}
		backoff = listenBackoffMin
		if reconnect {
			l.b.logger.Info("Queue listener reconnected; wakeups resume", "component", l.b.ns+".postgres.listener")
			l.hintAll()
		}
		err = l.listen(ctx, conn)
		_ = conn.Close(context.Background())
		l.mu.Lock()
		l.connected, l.pid = false, 0
		l.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		l.b.logger.Warn("Queue listener connection lost; workers fall back to polling until it reconnects",
			"component", l.b.ns+".postgres.listener", "error", err)
		l.closeAll()
		sleepCtx(ctx, backoff)
	}
}

func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, firstConnectWait)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	if err != nil {
		return nil, err
	}
	for _, ch := range []string{l.b.chTasks, l.b.chCtl} {
		if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			_ = conn.Close(context.Background())
			return nil, err
		}
	}
	return conn, nil
}

// listen dispatches notifications until the connection fails or ctx ends.
func (l *listener) listen(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case l.b.chTasks:
			l.hintWake()
		case l.b.chCtl:
			var m controlMessage
			if json.Unmarshal([]byte(n.Payload), &m) == nil && m.WorkerID != "" {
				l.hintWorker(m.WorkerID)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (l *listener) hintWake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wake.Notify()
}

func (l *listener) hintWorker(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ctl[id].Notify()
}

func (l *listener) hintAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wake.Notify()
	l.ctl.NotifyAll()
}

// closeAll closes and forgets every subscription.
func (l *listener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wake.Close()
	l.ctl.Close()
}

// stop ends the listener and closes every subscription.
func (l *listener) stop() {
	l.cancel()
	<-l.done
	l.closeAll()
}

// ready waits for the first connection attempt. A subscription made while
// a once-connected listener is reconnecting succeeds (it gets a hint on
// reconnect); one made before the listener ever connected fails.
func (l *listener) ready(ctx context.Context) error {
	t := time.NewTimer(firstConnectWait)
	defer t.Stop()
	select {
	case <-l.firstDone:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("postgres: listener connection timed out")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ever {
		return nil
	}
	if l.firstErr != nil {
		return fmt.Errorf("postgres: listener: %w", l.firstErr)
	}
	return errors.New("postgres: listener is not connected")
}

// subscribe registers ch (under worker id when ctl) until ctx ends.
func (l *listener) subscribe(ctx context.Context, worker string, ctl bool) (<-chan struct{}, error) {
	if err := l.ready(ctx); err != nil {
		return nil, err
	}
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	if ctl {
		l.ctl.Add(worker, ch)
	} else {
		l.wake[ch] = struct{}{}
	}
	l.mu.Unlock()
	context.AfterFunc(ctx, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if ctl {
			l.ctl.Drop(worker, ch)
		} else {
			l.wake.Drop(ch)
		}
	})
	return ch, nil
}

// inert returns a channel that never fires and closes when ctx ends (hints
// switched off).
func inert(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{})
	context.AfterFunc(ctx, func() { close(ch) })
	return ch
}

var _ driver.Waker = (*Backend)(nil)

// Wakeups returns a lossy, coalescing (buffer 1) hint channel fed by
// LISTEN <ns>_tasks on the backend's dedicated listener connection (opened
// by the first subscription, not from the pool). Hints are sent by
// enqueues of due records (one per call), retries, stale requeues and
// interruptions without delay (Settle included), ClearExecutionRef,
// SetExecutionBackend and ReleaseDispatch. The channel is closed when ctx ends, the backend is
// closed, or the listener connection breaks (the worker resubscribes and
// polls meanwhile; the listener reconnects by itself and sends every
// subscriber a hint when it does). With Options.Wakeups false the channel
// never fires.
func (b *Backend) Wakeups(ctx context.Context) (<-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !b.hints {
		return inert(ctx), nil
	}
	l, err := b.listenerFor()
	if err != nil {
		return nil, err
	}
	return l.subscribe(ctx, "", false)
}

var _ driver.WorkerController = (*Backend)(nil)

// WorkerControl returns a control-hint channel (buffer 1, coalescing) for
// workerID, fed by LISTEN <ns>_worker_control; it behaves like Wakeups.
func (b *Backend) WorkerControl(ctx context.Context, workerID string) (<-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !b.hints {
		return inert(ctx), nil
	}
	l, err := b.listenerFor()
	if err != nil {
		return nil, err
	}
	return l.subscribe(ctx, workerID, true)
}

// NotifyWorkerControl sends NOTIFY <ns>_worker_control with payload
// {"event":"worker_control","worker_id":"…"}; every process's listener
// passes it to that worker's subscriptions.
func (b *Backend) NotifyWorkerControl(ctx context.Context, workerID string) error {
	if !b.hints {
		return ctx.Err()
	}
	payload, err := json.Marshal(controlMessage{Event: "worker_control", WorkerID: workerID})
	if err != nil {
		return err
	}
	_, err = b.pool.Exec(ctx, b.q.notify, b.chCtl, string(payload))
	return b.wrap("notify worker control", err)
}

// ListenerPID returns the server process ID of the listener connection, or
// 0 when it is not connected (for diagnostics and tests).
func (b *Backend) ListenerPID() uint32 {
	b.mu.Lock()
	l := b.lis
	b.mu.Unlock()
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pid
}
