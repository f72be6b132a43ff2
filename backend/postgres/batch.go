package postgres

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// flushTimeout bounds one coalesced write; callers whose op was taken into
// a flush wait for it (their own ctx no longer applies, so the outcome they
// get is the one the database applied).
const flushTimeout = 60 * time.Second

// op is one caller's write waiting in a batcher.
type op[I, O any] struct {
	in    I
	out   O
	err   error
	done  chan struct{}
	taken bool
}

// batcher coalesces concurrent single-record writes into one statement
// (group commit). A caller that finds fewer than maxRunning flushes in
// flight flushes at once, inline (so an idle backend adds no latency);
// callers arriving while flushes are running queue up and go out together
// in the next flush, up to maxBatch ops per statement.
type batcher[I, O any] struct {
	maxRunning int
	maxBatch   int
	flush      func(ctx context.Context, ops []*op[I, O])

	mu      sync.Mutex
	queue   []*op[I, O]
	running int
	idle    *sync.Cond
}

func newBatcher[I, O any](maxRunning, maxBatch int, flush func(ctx context.Context, ops []*op[I, O])) *batcher[I, O] {
	bt := &batcher[I, O]{maxRunning: maxRunning, maxBatch: maxBatch, flush: flush}
	bt.idle = sync.NewCond(&bt.mu)
	return bt
}

// doAll submits several writes at once (they may share a flush) and waits
// for all of them.
func (bt *batcher[I, O]) doAll(ctx context.Context, ins []I) ([]*op[I, O], error) {
	ops := make([]*op[I, O], len(ins))
	for i, in := range ins {
		ops[i] = &op[I, O]{in: in, done: make(chan struct{})}
	}
	bt.mu.Lock()
	bt.queue = append(bt.queue, ops...)
	bt.mu.Unlock()
	bt.kick(ops[len(ops)-1])
	for _, o := range ops {
		select {
		case <-o.done:
		case <-ctx.Done():
			bt.mu.Lock()
			for _, x := range ops {
				if !x.taken {
					for i, y := range bt.queue {
						if y == x {
							bt.queue = append(bt.queue[:i], bt.queue[i+1:]...)
							break
						}
					}
				}
			}
			bt.mu.Unlock()
			for _, x := range ops {
				if x.taken {
					<-x.done
				}
			}
			return nil, ctx.Err()
		}
	}
	return ops, nil
}

// kick starts an inline flush loop when a flush slot is free.
func (bt *batcher[I, O]) kick(mine *op[I, O]) {
	bt.mu.Lock()
	if bt.running >= bt.maxRunning || len(bt.queue) == 0 {
		bt.mu.Unlock()
		return
	}
	bt.running++
	bt.mu.Unlock()
	bt.drain(mine)
}

// drain flushes batches until the queue is empty; once mine is done it
// hands the rest to a goroutine so its caller can return.
func (bt *batcher[I, O]) drain(mine *op[I, O]) {
	for {
		bt.mu.Lock()
		n := min(len(bt.queue), bt.maxBatch)
		if n == 0 {
			bt.running--
			if bt.running == 0 {
				bt.idle.Broadcast()
			}
			bt.mu.Unlock()
			return
		}
		batch := make([]*op[I, O], n)
		copy(batch, bt.queue[:n])
		rest := copy(bt.queue, bt.queue[n:])
		clear(bt.queue[rest:])
		bt.queue = bt.queue[:rest]
		for _, o := range batch {
			o.taken = true
		}
		bt.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		bt.flush(ctx, batch)
		cancel()
		for _, o := range batch {
			close(o.done)
		}
		if mine != nil && isClosed(mine.done) {
			bt.mu.Lock()
			more := len(bt.queue) > 0
			if !more {
				bt.running--
				if bt.running == 0 {
					bt.idle.Broadcast()
				}
			}
			bt.mu.Unlock()
			if more {
				go bt.drain(nil)
			}
			return
		}
	}
}

// wait blocks until no flush is running.
func (bt *batcher[I, O]) wait() {
	bt.mu.Lock()
	for bt.running > 0 {
		bt.idle.Wait()
	}
	bt.mu.Unlock()
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// rounds splits ops so that no ID appears twice in one statement (an UPDATE
// … FROM unnest joins each target row at most once), and orders each round
// by ID: every batched write then locks its records in the same order, so a
// heartbeat write and a completion that share records cannot deadlock.
func rounds[I, O any](ops []*op[I, O], id func(I) uuid.UUID) [][]*op[I, O] {
	var out [][]*op[I, O]
	var seen []map[uuid.UUID]bool
	for _, o := range ops {
		k := id(o.in)
		placed := false
		for i := range out {
			if !seen[i][k] {
				seen[i][k] = true
				out[i] = append(out[i], o)
				placed = true
				break
			}
		}
		if !placed {
			out = append(out, []*op[I, O]{o})
			seen = append(seen, map[uuid.UUID]bool{k: true})
		}
	}
	for _, r := range out {
		slices.SortFunc(r, func(x, y *op[I, O]) int {
			a, b := id(x.in), id(y.in)
			return bytes.Compare(a[:], b[:])
		})
	}
	return out
}
