package redis

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
)

// completeReq is one hot-path completion of Settle (luaComplete).
type completeReq struct {
	call
	id     string
	gen    string
	result string
	worker string // "" = not fenced on the worker
	now    string // the script's completed_at
	rep    any    // this record's reply
}

// completer coalesces the hot-path completions of concurrent Settle calls
// into luaComplete calls.
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
		return "", nil, driver.MissingForWrite("complete", id)
	case code == "F":
		return "", nil, driver.FenceLost("complete", id)
	case len(code) > 0 && code[0] == 'K':
		return code[1:], overlays, nil
	}
	return "", nil, fmt.Errorf("redis: complete: unexpected reply %v", v)
}
