package sqlite

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// maxBatch bounds how many queued writes one transaction takes.
const maxBatch = 1024

// Request states.
const (
	reqQueued    int32 = iota // waiting in the queue
	reqRunning                // the writer started it; the caller waits for the result
	reqAbandoned              // the caller's ctx ended before it started; the writer skips it
)

// request is one write queued for the writer goroutine.
type request struct {
	ctx       context.Context
	op        func(tx *wtx) error  // runs inside a group transaction
	savepoint bool                 // run op inside its own SAVEPOINT
	excl      func(d *dconn) error // runs alone, outside any group transaction
	state     atomic.Int32
	err       error
	done      chan struct{}
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// stmtError marks an error returned by SQLite while a statement ran, as
// opposed to a guard that did not hold. The group transaction may be unusable
// after one, so the writer rolls it back (or the op's savepoint) and runs the
// other writes of the batch again.
type stmtError struct{ err error }

// Error returns the statement's error text.
func (e *stmtError) Error() string { return e.err.Error() }

// Unwrap returns the statement's error.
func (e *stmtError) Unwrap() error { return e.err }

// writer owns the single writer connection. Every write of the backend is a
// request to it: it takes all requests waiting in its queue, runs them inside
// one BEGIN IMMEDIATE transaction (each one its own fenced statements, with
// its own result), commits once and replies to every caller (group commit).
type writer struct {
	b    *Backend
	conn *sql.Conn // held by the writer goroutine; used through d
	d    *dconn
	reqs chan *request
	kick chan struct{} // a wakeup subscription was added: re-evaluate polling
	quit chan struct{}
	done chan struct{}

	tx wtx

	// claimed holds, by ID, the records this process claimed and has not
	// settled yet, as the claim read them. Settle rebuilds a completed
	// record from them instead of reading it back (completeKnown). Only the
	// writer goroutine touches it.
	claimed map[string]*rawRec
	batch   []*request

	ckpt *checkpointer

	dirty    bool      // committed since the writer's last checkpoint
	lastCkpt time.Time // the writer's last checkpoint

	pollEnabled atomic.Bool
	dataVersion int64
	haveVersion bool
	lastPoll    time.Time
}

// startWriter takes the single connection of db and starts the writer
// goroutine, which reports its commits to ckpt.
func startWriter(ctx context.Context, b *Backend, db *sql.DB, ckpt *checkpointer) (*writer, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	// A new file gets its page size before anything is written; then WAL.
	var mode string
	if err := retryBusy(ctx, func() error {
		if _, err := conn.ExecContext(ctx, "PRAGMA page_size = 4096"); err != nil {
			return err
		}
		return conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
	}); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if mode != "wal" {
		_ = conn.Close()
		return nil, fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	w := &writer{
		b:       b,
		conn:    conn,
		reqs:    make(chan *request, maxBatch),
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		claimed: make(map[string]*rawRec),
		ckpt:    ckpt,
	}
	w.tx.w = w
	go w.run()
	return w, nil
}

// stop ends the writer goroutine (queued writes fail) and releases the connection.
func (w *writer) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
}

// enablePoll turns the cross-process change poll on (after Open).
func (w *writer) enablePoll() {
	if w.b.opts.PollInterval > 0 {
		w.pollEnabled.Store(true)
	}
}

// kickPoll makes the writer re-evaluate whether it polls (a subscription was added).
func (w *writer) kickPoll() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// do queues op and waits for its result. op runs inside the writer's group
// transaction; it must only use tx, must set its outputs from scratch (the
// writer may run it again after a failed commit) and returns a *stmtError
// (via tx) for statement failures. With savepoint, op runs inside its own
// SAVEPOINT, so a failure undoes only its own statements.
func (w *writer) do(ctx context.Context, savepoint bool, op func(tx *wtx) error) error {
	r := requestPool.Get().(*request)
	r.ctx, r.op, r.savepoint, r.excl, r.err = ctx, op, savepoint, nil, nil
	r.state.Store(reqQueued)
	return w.submit(r)
}

// doExclusive runs fn on the writer connection outside any group transaction.
func (w *writer) doExclusive(ctx context.Context, fn func(d *dconn) error) error {
	r := requestPool.Get().(*request)
	r.ctx, r.op, r.savepoint, r.excl, r.err = ctx, nil, false, fn, nil
	r.state.Store(reqQueued)
	return w.submit(r)
}

func (w *writer) submit(r *request) error {
	ctx := r.ctx
	if err := ctx.Err(); err != nil {
		requestPool.Put(r)
		return err
	}
	select {
	case w.reqs <- r:
	case <-w.quit:
		requestPool.Put(r)
		return errNotOpen
	case <-ctx.Done():
		requestPool.Put(r)
		return ctx.Err()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return ctx.Err() // the writer skips it (and drops it)
		}
		// Already running: its outcome is decided within one transaction.
		select {
		case <-r.done:
		case <-w.done:
			select {
			case <-r.done:
			default:
				return errNotOpen
			}
		}
	case <-w.done:
		select {
		case <-r.done:
		default:
			return errNotOpen // queued after the writer drained its queue
		}
	}
	err := r.err
	r.ctx, r.op, r.excl, r.err = nil, nil, nil, nil
	requestPool.Put(r)
	return err
}

// finish reports r's outcome to its caller.
func finish(r *request, err error) {
	r.err = err
	r.done <- struct{}{}
}

// run is the writer goroutine: it holds the connection at the driver level
// for its whole life.
func (w *writer) run() {
	defer close(w.done)
	err := w.conn.Raw(func(dc any) error {
		c, ok := dc.(sqldriver.Conn)
		if !ok {
			return fmt.Errorf("sqlite: driver connection %T", dc)
		}
		w.d = newDconn(c)
		defer w.d.close()
		w.loop()
		return nil
	})
	if err != nil {
		// Cannot happen with the registered driver: fail every request.
		for {
			select {
			case r := <-w.reqs:
				if r.state.CompareAndSwap(reqQueued, reqRunning) {
					finish(r, fmt.Errorf("sqlite: writer: %w", err))
				}
			case <-w.quit:
				w.drain()
				_ = w.conn.Close()
				return
			}
		}
	}
	_ = w.conn.Close()
}

// loop serves requests until stop.
func (w *writer) loop() {
	var timer *time.Timer
	for {
		var timeout <-chan time.Time
		if w.pollEnabled.Load() && w.b.hasWakeSubscribers() {
			wait := w.b.opts.PollInterval - time.Since(w.lastPoll)
			if wait <= 0 {
				w.poll()
				wait = w.b.opts.PollInterval
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timeout = timer.C
		}
		var first *request
		select {
		case first = <-w.reqs:
		case <-timeout:
			continue
		case <-w.kick:
			continue
		case <-w.quit:
			w.drain()
			return
		}
		if timer != nil {
			timer.Stop()
		}
		w.batch = append(w.batch[:0], first)
		// Group commit: yield once so goroutines that are ready to write can
		// queue their requests before the group starts. Without it the
		// scheduler runs the writer as soon as the first request arrives (the
		// sender readies it as its next goroutine) and groups stay at 1–5
		// requests; measured, one yield gives groups of ~20 under a 100-slot
		// worker and the best throughput (more yields only add latency).
		if len(w.reqs) < maxBatch {
			runtime.Gosched()
		}
	collect:
		for len(w.batch) < maxBatch {
			select {
			case r := <-w.reqs:
				w.batch = append(w.batch, r)
			default:
				break collect
			}
		}
		w.process(w.batch)
		clear(w.batch)
	}
}

// drain fails every queued request after a stop.
func (w *writer) drain() {
	for {
		select {
		case r := <-w.reqs:
			if r.state.CompareAndSwap(reqQueued, reqRunning) {
				finish(r, errNotOpen)
			}
		default:
			return
		}
	}
}

// process runs a drained batch: consecutive transactional requests share one
// transaction; exclusive requests run alone in their place.
func (w *writer) process(batch []*request) {
	start := 0
	for i, r := range batch {
		if r.excl == nil {
			continue
		}
		if i > start {
			w.runGroup(batch[start:i])
		}
		if r.state.CompareAndSwap(reqQueued, reqRunning) {
			finish(r, r.excl(w.d))
		}
		start = i + 1
	}
	if start < len(batch) {
		w.runGroup(batch[start:])
	}
	if w.pollEnabled.Load() && time.Since(w.lastPoll) >= w.b.opts.PollInterval && w.b.hasWakeSubscribers() {
		w.poll()
	}
	if w.dirty && time.Since(w.lastCkpt) >= writerCheckpointEvery {
		w.checkpoint()
	}
}

// writerCheckpointEvery is how often the writer itself checkpoints while it
// commits (see checkpointer for why it normally does not).
const writerCheckpointEvery = time.Second

// checkpoint runs a PASSIVE checkpoint on the writer connection between
// groups. The background checkpointer copies most frames, but under a
// continuous stream of commits it can never copy the last ones, and SQLite
// restarts the WAL from its beginning only after a checkpoint that copied
// every frame. A checkpoint here, where no commit can interleave, completes
// (unless a reader pins an old snapshot), so the next group restarts the WAL
// and the file stops growing.
func (w *writer) checkpoint() {
	w.lastCkpt, w.dirty = time.Now(), false
	_ = w.d.query("PRAGMA wal_checkpoint(PASSIVE)", nil, func([]sqldriver.Value) error { return nil })
}

// runGroup runs requests inside one BEGIN IMMEDIATE transaction and commits once.
func (w *writer) runGroup(group []*request) {
	start := time.Now()
	defer func() {
		w.b.stats.groups.Add(1)
		w.b.stats.writes.Add(int64(len(group)))
		w.b.stats.busy.Add(int64(time.Since(start)))
	}()
	// Claim the requests whose caller still waits.
	live := group[:0:0]
	for _, r := range group {
		if r.ctx.Err() != nil {
			if r.state.CompareAndSwap(reqQueued, reqRunning) {
				finish(r, r.ctx.Err())
			}
			continue
		}
		if r.state.CompareAndSwap(reqQueued, reqRunning) {
			live = append(live, r)
		}
	}
	for attempt := 0; len(live) > 0; attempt++ {
		if err := w.begin(); err != nil {
			for _, r := range live {
				finish(r, err)
			}
			return
		}
		var broken *request
		for _, r := range live {
			r.err = w.runOne(r)
			var se *stmtError
			if r.err != nil && !r.savepoint && errors.As(r.err, &se) {
				broken = r
				break
			}
		}
		if broken != nil {
			// The transaction may be unusable: roll it back, fail only the
			// request whose statement failed, and run the others again.
			w.rollback()
			finish(broken, broken.err)
			live = removeRequest(live, broken)
			continue
		}
		if err := w.commit(); err != nil {
			w.rollback()
			if isBusy(err) && attempt < busyRetries {
				time.Sleep(busyBackoff * time.Duration(attempt+1))
				continue
			}
			for _, r := range live {
				finish(r, fmt.Errorf("sqlite: commit: %w", err))
			}
			return
		}
		w.dirty = true
		w.ckpt.committed()
		for _, r := range live {
			finish(r, r.err)
		}
		return
	}
}

// runOne runs one request's op, inside a savepoint when it asks for one.
func (w *writer) runOne(r *request) error {
	if !r.savepoint {
		return w.call(r)
	}
	if _, err := w.d.exec("SAVEPOINT queue_op"); err != nil {
		return &stmtError{err}
	}
	err := w.call(r)
	if err != nil {
		if _, rbErr := w.d.exec("ROLLBACK TO queue_op"); rbErr != nil {
			return &stmtError{errors.Join(err, rbErr)}
		}
	}
	if _, relErr := w.d.exec("RELEASE queue_op"); relErr != nil {
		return &stmtError{errors.Join(err, relErr)}
	}
	return err // undone by the savepoint; the group goes on
}

// call runs r's op. A panicking op fails its request like a failed statement
// (its writes are rolled back) instead of killing the writer.
func (w *writer) call(r *request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &stmtError{fmt.Errorf("sqlite: write panicked: %v", p)}
		}
	}()
	return r.op(&w.tx)
}

func removeRequest(list []*request, r *request) []*request {
	out := list[:0]
	for _, x := range list {
		if x != r {
			out = append(out, x)
		}
	}
	return out
}

// begin starts the group transaction, retrying a transient SQLITE_BUSY.
func (w *writer) begin() error {
	err := retryBusy(context.Background(), func() error {
		_, err := w.d.exec("BEGIN IMMEDIATE")
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	return nil
}

func (w *writer) commit() error {
	_, err := w.d.exec("COMMIT")
	return err
}

func (w *writer) rollback() {
	_, _ = w.d.exec("ROLLBACK")
}

// poll checks PRAGMA data_version on the writer connection. Its value changes
// exactly when another connection committed — and every write of this
// process goes through this connection, so a change means another process
// wrote to the file: a wakeup hint.
func (w *writer) poll() {
	w.lastPoll = time.Now()
	var v int64
	err := w.d.query("PRAGMA data_version", nil, func(row []sqldriver.Value) error {
		var err error
		v, err = valInt(row[0])
		return err
	})
	if err != nil {
		return
	}
	if w.haveVersion && v != w.dataVersion {
		w.b.wake()
	}
	w.dataVersion, w.haveVersion = v, true
}

// isBusy reports a transient lock conflict: SQLITE_BUSY or SQLITE_LOCKED
// (any extended code).
func isBusy(err error) bool {
	var ce interface{ Code() int }
	if errors.As(err, &ce) {
		switch ce.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
	}
	return false
}

// retryBusy runs fn, retrying a transient SQLITE_BUSY up to busyRetries times
// with busyBackoff × attempt between attempts (on top of busy_timeout).
func retryBusy(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !isBusy(err) || attempt > busyRetries {
			return err
		}
		t := time.NewTimer(busyBackoff * time.Duration(attempt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// wtx is the handle an op uses inside the group transaction.
type wtx struct {
	w    *writer
	recs []rawRec // scratch for queries
}

// exec runs a statement and returns the number of rows it changed.
func (t *wtx) exec(query string, args ...any) (int64, error) {
	n, err := t.w.d.exec(query, args...)
	if err != nil {
		return 0, &stmtError{err}
	}
	return n, nil
}

// records runs a query that yields record rows (recordColumns) and appends
// them to out.
func (t *wtx) records(out []rawRec, query string, args ...any) ([]rawRec, error) {
	err := t.w.d.query(query, args, func(v []sqldriver.Value) error {
		var r rawRec
		if err := r.fromValues(v); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return out, &stmtError{err}
	}
	return out, nil
}

// strings runs a query returning one text column.
func (t *wtx) strings(query string, args ...any) ([]string, error) {
	var out []string
	err := t.w.d.query(query, args, func(v []sqldriver.Value) error {
		s, err := valString(v[0])
		out = append(out, s)
		return err
	})
	if err != nil {
		return nil, &stmtError{err}
	}
	return out, nil
}

// record runs a single-record query; ok is false when no row matched.
func (t *wtx) record(query string, args ...any) (rawRec, bool, error) {
	t.recs = t.recs[:0]
	var err error
	t.recs, err = t.records(t.recs, query, args...)
	if err != nil || len(t.recs) == 0 {
		return rawRec{}, false, err
	}
	return t.recs[0], true, nil
}

// queryRow runs a query returning at most one row into dest (*string,
// *int64, *int, *sql.NullString, *sql.NullInt64); ok is false when no row
// matched.
func (t *wtx) queryRow(query string, args []any, dest ...any) (bool, error) {
	found := false
	err := t.w.d.query(query, args, func(v []sqldriver.Value) error {
		if found {
			return nil
		}
		found = true
		for i := range dest {
			if err := assign(dest[i], v[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, &stmtError{err}
	}
	return found, nil
}

// maxClaimed bounds the claim cache; claims beyond it are not cached.
const maxClaimed = 1 << 16

// remember caches records this process just claimed. The cache points into
// recs, which the caller must not reuse.
func (t *wtx) remember(recs []rawRec) {
	if len(t.w.claimed)+len(recs) > maxClaimed {
		// Records claimed but never settled here (their claim was lost,
		// the caller gave up) would fill it: start over.
		clear(t.w.claimed)
	}
	for i := range recs {
		t.w.claimed[recs[i].ID] = &recs[i]
	}
}

// forget drops a record from the claim cache (it was written otherwise).
func (t *wtx) forget(id string) { delete(t.w.claimed, id) }

// exists reports whether a record with id exists.
func (t *wtx) exists(id string) (bool, error) {
	var one int
	return t.queryRow("SELECT 1 FROM queue_task WHERE id = ?", []any{id}, &one)
}
