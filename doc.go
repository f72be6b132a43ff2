// Package queues runs durable background tasks: work that must outlive the
// request that started it (email, imports, reports, slow third-party calls).
//
// An application registers tasks — plain Go functions with typed arguments
// and a typed result — into a Registry, enqueues them through a Service, and
// workers claim the durable task records from a shared backend and run them
// with retries, timeouts, heartbeats, crash recovery, cancellation,
// uniqueness and live progress events.
//
// # Three separations
//
//   - Where tasks are stored: the queue Backend (backend/memory today; SQLite,
//     PostgreSQL and Redis implement the same contract, checked by the shared
//     suite in backend/backendtest). Every state change is a compare-and-set.
//   - Where tasks run: the execution backend. "local" runs attempts as
//     goroutines inside a Worker; "immediate" runs them inline inside Enqueue,
//     for tests and scripts; external transports (package execution, e.g.
//     execution/subprocess) are configured in Config.Executors and carry only
//     the task ID to a process that claims the record by ID
//     (execution.Host.ConsumeOne).
//   - How workers are woken: hints (Waker, WorkerController) that are lossy and
//     only cut latency. Every poll re-reads durable state, so a lost hint costs
//     latency, never correctness.
//
// # Ownership and fences
//
// A claim sets status=running, worker_id, started_at and heartbeat_at in one
// write. The record's RetryCount is its generation: every write after a claim
// (complete, fail, cancel, heartbeat, interrupt) carries the generation the
// attempt claimed and applies only while the record is still running that
// generation. A write whose fence does not hold changes nothing and returns
// ErrFenceLost, so a record is settled by at most one attempt even when a
// stale attempt wakes up after recovery gave its record to another worker.
//
// # Cancellation causes
//
// An attempt's ctx is cancelled with a cause readable through
// context.Cause: ErrCancelled (the record was cancelled durably),
// ErrClaimLost (heartbeats show another attempt may own it), a *TimeoutError
// (the task's timeout elapsed) or ErrShutdown (the worker is stopping).
//
// # External execution
//
// When Config.ExecutionBackend names one of Config.Executors, the service's
// workers are dispatchers: they list due records of that backend and hand
// each to the transport (execution.Transport.Dispatch), which starts an
// execution that receives only the record's ID and claims it with
// execution.Host.ConsumeOne. The record stays the single source of truth:
// it holds the execution's handle in execution_ref, every write stays fenced
// on the generation, and a periodic reconcile (execution.Host.Reconcile,
// every WorkerConfig.ReconcileInterval under a fleet lock) probes executions
// that ended without settling their record and retries, completes or cancels
// it. Service.Cancel asks the transport to stop a dispatched execution before
// it cancels the record. Package execution/dispatch holds the shared
// protocol.
//
// # Events
//
// With Config.Events set, the worker and the service publish lifecycle events
// (task.started, task.completed, task.failed, ...) and task code publishes
// progress, logs and custom events with Progress, Log and Emit. Events use
// the envelope of package events and are delivered to a Broker (subscribe to
// Service.EventBroker) and to every configured Sink.
package queues
