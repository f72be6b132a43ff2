package queuestype

import (
	"fmt"
	"math"
	"time"
)

// DefaultQueue is the queue used when none is given.
const DefaultQueue = "default"

// Priority bounds. Higher priority is claimed first.
const (
	MinPriority = -1000
	MaxPriority = 1000
)

// RetryBackoff computes the delay before a retry: min(InitialDelay ×
// Multiplier^n, MaxDelay) with n the attempts consumed. The zero value retries
// at once.
type RetryBackoff struct {
	InitialDelay time.Duration
	Multiplier   float64       // 0 → 1 (fixed delay); else ≥ 1
	MaxDelay     time.Duration // 0 = uncapped; else ≥ InitialDelay
}

// IsZero reports whether b retries at once.
func (b RetryBackoff) IsZero() bool { return b.InitialDelay == 0 }

// Validate checks the fields; field names the option in the error.
func (b RetryBackoff) Validate(field string) error {
	if b.InitialDelay < 0 {
		return configErr(field+".InitialDelay", "must not be negative")
	}
	if b.Multiplier != 0 && (b.Multiplier < 1 || math.IsNaN(b.Multiplier) || math.IsInf(b.Multiplier, 0)) {
		return configErr(field+".Multiplier", "must be 0 or at least 1, got %v", b.Multiplier)
	}
	if b.MaxDelay != 0 && b.MaxDelay < b.InitialDelay {
		return configErr(field+".MaxDelay", "must be 0 (uncapped) or at least InitialDelay")
	}
	return nil
}

// Delay returns the delay after n consumed attempts.
func (b RetryBackoff) Delay(n int) time.Duration {
	if b.InitialDelay <= 0 {
		return 0
	}
	m := b.Multiplier
	if m == 0 {
		m = 1
	}
	if n < 0 {
		n = 0
	}
	d := float64(b.InitialDelay) * math.Pow(m, float64(n))
	if b.MaxDelay > 0 && d > float64(b.MaxDelay) {
		return b.MaxDelay
	}
	if d > float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// Metadata is the persisted form: seconds as JSON numbers, max_delay null when uncapped.
func (b RetryBackoff) Metadata() map[string]any {
	m := b.Multiplier
	if m == 0 {
		m = 1
	}
	var maxDelay any
	if b.MaxDelay > 0 {
		maxDelay = b.MaxDelay.Seconds()
	}
	return map[string]any{"initial_delay": b.InitialDelay.Seconds(), "multiplier": m, "max_delay": maxDelay}
}

// BackoffFromMetadata reads the persisted metadata.retry_backoff; absent or
// malformed yields the zero backoff (retry at once).
func BackoffFromMetadata(md map[string]any) RetryBackoff {
	raw, ok := md[MetaRetryBackoff].(map[string]any)
	if !ok {
		return RetryBackoff{}
	}
	var b RetryBackoff
	if v, ok := metaFloat(raw, "initial_delay"); ok && v > 0 {
		b.InitialDelay = SecondsToDuration(v)
	}
	if v, ok := metaFloat(raw, "multiplier"); ok && v >= 1 {
		b.Multiplier = v
	}
	if v, ok := metaFloat(raw, "max_delay"); ok && v > 0 {
		b.MaxDelay = SecondsToDuration(v)
	}
	return b
}

// SecondsToDuration converts persisted seconds to a duration, saturating;
// zero, negative and NaN give 0.
func SecondsToDuration(s float64) time.Duration {
	if s <= 0 || math.IsNaN(s) {
		return 0
	}
	if s > float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// DefaultNamespace prefixes every table, key and channel a store creates
// when no namespace is configured.
const DefaultNamespace = "queues"

// ExecutionLocal is the execution backend that runs attempts in a worker's
// goroutines; a record enqueued without one is routed there.
const ExecutionLocal = "local"

// UniqueForever is the metadata value of unique_until for a key that stays
// reserved after its record is gone.
const UniqueForever = "forever"
