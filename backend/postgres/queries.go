package postgres

import "strings"

// wakePayload is the payload of the wakeup NOTIFY on the tasks channel.
const wakePayload = `{"event":"task_available"}`

const (
	openStatuses     = `('pending', 'scheduled')`
	terminalStatuses = `('completed', 'failed', 'cancelled', 'expired')`
	activeStatuses   = `('pending', 'scheduled', 'running')`
)

// due renders the due predicate for table alias x: pending or scheduled,
// scheduled_at reached, not expired, and holding no dispatch reservation.
func due(x string) string {
	return x + `.status IN ('pending', 'scheduled') AND (` + x + `.scheduled_at IS NULL OR ` + x + `.scheduled_at <= now())` +
		` AND (` + x + `.expires_at IS NULL OR ` + x + `.expires_at > now())` +
		` AND ` + unreserved(x)
}

// unreserved is the predicate "x holds no dispatch reservation" (no
// dispatch_until; the marker in execution_ref is never read).
func unreserved(x string) string {
	return x + `.dispatch_until IS NULL`
}

// completeSQL settles each (id, generation, result, worker) of the unnest
// arrays as completed, fenced on status=running, its own generation and,
// when the worker is not null, the record's worker_id; the three complete
// statements (complete, completeSlim, completeBare) differ only in what
// they return.
var completeSQL = `UPDATE {t} t SET status = 'completed', completed_at = now(), heartbeat_at = NULL, result = v.result, error = NULL
` + byID(`unnest($1::uuid[], $2::int[], $3::jsonb[], $4::text[]) AS v(id, gen, result, worker)`,
	`x.retry_count = v.gen AND (v.worker IS NULL OR coalesce(x.worker_id, '') = v.worker)`)

// settleSQL applies the transitions of Settle that the complete statement
// does not take, one row of the unnest arrays each: the record's status
// after the write (completed, failed, cancelled or pending; pending means
// scheduled when the delay is positive), the result, the error text (null
// keeps the error of a cancelled record), the retry delay, whether the
// retry is an interruption or a snooze, the error history (null keeps
// it; only failed and pending writes carry one), the new priority (null
// keeps it), and the
// fences: generation; running, or with a ref the ref and any active status;
// the worker when not null; and with a positive stale_us a heartbeat still
// null or older than that many microseconds (negative: any heartbeat).
var settleSQL = `UPDATE {t} t SET
    status = CASE WHEN v.tgt <> 'pending' THEN v.tgt WHEN v.delay_us > 0 THEN 'scheduled' ELSE 'pending' END,
    result = CASE WHEN v.tgt = 'completed' THEN v.result ELSE t.result END,
    error = CASE WHEN v.tgt = 'completed' THEN NULL WHEN v.tgt = 'cancelled' THEN coalesce(v.err, t.error) ELSE v.err END,
    completed_at = CASE WHEN v.tgt = 'pending' THEN NULL ELSE now() END,
    heartbeat_at = NULL,
    retry_count = CASE WHEN v.tgt = 'pending' THEN t.retry_count + 1 ELSE t.retry_count END,
    queued_at = CASE WHEN v.tgt = 'pending' THEN now() ELSE t.queued_at END,
    scheduled_at = CASE WHEN v.tgt <> 'pending' THEN t.scheduled_at
        WHEN v.delay_us > 0 THEN now() + v.delay_us * interval '1 microsecond' END,
    started_at = CASE WHEN v.tgt = 'pending' THEN NULL ELSE t.started_at END,
    worker_id = CASE WHEN v.tgt = 'pending' THEN NULL ELSE t.worker_id END,
    execution_ref = CASE WHEN v.tgt = 'pending' THEN NULL ELSE t.execution_ref END,
    dispatch_until = NULL,
    interruptions = CASE WHEN v.tgt = 'pending' AND v.interrupted THEN t.interruptions + 1 ELSE t.interruptions END,
    snooze_count = CASE WHEN v.tgt = 'pending' AND v.snoozed THEN t.snooze_count + 1 ELSE t.snooze_count END,
    errors = CASE WHEN v.tgt IN ('pending', 'failed') THEN coalesce(v.errs, t.errors) ELSE t.errors END,
    priority = CASE WHEN v.tgt = 'pending' THEN coalesce(v.priority, t.priority) ELSE t.priority END
` + byIDFenced(`unnest($1::uuid[], $2::int[], $3::text[], $4::jsonb[], $5::text[], $6::bigint[], $7::bool[], $8::int[],
        $9::text[], $10::text[], $11::bigint[], $12::bool[], $13::jsonb[])
    AS v(id, gen, tgt, result, err, delay_us, interrupted, priority, worker, ref, stale_us, snoozed, errs)`,
	`x.retry_count = v.gen
        AND (CASE WHEN v.ref IS NULL THEN (x.status || '') = 'running'
             ELSE coalesce(x.execution_ref, '') = v.ref AND (x.status || '') IN ('pending', 'scheduled', 'running') END)
        AND (v.worker IS NULL OR coalesce(x.worker_id, '') = v.worker)
        AND (v.stale_us <= 0 OR x.heartbeat_at IS NULL OR x.heartbeat_at < now() - v.stale_us * interval '1 microsecond')`) +
	`RETURNING {tcols}`

// byID is the FROM and WHERE of a statement that updates the running
// records named by the rows v of from, each fenced by the running status
// and by fence (over x, the record, and v). Each row of v finds and locks
// its record by primary key in a subquery of its own, and the update then
// joins by ctid. Writing it as a plain join (FROM unnest … WHERE t.id =
// v.id AND t.status = 'running') leaves the join order to the planner,
// which, when the table's statistics say few records run (an ANALYZE taken
// while the queue was idle), drives the join from the running records and
// scans them once per row of v: a 2,000-record completion took 1.5 s. The
// running check is written so that no partial index predicate (status =
// 'running') matches it, which keeps the lookup on the primary key. The
// lock makes the ctid join safe: the record cannot change between lookup
// and update, and a record changed before the lock is re-checked against
// the fence.
func byID(from, fence string) string {
	return byIDFenced(from, `(x.status || '') = 'running' AND `+fence)
}

// byIDFenced is byID with the whole fence, status included, given by the
// caller (written, like byID's, so that no partial index predicate matches).
func byIDFenced(from, fence string) string {
	return `FROM (SELECT v.*, (SELECT x.ctid FROM {t} x
        WHERE x.id = v.id AND ` + fence + ` FOR UPDATE) AS tid
    FROM ` + from + ` OFFSET 0) v
WHERE t.ctid = v.tid
`
}

// claimOrder is the claim order for alias x.
func claimOrder(x string) string {
	return x + `.priority DESC, ` + x + `.queued_at, ` + x + `.created_at, ` + x + `.id`
}

// queries holds the static statements of one schema and prefix.
type queries struct {
	exists       string
	notify       string
	insert       string // fast path: unnest insert, no keys
	enqueueKeyed string // keyed path: enqueueKeyedSQL
	releaseKeys  string
	getTask      string
	getTasks     string
	getByKey     string
	claimByID    string
	expireByID   string
	complete     string
	completeSlim string
	completeBare string
	touch        string
	nullBeats    string
	cancel       string
	settle       string
	lockIDs      string
	staleList    string
	expire       string
	cleanup      string
	cleanupTask  string
	listExternal string
	nextDue      string
	nextDueQ     string
	completedBy  string
	lockAcquire  string
	lockRelease  string
	reserveID    string
	getID        string
	resetID      string
}

func buildQueries(n names) queries {
	t := n.task
	all := cols("")
	tall := cols("t")
	r := strings.NewReplacer("{t}", t, "{cols}", all, "{tcols}", tall, "{res}", n.reservation, "{maint}", n.maintenance,
		"{open}", openStatuses, "{terminal}", terminalStatuses, "{active}", activeStatuses,
		"{due}", due("t"), "{xdue}", due("x"))
	q := func(s string) string { return r.Replace(s) }
	insertCols := `id, task_name, args, queue, execution_backend, execution_profile, status, priority, max_retries,
    retry_count, scheduled_at, expires_at, created_at, queued_at, task_key, metadata, policy, tags`
	insertSelect := `SELECT u.id, u.task_name, u.args, u.queue, u.eb, u.ep,
    CASE WHEN u.scheduled_at > now() THEN 'scheduled' ELSE 'pending' END,
    u.priority, u.max_retries, 0, u.scheduled_at, u.expires_at, now(), now(), u.task_key, u.metadata, u.policy,
    ARRAY(SELECT jsonb_array_elements_text(u.tags))
FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::text[], $6::text[], $7::int[], $8::int[],
    $9::timestamptz[], $10::timestamptz[], $11::text[], $12::jsonb[], $13::bool[], $14::jsonb[], $15::jsonb[])
    WITH ORDINALITY AS u(id, task_name, args, queue, eb, ep, priority, max_retries, scheduled_at, expires_at, task_key, metadata, forever, policy, tags, ord)`
	return queries{
		exists: q(`SELECT EXISTS (SELECT 1 FROM {t} WHERE id = $1)`),
		notify: `SELECT pg_notify($1, $2)`,
		insert: q(`INSERT INTO {t} (` + insertCols + `)
` + insertSelect + `
ORDER BY u.ord
RETURNING {cols}`),
		enqueueKeyed: q(enqueueKeyedSQL),
		releaseKeys:  q(releaseKeysSQL),
		getTask:      q(`SELECT {cols} FROM {t} WHERE id = $1`),
		getTasks:     q(`SELECT {cols} FROM {t} WHERE id = ANY($1)`),
		getByKey:     q(`SELECT {cols} FROM {t} WHERE task_key = $1`),
		claimByID: q(`UPDATE {t} t SET status = 'running', worker_id = $2, started_at = now(), heartbeat_at = now()
WHERE t.id = $1 AND t.status IN {open}
  AND (t.scheduled_at IS NULL OR t.scheduled_at <= now())
  AND t.dispatch_until IS NULL
  AND (t.expires_at IS NULL OR t.expires_at > now() OR t.execution_ref IS NOT NULL)
  AND ($3::int IS NULL OR t.retry_count = $3) AND ($4::text IS NULL OR coalesce(t.execution_ref, '') = $4)
RETURNING {tcols}`),
		expireByID: q(`UPDATE {t} t SET status = 'expired', completed_at = now(), heartbeat_at = NULL
WHERE t.id = $1 AND t.status IN {open} AND t.execution_ref IS NULL AND t.expires_at <= now()
  AND ($2::int IS NULL OR t.retry_count = $2) AND ($3::text IS NULL OR $3 = '')
RETURNING {tcols}`),
		complete:     q(completeSQL + `RETURNING {tcols}`),
		completeSlim: q(completeSQL + `RETURNING t.id, t.completed_at, t.worker_id, t.execution_ref, t.metadata`),
		completeBare: q(completeSQL + `RETURNING t.id`),
		touch: q(`UPDATE {t} t SET heartbeat_at = now(),
    metadata = CASE WHEN v.patch IS NULL THEN t.metadata ELSE t.metadata || v.patch END
` + byID(`unnest($1::uuid[], $2::int[], $3::jsonb[]) WITH ORDINALITY AS v(id, gen, patch, ord)`,
			`(v.gen IS NULL OR x.retry_count = v.gen)`) + `RETURNING v.ord`),
		nullBeats: q(`UPDATE {t} t SET heartbeat_at = NULL
` + byID(`unnest($1::uuid[], $2::int[]) AS v(id, gen)`, `x.retry_count = v.gen AND x.heartbeat_at IS NOT NULL`)),
		cancel: q(`UPDATE {t} t SET status = 'cancelled', completed_at = now(), heartbeat_at = NULL, dispatch_until = NULL
WHERE t.id = $1 AND (t.status IN {open} OR ($2 AND t.status = 'running')) AND ($3::int IS NULL OR t.retry_count = $3)
RETURNING {tcols}`),
		settle: q(settleSQL),
		// Locks the records of the ids, one primary-key lookup each, in
		// array order (see rewriteLost).
		lockIDs: q(`SELECT (SELECT 1 FROM {t} x WHERE x.id = v.id FOR UPDATE) FROM unnest($1::uuid[]) AS v(id)`),
		// Running records without a heartbeat (their own small index), then
		// those with a stale one (the heartbeat index, in its order); the
		// caller merges the two and keeps the first $2. A negative $1 takes
		// every heartbeat.
		staleList: q(`(SELECT {cols} FROM {t} s
    WHERE status = 'running' AND heartbeat_at IS NULL AND ` + unreserved("s") + `
    ORDER BY created_at, id
    LIMIT $2)
UNION ALL
(SELECT {cols} FROM {t} s
    WHERE status = 'running' AND heartbeat_at IS NOT NULL AND ` + unreserved("s") + `
      AND coalesce(heartbeat_at, created_at) < (CASE WHEN $1::bigint < 0 THEN 'infinity'::timestamptz
          ELSE now() - $1::bigint * interval '1 microsecond' END)
    ORDER BY coalesce(heartbeat_at, created_at), id
    LIMIT $2)`),
		expire: q(`UPDATE {t} t SET status = 'expired', completed_at = now(), heartbeat_at = NULL
WHERE t.id IN (
    SELECT x.id FROM {t} x
    WHERE x.status IN {open} AND x.execution_ref IS NULL AND x.expires_at <= now()
    ORDER BY x.expires_at, x.created_at
    LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING {tcols}`),
		cleanup: q(`DELETE FROM {t} WHERE id IN (
    SELECT x.id FROM {t} x
    WHERE x.status IN {terminal} AND x.completed_at < greatest($1::timestamptz, $2::timestamptz, $3::timestamptz, $4::timestamptz)
      AND ((x.status = 'completed' AND x.completed_at < $1) OR (x.status = 'failed' AND x.completed_at < $2)
        OR (x.status = 'cancelled' AND x.completed_at < $3) OR (x.status = 'expired' AND x.completed_at < $4))
    ORDER BY x.completed_at, x.id
    LIMIT $5 FOR UPDATE SKIP LOCKED)`),
		// cleanupTask is cleanup with per-task cutoffs: $1 the latest
		// cutoff, $2 the tasks with cutoffs of their own, $3..$6 the
		// defaults of the other tasks, $7..$9 the per-task cutoffs as
		// parallel arrays (task, status, cutoff), $10 the limit.
		cleanupTask: q(`DELETE FROM {t} WHERE id IN (
    SELECT x.id FROM {t} x
    WHERE x.status IN {terminal} AND x.completed_at < $1::timestamptz
      AND ((NOT (x.task_name = ANY($2::text[]))
          AND ((x.status = 'completed' AND x.completed_at < $3::timestamptz) OR (x.status = 'failed' AND x.completed_at < $4::timestamptz)
            OR (x.status = 'cancelled' AND x.completed_at < $5::timestamptz) OR (x.status = 'expired' AND x.completed_at < $6::timestamptz)))
        OR EXISTS (SELECT 1 FROM unnest($7::text[], $8::text[], $9::timestamptz[]) AS o(task, status, before)
          WHERE o.task = x.task_name AND o.status = x.status AND x.completed_at < o.before))
    ORDER BY x.completed_at, x.id
    LIMIT $10 FOR UPDATE SKIP LOCKED)`),
		listExternal: q(`SELECT {cols} FROM {t}
WHERE execution_ref IS NOT NULL AND status IN {active}
ORDER BY coalesce(started_at, created_at), id
LIMIT $1`),
		nextDue:  q(`SELECT min(scheduled_at) FROM {t} WHERE status IN {open} AND scheduled_at IS NOT NULL AND scheduled_at > now()`),
		nextDueQ: q(`SELECT min(scheduled_at) FROM {t} WHERE status IN {open} AND scheduled_at IS NOT NULL AND scheduled_at > now() AND queue = ANY($1)`),
		completedBy: q(`SELECT {cols} FROM {t}
WHERE status = 'completed' AND task_name = $1 AND ($2::timestamptz IS NULL OR completed_at >= $2)
ORDER BY completed_at DESC, id DESC
LIMIT $3`),
		lockAcquire: q(`INSERT INTO {maint} AS m (name, token, expires_at) VALUES ($1, $2, now() + $3 * interval '1 microsecond')
ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
    WHERE m.expires_at <= now() OR m.token = EXCLUDED.token
RETURNING token`),
		lockRelease: q(`DELETE FROM {maint} WHERE name = $1 AND token = $2`),
		reserveID: q(`INSERT INTO {res} (identity_key, task_id, task_name, created_at)
VALUES ($1, $2, $3, coalesce($4, now()))
ON CONFLICT (identity_key) DO NOTHING
RETURNING identity_key`),
		getID:   q(`SELECT identity_key, task_id, task_name, created_at FROM {res} WHERE identity_key = $1`),
		resetID: q(`DELETE FROM {res} WHERE identity_key = $1 AND ($2::uuid IS NULL OR task_id = $2)`),
	}
}

// planSettings pins the plan shape of the bulk claim and settle statements
// for their own transaction: ordered index scans and nested-loop primary-key
// lookups, whatever the table statistics say. Without it an unanalysed or
// skewed table makes the planner pick bitmap scans, which never mark dead
// index entries, so every claim would revisit every record claimed since the
// last VACUUM; and hash joins that scan every running record per settle.
const planSettings = `SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`
