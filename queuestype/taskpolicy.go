package queuestype

import (
	"encoding/json"
	"strings"
	"time"
)

// Policy is what a record's task decided at enqueue about how its attempts
// run and end: timeout, backoff, crash and shutdown behaviour, logging and
// the context it carries. It is typed record data that only the engine
// writes: a caller's metadata can neither read nor change it. Stores keep it
// as one opaque JSON value (MarshalJSON) and never interpret it.
type Policy struct {
	// Timeout bounds one attempt (middleware and body); 0 = none.
	Timeout time.Duration
	// RetryBackoff is the delay before each retry.
	RetryBackoff RetryBackoff
	// NoStaleRequeue makes stale recovery fail the record instead of
	// requeueing it (and hand it to the task's stale-failure handler).
	NoStaleRequeue bool
	// RequeueOnShutdown overrides the worker's shutdown behaviour when set.
	RequeueOnShutdown *bool
	// LogLevel is the level of the task's success log ("debug", "info",
	// "warning", "error", "critical"; "" = info).
	LogLevel string
	// LogSuccess logs each completed attempt.
	LogSuccess bool
	// Description is the task's human description.
	Description string
	// CorrelationID ties the record to the request that enqueued it.
	CorrelationID string
	// UniqueBy, UniqueVersion and UniqueUntil describe how the record's key
	// was derived ("task" or "arguments", the key format version such as
	// "v1") and how long it holds it ("terminal" or UniqueForever).
	UniqueBy      string
	UniqueVersion string
	UniqueUntil   string
	// Schedule is the schedule the record is an occurrence of (zero for an
	// unscheduled record).
	Schedule ScheduleSpec
}

// IsZero reports whether p holds no setting.
func (p Policy) IsZero() bool {
	return p.Timeout == 0 && p.RetryBackoff == (RetryBackoff{}) && !p.NoStaleRequeue && p.RequeueOnShutdown == nil &&
		p.LogLevel == "" && !p.LogSuccess && p.Description == "" && p.CorrelationID == "" &&
		p.UniqueBy == "" && p.UniqueVersion == "" && p.UniqueUntil == "" && p.Schedule.IsZero()
}

// Forever reports whether the record's key outlives it (UniqueUntil forever).
func (p Policy) Forever() bool { return p.UniqueUntil == UniqueForever }

// policyJSON is the stored and wire form: durations in seconds, unset
// fields left out.
type policyJSON struct {
	Timeout           float64       `json:"timeout,omitempty"`
	RetryBackoff      *backoffJSON  `json:"retry_backoff,omitempty"`
	NoStaleRequeue    bool          `json:"no_stale_requeue,omitempty"`
	RequeueOnShutdown *bool         `json:"requeue_on_shutdown,omitempty"`
	LogLevel          string        `json:"log_level,omitempty"`
	LogSuccess        bool          `json:"log_success,omitempty"`
	Description       string        `json:"description,omitempty"`
	CorrelationID     string        `json:"correlation_id,omitempty"`
	UniqueBy          string        `json:"unique_by,omitempty"`
	UniqueVersion     string        `json:"unique_version,omitempty"`
	UniqueUntil       string        `json:"unique_until,omitempty"`
	Schedule          *scheduleJSON `json:"schedule,omitempty"`
}

type backoffJSON struct {
	InitialDelay float64 `json:"initial_delay"`
	Multiplier   float64 `json:"multiplier,omitempty"`
	MaxDelay     float64 `json:"max_delay,omitempty"`
}

// MarshalJSON encodes the stored form: {"timeout": 1.5, "retry_backoff":
// {"initial_delay": 1, "multiplier": 2, "max_delay": 60}, ...}; the zero
// policy is {}.
func (p Policy) MarshalJSON() ([]byte, error) {
	j := policyJSON{
		Timeout: p.Timeout.Seconds(), NoStaleRequeue: p.NoStaleRequeue, RequeueOnShutdown: p.RequeueOnShutdown,
		LogLevel: p.LogLevel, LogSuccess: p.LogSuccess, Description: p.Description, CorrelationID: p.CorrelationID,
		UniqueBy: p.UniqueBy, UniqueVersion: p.UniqueVersion, UniqueUntil: p.UniqueUntil,
		Schedule: p.Schedule.toJSON(),
	}
	if b := p.RetryBackoff; b != (RetryBackoff{}) {
		j.RetryBackoff = &backoffJSON{InitialDelay: b.InitialDelay.Seconds(), Multiplier: b.Multiplier, MaxDelay: b.MaxDelay.Seconds()}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the stored form; "" and null read as the zero policy.
func (p *Policy) UnmarshalJSON(b []byte) error {
	*p = Policy{}
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	var j policyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*p = Policy{
		Timeout: SecondsToDuration(j.Timeout), NoStaleRequeue: j.NoStaleRequeue, RequeueOnShutdown: j.RequeueOnShutdown,
		LogLevel: j.LogLevel, LogSuccess: j.LogSuccess, Description: j.Description, CorrelationID: j.CorrelationID,
		UniqueBy: j.UniqueBy, UniqueVersion: j.UniqueVersion, UniqueUntil: j.UniqueUntil,
		Schedule: j.Schedule.spec(),
	}
	if r := j.RetryBackoff; r != nil {
		p.RetryBackoff = RetryBackoff{InitialDelay: SecondsToDuration(r.InitialDelay), Multiplier: r.Multiplier, MaxDelay: SecondsToDuration(r.MaxDelay)}
	}
	return nil
}

// EncodePolicy is the text a store keeps for p ("{}" for the zero policy).
func EncodePolicy(p Policy) string {
	b, _ := p.MarshalJSON() // cannot fail: plain values only
	return string(b)
}

// DecodePolicy reads what EncodePolicy wrote; "" reads as the zero policy.
func DecodePolicy(s string) (Policy, error) {
	var p Policy
	err := p.UnmarshalJSON([]byte(s))
	return p, err
}

// PolicyFromMetadata reads the policy keys an earlier schema kept in a
// record's metadata (timeout, retry_backoff, requeue_on_stale,
// requeue_on_shutdown, log_level, log_success, description,
// _correlation_id, unique_by, unique_version, unique_until). Store
// migrations use it, with LegacyMetadataKeys, to move them into the typed
// policy.
func PolicyFromMetadata(md map[string]any) Policy {
	var p Policy
	if v, ok := md[MetaTimeout].(float64); ok && v > 0 {
		p.Timeout = SecondsToDuration(v)
	}
	p.RetryBackoff = BackoffFromMetadata(md)
	if v, ok := md[MetaRequeueOnStale].(bool); ok && !v {
		p.NoStaleRequeue = true
	}
	if v, ok := md[MetaRequeueOnShutdown].(bool); ok {
		p.RequeueOnShutdown = &v
	}
	p.LogLevel, _ = md[MetaLogLevel].(string)
	p.LogSuccess, _ = md[MetaLogSuccess].(bool)
	p.Description, _ = md[MetaDescription].(string)
	p.CorrelationID, _ = md[MetaCorrelationID].(string)
	p.UniqueBy, _ = md[MetaUniqueBy].(string)
	p.UniqueVersion, _ = md[MetaUniqueVersion].(string)
	p.UniqueUntil, _ = md[MetaUniqueUntil].(string)
	return p
}

// LegacyMetadataKeys are the metadata keys an earlier schema used for
// policy and counters; a migration removes them from metadata once
// PolicyFromMetadata and the interruptions counter hold their values.
var LegacyMetadataKeys = []string{MetaTimeout, MetaRetryBackoff, MetaRequeueOnStale, MetaRequeueOnShutdown,
	MetaLogLevel, MetaLogSuccess, MetaDescription, MetaCorrelationID, MetaUniqueBy, MetaUniqueVersion,
	MetaUniqueUntil, MetaInterruptions}

// IsReservedMetadataKey reports whether key belongs to the system and is
// refused in a caller's metadata: every policy and counter key an earlier
// schema kept there, the keys the engine writes itself (progress_detail,
// schedule), and any key starting with "_".
func IsReservedMetadataKey(key string) bool {
	if strings.HasPrefix(key, "_") || key == MetaProgressDetail || key == "schedule" {
		return true
	}
	for _, k := range LegacyMetadataKeys {
		if k == key {
			return true
		}
	}
	return false
}
