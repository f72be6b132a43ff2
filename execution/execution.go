// Package execution is the contract between the queues engine and external
// execution transports: the pieces that run an attempt outside the worker's
// process (a child process, a message broker, a cloud job). An application
// never needs it beyond putting a transport in queues.Config.Executors; it is
// for transport authors, the way database/sql/driver is for database drivers.
//
// Only the task ID crosses a transport: the remote side claims the record by
// ID (Host.ConsumeOne), so the store stays the single source of truth. A
// worker whose service's execution backend names a Transport is a
// dispatcher: it lists due records of that backend and calls Dispatch for
// each; records stay pending until the remote side claims them.
// Periodically, under a fleet lock, it runs a reconcile pass (Host.Reconcile),
// which calls Repair and then Reconcile for every record still holding an
// execution ref.
//
// This package does not import package queues: a transport reaches the
// service through the Host it is handed (queues.Service.ExecutionHost
// returns one, for tests and for consumers). Package execution/dispatch
// implements the protocol transports share (reservation markers, fallback,
// ownership loss, probe application); package execution/subprocess is the
// process-per-task transport.
package execution

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// Record is the durable task record; see package queuestype.
type Record = queuestype.Record

// Transport is an execution backend that runs attempts outside the worker's
// process. "local" and "immediate" are built into package queues; external
// transports ("subprocess", "rabbitmq", "nats", "cloudrun") implement
// Transport and are configured in queues.Config.Executors under their Name.
//
// Implementations must be safe for concurrent use.
type Transport interface {
	// Name is the value records of this transport carry in execution_backend.
	Name() string
	// Open prepares the transport (connections, channels). Service.Start
	// calls it after the queue backend is open.
	Open(ctx context.Context) error
	// Close releases the transport. Service.Close calls it before closing
	// the queue backend.
	Close(ctx context.Context) error
	// Dispatch hands rec (a due pending record holding no execution ref) to
	// the transport. An error is also described by the outcome's status; a
	// *DispatchError tells whether the record's state is committed.
	Dispatch(ctx context.Context, h Host, rec *Record) (DispatchOutcome, error)
	// Reconcile probes the execution rec.ExecutionRef names and applies the
	// result (normally through Host.ApplyProbe), returning the record as it
	// is afterwards. A probe error is returned with rec unchanged; the
	// caller treats the execution as still running.
	Reconcile(ctx context.Context, h Host, rec *Record) (*Record, error)
	// Repair examines up to limit records the transport may have lost (for
	// brokers: pending records whose attempt ref is older than the
	// transport's stale bound) and re-dispatches them.
	Repair(ctx context.Context, h Host, limit int) (RepairResult, error)
	// CancelExecution asks the provider to stop the execution rec holds. It
	// never returns an error: failures are reported as CancelRetryable.
	CancelExecution(ctx context.Context, rec *Record) CancelResult
}

// Host is the service as a transport sees it: the store, the logger, the
// one-shot consumer and the operations that apply what a transport learned.
// The engine hands one to every Transport call; queues.Service.ExecutionHost
// returns the same value.
type Host interface {
	// Backend returns the queue store. A service with executors has a store
	// that implements driver.Dispatcher.
	Backend() driver.Backend
	// Logger returns the service's logger.
	Logger() *slog.Logger
	// GetTask returns the record or an error matching queuestype.ErrTaskNotFound.
	GetTask(ctx context.Context, id uuid.UUID) (*Record, error)
	// ConsumeOne claims the record id by ID and runs it once in this
	// process: the entry point of an external execution, which receives
	// only the task ID. It returns the exit code the process should end
	// with; the error explains codes other than ExitSuccess when there is
	// more to say. If ctx ends mid-attempt, the attempt is cancelled with
	// the worker-shutdown cause.
	ConsumeOne(ctx context.Context, id uuid.UUID, opts ConsumeOptions) (ExitCode, error)
	// ApplyProbe applies what a transport learned about the execution rec
	// holds, fenced on rec's generation (and, for failures, its execution
	// ref), publishes the matching lifecycle event and returns the record as
	// it is afterwards:
	//
	//   - running → nothing;
	//   - succeeded → complete (running records only);
	//   - cancelled → cancel, running included;
	//   - failed or not found → a retry (or a terminal failure without
	//     budget) with "external execution <ref> failed|not found": the
	//     execution died, or never claimed, without settling; the retry
	//     clears the ref so the record is dispatched again.
	//
	// A fence that no longer holds means someone else settled or
	// re-dispatched the record: the current record is returned and nothing
	// is written.
	ApplyProbe(ctx context.Context, rec *Record, p Probe) (*Record, error)
	// PublishWarning publishes a system task.event warning about rec (level
	// warning, no sequence) whose payload carries phase, e.g.
	// "subprocess.dispatch_fallback" or "cloudrun.cancel_failed". Delivery
	// errors are logged, never returned.
	PublishWarning(ctx context.Context, rec *Record, phase, message string, payload map[string]any)
	// ReconcileTask reconciles one record now, outside the periodic pass:
	// when it holds a provider execution ref and is not terminal, its
	// transport probes the execution and the result is applied (see
	// ApplyProbe); an expired reservation marker is released. Transports
	// call it when they learn an execution ended (the subprocess transport,
	// when a child exits). It returns the record as it is afterwards; a
	// record whose execution backend is not configured in this process is
	// an error matching queuestype.ErrConfig.
	ReconcileTask(ctx context.Context, id uuid.UUID) (*Record, error)
	// Reconcile runs one reconcile pass bounded by limit (0 → 100): first
	// Repair on every configured transport, then, with the remaining
	// budget, every record holding an execution ref: reservation markers
	// past their deadline are released (and the expiry sweep runs
	// afterwards); other refs are probed by their transport's Reconcile.
	// Records whose execution backend is not configured in this process are
	// skipped. Dispatching workers run it every
	// WorkerConfig.ReconcileInterval under the fleet lock
	// "<ns>:external_reconcile".
	Reconcile(ctx context.Context, limit int) (ReconcileResult, error)
}

// InFlighter is implemented by transports that cap their own capacity
// (subprocess). A dispatcher counts InFlight toward its MaxConcurrency.
type InFlighter interface {
	// InFlight returns how many executions the transport is running now.
	InFlight() int
}

// CapacityLimiter is implemented by transports with a hard limit of
// concurrent executions (subprocess: MaxProcesses). A dispatcher never
// dispatches more than MaxInFlight minus InFlight records at once.
type CapacityLimiter interface {
	// MaxInFlight returns the most executions the transport runs at once.
	MaxInFlight() int
}

// CancelStatus is the provider's answer to CancelExecution.
type CancelStatus string

// Cancel statuses.
const (
	// CancelAccepted: the provider accepted the request; the durable cancel proceeds.
	CancelAccepted CancelStatus = "accepted"
	// CancelAlreadyCancelled: not found or already stopped; the durable cancel proceeds.
	CancelAlreadyCancelled CancelStatus = "already_cancelled"
	// CancelRetryable: refused or transient; the durable cancel is blocked and
	// Service.Cancel returns false.
	CancelRetryable CancelStatus = "retryable"
	// CancelUnsupported: the transport has no control plane (or cannot reach
	// this execution); the durable cancel proceeds.
	CancelUnsupported CancelStatus = "unsupported"
)

// CancelResult is the result of Transport.CancelExecution.
type CancelResult struct {
	Status CancelStatus
	// Detail explains the status (provider error text, "no such process", ...).
	Detail string
}

// DispatchStatus classifies a Dispatch call; the values are the
// queue.execution.status metric vocabulary.
type DispatchStatus string

// Dispatch statuses.
const (
	// DispatchStatusDispatched: the execution was launched or published and
	// its ref is on the record.
	DispatchStatusDispatched DispatchStatus = "dispatched"
	// DispatchStatusFallback: the launch failed and the record was re-routed
	// to the fallback execution backend.
	DispatchStatusFallback DispatchStatus = "fallback"
	// DispatchStatusError: the dispatch failed; the record was released (or
	// will be, see DispatchError.Committed).
	DispatchStatusError DispatchStatus = "error"
	// DispatchStatusSkipped: nothing was done (the record was reserved or
	// changed by someone else, or the transport is at capacity).
	DispatchStatusSkipped DispatchStatus = "skipped"
	// DispatchStatusCancelled: the caller's ctx ended; the reservation was released.
	DispatchStatusCancelled DispatchStatus = "cancelled"
	// DispatchStatusOwnershipLost: the launch succeeded but the record changed
	// before the ref could be stored; the orphan execution was cancelled.
	DispatchStatusOwnershipLost DispatchStatus = "ownership_lost"
)

// DispatchOutcome reports one Dispatch call.
type DispatchOutcome struct {
	Status DispatchStatus
	// Ref is the execution ref stored on the record (dispatched), or the ref
	// of the orphan execution (ownership_lost).
	Ref string
	// FallbackBackend is the execution backend the record was re-routed to (fallback).
	FallbackBackend string
}

// ErrDispatch reports a failed external dispatch; see *DispatchError.
var ErrDispatch = errors.New("queues: external dispatch failed")

// DispatchError reports a failed external dispatch of TaskID. It matches
// ErrDispatch and unwraps to Err.
type DispatchError struct {
	TaskID uuid.UUID
	// Committed is true when the record's dispatch state is durable and may
	// already have reached the transport (an ambiguous outcome): do not
	// dispatch it again by hand, reconciliation and repair will settle it.
	// False means the dispatch definitely did not happen.
	Committed bool
	Err       error
}

func (e *DispatchError) Error() string {
	state := "not committed"
	if e.Committed {
		state = "committed"
	}
	return fmt.Sprintf("queues: dispatch of task %s failed (%s): %v", e.TaskID, state, e.Err)
}

// Unwrap returns the underlying error.
func (e *DispatchError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrDispatch) true.
func (e *DispatchError) Is(target error) bool { return target == ErrDispatch }

// RepairResult reports Transport.Repair.
type RepairResult struct {
	// Examined counts records looked at; it is charged to the reconcile budget.
	Examined int
	// Changed counts records re-dispatched or otherwise fixed.
	Changed int
}

// ReconcileResult reports Host.Reconcile: the repair pass, then one count
// per outcome of the records holding an execution ref.
type ReconcileResult struct {
	// Repair sums the Repair results of every configured transport.
	Repair RepairResult
	// Examined counts the records holding an execution ref that were looked at.
	Examined int
	// Running counts executions still running (probe errors included).
	Running int
	// Completed, Retried, Failed and Cancelled count records the probe
	// results settled: completed, requeued for a retry, failed terminally,
	// cancelled.
	Completed, Retried, Failed, Cancelled int
	// Released counts reservation markers past their deadline that were released.
	Released int
	// Expired counts records the expiry sweep after a release expired.
	Expired int
	// Errors counts probe errors (those executions are treated as running).
	Errors int
	// Skipped counts records of execution backends not configured in this
	// process, and records that changed under the reconciler.
	Skipped int
}

// ProbeStatus is what a transport learned about an execution.
type ProbeStatus string

// Probe statuses.
const (
	ProbeRunning   ProbeStatus = "running"   // still running: nothing to do
	ProbeSucceeded ProbeStatus = "succeeded" // finished successfully: complete the record
	ProbeFailed    ProbeStatus = "failed"    // finished without success: retry or fail
	ProbeCancelled ProbeStatus = "cancelled" // cancelled at the provider: cancel the record
	ProbeNotFound  ProbeStatus = "not_found" // the provider does not know it: retry or fail
)

// Probe is the result of probing one execution.
type Probe struct {
	Status ProbeStatus
	// Result is stored on completion when the record has none; nil →
	// {"execution_ref": <ref>, "status": "succeeded"}.
	Result json.RawMessage
	// Detail is logged (exit code, provider state); it is not stored.
	Detail string
}
