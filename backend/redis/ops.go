package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
)

// Single-record writes (settled transitions, cancel, heartbeats, dispatch
// fences, claim by ID, …) go through a batcher: concurrent calls are
// coalesced into one call of the ops script, which applies each op under its
// own fence and returns one reply per op. While a batch is in flight new ops queue up and
// leave together in the next one, so throughput grows with load while an
// isolated call still costs one round trip.

const (
	// maxFlushers bounds the batches in flight at once.
	maxFlushers = 2
	// maxBatchArgs bounds the arguments of one ops script call.
	maxBatchArgs = 4096
)

// call is the caller's side of one coalesced request: its ctx, and the
// error and done signal the sender answers it with.
type call struct {
	ctx  context.Context
	err  error
	done chan struct{}
}

// submit queues the request r (whose call is c) on co and waits for its
// answer, or for ctx: the write may still be applied after ctx ends.
func submit[R any](ctx context.Context, co *coalescer[R], c *call, r R) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.ctx = ctx
	c.done = make(chan struct{})
	co.add(r)
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// submitAll queues the requests rs on co in one step, so they leave in as
// few batches as their weight allows, and returns a function that waits for
// every answer (the first error, in order), or for ctx: the writes may
// still be applied after ctx ends.
func submitAll[R interface{ base() *call }](ctx context.Context, co *coalescer[R], rs []R) func() error {
	for _, r := range rs {
		c := r.base()
		c.ctx = ctx
		c.done = make(chan struct{})
	}
	co.addAll(rs)
	return func() error {
		var first error
		for _, r := range rs {
			c := r.base()
			select {
			case <-c.done:
				if c.err != nil && first == nil {
					first = c.err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return first
	}
}

// base returns the call itself, so generic code reaches the call embedded
// in a request.
func (c *call) base() *call { return c }

// ended answers a request whose ctx ended before it was sent with that
// error, and reports whether it did.
func (c *call) ended() bool {
	if err := c.ctx.Err(); err != nil {
		c.finish(err)
		return true
	}
	return false
}

// finish answers the request with err (nil on success).
func (c *call) finish(err error) {
	c.err = err
	close(c.done)
}

// opReq is one caller's group of ops; its replies arrive in res.
type opReq struct {
	call
	args []any
	ops  []opMeta
	res  []any
	recs [][]any // per op: the record fields read after the script, when wanted
}

// opMeta locates one op in opReq.args.
type opMeta struct {
	pos  int    // index of the op code in args
	id   string // record ID
	want bool   // the caller wants the record back
}

// coalescer queues requests and sends them in batches of at most
// maxBatchArgs arguments, with at most maxFlushers batches in flight: while
// they are, new requests queue up and leave together in the next batch.
type coalescer[R any] struct {
	weight func(R) int // arguments one request adds to a batch
	send   func([]R)   // sends one batch and answers its requests

	mu     sync.Mutex
	queue  []R
	active int
}

// add queues r and starts a flusher when fewer than maxFlushers run.
func (c *coalescer[R]) add(r R) {
	c.mu.Lock()
	c.queue = append(c.queue, r)
	if c.active < maxFlushers {
		c.active++
		go c.flush()
	}
	c.mu.Unlock()
}

// addAll queues rs together and starts a flusher when fewer than
// maxFlushers run.
func (c *coalescer[R]) addAll(rs []R) {
	c.mu.Lock()
	c.queue = append(c.queue, rs...)
	if c.active < maxFlushers {
		c.active++
		go c.flush()
	}
	c.mu.Unlock()
}

// flush sends queued requests until the queue is empty.
func (c *coalescer[R]) flush() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.active--
			c.mu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(c.queue) && (n == 0 || size+c.weight(c.queue[n]) <= maxBatchArgs) {
			size += c.weight(c.queue[n])
			n++
		}
		reqs := make([]R, n)
		copy(reqs, c.queue[:n])
		clear(c.queue[:n])
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil
		}
		c.mu.Unlock()
		c.send(reqs)
	}
}

// batcher coalesces ops-script calls.
type batcher struct {
	b *Backend
	coalescer[*opReq]
}

func newBatcher(b *Backend) *batcher {
	bt := &batcher{b: b}
	bt.weight = func(r *opReq) int { return len(r.args) }
	bt.send = bt.sendOps
	return bt
}

// do queues req and waits for its replies, or for ctx (the ops may still be
// applied after ctx ends).
func (bt *batcher) do(ctx context.Context, req *opReq) ([]any, error) {
	if err := submit(ctx, &bt.coalescer, &req.call, req); err != nil {
		return nil, err
	}
	return req.res, nil
}

func (bt *batcher) sendOps(reqs []*opReq) {
	live := slices.DeleteFunc(reqs, (*opReq).ended)
	size, nops := 0, 0
	for _, r := range live {
		size += len(r.args)
		nops += len(r.ops)
	}
	if len(live) == 0 {
		return
	}
	b := bt.b
	args := make([]any, 0, 3+size)
	args = append(args, b.prefix, b.wakeCh, b.doneCh)
	// A wanted record is read with HGETALL after the script in the same
	// MULTI, unless a later op of the batch touches the same record: then
	// the script returns it inline, as of its own op.
	last := make(map[string]int, nops)
	n := 0
	for _, r := range live {
		for _, o := range r.ops {
			last[o.id] = n
			n++
		}
	}
	type read struct {
		req *opReq
		op  int
	}
	var reads []read
	n = 0
	for _, r := range live {
		base := len(args)
		args = append(args, r.args...)
		r.recs = make([][]any, len(r.ops))
		for i, o := range r.ops {
			if o.want {
				if last[o.id] != n {
					args[base+o.pos] = args[base+o.pos].(string) + "+"
				} else {
					reads = append(reads, read{r, i})
				}
			}
			n++
		}
	}
	// The write is not tied to one caller's ctx: it serves them all.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res []any
	var err error
	var gets []*goredis.SliceCmd
	for attempt := 0; ; attempt++ {
		if len(reads) == 0 {
			res, err = scriptOps.Run(ctx, b.client, b.keys, args...).Slice()
			break
		}
		pipe := b.client.TxPipeline()
		ev := pipe.EvalSha(ctx, scriptOps.Hash(), b.keys, args...)
		gets = gets[:0]
		for _, rd := range reads {
			gets = append(gets, b.hmgetRecord(ctx, pipe, rd.req.ops[rd.op].id))
		}
		_, _ = pipe.Exec(ctx)
		res, err = ev.Slice()
		// A server flushed again between the load and the retry answers
		// NOSCRIPT once more: reload a few times before giving up.
		if err != nil && attempt < 3 && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			if lerr := scriptOps.Load(ctx, b.client).Err(); lerr != nil {
				err = lerr
				break
			}
			continue
		}
		break
	}
	if err == nil && len(res) != nops {
		err = fmt.Errorf("redis: ops script returned %d replies for %d ops", len(res), nops)
	}
	if err == nil {
		for i, rd := range reads {
			vals, gerr := gets[i].Result()
			if gerr != nil {
				err = gerr
				break
			}
			rd.req.recs[rd.op] = vals
		}
	}
	i := 0
	for _, r := range live {
		if err != nil {
			r.finish(fmt.Errorf("redis: write: %w", err))
			continue
		}
		r.res = res[i : i+len(r.ops)]
		i += len(r.ops)
		r.finish(nil)
	}
}

// opBuilder encodes ops for the ops script: (op, id, nargs, args…).
type opBuilder struct {
	args []any
	ops  []opMeta
}

// add appends an op whose reply carries no record.
func (o *opBuilder) add(op string, id uuid.UUID, a ...any) { o.push(op, id, false, a) }

// addRec appends an op whose record the caller wants back.
func (o *opBuilder) addRec(op string, id uuid.UUID, a ...any) { o.push(op, id, true, a) }

func (o *opBuilder) push(op string, id uuid.UUID, want bool, a []any) {
	s := id.String()
	o.ops = append(o.ops, opMeta{pos: len(o.args), id: s, want: want})
	o.args = append(o.args, op, s, len(a))
	o.args = append(o.args, a...)
}

func (o *opBuilder) req() *opReq { return &opReq{args: o.args, ops: o.ops} }

// record returns the record of op i of a finished request: the inline
// reply, or the fields read after the script.
func (b *Backend) record(r *opReq, i int, rep reply) (*queuestype.Record, error) {
	if rep.rec != nil {
		return decodeRecord(rep.rec)
	}
	rec, err := b.recordFrom(r.ctx, r.ops[i].id, r.recs[i])
	if err == nil && rec == nil {
		err = fmt.Errorf("redis: record %s vanished after the write", r.ops[i].id)
	}
	return rec, err
}

// reply is one decoded op reply.
type reply struct {
	code string
	rec  any // flat record fields, when present
}

func parseReply(v any) (reply, error) {
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return reply{}, fmt.Errorf("redis: bad op reply %T", v)
	}
	code, _ := a[0].(string)
	r := reply{code: code}
	if len(a) > 1 {
		r.rec = a[1]
	}
	return r, nil
}

// one runs a single op and decodes its record, mapping F → ErrFenceLost and
// M → not found.
func (b *Backend) one(ctx context.Context, name, op string, id uuid.UUID, a ...any) (*queuestype.Record, error) {
	var ob opBuilder
	ob.addRec(op, id, a...)
	req := ob.req()
	res, err := b.batch.do(ctx, req)
	if err != nil {
		return nil, err
	}
	rep, err := parseReply(res[0])
	if err != nil {
		return nil, err
	}
	switch rep.code {
	case "K":
		return b.record(req, 0, rep)
	case "M":
		return nil, driver.MissingForWrite(name, id)
	default:
		return nil, driver.FenceLost(name, id)
	}
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func optInt(p *int) (string, string) {
	if p == nil {
		return "0", ""
	}
	return "1", strconv.Itoa(*p)
}

func optStr(p *string) (string, string) {
	if p == nil {
		return "0", ""
	}
	return "1", *p
}

// Cancel cancels a pending or scheduled record, or a running one when
// p.IncludeRunning, fenced on the optional generation; worker_id is kept.
func (b *Backend) Cancel(ctx context.Context, p driver.CancelParams) (*queuestype.Record, error) {
	hasGen, gen := optInt(p.ExpectedRetryCount)
	return b.one(ctx, "cancel", "cancel", p.ID, flag(p.IncludeRunning), hasGen, gen)
}

// TouchHeartbeats sets heartbeat_at to Redis time on each touched running
// record whose generation matches (nil ExpectedRetryCount is unfenced) and
// merges its MetadataPatch, in one script call with the other writes in flight.
func (b *Backend) TouchHeartbeats(ctx context.Context, touches []driver.HeartbeatTouch) (driver.HeartbeatResult, error) {
	var res driver.HeartbeatResult
	if none, err := driver.NoWork(ctx, len(touches)); none {
		return res, err
	}
	if err := driver.CheckHeartbeatLimits(touches); err != nil {
		return res, err
	}
	var ob opBuilder
	for _, t := range touches {
		hasGen, gen := optInt(t.ExpectedRetryCount)
		a := []any{hasGen, gen}
		if len(t.MetadataPatch) > 0 {
			for _, s := range encodeMetaPairs(t.MetadataPatch) {
				a = append(a, s)
			}
		}
		ob.add("touch", t.ID, a...)
	}
	replies, err := b.batch.do(ctx, ob.req())
	if err != nil {
		return res, err
	}
	for i, v := range replies {
		rep, err := parseReply(v)
		if err != nil {
			return res, err
		}
		if rep.code == "K" {
			res.Touched = append(res.Touched, touches[i].ID)
		} else {
			res.Missed = append(res.Missed, touches[i].ID)
		}
	}
	return res, nil
}

// NullHeartbeats clears heartbeat_at of each fenced running record whose
// generation matches, so stale recovery takes it at once.
func (b *Backend) NullHeartbeats(ctx context.Context, fences []queuestype.Fence) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(fences) == 0 {
		return nil
	}
	var ob opBuilder
	for _, f := range fences {
		ob.add("null", f.ID, strconv.Itoa(f.RetryCount))
	}
	_, err := b.batch.do(ctx, ob.req())
	return err
}

// ClaimByID claims one record by ID: it must be pending or scheduled, not
// reserved for dispatch (no dispatch_until), due, and match the optional generation and ref fences
// (ExpectedRef "" means no ref). An overdue record without execution_ref is
// expired instead and returned in Expired; one holding a finalized ref is
// claimable after its deadline. A missing ID yields queuestype.ErrTaskNotFound.
func (b *Backend) ClaimByID(ctx context.Context, p driver.ClaimByIDParams) (driver.ClaimResult, error) {
	var res driver.ClaimResult
	hasGen, gen := optInt(p.ExpectedRetryCount)
	hasRef, ref := optStr(p.ExpectedRef)
	var ob opBuilder
	ob.addRec("claim", p.ID, p.WorkerID, hasGen, gen, hasRef, ref)
	req := ob.req()
	replies, err := b.batch.do(ctx, req)
	if err != nil {
		return res, err
	}
	rep, err := parseReply(replies[0])
	if err != nil {
		return res, err
	}
	switch rep.code {
	case "C", "X":
		rec, err := b.record(req, 0, rep)
		if err != nil {
			return res, err
		}
		if rep.code == "C" {
			res.Claimed = append(res.Claimed, rec)
		} else {
			res.Expired = append(res.Expired, rec)
		}
	case "M":
		return res, driver.NotFound(p.ID)
	}
	return res, nil
}

// ReserveDispatch sets execution_ref to p.Marker and dispatch_until to
// p.Until on a pending/scheduled record that is due, unexpired and holds no
// ref, fenced on the optional generation. A zero p.Until is refused
// (queuestype.ErrConfig): it would reserve nothing.
func (b *Backend) ReserveDispatch(ctx context.Context, p driver.ReserveDispatchParams) (*queuestype.Record, error) {
	if err := driver.CheckReserve(p); err != nil {
		return nil, err
	}
	hasGen, gen := optInt(p.ExpectedRetryCount)
	return b.one(ctx, "reserve dispatch", "reserve", p.ID, p.Marker, hasGen, gen, micros(p.Until))
}

// ReleaseDispatch clears execution_ref and dispatch_until when execution_ref
// equals p.Marker; a non-empty
// p.ExecutionBackend re-routes the record. Workers are woken when it is due.
func (b *Backend) ReleaseDispatch(ctx context.Context, p driver.ReleaseDispatchParams) (*queuestype.Record, error) {
	return b.one(ctx, "release dispatch", "release", p.ID, p.Marker, p.ExecutionBackend, p.ExecutionProfile)
}

// FinalizeDispatch replaces the marker p.Marker with p.Ref and clears
// dispatch_until while the record is pending or scheduled.
func (b *Backend) FinalizeDispatch(ctx context.Context, p driver.FinalizeDispatchParams) (*queuestype.Record, error) {
	return b.one(ctx, "finalize dispatch", "finalize", p.ID, p.Marker, p.Ref)
}

// SetExecutionRef stores ref on a non-terminal record, whatever it held
// before, and clears dispatch_until: a ref set here is never a reservation.
func (b *Backend) SetExecutionRef(ctx context.Context, id uuid.UUID, ref string) (*queuestype.Record, error) {
	return b.one(ctx, "set execution ref", "setref", id, ref)
}

// ClearExecutionRef clears ref on a pending/scheduled record of generation
// gen that holds it, and wakes workers when the record is due.
func (b *Backend) ClearExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref string) (*queuestype.Record, error) {
	return b.one(ctx, "clear execution ref", "clearref", id, strconv.Itoa(gen), ref)
}

// ReplaceExecutionRef swaps ref for newRef on a non-terminal record of
// generation gen that holds ref.
func (b *Backend) ReplaceExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref, newRef string) (*queuestype.Record, error) {
	return b.one(ctx, "replace execution ref", "replaceref", id, strconv.Itoa(gen), ref, newRef)
}

// SetExecutionBackend re-routes a pending/scheduled record to backend and
// profile, clears its execution_ref and wakes workers when it is due.
func (b *Backend) SetExecutionBackend(ctx context.Context, id uuid.UUID, backend, profile string) (*queuestype.Record, error) {
	return b.one(ctx, "set execution backend", "setbackend", id, backend, profile)
}

// cancelOps cancels the given records (cancel-matching fence: open, or
// running with includeRunning, and no execution ref) and returns those it
// cancelled.
func (b *Backend) cancelOps(ctx context.Context, ids []uuid.UUID, includeRunning bool) ([]*queuestype.Record, error) {
	var out []*queuestype.Record
	for start := 0; start < len(ids); start += 500 {
		var ob opBuilder
		for _, id := range ids[start:min(start+500, len(ids))] {
			ob.addRec("mcancel", id, flag(includeRunning))
		}
		req := ob.req()
		replies, err := b.batch.do(ctx, req)
		if err != nil {
			return out, err
		}
		err = b.eachApplied(req, replies, func(rec *queuestype.Record) { out = append(out, rec) })
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// eachApplied calls fn, in order, for every op of req whose fence held
// (reply K), with its record; other ops are passed over.
func (b *Backend) eachApplied(req *opReq, replies []any, fn func(rec *queuestype.Record)) error {
	for i, v := range replies {
		rep, err := parseReply(v)
		if err != nil {
			return err
		}
		if rep.code != "K" {
			continue
		}
		rec, err := b.record(req, i, rep)
		if err != nil {
			return err
		}
		fn(rec)
	}
	return nil
}
