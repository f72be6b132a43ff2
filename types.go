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
