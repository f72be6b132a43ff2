// Package events defines the queue event envelope, event types, channel
// naming, and the pluggable delivery interfaces (Broker, Sink) with in-process
// implementations.
package events

import (
	"time"
)

// Scope says what an event is about.
type Scope string

// Event scopes.
const (
	ScopeTask   Scope = "task"
	ScopeQueue  Scope = "queue"
	ScopeWorker Scope = "worker"
	ScopeGlobal Scope = "global"
	ScopeCustom Scope = "custom"
)

// System event types.
const (
	TypeStarted       = "task.started"
	TypeProgress      = "task.progress"
	TypeLog           = "task.log"
	TypeEvent         = "task.event"
	TypeCompleted     = "task.completed"
	TypeFailed        = "task.failed"
	TypeCancelled     = "task.cancelled"
	TypeInterrupted   = "task.interrupted"
	TypeSnoozed       = "task.snoozed"
	TypeExpired       = "task.expired"
	TypeClaimLost     = "task.claim_lost"
	TypeStaleFailed   = "task.stale_failed"
	TypeStaleRecovery = "worker.stale_recovery"
)

// SchemaVersion is the envelope schema version written by this package.
const SchemaVersion = 1

// Actor is who caused an event.
type Actor struct {
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// EntityRef names the domain object an event is about; Type and ID are required.
type EntityRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Event is the queue event envelope. Optional fields use pointers or "" and
// encode as JSON null (see MarshalJSON for the exact wire form).
type Event struct {
	Type             string
	Scope            Scope
	ID               string // 32 lowercase hex characters; NewID
	ScopeKey         string
	TaskID           string // UUID with dashes
	TaskName         string
	Queue            string
	WorkerID         string
	ExecutionBackend string
	ExecutionProfile string
	Attempt          *int
	Sequence         *int
	Level            string
	Message          string
	ProgressCurrent  *float64
	ProgressTotal    *float64
	ProgressPercent  *float64
	Actor            *Actor
	Entity           *EntityRef
	Payload          map[string]any
	OccurredAt       time.Time
	SchemaVersion    int
	EventKey         string
}
