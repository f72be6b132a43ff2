package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// Enqueue inserts the items atomically in one script call and returns one
// outcome per item in input order.
//
// A keyed item whose key is held by an active record returns that record
// with Existing set; a key held by a terminal record is taken over. A
// forever item whose key is reserved returns the owner reservation (Record
// nil, Existing set); one whose key is held by an active non-forever record
// gets a per-item error matching queuestype.ErrIdentityConflict; otherwise the
// insert and its reservation happen together. Items repeating a key of an
// earlier item of the same call resolve to that item's outcome. A record ID
// that already exists fails the whole call and writes nothing, as does a
// priority outside queuestype.MinPriority..queuestype.MaxPriority (an error matching
// queuestype.ErrConfig). One wakeup is published when any new record is due.
//
// The whole call is one Lua script, so a very large batch blocks the server
// while it runs (about 5 µs per item); callers enqueue in batches of a few
// thousand.
func (b *Backend) Enqueue(ctx context.Context, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []driver.EnqueueOutcome{}, nil
	}
	recs := make([]*queuestype.Record, len(items))
	args := make([]any, 0, 1+len(items)*14)
	args = append(args, len(items))
	for i := range items {
		p := &items[i]
		if p.Priority < queuestype.MinPriority || p.Priority > queuestype.MaxPriority {
			return nil, &queuestype.ConfigError{
				Field:   fmt.Sprintf("items[%d].Priority", i),
				Problem: fmt.Sprintf("%d is outside %d..%d", p.Priority, queuestype.MinPriority, queuestype.MaxPriority),
			}
		}
		id := p.ID
		if id == uuid.Nil {
			var err error
			if id, err = uuid.NewV7(); err != nil {
				return nil, fmt.Errorf("redis: generate task id: %w", err)
			}
		}
		r := &queuestype.Record{
			ID:               id,
			TaskName:         p.TaskName,
			Queue:            p.Queue,
			ExecutionBackend: p.ExecutionBackend,
			ExecutionProfile: p.ExecutionProfile,
			Priority:         p.Priority,
			MaxRetries:       p.MaxRetries,
			Key:              p.Key,
			Metadata:         map[string]any{},
		}
		if len(p.Args) > 0 {
			r.Args = append(json.RawMessage(nil), p.Args...)
		}
		if r.Queue == "" {
			r.Queue = queuestype.DefaultQueue
		}
		if r.ExecutionBackend == "" {
			r.ExecutionBackend = "local"
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
			return nil, err
		}
		r.Metadata = md
		// The record carries the policy as a reader decodes it from the
		// stored text, so what Enqueue returns equals what GetTask reads.
		pol := encodePolicy(p.Policy)
		if r.Policy, err = decodePolicyCached(pol); err != nil {
			return nil, fmt.Errorf("redis: encode policy: %w", err)
		}
		recs[i] = r
		args = append(args, id.String(), r.TaskName, string(r.Args), r.Queue, r.ExecutionBackend, r.ExecutionProfile,
			strconv.Itoa(r.Priority), strconv.Itoa(r.MaxRetries), sched, exp, r.Key, flag(p.Forever && p.Key != ""), meta, pol)
	}
	v, err := b.run(ctx, scriptEnqueue, args...).Slice()
	if err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), "QUEUES "); ok {
			return nil, fmt.Errorf("redis: enqueue: %s", msg)
		}
		return nil, fmt.Errorf("redis: enqueue: %w", err)
	}
	if len(v) != 2 {
		return nil, fmt.Errorf("redis: enqueue reply has %d parts", len(v))
	}
	nowStr, _ := v[0].(string)
	now, err := fromMicros(nowStr)
	if err != nil {
		return nil, fmt.Errorf("redis: enqueue time: %w", err)
	}
	outs, _ := v[1].([]any)
	if len(outs) != len(items) {
		return nil, fmt.Errorf("redis: enqueue returned %d outcomes for %d items", len(outs), len(items))
	}
	result := make([]driver.EnqueueOutcome, len(items))
	for i, o := range outs {
		rep, err := parseReply(o)
		if err != nil {
			return nil, err
		}
		out := &result[i]
		switch rep.code {
		case "N":
			r := recs[i]
			r.CreatedAt, r.QueuedAt = now, now
			if r.ScheduledAt.After(now) {
				r.Status = queuestype.StatusScheduled
			} else {
				r.Status = queuestype.StatusPending
			}
			out.Record = r
		case "S":
			s, _ := rep.rec.(string)
			j, err := strconv.Atoi(s)
			if err != nil || j < 1 || j > i {
				return nil, fmt.Errorf("redis: enqueue staged reference %q", s)
			}
			out.Record = result[j-1].Record.Clone()
			out.Existing = true
		case "E":
			rec, err := decodeRecord(rep.rec)
			if err != nil {
				return nil, err
			}
			out.Record, out.Existing = rec, true
		case "O":
			s, _ := rep.rec.(string)
			res, err := decodeReservation(s)
			if err != nil {
				return nil, err
			}
			out.Owner, out.Existing = res, true
		default:
			holder, _ := rep.rec.(string)
			if holder == "" {
				out.Err = fmt.Errorf("%w: key %q", queuestype.ErrIdentityConflict, items[i].Key)
			} else {
				out.Err = fmt.Errorf("%w: key %q is held by task %s", queuestype.ErrIdentityConflict, items[i].Key, holder)
			}
		}
	}
	return result, nil
}
