package queuestest

import (
	"sync"
	"time"
)

// Clock is a store clock a test moves forward: the wall clock plus every
// Advance so far. Give it to NewService (Options.Clock); the memory store
// then stamps and compares every time with it — due times of scheduled
// records and retries, expiry deadlines, heartbeats, locks.
//
// Only the store reads it. The engine measures the delays it turns into
// due times at enqueue (EnqueueOptions.RunAfter, TaskOptions.RunAfter,
// ExpiresIn) from the wall clock, and there is no public hook to give it
// another; that is why Clock runs on from the wall clock instead of standing
// still: after Advance(d), every record enqueued with a delay of at most d
// is due, and a retry whose backoff is at most d (the store stamps it from
// this clock) is too. A record enqueued after an Advance with a delay
// shorter than the total advanced is due at once. Task timeouts and
// heartbeat intervals are real durations and do not move.
//
// The zero value is ready to use and safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// NewClock returns a clock at the wall clock's time.
func NewClock() *Clock { return &Clock{} }

// Now returns the wall clock's time plus every Advance so far, in UTC.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset).UTC()
}

// Advance moves the clock forward by d; a negative d is ignored, so the
// store never sees time run backwards.
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}
