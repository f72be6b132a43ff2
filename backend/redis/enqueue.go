package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// Enqueue inserts the items atomically in one script call and returns one
// outcome per item in input order.
//
// The script resolves keys, forever reservations and repeated keys within
// the call as driver.KeyFolder describes, each item's key rule
// (driver.KeyRule) applied at the server's TIME inside the script: a holder
// that no longer holds its key (terminal, or outside the item's period or
// states) has it taken over. A record ID that already exists fails the whole call and
// writes nothing, as does a priority outside
// queuestype.MinPriority..queuestype.MaxPriority (an error matching
// queuestype.ErrConfig). One wakeup is published when any new record is due.
//
// The whole call is one Lua script, so a very large batch blocks the server
// while it runs (about 5 µs per item); callers enqueue in batches of a few
// thousand.
func (b *Backend) Enqueue(ctx context.Context, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if empty, done, err := driver.NoItems[driver.EnqueueOutcome](ctx, len(items)); done {
		return empty, err
	}
	recs, args, err := enqueueArgs(items)
	if err != nil {
		return nil, err
	}
	v, err := b.run(ctx, scriptEnqueue, args...).Slice()
	if err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), "QUEUES "); ok {
			return nil, fmt.Errorf("redis: enqueue: %s", msg)
		}
		return nil, fmt.Errorf("redis: enqueue: %w", err)
	}
	now, replies, err := splitEnqueueReply(v, len(items))
	if err != nil {
		return nil, err
	}
	plans := make([]driver.KeyDecision[*queuestype.Record], len(items))
	for i, o := range replies {
		if plans[i], err = enqueueDecision(i, o, items[i].Key); err != nil {
			return nil, err
		}
		if plans[i].Action == driver.KeyInsert {
			stampInserted(recs[i], now)
		}
	}
	return driver.KeyOutcomes(plans,
		func(j int) *queuestype.Record { return recs[j] },
		func(h *queuestype.Record) (*queuestype.Record, error) { return h, nil })
}

// enqueueArgs validates and prepares the items (driver.PrepareEnqueue) and
// returns the record each would insert, before the script stamps it, and
// the script's arguments: the item count, then 17 fields per item.
func enqueueArgs(items []driver.EnqueueParams) ([]*queuestype.Record, []any, error) {
	recs := make([]*queuestype.Record, len(items))
	args := make([]any, 0, 1+len(items)*17)
	args = append(args, len(items))
	for i := range items {
		p, err := driver.PrepareEnqueue(i, items[i])
		if err != nil {
			return nil, nil, err
		}
		if recs[i], args, err = appendItem(args, &p); err != nil {
			return nil, nil, err
		}
	}
	return recs, args, nil
}

// appendItem appends the script fields of a prepared item to args and
// returns the record it would insert.
func appendItem(args []any, p *driver.EnqueueParams) (*queuestype.Record, []any, error) {
	r := &queuestype.Record{
		ID:               p.ID,
		TaskName:         p.TaskName,
		Queue:            p.Queue,
		ExecutionBackend: p.ExecutionBackend,
		ExecutionProfile: p.ExecutionProfile,
		Priority:         p.Priority,
		MaxRetries:       p.MaxRetries,
		Key:              p.Key,
		Tags:             slices.Clone(p.Tags),
	}
	if len(p.Args) > 0 {
		r.Args = append(json.RawMessage(nil), p.Args...)
	}
	sched, exp := micros(p.ScheduledAt), micros(p.ExpiresAt)
	if sched != "" {
		r.ScheduledAt, _ = fromMicros(sched)
	}
	if exp != "" {
		r.ExpiresAt, _ = fromMicros(exp)
	}
	meta, md, err := encodeMeta(p.Metadata)
	if err != nil {
		return nil, args, err
	}
	rule := driver.RuleOf(p)
	r.Metadata = md
	// The record carries the policy as a reader decodes it from the
	// stored text, so what Enqueue returns equals what GetTask reads.
	pol := encodePolicy(p.Policy)
	if r.Policy, err = decodePolicyCached(pol); err != nil {
		return nil, args, fmt.Errorf("redis: encode policy: %w", err)
	}
	args = append(args, p.ID.String(), r.TaskName, string(r.Args), r.Queue, r.ExecutionBackend, r.ExecutionProfile,
		strconv.Itoa(r.Priority), strconv.Itoa(r.MaxRetries), sched, exp, r.Key, flag(p.Forever), meta, pol,
		strconv.FormatInt(rule.PeriodMicros(), 10), rule.StatesText(),
		// Tags use the queue name characters, never a comma.
		strings.Join(p.Tags, ","))
	return r, args, nil
}

// splitEnqueueReply splits the script's reply into the time of the call and
// one reply per item.
func splitEnqueueReply(v []any, n int) (time.Time, []any, error) {
	if len(v) != 2 {
		return time.Time{}, nil, fmt.Errorf("redis: enqueue reply has %d parts", len(v))
	}
	nowStr, _ := v[0].(string)
	now, err := fromMicros(nowStr)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("redis: enqueue time: %w", err)
	}
	outs, _ := v[1].([]any)
	if len(outs) != n {
		return time.Time{}, nil, fmt.Errorf("redis: enqueue returned %d outcomes for %d items", len(outs), n)
	}
	return now, outs, nil
}

// enqueueDecision decodes the script's decision for item i (keyed by key):
// N inserted, S the same as an earlier item, E an existing record, O a
// reservation's owner, anything else an identity conflict with the holder
// the reply names (none: an earlier item of the call).
func enqueueDecision(i int, o any, key string) (driver.KeyDecision[*queuestype.Record], error) {
	d := driver.KeyDecision[*queuestype.Record]{Of: -1}
	rep, err := parseReply(o)
	if err != nil {
		return d, err
	}
	s, _ := rep.rec.(string)
	switch rep.code {
	case "N":
		d.Action = driver.KeyInsert
	case "S":
		j, err := strconv.Atoi(s)
		if err != nil || j < 1 || j > i {
			return d, fmt.Errorf("redis: enqueue staged reference %q", s)
		}
		d.Action, d.Of = driver.KeyStaged, j-1
	case "E":
		d.Action = driver.KeyExisting
		d.Holder, err = decodeRecord(rep.rec)
	case "O":
		d.Action = driver.KeyOwner
		d.Owner, err = decodeReservation(s)
	default:
		d.Action, d.Err = driver.KeyConflict, driver.IdentityConflict(key)
		if s != "" {
			d.Err = driver.IdentityHeld(key, s)
		}
	}
	return d, err
}

// stampInserted sets what the script stamped on a record it inserted at now.
func stampInserted(r *queuestype.Record, now time.Time) {
	r.CreatedAt, r.QueuedAt = now, now
	if r.ScheduledAt.After(now) {
		r.Status = queuestype.StatusScheduled
	} else {
		r.Status = queuestype.StatusPending
	}
}
