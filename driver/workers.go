package driver

import (
	"context"
	"time"
)

// WorkerInfo is one worker's entry in the registry of live workers, as the
// worker registered it. SeenAt and ExpiresAt are stamped by the store's
// clock on every RegisterWorker; the other fields are the worker's own.
type WorkerInfo struct {
	ID               string    `json:"id"`
	Host             string    `json:"host"`
	PID              int       `json:"pid"`
	Queues           []string  `json:"queues"` // empty = every queue
	ExecutionBackend string    `json:"execution_backend"`
	Concurrency      int       `json:"concurrency"`
	Running          int       `json:"running"`
	StartedAt        time.Time `json:"started_at"`
	Version          string    `json:"version"`
	SeenAt           time.Time `json:"seen_at"`
	ExpiresAt        time.Time `json:"expires_at"`
}

// WorkerRegistry is the optional capability of a store that keeps the
// registry of live workers. A worker registers when it starts, registers
// again (a refresh) on every heartbeat tick, idle or not, and removes its
// entry when it stops; an entry that is not refreshed within its ttl is no
// longer listed, so a killed worker disappears by itself.
type WorkerRegistry interface {
	// RegisterWorker inserts or replaces the entry for w.ID, live until
	// the store's now + ttl (ttl > 0). SeenAt and ExpiresAt in w are ignored.
	// Stores start with CheckRegisterWorker, so every store refuses the
	// same entries with the same errors.
	RegisterWorker(ctx context.Context, w WorkerInfo, ttl time.Duration) error
	// RemoveWorker deletes the entry for id; a missing entry is not an error.
	RemoveWorker(ctx context.Context, id string) error
	// ListWorkers returns up to limit live entries (ExpiresAt after the
	// store's now) ordered by ID, byte-wise; limit 0 → 1000
	// (WorkerListLimit). It may delete expired entries as it goes.
	ListWorkers(ctx context.Context, limit int) ([]WorkerInfo, error)
}
