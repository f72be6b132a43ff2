package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// completeReq is one Complete call on the hot path (luaComplete).
type completeReq struct {
	call
	id     string
	gen    string
	result string
	worker string // "" = not fenced on the worker
	now    string // the script's completed_at
	rep    any    // this record's reply
}

// completer coalesces concurrent Complete calls into luaComplete calls.
type completer struct {
	b *Backend
	coalescer[*completeReq]
	// sent counts the completions sent to luaComplete (tests read it).
	sent atomic.Int64
}

func newCompleter(b *Backend) *completer {
	c := &completer{b: b}
	c.weight = func(*completeReq) int { return 4 }
	c.send = c.sendCompletes
	return c
}

// do queues one completion and waits for its reply, or for ctx (the
// completion may still be applied after ctx ends).
func (c *completer) do(ctx context.Context, r *completeReq) error {
	return submit(ctx, &c.coalescer, &r.call, r)
}

func (c *completer) sendCompletes(reqs []*completeReq) {
	live := slices.DeleteFunc(reqs, (*completeReq).ended)
	if len(live) == 0 {
		return
	}
	b := c.b
	args := make([]any, 0, 3+4*len(live))
	args = append(args, b.prefix, b.wakeCh, b.doneCh)
	for _, r := range live {
		args = append(args, r.id, r.gen, r.result, r.worker)
	}
	// The write is not tied to one caller's ctx: it serves them all.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.sent.Add(int64(len(live)))
	res, err := scriptComplete.Run(ctx, b.client, b.keys, args...).Slice()
	if err == nil && len(res) != 1+len(live) {
		err = fmt.Errorf("redis: complete script returned %d replies for %d records", len(res)-1, len(live))
	}
	var now string
	if err == nil {
		now, _ = res[0].(string)
	}
	for i, r := range live {
		if err != nil {
			r.finish(fmt.Errorf("redis: complete: %w", err))
			continue
		}
		r.now, r.rep = now, res[1+i]
		r.finish(nil)
	}
}

// Complete settles the running generation p.ExpectedRetryCount as completed
// with p.Result; completed_at is set, heartbeat_at and the error cleared and
// worker_id kept, and the ID is announced on the completions channel. Any
// other state returns an error matching queuestype.ErrFenceLost. With
// p.NoRecord it returns no record; with the claimed record in p.Claimed it
// returns that record updated with what the write changed; otherwise it
// reads the record back.
func (b *Backend) Complete(ctx context.Context, p driver.CompleteParams) (*queuestype.Record, error) {
	var cached *queuestype.Record
	if !p.NoRecord && p.Claimed != nil && p.Claimed.ID == p.ID {
		cached = p.Claimed.Clone()
	}
	gen := strconv.Itoa(p.ExpectedRetryCount)
	if !p.NoRecord && cached == nil {
		return b.one(ctx, "complete", "complete", p.ID, gen, flag(p.Result != nil), string(p.Result), "0")
	}
	// A nil and an empty result are both stored as "" (null).
	r := &completeReq{id: p.ID.String(), gen: gen, result: string(p.Result)}
	if err := b.completes.do(ctx, r); err != nil {
		return nil, err
	}
	ref, overlays, err := completeReply(r.rep, p.ID)
	if err != nil || p.NoRecord {
		return nil, err
	}
	return completedFrom(cached, p.Result, r.now, ref, overlays)
}

// completeReply decodes one record's luaComplete reply into its
// execution_ref and metadata overlay pairs.
func completeReply(v any, id uuid.UUID) (ref string, overlays []any, err error) {
	code, _ := v.(string)
	if a, ok := v.([]any); ok && len(a) > 0 {
		code, _ = a[0].(string)
		overlays = a[1:]
	}
	switch {
	case code == "M":
		return "", nil, missingForWrite("complete", id)
	case code == "F":
		return "", nil, fenceLost("complete", id)
	case len(code) > 0 && code[0] == 'K':
		return code[1:], overlays, nil
	}
	return "", nil, fmt.Errorf("redis: complete: unexpected reply %v", v)
}
