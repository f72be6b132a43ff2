package driver

import (
	"context"
	"errors"
	"io"
	"net"
	"os"

	"github.com/queuesgo/queues/queuestype"
)

// ErrorClass says what a failed store call means for the engine: whether
// trying the same call again can succeed. The engine retries settle writes
// that fail with ClassTransient, ClassPermanent or ClassUnknown (an
// operator may repair a store) and gives up on ClassInvalidData. A worker's
// claim loop stops after a few ClassPermanent errors in a row and waits
// out every other class.
type ErrorClass int

// Error classes.
const (
	// ClassUnknown is an error no classifier recognised; a settle write
	// treats it like ClassPermanent, the claim loop like ClassTransient.
	ClassUnknown ErrorClass = iota
	// ClassTransient: the store could not be reached or could not serve the
	// call now (connection refused, reset or closed, a timeout, a failover
	// or a read-only replica, a server starting or shutting down, a lock
	// held by another writer). The same call may succeed later.
	ClassTransient
	// ClassPermanent: the store is reachable but broken for this call
	// (corrupt files, a missing schema, failed authentication, a full
	// disk). Retrying helps only after an operator repairs it.
	ClassPermanent
	// ClassInvalidData: the store refused a value the call carried (text
	// with a byte the database cannot hold, a value out of range). The same
	// call fails again however often it is retried.
	ClassInvalidData
)

// String returns the class's name: "unknown", "transient", "permanent" or "invalid_data".
func (c ErrorClass) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassPermanent:
		return "permanent"
	case ClassInvalidData:
		return "invalid_data"
	}
	return "unknown"
}

// Sentinels a store may wrap (fmt.Errorf("...: %w", ErrUnavailable)) so
// that DefaultClassify recognises an error without a store classifier.
var (
	// ErrUnavailable reports a store that cannot be reached or cannot serve
	// the call now (ClassTransient).
	ErrUnavailable = errors.New("queues: store unavailable")
	// ErrInvalidData reports a value the store refused to hold (ClassInvalidData).
	ErrInvalidData = errors.New("queues: store refused the value")
)

// ErrorClassifier is the optional capability of a store that recognises its
// client library's errors. ClassifyError returns ClassUnknown for an error
// it does not recognise; Classify then falls back to DefaultClassify.
type ErrorClassifier interface {
	ClassifyError(err error) ErrorClass
}

// Classify returns the class of err, an error b returned: b's own
// ErrorClassifier first, then DefaultClassify. A nil err is ClassUnknown.
//
// ErrFenceLost and ErrTaskNotFound are answers, not failures: a caller
// checks them before classifying (both classify as ClassPermanent).
func Classify(b Backend, err error) ErrorClass {
	if err == nil {
		return ClassUnknown
	}
	if c, ok := b.(ErrorClassifier); ok {
		if class := c.ClassifyError(err); class != ClassUnknown {
			return class
		}
	}
	return DefaultClassify(err)
}

// DefaultClassify classifies the errors every store shares: the sentinels
// above; a call's deadline (context.DeadlineExceeded) and network errors
// (net.Error, refused, reset, aborted or broken connections, unreachable
// hosts, io.EOF and io.ErrUnexpectedEOF from a connection closed
// mid-reply) as ClassTransient; ErrConfig as ClassInvalidData; a closed
// store (ErrClosed), ErrFenceLost, ErrTaskNotFound, a full or read-only
// disk and permission errors as ClassPermanent. Anything else is
// ClassUnknown.
func DefaultClassify(err error) ErrorClass {
	switch {
	case err == nil:
		return ClassUnknown
	case errors.Is(err, ErrInvalidData), errors.Is(err, queuestype.ErrConfig):
		return ClassInvalidData
	case errors.Is(err, ErrUnavailable):
		return ClassTransient
	case errors.Is(err, queuestype.ErrFenceLost), errors.Is(err, queuestype.ErrTaskNotFound),
		errors.Is(err, queuestype.ErrClosed):
		return ClassPermanent
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ClassTransient
	}
	if c := classifyErrno(err); c != ClassUnknown {
		return c
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, net.ErrClosed) {
		return ClassTransient
	}
	var ne net.Error
	if errors.As(err, &ne) {
		// Every error of the network stack: a dial that failed, a
		// connection that broke, a lookup that did not answer.
		return ClassTransient
	}
	return ClassUnknown
}
