package queues

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/queuestype"
)

// DefaultQueue is the queue used when none is given.
const DefaultQueue = queuestype.DefaultQueue

// Priority bounds. Higher priority is claimed first.
const (
	MinPriority = queuestype.MinPriority
	MaxPriority = queuestype.MaxPriority
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
	UniqueUntilTerminal UniqueUntil = "terminal"               // until the holding record is terminal (the default)
	UniqueUntilForever  UniqueUntil = queuestype.UniqueForever // until ResetIdentity, even after deletion
)

// RetryBackoff computes the delay before a retry: min(InitialDelay ×
// Multiplier^n, MaxDelay) with n the attempts consumed. The zero value retries
// at once.
type RetryBackoff = queuestype.RetryBackoff

// FixedBackoff retries after the same delay every time.
func FixedBackoff(d time.Duration) RetryBackoff { return RetryBackoff{InitialDelay: d, Multiplier: 1} }

// ExponentialBackoff doubles the delay from initial up to max.
func ExponentialBackoff(initial, max time.Duration) RetryBackoff {
	return RetryBackoff{InitialDelay: initial, Multiplier: 2, MaxDelay: max}
}

// TaskOptions are a task's defaults, given at registration. Every field's zero
// value means "use the default".
type TaskOptions struct {
	Queue        string       // "" → "default"
	Priority     int          // −1000..1000; higher runs first
	Retries      int          // retries allowed after the first attempt
	RetryBackoff RetryBackoff // delay between retries
	// RetryDelay, when set, decides the delay before each retry from the
	// failure (attempt is the failure's number among the attempts that
	// spent retry budget, 1 for the first), instead of RetryBackoff. A
	// RetryAfter the handler returned overrides both.
	RetryDelay func(attempt int, err error) time.Duration
	// MaxSnoozes caps how many times a record may be snoozed (0 → 100);
	// past it, Snooze fails the attempt as an ordinary failure.
	MaxSnoozes int
	Timeout    time.Duration // 0 = none; bounds middleware and body together
	// ExecutionBackend routes records: "" → Config.ExecutionBackend.
	ExecutionBackend string
	ExecutionProfile string
	Key              string      // fixed identity key
	UniqueBy         UniqueBy    // derive the identity key from the task or its arguments
	UniqueUntil      UniqueUntil // "" = terminal
	// UniqueFor holds the key for this long from a record's enqueue, in
	// whatever status the record is: a second enqueue within it returns the
	// first record (Deduplicated), even once that one completed; after it a
	// new record takes the key. 0 = no period. Needs Key or UniqueBy; not
	// with UniqueUntil forever or a Schedule.
	UniqueFor time.Duration
	// UniqueWhile holds the key only while its record is in one of these
	// statuses (e.g. pending, scheduled): a record in another status gives
	// the key up to a new record. Empty = every non-terminal status, or
	// every status with UniqueFor. With UniqueFor, the key is held while
	// both say so. Needs Key or UniqueBy; not with UniqueUntil forever or a
	// Schedule.
	UniqueWhile []Status
	RunAfter    time.Duration // default delay before a record is due
	ExpiresIn   time.Duration // not-started deadline, from the due time
	Description string
	LogLevel    string // level of the success log line: debug, info, warning, error, critical
	LogSuccess  *bool
	// NoStaleRequeue fails (rather than requeues) records whose heartbeat went stale.
	NoStaleRequeue    bool
	RequeueOnShutdown *bool
	// OnStaleFailure is called after stale recovery failed a record of this task.
	OnStaleFailure func(ctx context.Context, rec *Record)
	// Middleware wraps this task's attempts, inside Config.Middleware.
	Middleware []Middleware
	// Tags are stored on every record of the task, with the enqueue's own
	// (EnqueueOptions.Tags), and filter ListTasks (TaskFilter.Tag): at most
	// 16 tags of 1..64 characters of A-Z a-z 0-9 . _ : - (Limits).
	Tags []string
	// Schedule makes the task recurring (see Schedule); nil = not scheduled.
	Schedule *Schedule
	// Schedules are more schedules of the task, each with its own Name
	// (distinct from each other and from Schedule's) and arguments.
	Schedules []Schedule
	// Retention overrides Config.Maintenance's terminal retention for this
	// task's records; nil = the fleet's.
	Retention *Retention
}

// Retention is how long a task's terminal records of each status are
// kept after they ended (completed_at), before maintenance deletes them.
// A zero field means the fleet's retention for that status
// (Config.Maintenance); a negative one keeps that status forever. The
// maintenance run applies it only when the running process's registry
// has the task: a run in a process that does not register the task
// applies the fleet's retention to its records.
type Retention struct {
	Completed time.Duration
	Cancelled time.Duration
	Failed    time.Duration
	Expired   time.Duration
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
	if err := validateKeyRule(o.UniqueFor, o.UniqueWhile); err != nil {
		return err
	}
	// Tags over the hard limits would fail every enqueue of the task: say
	// so at registration.
	hard := queuestype.DefaultLimits()
	if err := queuestype.CheckTags("Tags", queuestype.NormalizeTags(o.Tags), hard.MaxTags, hard.TagBytes); err != nil {
		return err
	}
	if o.UniqueFor != 0 || len(o.UniqueWhile) > 0 {
		switch {
		case o.Key == "" && o.UniqueBy == UniqueByNone:
			return configErr("UniqueFor", "a period or states need Key or UniqueBy")
		case o.UniqueUntil == UniqueUntilForever:
			return configErr("UniqueFor", "a forever key takes no period or states (it is held until ResetIdentity)")
		case o.Schedule != nil || len(o.Schedules) > 0:
			return configErr("UniqueFor", "cannot be combined with Schedule (occurrences hold their key until they end)")
		}
	}
	if err := validatePriority(o.Priority); err != nil {
		return err
	}
	if o.Retries < 0 {
		return configErr("Retries", "must not be negative")
	}
	if o.MaxSnoozes < 0 {
		return configErr("MaxSnoozes", "must not be negative")
	}
	if err := o.checkHardLimits(); err != nil {
		return err
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
	return o.RetryBackoff.Validate("RetryBackoff")
}

// validatePriority refuses a priority outside MinPriority..MaxPriority
// with the *LimitError every store would answer.
// checkHardLimits refuses at registration a default that every enqueue
// would refuse: one over the limits every store enforces. (A service's
// Config.Limits may be tighter; its enqueues check those.)
func (o *TaskOptions) checkHardLimits() error {
	l := queuestype.DefaultLimits()
	if o.Queue != "" {
		if err := queuestype.CheckCharsetName("queue", o.Queue, l.QueueNameBytes); err != nil {
			return err
		}
	}
	for field, name := range map[string]string{"execution_backend": o.ExecutionBackend, "execution_profile": o.ExecutionProfile} {
		if name != "" {
			if err := queuestype.CheckCharsetName(field, name, l.ExecutionNameBytes); err != nil {
				return err
			}
		}
	}
	if o.Key != "" {
		if err := queuestype.CheckText("key", o.Key, l.KeyBytes); err != nil {
			return err
		}
	}
	if err := queuestype.CheckRange("max_retries", o.Retries, 0, l.MaxRetries); err != nil {
		return err
	}
	return queuestype.CheckDuration("timeout", o.Timeout, l.MaxTimeout)
}

func validatePriority(p int) error {
	return queuestype.CheckRange("priority", p, MinPriority, MaxPriority)
}

// EnqueueOptions override a task's defaults for one enqueue. Zero values mean
// "use the task's default".
type EnqueueOptions struct {
	ID          uuid.UUID     // caller-chosen record ID
	ScheduledAt time.Time     // explicit due time
	RunAfter    time.Duration // due = now + RunAfter
	ExpiresAt   time.Time     // absolute not-started deadline
	ExpiresIn   time.Duration // deadline relative to the due time
	Key         string        // identity key (terminal lifetime unless the task says forever)
	// UniqueFor and UniqueWhile override the task's key period and states
	// for this enqueue (see TaskOptions); they need a key.
	UniqueFor        time.Duration
	UniqueWhile      []Status
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
	// Tags are added to the task's tags (TaskOptions.Tags); duplicates are
	// dropped and the record keeps them sorted.
	Tags []string
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
	if o.UniqueFor == 0 {
		o.UniqueFor = base.UniqueFor
	}
	if o.UniqueWhile == nil {
		o.UniqueWhile = base.UniqueWhile
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
	if len(base.Tags) > 0 {
		o.Tags = append(append([]string(nil), base.Tags...), o.Tags...)
	}
	if len(base.Metadata) > 0 {
		md := queuestype.CloneMetadata(base.Metadata)
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
	if err := validateKeyRule(o.UniqueFor, o.UniqueWhile); err != nil {
		return err
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
		if queuestype.IsReservedMetadataKey(k) {
			return configErr("Metadata", "key %q is reserved for the system (task policy is set through TaskOptions and EnqueueOptions; keys starting with _ are reserved too)", k)
		}
	}
	return nil
}

// validateKeyRule checks a key period and state set: the period is zero or
// at least a millisecond (stores keep times to the microsecond; a shorter
// period would mean nothing), and the states are known statuses.
func validateKeyRule(period time.Duration, states []Status) error {
	if period < 0 {
		return configErr("UniqueFor", "must not be negative")
	}
	if period > 0 && period < time.Millisecond {
		return configErr("UniqueFor", "must be at least 1ms")
	}
	for _, st := range states {
		if !st.IsValid() {
			return configErr("UniqueWhile", "unknown status %q", st)
		}
	}
	return nil
}
