// Package redis is the Redis / Valkey queue backend, built on
// github.com/redis/go-redis/v9.
//
//	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
//	b, err := redis.New(client, redis.Options{Prefix: "queues"}) // client stays yours
//	// or: b, err := redis.Connect(ctx, "redis://127.0.0.1:6379/0", redis.Options{}) // owned; Close closes it
//	svc, err := queues.New(queues.Config{Backend: b, Registry: reg})
//
// Every record state change is one Lua script call, atomic on the server,
// with every timestamp taken from the server's TIME (stored as microseconds),
// so worker clock skew cannot reorder or mis-expire records. Writes are
// compare-and-set, as the store contract requires: settling writes are
// fenced on status and retry_count (the generation), a guard that does not
// hold changes nothing and returns an error matching
// queuestype.ErrFenceLost (also queuestype.ErrTaskNotFound for a missing
// ID), and a priority outside −1000..1000 fails the enqueue with
// queuestype.ErrConfig. The backend passes
// the shared contract suite (backend/backendtest) unchanged.
//
// Records written before snooze_count, errors and tags existed lack those
// fields and read as no snoozes, no error history and no tags, so adding
// them needs no layout migration.
//
// # Keys
//
// Options.Prefix (default "queues") names the key space; every key is
// "{<prefix>}:…", so all keys of one prefix carry one hash tag (<p> below,
// braces included):
//
//	<p>:task:<id>                 hash: the record, one field per non-null column (times in µs; a
//	                              stored "" also means null), metadata as one JSON field plus
//	                              "m:<key>" overlay fields written by heartbeats, policy (the
//	                              task policy's JSON, absent when zero), interruptions (the
//	                              shutdown-interruption counter, absent when 0), dispatch_until
//	                              (a dispatch reservation's deadline, absent when none),
//	                              snooze_count (absent when 0), errors (the error history's
//	                              JSON array, absent when none), tags (comma-separated, sorted;
//	                              absent when none), ix (placement), forever and mo (overlays
//	                              present)
//	<p>:ready:<pt>                zset: claimable records of one partition, score −priority,
//	                              member <queued_at µs, 16 digits><created_at µs, 16 digits><id>,
//	                              so rank order is exactly priority DESC, queued_at, created_at, id
//	<p>:sched:<pt>                zset: records due later, score scheduled_at
//	<p>:expiry:<pt>               zset: open records without an execution ref that have a
//	                              deadline, score expires_at, member <created_at><id>
//	<p>:idx:<status>:<queue>      zset: every record by status and queue, lexicographic member
//	                              <created_at><id> (ListTasks pages newest first by keyset; ZCARD
//	                              gives Statistics without a scan)
//	<p>:tag:<tag>                 zset: records carrying the tag, member <created_at><id> like
//	                              the status indexes (ListTasks by tag walks it alone); written by
//	                              the enqueue script, entries removed by cleanup as it deletes
//	<p>:term:<status>             zset: failed, cancelled or expired records by completed_at, one
//	                              zset per status, so cleanup applies each status's retention
//	                              without reading the records another status keeps
//	<p>:terminal                  zset: what earlier builds wrote for every terminal status; cleanup
//	                              moves its kept entries to their own index until it is empty
//	<p>:done:<task name>          zset: completed records of a task by completed_at; bounded
//	                              cleanup merges the status indexes with these, so a completion
//	                              costs one terminal-index insert, not two
//	<p>:donetasks                 set: task names whose completed index may be non-empty
//	<p>:external                  zset: non-terminal records holding an execution ref, by
//	                              coalesce(started_at, created_at)
//	<p>:parts, <p>:queues         sets: registry of partitions and queue names
//	<p>:keys                      hash: identity key → record ID (kept after the record is terminal
//	                              until a new record takes the key over; the enqueue script reads
//	                              the holder's status and created_at to apply the new item's key
//	                              period and states, driver.KeyRule, at the server's TIME)
//	<p>:reservations              hash: forever key → JSON reservation (never deleted by maintenance)
//	<p>:lock:<name>               string: maintenance lock token (SET NX PX; compare-and-delete release)
//	<p>:version                   string: key-layout version "3" (Open and Migrate write it; "1>2"
//	                              or "2>3" while an earlier prefix is being migrated)
//	<p>:worker:<id>               hash: one live worker's registry entry (host, pid, queues as a
//	                              JSON array, execution_backend, concurrency, running, started_at,
//	                              version, seen_at, expires_at; times in µs), PEXPIRE ttl
//	<p>:workers                   zset: registered worker IDs by expires_at (µs)
//	<p>:workerids                 zset: the same IDs, score 0, for listing in byte order (BYLEX)
//	<p>:schedule_pauses           hash: paused schedule name → since (µs, the server's TIME)
//
// The registry of live workers (driver.WorkerRegistry) is one script call
// per operation, with seen_at and expires_at from the server's TIME like
// every record time. RegisterWorker replaces the hash and indexes the ID;
// RemoveWorker deletes all three; ListWorkers first deletes up to 1,000
// entries whose expires_at has passed, then walks <p>:workerids in byte
// order (Lua's string order follows the server's locale, so it is not
// used) and returns the IDs still live up to the limit. The hash's own
// PEXPIRE makes a dead worker's entry vanish even if nothing lists. These
// keys need no layout migration and leave the layout version at "3": no
// earlier build reads or writes them, and this build creates them on the
// first registration, so either build works on the same prefix.
//
// The schedules paused fleet-wide (driver.SchedulePauser) are the fields
// of <p>:schedule_pauses. PauseSchedule is one script call, HSETNX with the
// server's TIME, so a second pause keeps the first since; ResumeSchedule is
// one HDEL; PausedSchedules reads the hash with HGETALL and sorts the names
// byte-wise in Go (the set is small: a few schedules per task). The hash
// carries the prefix's hash tag, so it lives in the prefix's slot on a
// cluster; like the registry, it needs no layout migration.
//
// Layout 1 kept a record's task policy (timeout, retry_backoff,
// requeue_on_stale, requeue_on_shutdown, log_level, log_success,
// description, _correlation_id, unique_by, unique_version, unique_until) and
// its interruptions counter in its metadata. Open and Migrate move them,
// record by record, into the policy and interruptions fields and remove
// them from the metadata ("0002_redis_typed_policy"; see Migrate). The
// scripts never interpret the policy: only the engine reads it.
//
// A record reserved for external dispatch (ReserveDispatch) holds the
// reservation's marker as its execution_ref, the fencing token of the
// hand-off, and the reservation's deadline in its dispatch_until field.
// The scripts recognise a reservation by dispatch_until alone, never by
// the marker's text: a reserved record is neither claimed (it is kept out
// of the ready and scheduled sets), expired nor listed as due or stale.
// ReleaseDispatch and FinalizeDispatch clear dispatch_until, and so does
// every other write of execution_ref (SetExecutionRef, ClearExecutionRef,
// ReplaceExecutionRef, SetExecutionBackend, a requeue) and every terminal
// transition. Layout 2 recognised a reservation by the marker prefix of
// execution_ref; Open and Migrate give each such record its
// dispatch_until from the marker's deadline ("0003_redis_dispatch_until").
//
// A partition <pt> is "<len(backend)>:<execution backend>:<queue>": ready,
// scheduled and expiry sets are kept per (execution backend, queue), so a
// claim with queue or execution-backend filters and per-queue caps only
// reads the partitions it may take from, and costs O(log n) per record.
// The same split lets CountBacklog (driver.BacklogCounter) count every
// partition's due and later records with ZCARD and ZCOUNT in one read-only
// script, correcting only for placed records whose deadline has passed.
//
// # Scripts
//
// The scripts are loaded at Open (SCRIPT LOAD) and called with EVALSHA;
// a NOSCRIPT reply (a restarted or flushed server) reloads the script and
// retries. The claim script promotes due scheduled records of the selected
// partitions into their ready sets (flipping scheduled → pending, which
// the life cycle allows for a due record), expires overdue unreserved
// records (returned in ClaimResult.Expired), then claims up to the batch
// size in claim order, honouring per-queue caps: one call per batch,
// returning IDs; the records are then read with native HGETALLs in one
// pipelined round trip (reading a record field by field in Lua and
// converting it costs the server about three times as much, and the
// server's one thread bounds throughput).
//
// Every outcome of a claimed record is written by Settle: the engine
// decides it (completed, failed, cancelled, or pending as a retry, a stale
// requeue or a shutdown interruption, with its delay, error and priority)
// and the store applies it fenced on the generation and the fences the
// transition names. The scripts decide nothing: they do not read the retry
// budget, the backoff or any other part of the task policy. ListStale
// lists stale running records and changes nothing; the engine decides each
// one's fate and settles it fenced on the heartbeat still being stale.
//
// Settle's transitions, Cancel, heartbeat touches and nulls, the dispatch
// fences and ClaimByID go through a batcher: concurrent calls are coalesced
// into one ops-script call (each op under its own fence, with its own
// result), so a worker with 100 attempts finishing together makes a
// handful of round trips, while an isolated call still costs one. A
// completion fenced only on its generation (and worker) that carries the
// claimed record (Transition.Claimed, which the worker always passes) or
// NoRecord is coalesced the same way, with those of every concurrent
// Settle, into calls of a lean script of its own (see Performance), and
// Settle returns the settled record built from the claimed one plus the few
// fields that may have changed since (the script reports them), so the hot
// path never reads a whole record twice; other writes that return a record
// read it with HMGET in the same MULTI. Index updates inside a script are
// grouped per key (one ZADD/ZREM per key per call). EnqueueMany is one
// script call (keyed dedup, forever reservations and the ID check
// included); keep batches to a few thousand items, since a script blocks
// the server while it runs.
//
// # Hints
//
// One subscription connection per Backend (client name "queues-sub-…",
// visible in CLIENT LIST) carries three channels: wakeups on
// "<ns>:worker_wakeups" (published by the enqueue script once per call when
// any new record is due, by Settle when it requeues a record due at once
// (a retry, an interruption or a stale requeue), and by ClearExecutionRef,
// SetExecutionBackend and ReleaseDispatch), worker-control
// hints on "<ns>:worker_control" ({"event":"worker_control","worker_id":…},
// which cancel running attempts within milliseconds), and completion
// announcements on "<p>:completions" (the IDs that turned terminal in one
// script call, comma-separated), which make queues.TaskResult.Wait return
// as soon as the record is terminal (driver.CompletionWaiter). <ns> is
// Options.Namespace (default "queues", shared by every store). The subscription starts
// on first use. When it breaks (server restart, CLIENT KILL, network), every
// Wakeups and WorkerControl channel handed out is closed and completion
// waiters return, so workers resubscribe and re-read durable state; the
// connection is re-established with backoff by itself. A lost hint costs
// latency, never correctness. Capabilities reports "redis-pubsub", or
// "valkey-pubsub" when the server says it is Valkey.
//
// # Redis Cluster and Valkey
//
// New accepts any redis.UniversalClient, including *redis.ClusterClient.
// Because every key of a prefix shares the hash tag {<prefix>}, one prefix
// lives in one slot, so every script touches a single slot and runs on a
// cluster unchanged — and one prefix is served by one primary. To spread
// load over a cluster, give independent workloads their own prefixes (for
// example one prefix per tenant or per group of queues, each with its own
// Service); their tags hash to different slots. Pub/sub uses classic
// SUBSCRIBE/PUBLISH, which a cluster broadcasts to every node.
//
// Tested with Redis 7.0.15, standalone (TestContract) and as a one-node
// Redis Cluster through *redis.ClusterClient (TestClusterContract starts one
// from the redis-server binary, or uses QUEUES_TEST_REDIS_CLUSTER). Valkey
// was not available on the test machine; it speaks the same protocol and
// commands (EVALSHA, TIME in scripts, pub/sub, SET NX PX, ZRANGE … BYLEX),
// and Connect accepts valkey:// and valkeys:// URLs. Scripts need Lua
// effects replication, the default since Redis 5 and the only mode since 7.
//
// Tests use QUEUES_TEST_REDIS_URL (default redis://127.0.0.1:6379/0), give
// every backend its own prefix and namespace, delete only their own keys,
// and skip when the server is unreachable unless QUEUES_REQUIRE_SERVICES=1.
//
// # Performance
//
// Measured on the 2-core development machine against the same local Redis
// 7.0.15, 100,000 no-op jobs, one worker at MaxConcurrency 100 / BatchSize
// 100, versus Asynq v0.26.0 at concurrency 100 with 64 concurrent enqueuers
// (Asynq has no bulk enqueue) and its default 1 s TaskCheckInterval, run
// back to back (three sets on 2026-11-29, second session of the day):
//
//	queues bench --backend redis://127.0.0.1:6379/3 --jobs 100000 --workers 100 --batch-size 1000 [--prefetch 100]
//	cd bench/peers/asynq && go run .
//
//	                         queues                   queues --prefetch 100    Asynq v0.26.0
//	processed jobs/s         19,237 / 18,478 / 17,681 20,931 / 18,731 / 18,072 14,328 / 13,328 / 12,521
//	idle latency p50         0.49 / 0.43 / 0.36 ms    0.43 / 0.37 / 0.50 ms    889 / 933 / 1029 ms
//	server CPU µs/job        41 / 42 / 44             35 / 40 / 39             46 / 48 / 56
//	client CPU µs/job        27 / 29 / 29             26 / 30 / 30             62 / 67 / 73
//
// That is 1.34–1.46x Asynq's processed jobs/s, not the 2x the project aims
// for. The idle enqueue-to-start latency is under a millisecond (the wakeup
// hint) against Asynq's one-second empty-queue poll. Per job, queues uses
// about 60% of Asynq's CPU (61–73 µs against 108–129, server plus client),
// but most of it on the server's single thread, which is what
// bounds the rate: Asynq spreads its cost over the client, whose work runs
// on both cores. Asynq's default also deletes a task's data once it
// succeeds, while queues keeps every record (and its indexes) until terminal
// retention; the harness's -retention 24h keeps Asynq's too, which cost it
// 3–5% (13,151 → 12,804 and 15,075 → 14,305 jobs/s in two pairs). The
// machine's speed moved by a third within the hour (an
// earlier set of the same build's predecessor measured Asynq at 11.1–11.5k
// with 58–61 + 78–81 µs per job), so compare within a set.
//
// Where the time goes. BenchmarkClaimComplete (ClaimMany of 100, then 100
// concurrent completions, each its own Settle call) puts the server's side
// at 39–44 µs per job: claim 19–22 (the claim script plus the HGETALL
// read), complete 19–21. (These figures were taken when the completions
// were calls of a Complete method, since removed, which sent the same
// script the same batches.) Before the completion got its own script, the claim its append-only index writes and
// the running index its skiplist (below), the same benchmark measured 27–29
// and 31–33. In the WORK phase, INFO commandstats attributes about half of
// the script time to the commands — two HMGETs and two HSETs on the record hash (a listpack: every
// field named is a linear search, and an absent one a full scan), four ZADD
// inserts and three ZREMs of index maintenance (the inserts into the
// 100k-member completed, terminal and completed-by-task indexes are the
// largest single cost, about 2.7 µs each) — and the rest to Lua: argument and
// reply conversion per redis.call, strings and tables per record, garbage
// collection. perf on redis-server shows no single hot spot: dict lookups,
// listpack searches, skiplist inserts and memory allocation, each a few
// percent, and the (stripped) Lua VM about a third.
//
// What did not help: timing the worker loop shows it spends about 80% of
// WORK in ClaimMany (about 2,000 claims of 50 records, 2.4 ms each, queued
// behind completion scripts on the server's one thread) and the server's
// main thread is on CPU 73–78% of the time; but a second claim in flight
// (two claim loops with reserved capacity), more completion flushers,
// GOMAXPROCS=1 and returning the claimed records from the claim script
// instead of a second round trip (+3–8 µs of server CPU per job) all
// measured equal or worse, and prefetch gains 0–18%. Experiments that drop
// index writes (incorrect, for measurement only) show the lever that is
// left: the completed-by-task and terminal inserts cost about 3 µs per job
// each (a completion now makes only the first, below), the completed-status
// insert about 1.5, and the running index cost about 6 before it was kept a
// skiplist (below). Getting further means a new key layout, for instance
// status counters instead of the completed status index.
//
// The hot paths: a Settle completion with the claimed record at hand (which
// the worker always passes) runs luaComplete, a script of its own without the
// shared prelude or per-op dispatch, whose index writes go straight to one
// ZREM and one ZADD per key; the claim's common path appends its index
// writes the same way. A queue's running index holds only in-flight
// records, so Redis would keep it as a listpack (up to
// zset-max-listpack-entries, 128 by default), where each claim and
// completion is a linear scan and a memmove: the claim adds and removes,
// in the same call, a member longer than zset-max-listpack-value, which
// converts it to a skiplist for good (3–4 µs less server CPU per job).
// A completed record is indexed by task only (<p>:done:<task>), and
// CleanupTerminal merges those indexes with <p>:term:<status>, which keep the
// other terminal statuses: one sorted-set insert less per completion (about
// 2.3 µs less server CPU per job in BenchmarkClaimComplete). The layout
// stays readable both ways: records completed by an earlier build are in
// <p>:terminal too and are cleaned up once; an earlier build's cleanup
// does not see records completed by this one, nor the failed, cancelled and
// expired ones it indexes per status (<p>:term:<status>): they wait for a
// cleanup of this build.
// `queues bench` prints the server's CPU per job from INFO cpu
// (Backend.ServerCPU) next to the client's.
package redis
