package queues

import (
	"errors"
	"fmt"
	"time"

	"github.com/queuesgo/queues/queuestype"
)

// Sentinel errors. Check them with errors.Is; the typed errors below match the
// sentinel of their family.
var (
	// ErrConfig reports invalid configuration or options.
	ErrConfig = queuestype.ErrConfig
	// ErrLimit reports an input over a limit (see Config.Limits); every
	// *LimitError matches it and ErrConfig.
	ErrLimit = queuestype.ErrLimit
	// ErrUnknownTask reports a task name that is not registered.
	ErrUnknownTask = errors.New("unknown queue task")
	// ErrInvalidArgs reports arguments that do not encode or do not decode into the task's type.
	ErrInvalidArgs = errors.New("invalid task arguments")
	// ErrTaskNotFound reports a record that does not exist.
	ErrTaskNotFound = queuestype.ErrTaskNotFound
	// ErrFenceLost reports a compare-and-set that did not apply: the record is
	// not in the expected state or generation.
	ErrFenceLost = queuestype.ErrFenceLost
	// ErrNonRetryable marks an error that fails the attempt terminally.
	ErrNonRetryable = errors.New("non-retryable")
	// ErrCancelled is the cause of a durable cancellation, and what Cancelled returns.
	ErrCancelled = errors.New("task cancelled")
	// ErrClaimLost is the context cause when heartbeats show the claim was lost.
	ErrClaimLost = errors.New("queue task ownership lost")
	// ErrTimeout is matched by *TimeoutError.
	ErrTimeout = errors.New("task timed out")
	// ErrShutdown is the context cause when the worker's shutdown ladder cancels an attempt.
	ErrShutdown = errors.New("worker shutting down")
	// ErrIdentity reports arguments that cannot be canonicalized for an identity key.
	ErrIdentity = errors.New("queues: cannot compute task identity")
	// ErrIdentityTooLarge is matched by *IdentityTooLargeError.
	ErrIdentityTooLarge = errors.New("queues: identity arguments too large")
	// ErrIdentityConflict reports a forever key held by an active non-forever record.
	ErrIdentityConflict = queuestype.ErrIdentityConflict
	// ErrUnsupported reports that the backend lacks a needed capability.
	ErrUnsupported = queuestype.ErrUnsupported
	// ErrNoTaskContext reports a task helper called outside an attempt.
	ErrNoTaskContext = errors.New("queues: no task attempt in context")
	// ErrEscalated reports that a worker stop needed cancellation or was forced.
	ErrEscalated = errors.New("queues: worker stop escalated")
	// ErrStoreBroken reports a worker that stopped because its store kept
	// reporting itself broken (a corrupt file, a missing schema, a refused
	// login): Worker.Run's error matches it and wraps the store's last error.
	ErrStoreBroken = errors.New("store is broken")
	// ErrClosed reports use of a service that is not started or already closed.
	ErrClosed = queuestype.ErrClosed
)

// ConfigError is an invalid configuration or input value. It matches ErrConfig.
type ConfigError = queuestype.ConfigError

// LimitError is an input over one of the limits of Config.Limits, naming
// the field and the limit. It matches ErrConfig; TooLarge says it was
// refused for its size.
type LimitError = queuestype.LimitError

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// UnknownTaskError names a task that is not registered. It matches ErrUnknownTask.
type UnknownTaskError struct{ Name string }

func (e *UnknownTaskError) Error() string { return fmt.Sprintf("unknown queue task: %q", e.Name) }

// Is makes errors.Is(err, ErrUnknownTask) true.
func (e *UnknownTaskError) Is(target error) bool { return target == ErrUnknownTask }

// TimeoutError is the cause of an attempt that ran past its timeout. It matches ErrTimeout.
type TimeoutError struct{ After time.Duration }

func (e *TimeoutError) Error() string { return fmt.Sprintf("task timed out after %s", e.After) }

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// IdentityTooLargeError reports canonical arguments longer than
// Config.MaxArgumentIdentityBytes. It matches ErrIdentityTooLarge.
type IdentityTooLargeError struct{ Actual, Max int }

func (e *IdentityTooLargeError) Error() string {
	return fmt.Sprintf("queues: identity arguments are %d bytes, more than the limit of %d", e.Actual, e.Max)
}

// Is makes errors.Is(err, ErrIdentityTooLarge) true.
func (e *IdentityTooLargeError) Is(target error) bool { return target == ErrIdentityTooLarge }

// BatchError reports the first invalid request of an EnqueueMany call; nothing was written.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("queues: batch item %d: %v", e.Index, e.Err) }
func (e *BatchError) Unwrap() error { return e.Err }

// TaskError is returned by TaskResult.Value when the record did not complete.
type TaskError struct {
	Status  Status
	Message string
}

func (e *TaskError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("task %s", e.Status)
	}
	return fmt.Sprintf("task %s: %s", e.Status, e.Message)
}

type nonRetryableError struct{ err error }

func (e *nonRetryableError) Error() string        { return e.err.Error() }
func (e *nonRetryableError) Unwrap() error        { return e.err }
func (e *nonRetryableError) Is(target error) bool { return target == ErrNonRetryable }

// NonRetryable wraps err so that the attempt fails terminally, whatever budget remains.
func NonRetryable(err error) error {
	if err == nil {
		return nil
	}
	return &nonRetryableError{err: err}
}

type cancelledError struct{ reason string }

func (e *cancelledError) Error() string        { return e.reason }
func (e *cancelledError) Is(target error) bool { return target == ErrCancelled }

// Cancelled returns an error that, returned by a task, cancels its record
// durably (no retry). An empty reason becomes "Task cancelled".
func Cancelled(reason string) error {
	if reason == "" {
		reason = "Task cancelled"
	}
	return &cancelledError{reason: reason}
}
