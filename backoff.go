package queues

import (
	"math/rand/v2"
	"time"

	"github.com/queuesgo/queues/driver"
)

// Defaults of the pacing of a loop whose store calls fail (the claim loop
// and the sweepers). An outage is waited out: the delay doubles from the
// base up to storeBackoffMax, so a fleet of workers costs a store that is
// down one call per worker every ten seconds, and a store that answers
// again is used within that time. A store that says it is broken (a
// corrupt file, a missing schema, a refused login) is given up on after
// storeGiveUpAfter such answers in a row: no wait repairs it, and a
// process that keeps running hides the fault from its supervisor.
const (
	storeBackoffBase = 100 * time.Millisecond
	storeBackoffMax  = 10 * time.Second
	// storeQuietLog is the least time between two log lines about failures
	// that no longer lengthen the delay (it reached the cap).
	storeQuietLog = time.Minute
	// storeGiveUpAfter is how many permanent errors in a row stop the
	// claim loop; with the default delays they span about 1.5 s.
	storeGiveUpAfter = 5
)

// backoffPolicy is how a loop paces and reports failed store calls. The
// worker keeps one so tests can shorten it.
type backoffPolicy struct {
	base, max time.Duration
	// floor is the loop's own wait between calls when it is at least as
	// long as the backoff (a sweeper's interval): the delay said in logs
	// grows only past it.
	floor    time.Duration
	quietLog time.Duration
	// giveUpAfter is how many permanent errors in a row end the loop
	// (0: never).
	giveUpAfter int
}

// defaultBackoffPolicy is the claim loop's policy for a poll interval:
// the first delay is the poll interval (10 ms to 1 s; 100 ms by default).
func defaultBackoffPolicy(pollInterval time.Duration) backoffPolicy {
	base := storeBackoffBase
	if pollInterval > 0 {
		base = min(max(pollInterval, 10*time.Millisecond), time.Second)
	}
	return backoffPolicy{base: base, max: storeBackoffMax, quietLog: storeQuietLog, giveUpAfter: storeGiveUpAfter}
}

// storeBackoff tracks the failures in a row of one loop. It is not safe
// for concurrent use; each loop owns one.
type storeBackoff struct {
	policy backoffPolicy
	// failures counts the failed calls in a row; permanent counts the
	// trailing ones the store classified as permanent.
	failures, permanent int
	// step is the delay before jitter of the last failure (at least the
	// policy's floor); loggedAt is when
	// the last failure was logged.
	step     time.Duration
	loggedAt time.Time
}

// backoffStep is what a loop does after one failed call.
type backoffStep struct {
	// pause is the jittered wait before the next call: between half the
	// nominal delay and all of it, so workers failed by one outage do not
	// return in step.
	pause time.Duration
	// log is true when this failure is worth a log line: the first one,
	// each one that lengthened the delay, and then at most one per quietLog;
	// never a permanent one of a loop that gives up (the give-up says it).
	log bool
	// giveUp is true when the store reported itself broken too often in a
	// row (never for a loop whose policy does not give up).
	giveUp bool
}

// fail records a failed call of class c at now and returns what to do.
//
// Only ClassPermanent counts towards giving up. ClassTransient is an
// outage, waited out however long it lasts; ClassUnknown (an error no
// classifier recognised) and ClassInvalidData are waited out too, since
// stopping a fleet on an error nobody understood would turn a glitch into
// an outage. Any of them ends a run of permanent errors.
func (b *storeBackoff) fail(now time.Time, c driver.ErrorClass) backoffStep {
	b.failures++
	if c == driver.ClassPermanent {
		b.permanent++
	} else {
		b.permanent = 0
	}
	step := b.policy.max
	if shift := b.failures - 1; shift < 32 {
		if d := b.policy.base << shift; d > 0 && d < step {
			step = d
		}
	}
	said := max(step, b.policy.floor)
	log := b.failures == 1 || said > b.step || now.Sub(b.loggedAt) >= b.policy.quietLog
	b.step = said
	if c == driver.ClassPermanent && b.policy.giveUpAfter > 0 {
		// The give-up reports it within seconds, once, through the loop's
		// caller; a line per try before that would say it several times.
		log = false
	}
	if log {
		b.loggedAt = now
	}
	return backoffStep{
		pause:  step/2 + rand.N(step/2+1),
		log:    log,
		giveUp: b.policy.giveUpAfter > 0 && b.permanent >= b.policy.giveUpAfter,
	}
}

// succeed records a call that succeeded and returns how many failed in a
// row before it (0 when none did: nothing to report).
func (b *storeBackoff) succeed() int {
	n := b.failures
	b.failures, b.permanent, b.step = 0, 0, 0
	return n
}
