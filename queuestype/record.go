package queuestype

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Status is the life-cycle state of a task record.
type Status string

// The seven record statuses. Completed, Failed, Cancelled and Expired are terminal.
const (
	StatusPending   Status = "pending"
	StatusScheduled Status = "scheduled"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	StatusExpired   Status = "expired"
)

// AllStatuses lists every status in life-cycle order.
var AllStatuses = []Status{StatusPending, StatusScheduled, StatusRunning, StatusCompleted, StatusFailed, StatusCancelled, StatusExpired}

// IsTerminal reports whether no further transition (other than deletion) can happen.
func (s Status) IsTerminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCancelled, StatusExpired:
		return true
	}
	return false
}

// IsValid reports whether s is one of the seven statuses.
func (s Status) IsValid() bool {
	for _, v := range AllStatuses {
		if v == s {
			return true
		}
	}
	return false
}

// Record is the durable task record kept by a queue backend. Nullable strings
// use "" for null and nullable times use the zero time.Time; the JSON form
// writes null for both (see MarshalJSON).
type Record struct {
	ID               uuid.UUID
	TaskName         string
	Args             json.RawMessage
	Queue            string
	ExecutionBackend string
	ExecutionProfile string
	ExecutionRef     string
	WorkerID         string
	Status           Status
	Priority         int
	MaxRetries       int
	// RetryCount is the generation: +1 on every retry, stale requeue and
	// shutdown interruption. Every write after a claim is fenced on it.
	RetryCount  int
	ScheduledAt time.Time
	ExpiresAt   time.Time
	CreatedAt   time.Time
	QueuedAt    time.Time
	StartedAt   time.Time
	CompletedAt time.Time
	HeartbeatAt time.Time
	Result      json.RawMessage
	Error       string
	Key         string
	Metadata    map[string]any
	// Policy is the task policy fixed at enqueue (timeout, backoff, stale
	// and shutdown behaviour, logging, correlation); only the engine reads it.
	Policy Policy
	// Interruptions counts shutdown interruptions: generations that ended
	// without spending retry budget.
	Interruptions int
	// DispatchUntil, when set, is the deadline of an external dispatch in
	// progress: the record is reserved for a transport and is neither
	// claimed, expired nor listed as due until the reservation is finalized
	// or released (a reconcile releases it once the deadline passes).
	DispatchUntil time.Time
	// SnoozeCount counts snoozes: generations a handler ended with
	// Snooze, which spend no retry budget.
	SnoozeCount int
	// Errors is the error history: one entry per failed attempt, oldest
	// first, bounded (see AppendAttemptError). Error stays the last error.
	Errors []AttemptError
	// Tags are the record's tags, sorted without duplicates (see
	// NormalizeTags); ListTasks filters on one.
	Tags []string
}

// IsTerminal reports whether the record is completed, failed, cancelled or expired.
func (r *Record) IsTerminal() bool { return r.Status.IsTerminal() }

// IsDue reports whether the record may be claimed at now (no due time or due time reached).
func (r *Record) IsDue(now time.Time) bool {
	return r.ScheduledAt.IsZero() || !r.ScheduledAt.After(now)
}

// IsExpired reports whether the record's not-started deadline has passed at now.
func (r *Record) IsExpired(now time.Time) bool {
	return !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(now)
}

// AttemptsConsumed is retry_count minus shutdown interruptions and snoozes:
// the number of attempts that spent retry budget before the current one.
func (r *Record) AttemptsConsumed() int {
	n := r.RetryCount - r.Interruptions - r.SnoozeCount
	if n < 0 {
		return 0
	}
	return n
}

// Attempt is the 1-based attempt number of the current generation.
func (r *Record) Attempt() int { return r.RetryCount + 1 }

// Clone returns a deep copy, so callers may keep or modify it freely.
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	c := *r
	c.Args = cloneBytes(r.Args)
	c.Result = cloneBytes(r.Result)
	c.Metadata = CloneMetadata(r.Metadata)
	c.Errors = CloneAttemptErrors(r.Errors)
	c.Tags = slices.Clone(r.Tags)
	if p := r.Policy.RequeueOnShutdown; p != nil {
		v := *p
		c.Policy.RequeueOnShutdown = &v
	}
	return &c
}

func cloneBytes(b json.RawMessage) json.RawMessage {
	if b == nil {
		return nil
	}
	return append(json.RawMessage(nil), b...)
}

// CloneMetadata deep-copies a metadata object through JSON-compatible values.
func CloneMetadata(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return CloneMetadata(t)
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = cloneValue(x)
		}
		return c
	case json.RawMessage:
		return cloneBytes(t)
	}
	return v
}

// NormalizeMetadata returns a copy of m holding only the values a JSON round
// trip produces (string, float64, bool, nil, map[string]any, []any). Backends
// store metadata through it so a record reads back the same from every store.
func NormalizeMetadata(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = normalizeValue(v)
	}
	return out
}

func normalizeValue(v any) any {
	switch t := v.(type) {
	case nil, string, bool, float64:
		return v
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case int32:
		return float64(t)
	case float32:
		return float64(t)
	case json.Number:
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case map[string]any:
		return NormalizeMetadata(t)
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = normalizeValue(x)
		}
		return c
	case json.RawMessage:
		var out any
		if err := json.Unmarshal(t, &out); err != nil {
			return string(t)
		}
		return out
	}
	// Anything else (structs, typed maps, other numbers) goes through JSON.
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return string(raw)
	}
	return out
}

// metaFloat reads a numeric metadata key.
func metaFloat(m map[string]any, key string) (float64, bool) {
	switch v := m[key].(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	}
	return 0, false
}

// Metadata keys the system owns. Earlier schemas kept the task policy and
// the interruption counter under these keys; migrations move them into
// Policy and Interruptions, and enqueue refuses them in a caller's metadata.
const (
	MetaDescription       = "description"
	MetaLogLevel          = "log_level"
	MetaLogSuccess        = "log_success"
	MetaRequeueOnStale    = "requeue_on_stale"
	MetaRequeueOnShutdown = "requeue_on_shutdown"
	MetaRetryBackoff      = "retry_backoff"
	MetaTimeout           = "timeout"
	MetaUniqueBy          = "unique_by"
	MetaUniqueVersion     = "unique_version"
	MetaUniqueUntil       = "unique_until"
	MetaInterruptions     = "interruptions"
	MetaProgressDetail    = "progress_detail"
	MetaCorrelationID     = "_correlation_id"
)

// recordJSON is the wire form of a Record: exactly these keys, nulls kept.
type recordJSON struct {
	ID               uuid.UUID       `json:"id"`
	TaskName         string          `json:"task_name"`
	Args             json.RawMessage `json:"args"`
	Queue            string          `json:"queue"`
	ExecutionBackend string          `json:"execution_backend"`
	ExecutionProfile *string         `json:"execution_profile"`
	ExecutionRef     *string         `json:"execution_ref"`
	WorkerID         *string         `json:"worker_id"`
	Status           Status          `json:"status"`
	Priority         int             `json:"priority"`
	MaxRetries       int             `json:"max_retries"`
	RetryCount       int             `json:"retry_count"`
	ScheduledAt      *time.Time      `json:"scheduled_at"`
	ExpiresAt        *time.Time      `json:"expires_at"`
	CreatedAt        time.Time       `json:"created_at"`
	QueuedAt         time.Time       `json:"queued_at"`
	StartedAt        *time.Time      `json:"started_at"`
	CompletedAt      *time.Time      `json:"completed_at"`
	HeartbeatAt      *time.Time      `json:"heartbeat_at"`
	Result           json.RawMessage `json:"result"`
	Error            *string         `json:"error"`
	Key              *string         `json:"key"`
	Metadata         map[string]any  `json:"metadata"`
	Policy           Policy          `json:"policy"`
	Interruptions    int             `json:"interruptions"`
	DispatchUntil    *time.Time      `json:"dispatch_until"`
	SnoozeCount      int             `json:"snooze_count"`
	Errors           []AttemptError  `json:"errors"`
	Tags             []string        `json:"tags"`
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func derefStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefTime(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

func rawOrNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

// MarshalJSON encodes the record with exactly its documented keys; nulls are kept
// and times are RFC 3339 UTC.
func (r Record) MarshalJSON() ([]byte, error) {
	md := r.Metadata
	if md == nil {
		md = map[string]any{}
	}
	errs := r.Errors
	if errs == nil {
		errs = []AttemptError{}
	}
	tags := r.Tags
	if tags == nil {
		tags = []string{}
	}
	return json.Marshal(recordJSON{
		ID: r.ID, TaskName: r.TaskName, Args: rawOrNull(r.Args), Queue: r.Queue,
		ExecutionBackend: r.ExecutionBackend, ExecutionProfile: strPtr(r.ExecutionProfile),
		ExecutionRef: strPtr(r.ExecutionRef), WorkerID: strPtr(r.WorkerID), Status: r.Status,
		Priority: r.Priority, MaxRetries: r.MaxRetries, RetryCount: r.RetryCount,
		ScheduledAt: timePtr(r.ScheduledAt), ExpiresAt: timePtr(r.ExpiresAt),
		CreatedAt: r.CreatedAt.UTC(), QueuedAt: r.QueuedAt.UTC(), StartedAt: timePtr(r.StartedAt),
		CompletedAt: timePtr(r.CompletedAt), HeartbeatAt: timePtr(r.HeartbeatAt),
		Result: rawOrNull(r.Result), Error: strPtr(r.Error), Key: strPtr(r.Key), Metadata: md,
		Policy: r.Policy, Interruptions: r.Interruptions, DispatchUntil: timePtr(r.DispatchUntil),
		SnoozeCount: r.SnoozeCount, Errors: errs, Tags: tags,
	})
}

// UnmarshalJSON decodes the form MarshalJSON writes.
func (r *Record) UnmarshalJSON(b []byte) error {
	var j recordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Record{
		ID: j.ID, TaskName: j.TaskName, Args: nullToNil(j.Args), Queue: j.Queue,
		ExecutionBackend: j.ExecutionBackend, ExecutionProfile: derefStr(j.ExecutionProfile),
		ExecutionRef: derefStr(j.ExecutionRef), WorkerID: derefStr(j.WorkerID), Status: j.Status,
		Priority: j.Priority, MaxRetries: j.MaxRetries, RetryCount: j.RetryCount,
		ScheduledAt: derefTime(j.ScheduledAt), ExpiresAt: derefTime(j.ExpiresAt),
		CreatedAt: j.CreatedAt.UTC(), QueuedAt: j.QueuedAt.UTC(), StartedAt: derefTime(j.StartedAt),
		CompletedAt: derefTime(j.CompletedAt), HeartbeatAt: derefTime(j.HeartbeatAt),
		Result: nullToNil(j.Result), Error: derefStr(j.Error), Key: derefStr(j.Key), Metadata: j.Metadata,
		Policy: j.Policy, Interruptions: j.Interruptions, DispatchUntil: derefTime(j.DispatchUntil),
		SnoozeCount: j.SnoozeCount, Errors: j.Errors, Tags: j.Tags,
	}
	if len(r.Tags) == 0 {
		r.Tags = nil
	}
	if len(r.Errors) == 0 {
		r.Errors = nil
	}
	return nil
}

func nullToNil(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return b
}

// Statistics counts records per status.
type Statistics struct {
	Pending   int `json:"pending"`
	Scheduled int `json:"scheduled"`
	Running   int `json:"running"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
	Expired   int `json:"expired"`
	Total     int `json:"total"`
	// Estimated reports that Completed, Failed, Cancelled, Expired and so
	// Total are estimates (a store that does not scan a very large table to
	// count its history); the active counts stay exact. It is not part of
	// the JSON form, whose keys are the eight counts.
	Estimated bool `json:"-"`
}

// Add counts one record of status s (and the total).
func (st *Statistics) Add(s Status, n int) {
	switch s {
	case StatusPending:
		st.Pending += n
	case StatusScheduled:
		st.Scheduled += n
	case StatusRunning:
		st.Running += n
	case StatusCompleted:
		st.Completed += n
	case StatusFailed:
		st.Failed += n
	case StatusCancelled:
		st.Cancelled += n
	case StatusExpired:
		st.Expired += n
	default:
		return
	}
	st.Total += n
}

// Merge adds every count of o to st.
func (st *Statistics) Merge(o Statistics) {
	st.Pending += o.Pending
	st.Scheduled += o.Scheduled
	st.Running += o.Running
	st.Completed += o.Completed
	st.Failed += o.Failed
	st.Cancelled += o.Cancelled
	st.Expired += o.Expired
	st.Total += o.Total
	st.Estimated = st.Estimated || o.Estimated
}

// Reservation is a forever identity reservation: it blocks every later enqueue
// with Key until ResetIdentity. It never holds payload or result.
type Reservation struct {
	Key       string    `json:"key"`
	TaskID    uuid.UUID `json:"task_id"`
	TaskName  string    `json:"task_name"`
	CreatedAt time.Time `json:"created_at"`
}

// Fence names one attempt generation of one record.
type Fence struct {
	ID         uuid.UUID
	RetryCount int
}
