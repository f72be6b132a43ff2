package driver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/queuestype"
)

// Backend is a queue backend: the durable store of task records. Every state
// change is a compare-and-set; a write whose guard does not hold changes
// nothing and returns ErrFenceLost. Timestamps come from the backend's clock.
//
// Every implementation must pass the shared suite in backend/backendtest.
type Backend interface {
	// Name is the backend's short name: "memory", "sqlite", "postgres", "redis".
	Name() string
	// Open connects and starts listeners. It is idempotent.
	Open(ctx context.Context) error
	// Close stops listeners. It never closes pools the caller passed in.
	Close(ctx context.Context) error
	// Capabilities describes optional behaviour.
	Capabilities() Capabilities

	// Enqueue inserts 1..n records atomically and returns one outcome per item
	// in input order. Keyed items return the active record holding the key;
	// forever items reserve their key in the same atomic step. One wakeup hint
	// is sent for the whole call when any new record is due. An item over
	// the hard limits (PrepareEnqueue: priority, sizes, names, ranges, NUL
	// in JSON) fails the whole call with a *queuestype.LimitError, which
	// matches ErrConfig, and writes nothing.
	Enqueue(ctx context.Context, items []EnqueueParams) ([]EnqueueOutcome, error)
	// GetTask returns the record or ErrTaskNotFound.
	GetTask(ctx context.Context, id uuid.UUID) (*queuestype.Record, error)
	// GetTasks returns the records that exist, omitting missing IDs.
	GetTasks(ctx context.Context, ids []uuid.UUID) ([]*queuestype.Record, error)
	// GetTaskByKey returns the record holding key or ErrTaskNotFound.
	GetTaskByKey(ctx context.Context, key string) (*queuestype.Record, error)
	// ListPending lists due, unexpired, unreserved records in claim order.
	ListPending(ctx context.Context, p ListPendingParams) ([]*queuestype.Record, error)
	// Statistics counts records per status; queue "" means all queues.
	Statistics(ctx context.Context, queue string) (queuestype.Statistics, error)
	// ListCompletedByTask lists completed records of a task, newest first; limit 0 means 10.
	ListCompletedByTask(ctx context.Context, task string, since time.Time, limit int) ([]*queuestype.Record, error)

	// ClaimMany claims up to p.Limit due records in claim order, setting
	// status=running, worker_id, started_at and heartbeat_at in one write.
	ClaimMany(ctx context.Context, p ClaimParams) (ClaimResult, error)
	// ClaimByID claims one record by ID, fenced on the optional expected
	// generation and execution ref. An overdue record is expired instead.
	ClaimByID(ctx context.Context, p ClaimByIDParams) (ClaimResult, error)

	// Settle applies transitions the engine decided, each fenced on its
	// record's generation (and the extra fences the transition names), and
	// returns one result per transition in input order. A transition whose
	// fence does not hold changes nothing and reports ErrFenceLost in its
	// result; the call's error is for the call as a whole (the store was
	// unreachable, the context ended), in which case some transitions may
	// have been applied and the caller reads the records to find out. A
	// transition whose result breaks the hard limits is refused on its own
	// (CheckTransition); error texts are stored in the form FitSettleTexts
	// gives them, never refused.
	Settle(ctx context.Context, ts []Transition) ([]SettleResult, error)
	// ListStale lists up to limit running records whose heartbeat is null
	// or older than staleAfter by the store's clock, null heartbeats first
	// then oldest heartbeat first; staleAfter < 0 lists every running
	// record. Records holding a dispatch reservation are not listed.
	ListStale(ctx context.Context, staleAfter time.Duration, limit int) ([]*queuestype.Record, error)

	// Cancel cancels a pending/scheduled record, or a running one with IncludeRunning.
	Cancel(ctx context.Context, p CancelParams) (*queuestype.Record, error)
	// CancelMatching cancels every matching record that holds no execution ref.
	CancelMatching(ctx context.Context, f CancelFilter) ([]*queuestype.Record, error)

	// TouchHeartbeats refreshes heartbeat_at for each fenced running record.
	// A metadata patch over the hard limits (CheckHeartbeatLimits) fails
	// the whole call before anything is written.
	TouchHeartbeats(ctx context.Context, touches []HeartbeatTouch) (HeartbeatResult, error)
	// NullHeartbeats clears heartbeat_at for the fenced running records, so
	// stale recovery takes them at once.
	NullHeartbeats(ctx context.Context, fences []queuestype.Fence) error
	// ExpireOverdue expires up to limit overdue unreserved pending/scheduled records.
	ExpireOverdue(ctx context.Context, limit int) ([]*queuestype.Record, error)

	// CleanupTerminal deletes up to p.Limit terminal records, each of a
	// status its cutoffs name (p.ByTask's for the tasks it lists, p.Before
	// for the others) and completed before that status's cutoff,
	// oldest completed_at (then id) first across statuses, and returns how
	// many it deleted. A store may write the batch in smaller pieces (each
	// taking the oldest left) so claims are never held up behind it. Statuses p.Before omits are
	// kept. Reservations are never deleted. Start with CheckCleanup.
	CleanupTerminal(ctx context.Context, p CleanupParams) (int, error)

	// ReserveIdentity reserves a forever key; nil means the caller won, else the existing owner.
	ReserveIdentity(ctx context.Context, r queuestype.Reservation) (*queuestype.Reservation, error)
	// GetIdentity returns the reservation for key, or nil, nil.
	GetIdentity(ctx context.Context, key string) (*queuestype.Reservation, error)
	// ResetIdentity deletes a reservation; a non-zero expectedTaskID must match the owner.
	ResetIdentity(ctx context.Context, key string, expectedTaskID uuid.UUID) (bool, error)
}

// Dispatcher is the optional capability of a store that supports external
// execution: records handed to a transport (a subprocess, a broker, a cloud
// job) are reserved while the hand-off is in flight, then carry the
// transport's execution ref until the remote side claims them by ID. A
// store without it serves only in-process execution; configuring an
// external execution backend on it is an error.
type Dispatcher interface {
	// ReserveDispatch marks a due, unexpired, unreferenced pending/scheduled record for dispatch.
	ReserveDispatch(ctx context.Context, p ReserveDispatchParams) (*queuestype.Record, error)
	// ReleaseDispatch clears a reservation marker (compare-and-clear), optionally re-routing the record.
	ReleaseDispatch(ctx context.Context, p ReleaseDispatchParams) (*queuestype.Record, error)
	// FinalizeDispatch replaces the marker with the provider's ref while the record is pending/scheduled.
	FinalizeDispatch(ctx context.Context, p FinalizeDispatchParams) (*queuestype.Record, error)
	// SetExecutionRef stores an execution ref unconditionally on a non-terminal record.
	SetExecutionRef(ctx context.Context, id uuid.UUID, ref string) (*queuestype.Record, error)
	// ClearExecutionRef clears ref on a pending/scheduled record of generation gen and wakes dispatchers.
	ClearExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref string) (*queuestype.Record, error)
	// ReplaceExecutionRef swaps ref for newRef, fenced on generation and current ref.
	ReplaceExecutionRef(ctx context.Context, id uuid.UUID, gen int, ref, newRef string) (*queuestype.Record, error)
	// SetExecutionBackend re-routes a pending/scheduled record and clears its ref.
	SetExecutionBackend(ctx context.Context, id uuid.UUID, backend, profile string) (*queuestype.Record, error)
	// ListRunningExternal lists non-terminal records holding a ref, ordered by
	// coalesce(started_at, created_at), id; limit 0 returns nothing.
	ListRunningExternal(ctx context.Context, limit int) ([]*queuestype.Record, error)
}

// EnqueueParams is one record to insert. The backend stamps created_at and
// queued_at, generates an ID when ID is zero, and derives the status from ScheduledAt.
type EnqueueParams struct {
	ID          uuid.UUID
	TaskName    string
	Args        json.RawMessage
	Queue       string
	Priority    int
	MaxRetries  int
	ScheduledAt time.Time
	ExpiresAt   time.Time
	Key         string
	Forever     bool
	// UniqueFor and UniqueWhile are the item's key rule (KeyRule): how long
	// a stored record holding Key keeps it against this item. Zero values
	// keep the default (held while the holder is not terminal); they are
	// ignored without a Key and refused on a Forever item.
	UniqueFor        time.Duration
	UniqueWhile      []queuestype.Status
	ExecutionBackend string
	ExecutionProfile string
	Metadata         map[string]any
	// Policy is stored as the record's typed policy, opaque to the store.
	Policy queuestype.Policy
	// Tags are stored on the record and indexed for TaskFilter.Tag;
	// PrepareEnqueue sorts them and removes duplicates.
	Tags []string
}

// EnqueueOutcome is the result for one EnqueueParams item.
type EnqueueOutcome struct {
	// Record is the new record, or the existing active record holding the key.
	Record *queuestype.Record
	// Existing is true when Record was already there (deduplicated).
	Existing bool
	// Owner is set when a forever reservation already owns the key; Record is nil then.
	Owner *queuestype.Reservation
	// Err is a per-item failure such as ErrIdentityConflict.
	Err error
}

// CleanupParams selects what CleanupTerminal deletes. The engine computes
// the cutoffs (retention is policy); the store applies them.
type CleanupParams struct {
	// Before maps a terminal status to its cutoff: records of that status
	// whose completed_at is before it are deleted. A status it omits is
	// never deleted (kept forever).
	Before map[queuestype.Status]time.Time
	// ByTask overrides Before for the records of the tasks it lists: a
	// listed task's records use only its own map (a status that map omits
	// is kept forever), every other task's records use Before.
	ByTask map[string]map[queuestype.Status]time.Time
	// Limit bounds the records deleted by one call: ≤ 0 → DefaultCleanupLimit.
	Limit int
}

// ListPendingParams filters ListPending.
type ListPendingParams struct {
	Limit            int
	Queues           []string
	ExecutionBackend string
}

// ClaimParams controls ClaimMany.
type ClaimParams struct {
	Limit            int
	Queues           []string // empty = all queues
	ExecutionBackend string   // "" = any
	QueueLimits      map[string]int
	WorkerID         string
	ExpireOverdue    bool
}

// ClaimByIDParams controls ClaimByID.
type ClaimByIDParams struct {
	ID                 uuid.UUID
	WorkerID           string
	ExpectedRetryCount *int
	ExpectedRef        *string
}

// ClaimResult holds claimed records (claim order) and records the claim expired.
type ClaimResult struct {
	Claimed []*queuestype.Record
	Expired []*queuestype.Record
}

// Transition is one fenced write of a claimed record's outcome. The engine
// decides it; the store applies it and interprets nothing else.
//
// The write applies only while the record holds Generation (retry_count)
// and is running, or, with ExpectedRef set, is running or pending/scheduled
// holding exactly that execution ref (an external execution). WorkerID and
// StaleAfter add fences. The store stamps every time from its own clock.
type Transition struct {
	ID         uuid.UUID
	Generation int
	// To is the status the record takes:
	//   - StatusCompleted: result = Result, completed_at = now, error and
	//     heartbeat_at cleared, worker_id kept.
	//   - StatusFailed: error = Error, completed_at = now, heartbeat_at
	//     cleared, worker_id kept.
	//   - StatusCancelled: error = Error when not empty (an empty Error keeps
	//     the record's error, as Cancel does), completed_at = now,
	//     heartbeat_at cleared.
	//   - StatusPending (a retry, a stale requeue or a shutdown
	//     interruption): retry_count+1, error = Error, worker_id,
	//     execution_ref, started_at and heartbeat_at cleared, queued_at =
	//     now; due at now+Delay, so status scheduled when Delay > 0 and
	//     pending otherwise; interruptions+1 when Interrupted; priority =
	//     *Priority when set.
	To     queuestype.Status
	Result json.RawMessage
	Error  string
	// Delay is how long a retry waits (StatusPending only).
	Delay time.Duration
	// Interrupted counts the retry as a shutdown interruption (StatusPending only).
	Interrupted bool
	// Snoozed counts the retry as a snooze: snooze_count+1 (StatusPending only).
	Snoozed bool
	// Errors, when not nil, replaces the record's error history
	// (StatusFailed and StatusPending only; nil keeps it). The engine
	// builds it from the claimed record's history.
	Errors []queuestype.AttemptError
	// Priority, when set, replaces the record's priority (StatusPending only).
	Priority *int
	// WorkerID, when set, must equal the record's worker_id.
	WorkerID string
	// ExpectedRef, when set, must equal the record's execution_ref, and the
	// record may then also be pending or scheduled.
	ExpectedRef *string
	// StaleAfter, when non-zero, requires the record's heartbeat to still be
	// stale at the write: null or older than now-StaleAfter (any heartbeat
	// when negative). Stale recovery sets it, so a heartbeat landing
	// between ListStale and Settle keeps the live attempt's record.
	StaleAfter time.Duration
	// Claimed, when set, is the record as this attempt claimed it; a store
	// may build the returned record from it and the columns the write
	// changed (or that may have changed while the record ran: worker_id,
	// execution_ref, metadata) instead of reading every column back. It
	// must not be modified.
	Claimed *queuestype.Record
	// NoRecord says the caller does not need the settled record: the store
	// may leave SettleResult.Record nil on success.
	NoRecord bool
}

// SettleResult is the outcome of one Transition.
type SettleResult struct {
	// Record is the record after the write (nil on error, or with NoRecord).
	Record *queuestype.Record
	// Err is ErrFenceLost when the fence did not hold (ErrTaskNotFound when
	// the record does not exist), or a per-item error the store refused.
	Err error
}

// CancelParams cancels one record.
type CancelParams struct {
	ID                 uuid.UUID
	IncludeRunning     bool
	ExpectedRetryCount *int
}

// CancelFilter selects records for bulk cancellation. Args and Metadata match
// by top-level key equality subsets.
type CancelFilter struct {
	TaskName       string
	Queue          string
	Args           map[string]any
	Metadata       map[string]any
	IncludeRunning bool
}

// HeartbeatTouch refreshes one running record. A nil ExpectedRetryCount is unfenced.
type HeartbeatTouch struct {
	ID                 uuid.UUID
	ExpectedRetryCount *int
	MetadataPatch      map[string]any
}

// HeartbeatResult lists touched and missed IDs of a TouchHeartbeats call.
type HeartbeatResult struct {
	Touched []uuid.UUID
	Missed  []uuid.UUID
}

// ReserveDispatchParams reserves a record for external dispatch: the store
// writes Marker (an opaque token that fences the hand-off) as the record's
// execution_ref and Until as its dispatch_until. A record holding a
// dispatch_until is neither claimed, expired, listed as due nor listed as
// stale; the store recognises it by that field alone, never by the token.
// A reservation exists only on a pending or scheduled record (claims and
// expiry skip it, so a reserved record neither runs nor ends by itself).
// Release and Finalize clear dispatch_until, and so does every other write
// that replaces or clears execution_ref; a value left on a record that is
// no longer pending or scheduled means nothing. A zero Until is refused
// with ErrConfig (CheckReserve).
type ReserveDispatchParams struct {
	ID                 uuid.UUID
	Marker             string
	Until              time.Time
	ExpectedRetryCount *int
}

// ReleaseDispatchParams clears Marker and dispatch_until (compare-and-clear on
// Marker); a non-empty ExecutionBackend re-routes the record.
type ReleaseDispatchParams struct {
	ID               uuid.UUID
	Marker           string
	ExecutionBackend string
	ExecutionProfile string
}

// FinalizeDispatchParams replaces Marker with Ref and clears dispatch_until.
type FinalizeDispatchParams struct {
	ID     uuid.UUID
	Marker string
	Ref    string
}

// Capabilities describes a backend's optional behaviour.
type Capabilities struct {
	WakeupTransport  string // "", "memory", "sqlite-poll", "postgres-notify", "redis-pubsub"
	WakeupsDurable   bool
	ControlTransport string // "" = durable poll only
	CompletionEvents bool
	Maintenance      bool // Locker available
	ProcessLocal     bool // records invisible to other processes
}

// Waker delivers lossy, coalescing wakeup hints. The channel is closed when ctx
// ends or the listener breaks.
type Waker interface {
	Wakeups(ctx context.Context) (<-chan struct{}, error)
}

// WorkerController delivers control hints (a running record of that worker was
// cancelled) to the worker with that ID.
type WorkerController interface {
	NotifyWorkerControl(ctx context.Context, workerID string) error
	WorkerControl(ctx context.Context, workerID string) (<-chan struct{}, error)
}

// DueTimer reports the earliest future scheduled_at among pending/scheduled records.
type DueTimer interface {
	NextDue(ctx context.Context, queues []string) (time.Time, bool, error)
}

// CompletionWaiter blocks until the record may have reached a terminal state
// (a lossy announcement), or ctx ends.
type CompletionWaiter interface {
	WaitForCompletion(ctx context.Context, id uuid.UUID) error
}

// Locker provides token-fenced expiring locks for fleet-wide sweeps. It fails
// closed: an error means not acquired.
type Locker interface {
	AcquireLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error)
	ReleaseLock(ctx context.Context, name, token string) (bool, error)
}

// TaskFilter selects records for Inspector.ListTasks. Cursor is the ID of the
// last record of the previous page.
type TaskFilter struct {
	Status   queuestype.Status
	Queue    string
	TaskName string
	// Tag selects records carrying this tag.
	Tag    string
	Limit  int // 0 → 50
	Cursor uuid.UUID
}

// TaskPage is one page of ListTasks, newest first. NextCursor is zero on the last page.
type TaskPage struct {
	Items      []*queuestype.Record
	NextCursor uuid.UUID
}

// Inspector lists records for dashboards and operators.
type Inspector interface {
	ListTasks(ctx context.Context, f TaskFilter) (TaskPage, error)
	QueueStatistics(ctx context.Context) (map[string]queuestype.Statistics, error)
}

// StaleError is the error text stored on records stale recovery fails, and
// on records it requeues that hold no error yet.
const StaleError = "Task heartbeat stale"

// MigrateOptions controls Migrator.Migrate.
type MigrateOptions struct {
	// DryRun reports the pending versions without applying them.
	DryRun bool
}

// MigrateReport describes the schema versions of a store.
type MigrateReport struct {
	// Applied lists every version applied after the call (before it, with DryRun), oldest first.
	Applied []string
	// AppliedNow lists the versions this call applied.
	AppliedNow []string
	// Pending lists versions not applied yet (what a DryRun would apply).
	Pending []string
}

// Migrator applies a backend's embedded, versioned schema migrations.
type Migrator interface {
	Migrate(ctx context.Context, opts MigrateOptions) (MigrateReport, error)
}

// TxEnqueuer is implemented by backends that can insert records inside a
// caller's transaction of type Tx (pgx.Tx for PostgreSQL, *sql.Tx for
// SQLite): the records (and any forever reservation and wakeup NOTIFY)
// become visible only when the caller commits, and a rollback leaves
// nothing. EnqueueTx has Enqueue's contract otherwise (outcomes in input
// order, key and reservation handling, validation); a nil tx is an error
// matching ErrConfig. The service asserts the store as TxEnqueuer[Tx] for
// the transaction type the application passes.
type TxEnqueuer[Tx any] interface {
	EnqueueTx(ctx context.Context, tx Tx, items []EnqueueParams) ([]EnqueueOutcome, error)
}

// MatchesFilter reports whether rec matches f's task name, queue, and
// top-level args/metadata subsets (status is not considered).
func MatchesFilter(rec *queuestype.Record, f CancelFilter) bool {
	if f.TaskName != "" && rec.TaskName != f.TaskName {
		return false
	}
	if f.Queue != "" && rec.Queue != f.Queue {
		return false
	}
	if len(f.Args) > 0 {
		var args map[string]any
		if json.Unmarshal(rec.Args, &args) != nil || !SubsetMatch(f.Args, args) {
			return false
		}
	}
	return SubsetMatch(f.Metadata, rec.Metadata)
}

// SubsetMatch reports whether every top-level key of want is in have with
// an equal JSON encoding (an empty want matches anything). It is the args
// and metadata match of MatchesFilter, for stores that hold those fields in
// their own form.
func SubsetMatch(want, have map[string]any) bool {
	for k, v := range want {
		hv, ok := have[k]
		if !ok {
			return false
		}
		a, err1 := json.Marshal(v)
		b, err2 := json.Marshal(hv)
		if err1 != nil || err2 != nil || string(a) != string(b) {
			return false
		}
	}
	return true
}
