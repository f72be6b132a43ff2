// Package redis is the Redis / Valkey queue backend (SPEC §9), built on
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
// compare-and-set exactly as SPEC §3.1: settling writes are fenced on status
// and retry_count (the generation), a guard that does not hold changes
// nothing and returns an error matching queues.ErrFenceLost (also
// queues.ErrTaskNotFound for a missing ID), and a priority outside
// −1000..1000 fails the enqueue with queues.ErrConfig. The backend passes
// the shared contract suite (backend/backendtest) unchanged.
//
// # Keys
//
// Options.Prefix (default "queues") names the key space; every key is
// "{<prefix>}:…", so all keys of one prefix carry one hash tag (<p> below,
// braces included):
//
//	<p>:task:<id>                 hash: the record, one field per non-null column (times in µs; a
//	                              stored "" also means null), metadata as one JSON field plus
//	                              "m:<key>" overlay fields written by heartbeats and interruptions,
//	                              ix (placement), forever and mo (overlays present)
//	<p>:ready:<pt>                zset: claimable records of one partition, score −priority,
//	                              member <queued_at µs, 16 digits><created_at µs, 16 digits><id>,
//	                              so rank order is exactly priority DESC, queued_at, created_at, id
//	<p>:sched:<pt>                zset: records due later, score scheduled_at
//	<p>:expiry:<pt>               zset: open records without an execution ref that have a
//	                              deadline, score expires_at, member <created_at><id>
//	<p>:idx:<status>:<queue>      zset: every record by status and queue, lexicographic member
//	                              <created_at><id> (ListTasks pages newest first by keyset; ZCARD
//	                              gives Statistics without a scan)
//	<p>:terminal                  zset: terminal records by completed_at (bounded cleanup)
//	<p>:done:<task name>          zset: completed records of a task by completed_at
//	<p>:external                  zset: non-terminal records holding an execution ref, by
//	                              coalesce(started_at, created_at)
//	<p>:parts, <p>:queues         sets: registry of partitions and queue names
//	<p>:keys                      hash: identity key → record ID
//	<p>:reservations              hash: forever key → JSON reservation (never deleted by maintenance)
//	<p>:lock:<name>               string: maintenance lock token (SET NX PX; compare-and-delete release)
//	<p>:version                   string: key-layout version "1" (Open and Migrate write it)
//
// A partition <pt> is "<len(backend)>:<execution backend>:<queue>": ready,
// scheduled and expiry sets are kept per (execution backend, queue), so a
// claim with queue or execution-backend filters and per-queue caps only
// reads the partitions it may take from, and costs O(log n) per record.
//
// # Scripts
//
// The scripts are loaded at Open (SCRIPT LOAD) and called with EVALSHA;
// a NOSCRIPT reply (a restarted or flushed server) reloads the script and
// retries. The claim script promotes due scheduled records of the selected
// partitions into their ready sets (flipping scheduled → pending, which
// SPEC §2.2 allows), expires overdue unreserved records (returned in
// ClaimResult.Expired), then claims up to the batch size in claim order,
// honouring per-queue caps: one call per batch, returning IDs; the records
// are then read with native HGETALLs in one pipelined round trip (reading a
// record field by field in Lua and converting it costs the server about
// three times as much, and the server's one thread bounds throughput).
// Complete, Fail, Cancel,
// Interrupt, heartbeat touches and nulls, the dispatch fences and ClaimByID
// go through a batcher: concurrent calls are coalesced into one ops-script
// call (each op under its own fence, with its own result), so a worker with
// 100 attempts finishing together makes a handful of round trips, while an
// isolated call still costs one. Index updates inside a script are grouped
// per key (one ZADD/ZREM per key per call). EnqueueMany is one script call
// (keyed dedup, forever reservations and the ID check included); keep
// batches to a few thousand items, since a script blocks the server while it
// runs. Given the claimed record (CompleteParams.Claimed, which the worker
// always passes), Complete returns the settled record built from it plus
// the few fields that may have changed since (the script reports them), so
// the hot path never reads a whole record twice;
// other writes that return a record read it with HMGET in the same MULTI.
//
// # Hints
//
// One subscription connection per Backend (client name "queues-sub-…",
// visible in CLIENT LIST) carries three channels: wakeups on
// "<ns>:worker_wakeups" (published by the enqueue script once per call when
// any new record is due, and by retries, interruptions, stale requeues,
// ClearExecutionRef, SetExecutionBackend and ReleaseDispatch), worker-control
// hints on "<ns>:worker_control" ({"event":"worker_control","worker_id":…},
// which cancel running attempts within milliseconds), and completion
// announcements on "<p>:completions" (the IDs that turned terminal in one
// script call, comma-separated), which make queues.TaskResult.Wait return
// as soon as the record is terminal (queues.CompletionWaiter). <ns> is
// Options.Namespace (default "queues", SPEC §19). The subscription starts
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
// back to back (three sets on 2026-11-29; this machine is slower than the
// one of earlier figures, for both):
//
//	queues bench --backend redis://127.0.0.1:6379/3 --jobs 100000 --workers 100 --batch-size 1000 [--prefetch 100]
//	cd bench/peers/asynq && go run .
//
//	                         queues              queues --prefetch 100   Asynq v0.26.0
//	processed jobs/s         8,916 / 9,875 / 10,547  9,836 / 9,953 / 10,878  6,968 / 6,215 / 6,424
//	idle latency p50         0.76 / 0.81 / 0.69 ms   0.64 / 0.63 / 0.69 ms   1022 / 987 / 1037 ms
//
// That is 1.3–1.7x Asynq's processed jobs/s, not the 2x the project aims
// for. The idle enqueue-to-start latency is under a millisecond (the wakeup
// hint) against Asynq's one-second empty-queue poll.
//
// Where the time goes: about 75–80 µs of Redis CPU and 45–55 µs of client
// CPU per job (Asynq: about 105 and 140). BenchmarkClaimComplete splits the
// server side into claim (about 33–36 µs, of which the HGETALL read of the
// record is 4.6, the fencing HMGET about 2.5 and the index writes about 5.5)
// and complete (38–41 µs); INFO commandstats attributes roughly 40% of the
// script time to the commands themselves — HSET on the record hash (listpack:
// every field written is a linear search), four ZADDs and three ZREMs of
// index maintenance per job — and the rest to Lua (argument and reply
// conversion per redis.call, tables per op, garbage collection). The two
// cores are not saturated (about 66% busy against Asynq's 100%): timing the
// worker loop shows it spends about 80% of its time waiting for ClaimMany,
// whose script queues behind completion scripts on the single Redis thread,
// so claiming is on the critical path. Prefetch (whose body slots now free
// before the settle write) gains 0–10%; a prototype with a second claim in
// flight gained 5–10% and was not kept. The next levers are fewer index
// writes per job (status indexes scored by created_at with the bare ID as
// member, one terminal index serving cleanup and completed-by-task reads),
// less Lua per record (specialised hot-path scripts generated from one
// template), and overlapping claims with completions in one script call.
package redis
