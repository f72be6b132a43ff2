package queuestype

import (
	"errors"
	"fmt"
)

// Errors shared by the application API and store implementations. The root
// package re-exports each under the same name, so errors.Is(err,
// queues.ErrTaskNotFound) matches what a store returns.
var (
	// ErrConfig reports invalid configuration, options or input.
	ErrConfig = errors.New("queues: invalid configuration")
	// ErrTaskNotFound reports a record that does not exist.
	ErrTaskNotFound = errors.New("task not found")
	// ErrFenceLost reports a compare-and-set that did not apply: the record is
	// not in the expected state or generation.
	ErrFenceLost = errors.New("queues: fence lost")
	// ErrIdentityConflict reports a forever key held by an active non-forever record.
	ErrIdentityConflict = errors.New("queues: identity key held by a non-forever record")
	// ErrUnsupported reports that the store lacks a needed capability.
	ErrUnsupported = errors.New("queues: unsupported by backend")
	// ErrClosed reports use of a service or store that is not running.
	ErrClosed = errors.New("queues: service not running")
)

// ConfigError is an invalid configuration or input value. It matches ErrConfig.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return "queues: invalid configuration: " + e.Problem
	}
	return fmt.Sprintf("queues: invalid configuration: %s: %s", e.Field, e.Problem)
}

// Is makes errors.Is(err, ErrConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }
