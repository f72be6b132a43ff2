package queues

import (
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// Record is the durable task record a store keeps; see package queuestype.
type Record = queuestype.Record

// Status is the life-cycle state of a task record.
type Status = queuestype.Status

// The seven record statuses. Completed, Failed, Cancelled and Expired are terminal.
const (
	StatusPending   = queuestype.StatusPending
	StatusScheduled = queuestype.StatusScheduled
	StatusRunning   = queuestype.StatusRunning
	StatusCompleted = queuestype.StatusCompleted
	StatusFailed    = queuestype.StatusFailed
	StatusCancelled = queuestype.StatusCancelled
	StatusExpired   = queuestype.StatusExpired
)

// Statistics counts records per status.
type Statistics = queuestype.Statistics

// Reservation is a forever identity reservation (UniqueUntilForever).
type Reservation = queuestype.Reservation

// TaskFilter selects records for Service.ListTasks.
type TaskFilter = driver.TaskFilter

// TaskPage is one page of Service.ListTasks, newest first.
type TaskPage = driver.TaskPage

// CancelFilter selects records for Service.CancelMatching.
type CancelFilter = driver.CancelFilter

// metaBool reads a boolean metadata key; ok is false when absent or not a bool.
func metaBool(m map[string]any, key string) (value, ok bool) {
	b, ok := m[key].(bool)
	return b, ok
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
	}
	return 0, false
}
