package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// taskColumns lists the columns of queue_task.
const taskColumns = `id, task_name, args, queue, execution_backend, execution_profile, execution_ref, worker_id,
status, priority, max_retries, retry_count, scheduled_at, expires_at, created_at, queued_at, started_at,
completed_at, heartbeat_at, result, error, task_key, metadata, policy, interruptions`

// recordColumns is the column list every record query selects or returns, in
// rawRec field order: the columns an insert writes, dispatch_until (only the
// dispatch-reservation writes set it), snooze_count and errors (only Settle
// writes them), tags (JSON, NULL for none) and the rowid (a claimed record's rowid
// lets Settle complete it by rowid, without the text-keyed id index).
const recordColumns = taskColumns + `, dispatch_until, snooze_count, errors, tags, rowid`

// SQL fragments shared by the statements. No IN list has more than two
// constants (see the migration's note).
const (
	sqlOpen        = `status IN ('pending', 'scheduled')`
	sqlNotTerminal = `completed_at IS NULL`
	sqlTerminal    = `completed_at IS NOT NULL`
	// sqlUnreserved: no dispatch reservation (dispatch_until unset).
	sqlUnreserved = `dispatch_until IS NULL`
	// sqlNow is parameter ?1 (now, µs) in a WHERE clause. The CAST matters:
	// while choosing partial indexes, SQLite compares a bare parameter with
	// the indexes' predicates and then marks the statement to be compiled
	// again whenever that parameter is bound to a new value — every call,
	// for a timestamp. A CAST is not a bare parameter.
	sqlNow = `CAST(?1 AS INTEGER)`
	// sqlDue is the due predicate with ?1 = now (µs): open, scheduled_at
	// reached, not expired, not reserved for a dispatch.
	sqlDue = sqlOpen + ` AND (scheduled_at IS NULL OR scheduled_at <= ` + sqlNow + `) AND (expires_at IS NULL OR expires_at > ` + sqlNow + `) AND ` + sqlUnreserved
	// sqlClaimOrder is the claim order: higher priority first, then oldest
	// queued_at, created_at, then id.
	sqlClaimOrder = `priority DESC, queued_at, created_at, id`
)

// rawRec is one record row as SQLite returns it. The writer goroutine only
// scans rows into rawRecs; decoding (UUID parsing, JSON metadata) happens in
// the calling goroutine.
type rawRec struct {
	ID          string
	TaskName    string
	Args        sql.NullString
	Queue       string
	Backend     string
	Profile     sql.NullString
	Ref         sql.NullString
	Worker      sql.NullString
	Status      string
	Priority    int64
	MaxRetries  int64
	RetryCount  int64
	ScheduledAt sql.NullInt64
	ExpiresAt   sql.NullInt64
	CreatedAt   int64
	QueuedAt    int64
	StartedAt   sql.NullInt64
	CompletedAt sql.NullInt64
	HeartbeatAt sql.NullInt64
	Result      sql.NullString
	Error       sql.NullString
	Key         sql.NullString
	Metadata    string
	Policy      string // the policy JSON, opaque to the store
	// Interruptions counts shutdown interruptions.
	Interruptions int64
	// DispatchUntil is the deadline of a dispatch reservation (µs); set
	// while the record is reserved for an external dispatch.
	DispatchUntil sql.NullInt64
	// SnoozeCount counts snoozes; Errors is the error history's JSON.
	SnoozeCount int64
	Errors      sql.NullString
	// Tags is the tags' JSON array, NULL for none.
	Tags  sql.NullString
	RowID int64
}

// scanRecords appends every row of rows (recordColumns) to out and closes rows.
func scanRecords(rows *sql.Rows, out []rawRec) ([]rawRec, error) {
	defer rows.Close()
	var r rawRec
	dest := []any{&r.ID, &r.TaskName, &r.Args, &r.Queue, &r.Backend, &r.Profile, &r.Ref, &r.Worker,
		&r.Status, &r.Priority, &r.MaxRetries, &r.RetryCount, &r.ScheduledAt, &r.ExpiresAt, &r.CreatedAt,
		&r.QueuedAt, &r.StartedAt, &r.CompletedAt, &r.HeartbeatAt, &r.Result, &r.Error, &r.Key, &r.Metadata,
		&r.Policy, &r.Interruptions, &r.DispatchUntil, &r.SnoozeCount, &r.Errors, &r.Tags, &r.RowID}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// record decodes a row into a caller-owned record.
func (r *rawRec) record() (*queuestype.Record, error) {
	id, err := uuid.Parse(r.ID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: task id %q: %w", r.ID, err)
	}
	rec := &queuestype.Record{
		ID:               id,
		TaskName:         r.TaskName,
		Queue:            r.Queue,
		ExecutionBackend: r.Backend,
		ExecutionProfile: r.Profile.String,
		ExecutionRef:     r.Ref.String,
		WorkerID:         r.Worker.String,
		Status:           queuestype.Status(r.Status),
		Priority:         int(r.Priority),
		MaxRetries:       int(r.MaxRetries),
		RetryCount:       int(r.RetryCount),
		ScheduledAt:      fromMicrosNull(r.ScheduledAt),
		ExpiresAt:        fromMicrosNull(r.ExpiresAt),
		CreatedAt:        fromMicros(r.CreatedAt),
		QueuedAt:         fromMicros(r.QueuedAt),
		StartedAt:        fromMicrosNull(r.StartedAt),
		CompletedAt:      fromMicrosNull(r.CompletedAt),
		HeartbeatAt:      fromMicrosNull(r.HeartbeatAt),
		Error:            r.Error.String,
		Key:              r.Key.String,
		Interruptions:    int(r.Interruptions),
		DispatchUntil:    fromMicrosNull(r.DispatchUntil),
		SnoozeCount:      int(r.SnoozeCount),
	}
	if r.Args.Valid {
		rec.Args = json.RawMessage(r.Args.String)
	}
	if r.Result.Valid {
		rec.Result = json.RawMessage(r.Result.String)
	}
	rec.Metadata, err = decodeMetadata(r.Metadata)
	if err != nil {
		return nil, fmt.Errorf("sqlite: task %s metadata: %w", r.ID, err)
	}
	rec.Policy, err = decodePolicy(r.Policy)
	if err != nil {
		return nil, fmt.Errorf("sqlite: task %s policy: %w", r.ID, err)
	}
	rec.Errors, err = driver.DecodeErrorHistory(r.Errors.String)
	if err != nil {
		return nil, fmt.Errorf("sqlite: task %s: %w", r.ID, err)
	}
	if r.Tags.Valid {
		if err := json.Unmarshal([]byte(r.Tags.String), &rec.Tags); err != nil {
			return nil, fmt.Errorf("sqlite: task %s tags: %w", r.ID, err)
		}
		if len(rec.Tags) == 0 {
			rec.Tags = nil
		}
	}
	return rec, nil
}

// decodeAll decodes rows.
func decodeAll(rows []rawRec) ([]*queuestype.Record, error) {
	out := make([]*queuestype.Record, len(rows))
	for i := range rows {
		rec, err := rows[i].record()
		if err != nil {
			return nil, err
		}
		out[i] = rec
	}
	return out, nil
}

// metadataCache remembers decoded metadata documents by their text: most
// records of a workload carry one of a few documents, and cloning a decoded
// map costs a fraction of decoding it again.
var metadataCache struct {
	sync.Mutex
	m map[string]map[string]any
}

const (
	metadataCacheEntries = 1024
	metadataCacheMaxLen  = 512
)

// decodeMetadata decodes the metadata column (always an object) into a
// caller-owned map.
func decodeMetadata(s string) (map[string]any, error) {
	if s == "" || s == "{}" {
		return map[string]any{}, nil
	}
	cacheable := len(s) <= metadataCacheMaxLen
	if cacheable {
		metadataCache.Lock()
		m, ok := metadataCache.m[s]
		metadataCache.Unlock()
		if ok {
			return queuestype.CloneMetadata(m), nil
		}
	}
	m := map[string]any{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	if cacheable {
		c := queuestype.CloneMetadata(m)
		metadataCache.Lock()
		if metadataCache.m == nil || len(metadataCache.m) >= metadataCacheEntries {
			metadataCache.m = make(map[string]map[string]any, 64)
		}
		metadataCache.m[s] = c
		metadataCache.Unlock()
	}
	return m, nil
}

// policyCache remembers decoded policies by their text: a workload's
// records carry the policies of a few tasks.
var policyCache struct {
	sync.Mutex
	m map[string]queuestype.Policy
}

// decodePolicy decodes the policy column into a caller-owned policy.
func decodePolicy(s string) (queuestype.Policy, error) {
	if s == "" || s == "{}" {
		return queuestype.Policy{}, nil
	}
	cacheable := len(s) <= metadataCacheMaxLen
	if cacheable {
		policyCache.Lock()
		p, ok := policyCache.m[s]
		policyCache.Unlock()
		if ok {
			return clonePolicy(p), nil
		}
	}
	p, err := queuestype.DecodePolicy(s)
	if err != nil {
		return queuestype.Policy{}, err
	}
	if cacheable {
		policyCache.Lock()
		if policyCache.m == nil || len(policyCache.m) >= metadataCacheEntries {
			policyCache.m = make(map[string]queuestype.Policy, 16)
		}
		policyCache.m[s] = clonePolicy(p)
		policyCache.Unlock()
	}
	return p, nil
}

// clonePolicy copies p so that the copy shares no pointer with it.
func clonePolicy(p queuestype.Policy) queuestype.Policy {
	if v := p.RequeueOnShutdown; v != nil {
		c := *v
		p.RequeueOnShutdown = &c
	}
	return p
}

// encodeMetadata encodes a metadata object ("{}" for nil or empty).
func encodeMetadata(m map[string]any) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("sqlite: encode metadata: %w", err)
	}
	return string(b), nil
}

// micros converts a time to stored Unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros is the stored form of a nullable time: nil for the zero time.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromMicrosNull(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// nullStr is the stored form of a nullable string: nil for "".
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullJSON is the stored form of a JSON document: nil for an absent one.
func nullJSON(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// claimLess is the claim order: priority DESC, queued_at, created_at, id.
// Canonical UUID text orders like the UUID bytes.
func claimLess(a, b *rawRec) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if a.QueuedAt != b.QueuedAt {
		return a.QueuedAt < b.QueuedAt
	}
	if a.CreatedAt != b.CreatedAt {
		return a.CreatedAt < b.CreatedAt
	}
	return a.ID < b.ID
}

// isOpen reports pending or scheduled.
func isOpen(s string) bool {
	return s == string(queuestype.StatusPending) || s == string(queuestype.StatusScheduled)
}

// reserved reports whether the record holds a dispatch reservation.
func (r *rawRec) reserved() bool { return r.DispatchUntil.Valid }

// dueAt reports whether the record's due time has come at now (µs).
func (r *rawRec) dueAt(now int64) bool { return !r.ScheduledAt.Valid || r.ScheduledAt.Int64 <= now }

// expiredAt reports whether the record's deadline has passed at now (µs).
func (r *rawRec) expiredAt(now int64) bool { return r.ExpiresAt.Valid && r.ExpiresAt.Int64 <= now }
