package queues

import (
	"context"
	"math"
	"time"

	"github.com/google/uuid"
)

// DefaultQueue is the queue used when none is given.
const DefaultQueue = "default"

// Priority bounds. Higher priority is claimed first.
const (
	MinPriority = -1000
	MaxPriority = 1000
)

// UniqueBy selects how a task's identity key is derived when no explicit Key is given.
type UniqueBy string

// Identity modes.
const (
	UniqueByNone      UniqueBy = ""
	UniqueByTask      UniqueBy = "task"      // one active record per task name
	UniqueByArguments UniqueBy = "arguments" // one active record per task name and canonical arguments
)

// UniqueUntil selects how long an identity key blocks new enqueues.
type UniqueUntil string

// Identity lifetimes.
const (
	UniqueUntilTerminal UniqueUntil = "terminal" // until the holding record is terminal (the default)
	UniqueUntilForever  UniqueUntil = "forever"  // until ResetIdentity, even after deletion
)

// RetryBackoff computes the delay before a retry: min(InitialDelay ×
// Multiplier^n, MaxDelay) with n the attempts consumed. The zero value retries
// at once.
type RetryBackoff struct {
	InitialDelay time.Duration
	Multiplier   float64       // 0 → 1 (fixed delay); else ≥ 1
	MaxDelay     time.Duration // 0 = uncapped; else ≥ InitialDelay
}

// FixedBackoff retries after the same delay every time.
func FixedBackoff(d time.Duration) RetryBackoff { return RetryBackoff{InitialDelay: d, Multiplier: 1} }

// ExponentialBackoff doubles the delay from initial up to max.
func ExponentialBackoff(initial, max time.Duration) RetryBackoff {
	return RetryBackoff{InitialDelay: initial, Multiplier: 2, MaxDelay: max}
}

// IsZero reports whether b retries at once.
func (b RetryBackoff) IsZero() bool { return b.InitialDelay == 0 }

func (b RetryBackoff) validate(field string) error {
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

// metadata form: seconds as JSON numbers, max_delay null when uncapped.
func (b RetryBackoff) metadata() map[string]any {
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
		b.InitialDelay = secondsToDuration(v)
	}
	if v, ok := metaFloat(raw, "multiplier"); ok && v >= 1 {
		b.Multiplier = v
	}
	if v, ok := metaFloat(raw, "max_delay"); ok && v > 0 {
		b.MaxDelay = secondsToDuration(v)
	}
	return b
}

func secondsToDuration(s float64) time.Duration {
	if s <= 0 || math.IsNaN(s) {
		return 0
	}
	if s > float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

// TaskOptions are a task's defaults, given at registration. Every field's zero
// value means "use the default".
type TaskOptions struct {
	Queue        string        // "" → "default"
	Priority     int           // −1000..1000; higher runs first
	Retries      int           // retries allowed after the first attempt
	RetryBackoff RetryBackoff  // delay between retries
	Timeout      time.Duration // 0 = none; bounds middleware and body together
	// ExecutionBackend routes records: "" → Config.ExecutionBackend.
	ExecutionBackend string
	ExecutionProfile string
	Key              string        // fixed identity key
	UniqueBy         UniqueBy      // derive the identity key from the task or its arguments
	UniqueUntil      UniqueUntil   // "" = terminal
	RunAfter         time.Duration // default delay before a record is due
	ExpiresIn        time.Duration // not-started deadline, from the due time
	Description      string
	LogLevel         string // level of the success log line: debug, info, warning, error, critical
	LogSuccess       *bool
	// NoStaleRequeue fails (rather than requeues) records whose heartbeat went stale.
	NoStaleRequeue    bool
	RequeueOnShutdown *bool
	// OnStaleFailure is called after stale recovery failed a record of this task.
	OnStaleFailure func(ctx context.Context, rec *Record)
	// Middleware wraps this task's attempts, inside Config.Middleware.
	Middleware []Middleware
}

var logLevels = map[string]bool{"debug": true, "info": true, "warning": true, "error": true, "critical": true}

func (o *TaskOptions) validate() error {
	if o.Key != "" && o.UniqueBy != UniqueByNone {
		return configErr("Key", "cannot be combined with UniqueBy")
	}
	switch o.UniqueBy {
	case UniqueByNone, UniqueByTask, UniqueByArguments:
	default:
		return configErr("UniqueBy", "unknown mode %q", o.UniqueBy)
	}
	switch o.UniqueUntil {
	case "", UniqueUntilTerminal:
	case UniqueUntilForever:
		if o.Key == "" && o.UniqueBy == UniqueByNone {
			return configErr("UniqueUntil", "forever needs Key or UniqueBy")
		}
	default:
		return configErr("UniqueUntil", "unknown lifetime %q", o.UniqueUntil)
	}
	if err := validatePriority(o.Priority); err != nil {
		return err
	}
	if o.Retries < 0 {
		return configErr("Retries", "must not be negative")
	}
	if o.Timeout < 0 {
		return configErr("Timeout", "must not be negative")
	}
	if o.RunAfter < 0 {
		return configErr("RunAfter", "must not be negative")
	}
	if o.ExpiresIn < 0 {
		return configErr("ExpiresIn", "must not be negative")
	}
	if o.LogLevel != "" && !logLevels[o.LogLevel] {
		return configErr("LogLevel", "unknown level %q", o.LogLevel)
	}
	return o.RetryBackoff.validate("RetryBackoff")
}

func validatePriority(p int) error {
	if p < MinPriority || p > MaxPriority {
		return configErr("Priority", "%d is outside %d..%d", p, MinPriority, MaxPriority)
	}
	return nil
}

// EnqueueOptions override a task's defaults for one enqueue. Zero values mean
// "use the task's default".
type EnqueueOptions struct {
	ID               uuid.UUID     // caller-chosen record ID
	ScheduledAt      time.Time     // explicit due time
	RunAfter         time.Duration // due = now + RunAfter
	ExpiresAt        time.Time     // absolute not-started deadline
	ExpiresIn        time.Duration // deadline relative to the due time
	Key              string        // identity key (terminal lifetime unless the task says forever)
	Queue            string
	Priority         *int
	Retries          *int
	Timeout          time.Duration // persisted as metadata.timeout
	ExecutionBackend string
	ExecutionProfile string
	Description      string
	LogLevel         string
	LogSuccess       *bool
	RequeueOnStale   *bool
	Metadata         map[string]any
}

// Ptr returns a pointer to v, for the pointer-valued options.
func Ptr[T any](v T) *T { return &v }

// merge returns o with every zero field filled from base (o wins).
func (o EnqueueOptions) merge(base EnqueueOptions) EnqueueOptions {
	if o.ID == uuid.Nil {
		o.ID = base.ID
	}
	if o.ScheduledAt.IsZero() {
		o.ScheduledAt = base.ScheduledAt
	}
	if o.RunAfter == 0 {
		o.RunAfter = base.RunAfter
	}
	if o.ExpiresAt.IsZero() {
		o.ExpiresAt = base.ExpiresAt
	}
	if o.ExpiresIn == 0 {
		o.ExpiresIn = base.ExpiresIn
	}
	if o.Key == "" {
		o.Key = base.Key
	}
	if o.Queue == "" {
		o.Queue = base.Queue
	}
	if o.Priority == nil {
		o.Priority = base.Priority
	}
	if o.Retries == nil {
		o.Retries = base.Retries
	}
	if o.Timeout == 0 {
		o.Timeout = base.Timeout
	}
	if o.ExecutionBackend == "" {
		o.ExecutionBackend = base.ExecutionBackend
	}
	if o.ExecutionProfile == "" {
		o.ExecutionProfile = base.ExecutionProfile
	}
	if o.Description == "" {
		o.Description = base.Description
	}
	if o.LogLevel == "" {
		o.LogLevel = base.LogLevel
	}
	if o.LogSuccess == nil {
		o.LogSuccess = base.LogSuccess
	}
	if o.RequeueOnStale == nil {
		o.RequeueOnStale = base.RequeueOnStale
	}
	if len(base.Metadata) > 0 {
		md := CloneMetadata(base.Metadata)
		for k, v := range o.Metadata {
			md[k] = v
		}
		o.Metadata = md
	}
	return o
}

func (o *EnqueueOptions) validate() error {
	if !o.ExpiresAt.IsZero() && o.ExpiresIn != 0 {
		return configErr("ExpiresAt", "cannot be combined with ExpiresIn")
	}
	if o.RunAfter < 0 {
		return configErr("RunAfter", "must not be negative")
	}
	if o.ExpiresIn < 0 {
		return configErr("ExpiresIn", "must not be negative")
	}
	if o.Timeout < 0 {
		return configErr("Timeout", "must not be negative")
	}
	if o.Priority != nil {
		if err := validatePriority(*o.Priority); err != nil {
			return err
		}
	}
	if o.Retries != nil && *o.Retries < 0 {
		return configErr("Retries", "must not be negative")
	}
	if o.LogLevel != "" && !logLevels[o.LogLevel] {
		return configErr("LogLevel", "unknown level %q", o.LogLevel)
	}
	for k := range o.Metadata {
		if len(k) > 0 && k[0] == '_' {
			return configErr("Metadata", "key %q is reserved (keys starting with _ belong to the system)", k)
		}
	}
	return nil
}
