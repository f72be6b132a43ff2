// Package postgres is the PostgreSQL queue backend (a driver.Backend) on
// jackc/pgx/v5 and pgxpool.
//
//	b, err := postgres.New(pool, postgres.Options{Schema: "jobs", Namespace: "queues"})
//	// or, owning the pool (closed by Close): postgres.Connect(ctx, "postgres://…", opts)
//	_, err = b.Migrate(ctx, driver.MigrateOptions{}) // explicit, once per deploy
//	svc, err := queues.New(queues.Config{Backend: b, Registry: reg})
//
// # Migrations
//
// The schema is a set of versioned SQL migrations embedded in the package
// (migrations/NNNN_name.sql, see Versions). They are applied only by an
// explicit call — Backend.Migrate, which `queues migrate` uses — never at run
// time: all pending versions in one transaction under a transaction-scoped
// advisory lock (concurrent migrators serialize), recorded in the
// queue_migration ledger. Migrate creates the schema when missing;
// MigrateOptions.DryRun reports pending versions without touching anything.
// Open checks the ledger and fails with an error matching ErrNotMigrated
// ("run `queues migrate`") when versions are missing, or ErrSchemaTooNew when
// the schema holds versions this build does not know; a call that meets a
// missing table reports ErrNotMigrated too. Adopters who manage DDL
// themselves can take the rendered SQL from MigrationSQL. Migration
// 0001_create_queue_tasks creates the task table and its indexes, identity
// reservations (forever keys), maintenance locks and the event-history table
// (schema only). Migration 0002_task_policy adds the policy column (the
// record's typed task policy, one JSON value the engine writes at enqueue
// and the store never reads) and the interruptions counter, moves the
// policy keys and metadata.interruptions that earlier builds kept in each
// record's metadata into them (records of every status), and adds a small
// index of running records without a heartbeat for ListStale. Migration
// 0003_dispatch_until adds the dispatch_until column (see External
// dispatch) and fills it for the records that earlier builds had reserved
// (non-terminal records whose execution_ref holds a reservation marker) with
// the deadline the marker carries, or the Unix epoch when it is unreadable.
// Migration 0004_workers creates queue_worker, the registry of live workers
// (see Worker registry), and leaves the task records alone. Migration
// 0005_schedule_pauses creates queue_schedule_pause (see Schedule pauses),
// and leaves the task records alone too.
//
// # Worker registry
//
// The registry of live workers (driver.WorkerRegistry) is the queue_worker
// table: one row per worker ID (collation "C", so it lists in byte order
// like every store), its queue filter as text[]. RegisterWorker upserts the
// row with seen_at = now() and expires_at = now() + ttl, the database's
// clock, through the heartbeat pool when there is one; RemoveWorker deletes
// it. ListWorkers returns the rows whose expires_at is after now() in id
// order and, in the same statement, deletes up to 1,000 expired rows (an
// index on expires_at keeps that cheap when there are none).
//
// # Schedule pauses
//
// The schedules paused fleet-wide (driver.SchedulePauser) are the rows of
// queue_schedule_pause: one per schedule name (collation "C", byte order),
// with since = now(), the database's clock. PauseSchedule inserts the row
// and leaves one already there alone, so a second pause keeps the first
// since; ResumeSchedule deletes it; PausedSchedules lists the rows by name.
// The engine decides what a pause means; the table only keeps the set.
//
// # Schema and table prefix
//
// Options.Schema places every table in that schema ("" = search_path) and
// Options.TablePrefix is prepended to every table and index name (app_
// gives app_queue_task). Names are quoted; a derived name longer than 63
// bytes keeps 54 bytes plus "_" and 8 hex digits of its SHA-1. Two prefixes
// or schemas on one database are fully independent stores.
//
// # Claims and indexes
//
// ClaimMany is one statement: a FOR UPDATE SKIP LOCKED subselect in claim
// order (priority DESC, queued_at, created_at, id), limited to the batch,
// feeding UPDATE … SET status='running', worker_id, started_at=heartbeat_at=
// now() … FROM (…) WHERE ctid = the locked row's ctid … RETURNING (a locked
// row cannot move, so the update needs no second primary-key walk). Due
// predicates keep expired records out of the claim (the expired-at-claim
// fence). Per-queue caps and queue filters use one LATERAL probe per queue,
// which pins its queue with a range and orders by queue first, so that with
// sorting disabled only the (execution_backend, queue, …) index can serve
// it (statistics that knew nothing of a new queue sent it down the
// all-queues index, filtering out every other queue's backlog);
// with ExpireOverdue an expiry sweep statement runs just before the claim
// in the same transaction and round trip, with sorting disabled so that its
// only plan is the expiry index (statistics saying nothing expires made the
// planner read every pending record instead: 59 ms per claim at 100k).
// Two partial indexes over pending/scheduled records only serve it —
// (execution_backend, queue, priority DESC, queued_at, created_at, id) for
// queue-filtered workers and (execution_backend, priority DESC, …) for
// workers on every queue — so a claim is an ordered index scan that stops
// after the batch, however many million records the table holds. The bulk
// claim and settle statements are sent in one pipelined batch behind
// transaction-local planner settings (no bitmap scans, no hash or merge
// joins): on an unanalysed or skewed table the planner otherwise picks
// bitmap scans, which never mark dead index entries, so every claim would
// revisit every record claimed since the last VACUUM (measured: 15–35 ms per
// idle claim after 100k jobs with autovacuum off, against about 1 ms).
// Even an index scan steps over the dead entries that claimed records leave
// at the front of the claim index until the table is vacuumed: after 100k
// jobs an idle claim costs 2–5 ms instead of under 1 ms. Autovacuum clears
// them on a default server; where it is off or lags, Backend.Vacuum runs
// VACUUM (ANALYZE) on the task table (`queues bench` does so between its
// WORK and LATENCY phases, and so does the River harness).
// Timestamps always come from the database clock (now()).
//
// # Settling
//
// The engine decides every outcome (retry or fail, backoff, stale requeue,
// interruption budget) and Settle writes it: one fenced transition per
// record (completed, failed, cancelled, or pending again as a retry, a
// stale requeue or a shutdown interruption). The store reads neither the
// retry budget nor the task policy: it applies the transition it is given
// or reports that the fence did not hold. Completions fenced only on the
// generation (and the worker) share the coalesced complete statement and
// its Claimed and NoRecord shortcuts; every other transition goes through one
// coalesced settle statement that carries the target status and the
// transition's fences (worker, execution ref, heartbeat still stale) per
// row. ListStale lists the candidates of stale recovery: running records
// without a heartbeat first, then those whose heartbeat is older than the
// threshold by the database clock, from two ordered index scans. The
// engine's stale writes carry Transition.StaleAfter, so a heartbeat that
// lands in between keeps the record with its live attempt.
//
// # Batched writes
//
// Settle and TouchHeartbeats go through small write coalescers (group
// commit): a caller that finds a flush slot free flushes at once, inline, so
// an idle backend adds no latency; callers arriving while flushes run queue
// up and leave together in the next one. A flush is one UPDATE … FROM
// unnest(ids, generations, …) statement in which every row is still fenced
// on its own generation (status=running AND retry_count=gen; a transition
// with ExpectedRef fences on the ref instead). The complete and settle
// statements and the heartbeat writes find each row's record by primary key
// in a subquery of its own (SELECT ctid … FOR UPDATE) and update by ctid, so
// the plan cannot depend on statistics: as a plain join, an ANALYZE taken
// while nothing ran made the planner scan every running record once per
// array element (a 2,000-record completion took 1.5 s;
// TestSettlePlansIgnoreStaleStatistics checks the plans), at the price of a
// row lock before each update (about 4% of throughput when statistics are
// fresh). Every flush writes its records in ID order, so a heartbeat write
// and a completion that share records take their row locks in one order (no
// deadlock), and the primary-key lookups of time-ordered IDs stay close
// together. The lock returns the record's newest version, which the
// statement's snapshot does not see when another transaction (a heartbeat
// touch) updated the record after the statement began; such a record is left
// out as if its fence had failed. The complete and settle statements
// therefore write the ops a flush left out once more, in the same round trip
// as a statement that first locks their records: that write sees every
// committed change, so what it leaves out really lost its fence (no cost
// while every op lands). Each caller gets its own record or an error
// matching queuestype.ErrFenceLost (plus queuestype.ErrTaskNotFound for a
// missing record). An ID repeated in one flush goes into a following
// statement. NullHeartbeats is one unnest statement. Stale recovery is
// ListStale, which only reads, then the engine's Settle of each record it
// decided, fenced on the generation and on the heartbeat still being stale
// when the row is written (Transition.StaleAfter). Enqueue of unkeyed items
// is one INSERT … SELECT FROM unnest(…) statement pipelined with its
// pg_notify: one round trip for any batch size.
//
// # Keyed enqueue
//
// Items with identity keys are one round trip too: a pipeline of two
// statements in one implicit transaction. The first releases the keys of
// the records that no longer hold them under the key rule of each key's
// first item (driver.KeyRule.Holds in SQL at the transaction's now(): by
// default the terminal records; with UniqueFor the records older than the
// period, whatever their status; with UniqueWhile the records outside the
// states); the second reads the remaining holders of the items'
// keys and the forever reservations, inserts the records (and the
// reservations of forever items) that the reads leave free — per key the
// first such item in input order — returns what it read and inserted, and
// sends the pg_notify when a new record is pending. The per-item outcomes
// (deduplicated, owner, identity conflict, repeated key) are resolved in Go
// from the same reads. Neither insert has ON CONFLICT: if a concurrent
// writer took a key between the read and the insert, the statement fails
// with a unique violation, the implicit transaction rolls back and the call
// is retried (another round trip, at most 8 attempts), so a per-item
// conflict never leaves a stray reservation behind. Measured on the wire
// (TestEnqueueRoundTrips): 1 round trip for a keyed EnqueueMany with new
// keys or held ones, where the earlier design took 5 (BEGIN, a pipelined
// UPDATE and SELECTs, the INSERT, the pg_notify, COMMIT; 3 when every key
// was held). The first call on a connection adds one to prepare the
// statements.
//
// Key periods and states need no schema change: the unique index on
// task_key covers every record that has a key, terminal or not (a key is
// cleared only when a new record takes it over), so a completed record
// still inside its UniqueFor period keeps its key and blocks a second
// insert structurally, and the holder's status and created_at are what
// the release reads. The planner applies driver.KeyRule.Holds to the
// holders the statement returns, with the now() it returns, and fails the
// call if a holder the release kept does not hold its key. Two writers
// releasing the same holder serialize on its row lock; the second one's
// statement then reads the first one's committed record as the holder,
// created at or after its own now(), so it holds. A holder removed by
// retention or DeleteTask takes its period with it.
//
// # External dispatch
//
// A record reserved for an external dispatch holds the reservation's
// deadline in dispatch_until: ReserveDispatch sets it (with the marker, an
// opaque fencing token, as execution_ref), FinalizeDispatch and
// ReleaseDispatch clear it, and so does every other write that replaces or
// clears execution_ref or ends the record (SetExecutionRef,
// ReplaceExecutionRef, ClearExecutionRef, SetExecutionBackend, Cancel,
// Settle). While it is set the record is neither claimed, expired, listed
// by ListPending nor by ListStale; the store never reads the marker's text,
// so a ref that merely looks like a marker reserves nothing.
//
// # Hints
//
// Enqueues of due records (one NOTIFY per call, however many records),
// retries, stale requeues and interruptions due at once (one NOTIFY per
// settle flush that requeued such a record), ClearExecutionRef,
// SetExecutionBackend and ReleaseDispatch send NOTIFY <ns>_tasks (payload
// {"event":"task_available"}); NotifyWorkerControl sends NOTIFY
// <ns>_worker_control with {"event":"worker_control","worker_id":"…"} (the
// running-cancellation hint); <ns> is Options.Namespace. Each backend opens
// one dedicated listener connection (not from the pool; application_name
// queues-listener:<ns>) at the first Wakeups or WorkerControl subscription
// and fans notifications out in process. When that connection breaks, the
// backend logs "Queue listener connection lost; workers fall back to polling
// until it reconnects", closes every subscription channel (the worker
// resubscribes and keeps polling durably), reconnects with backoff by
// itself, and on reconnect sends every subscriber a hint, since
// notifications were lost meanwhile. A lost listener therefore costs
// latency, never correctness. Options.Wakeups = queues.Ptr(false) turns
// hints off entirely.
//
// # Heartbeat pool
//
// Options.HeartbeatPool routes heartbeat touches and heartbeat nulls through
// a separate, small pool on the same database, so a saturated main pool
// cannot starve them (which would end in stale recovery of healthy work).
// Connect creates and owns one with Options.HeartbeatConns.
//
// # Transactional enqueue
//
// EnqueueTx (driver.TxEnqueuer[pgx.Tx]) runs the same enqueue inside the
// caller's pgx.Tx: records, forever reservations and the NOTIFY become
// visible only if the caller commits, and a rollback leaves nothing. Its
// pipeline is wrapped in SAVEPOINT … RELEASE, still one round trip; a
// failed call rolls back to the savepoint (a second round trip), leaving
// the caller's transaction usable. The service's queues.EnqueueTx and
// queues.EnqueueManyTx use it; a transaction of another type (a *sql.Tx)
// is refused with an error matching queues.ErrUnsupported.
//
// # Statistics
//
// Statistics and QueueStatistics (what `queues status` prints) first read
// the table's size estimate (pg_class.reltuples). Up to
// Options.ExactStatisticsLimit (default 1,000,000 rows) they count every
// status exactly with one GROUP BY. On a larger table they never scan the
// whole table: pending and scheduled are counted exactly through the claim
// partial index and running through the heartbeat partial index — both hold
// only active records, however long the history grows — and completed,
// failed, cancelled and expired are the planner's row estimates for each
// status (EXPLAIN, i.e. ANALYZE statistics). A negative limit keeps every
// count exact. There is deliberately no (created_at) index: claim and settle
// updates are not HOT (status is in the partial-index predicates), so every
// full index takes an entry per record version, and this one cost about 20%
// of the database CPU per job; ListTasks sorts the filtered rows instead.
//
// # Measured
//
// On the 2-core development machine (PostgreSQL 15 on 127.0.0.1, autovacuum
// off, a CHECKPOINT before each run): 100,000 no-op jobs inserted with
// EnqueueMany in batches of 5,000 before the worker starts, worked by one
// worker (MaxConcurrency 2000) until every completion is written, then the
// table vacuumed and 100 idle enqueue-to-start samples. River v0.51.2 ran
// right after each of ours on the same database with its own benchmark's
// settings (one queue, MaxWorkers 2000, FetchCooldown 2ms, FetchPollInterval
// 20ms, InsertMany in batches of 5,000, counted on EventKindJobCompleted,
// river_job vacuumed the same way):
//
//	queues bench --backend postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	    --jobs 100000 --workers 2000 --batch-size 5000 --samples 100
//	cd bench/peers/river && go run . -samples 100
//
//	      work jobs/s        idle p50 / p99 latency
//	run   queues   River     queues          River
//	1     16,794   12,567    1.78 / 5.2 ms   3.76 /  7.0 ms
//	2     19,658   11,595    2.23 / 6.2 ms   4.18 / 11.0 ms
//	3     18,551   12,511    1.65 / 3.6 ms   4.19 /  8.0 ms
//
// That is 1.3–1.7x River's jobs/s on 2026-11-29 (the target is 2x; the
// machine was slower than on the day of the earlier 1.5–1.9x). CPU per
// worked job: about 55–65 µs in PostgreSQL and 31–40 µs in this process,
// against 90–99 and about 48 for River; both runs keep the two cores about
// 85% busy. Without the vacuum (--no-vacuum) our idle p50 was 4–5.5 ms:
// each idle claim stepped over the dead claim-index entries of the 100,000
// worked records.
//
// Where the PostgreSQL time goes (perf over the work phase): about a third
// is index maintenance — claim and settle writes cannot be HOT updates
// (status is in the partial-index predicates), so every record version takes
// a primary-key entry plus its heartbeat (claim) or terminal and
// completed-by-task (complete) entries — then heap updates, the claim's
// index scan and row locks, and WAL. The claim joins the locked rows back by
// ctid (no second primary-key walk); a completion given the claimed record
// (Transition.Claimed) returns only completed_at, worker_id, execution_ref
// and metadata, and with Transition.NoRecord (the worker when no events are
// configured) only the ids the fence let through. Per batch, one claim and
// one settle statement carry hundreds of records, so round trips and
// parse/plan are a few percent. In this process the remaining cost is the
// runtime (goroutines per attempt, GC) and decoding rows; see the package
// queues worker.
package postgres
