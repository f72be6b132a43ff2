package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/queuesgo/queues"
)

// recordColumns is the column list every record read selects, in scan order.
var recordColumns = []string{
	"id", "task_name", "args", "queue", "execution_backend", "execution_profile", "execution_ref",
	"worker_id", "status", "priority", "max_retries", "retry_count", "scheduled_at", "expires_at",
	"created_at", "queued_at", "started_at", "completed_at", "heartbeat_at", "result", "error",
	"task_key", "metadata",
}

// cols renders the record columns, each qualified with alias when given.
func cols(alias string) string {
	if alias == "" {
		return strings.Join(recordColumns, ", ")
	}
	parts := make([]string, len(recordColumns))
	for i, c := range recordColumns {
		parts[i] = alias + "." + c
	}
	return strings.Join(parts, ", ")
}

// scanner is pgx.Row or pgx.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanRecord reads one record (the recordColumns, optionally after extra
// leading destinations).
func scanRecord(row scanner, extra ...any) (*queues.Record, error) {
	var (
		r                                      queues.Record
		args, result, meta                     []byte
		profile, ref, worker, errText, key     pgtype.Text
		status                                 string
		prio, maxRetries, retryCount           int32
		sched, expires, started, done, beat    pgtype.Timestamptz
		created, queued                        time.Time
	)
	dest := make([]any, 0, len(extra)+len(recordColumns))
	dest = append(dest, extra...)
	dest = append(dest, &r.ID, &r.TaskName, &args, &r.Queue, &r.ExecutionBackend, &profile, &ref,
		&worker, &status, &prio, &maxRetries, &retryCount, &sched, &expires,
		&created, &queued, &started, &done, &beat, &result, &errText,
		&key, &meta)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if args != nil {
		r.Args = json.RawMessage(args)
	}
	if result != nil {
		r.Result = json.RawMessage(result)
	}
	r.ExecutionProfile = profile.String
	r.ExecutionRef = ref.String
	r.WorkerID = worker.String
	r.Status = queues.Status(status)
	r.Priority, r.MaxRetries, r.RetryCount = int(prio), int(maxRetries), int(retryCount)
	r.ScheduledAt = tsTime(sched)
	r.ExpiresAt = tsTime(expires)
	r.CreatedAt = created.UTC()
	r.QueuedAt = queued.UTC()
	r.StartedAt = tsTime(started)
	r.CompletedAt = tsTime(done)
	r.HeartbeatAt = tsTime(beat)
	r.Error = errText.String
	r.Key = key.String
	r.Metadata = map[string]any{}
	if len(meta) > 0 && string(meta) != "null" {
		if err := json.Unmarshal(meta, &r.Metadata); err != nil {
			return nil, fmt.Errorf("decode metadata of %s: %w", r.ID, err)
		}
		if r.Metadata == nil {
			r.Metadata = map[string]any{}
		}
	}
	return &r, nil
}

// collectRecords reads every row of rows as a record.
func collectRecords(rows pgx.Rows, err error) ([]*queues.Record, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*queues.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// collectOne reads at most one record; nil when there is no row.
func collectOne(rows pgx.Rows, err error) (*queues.Record, error) {
	recs, err := collectRecords(rows, err)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

func tsTime(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// ts converts a caller time to a nullable timestamptz (zero = NULL).
func ts(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t.UTC(), Valid: true}
}

// text converts "" to NULL.
func text(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

// claimLess is the claim order: priority DESC, queued_at, created_at, id.
func claimLess(a, b *queues.Record) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.QueuedAt.Equal(b.QueuedAt) {
		return a.QueuedAt.Before(b.QueuedAt)
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return compareID(a.ID, b.ID) < 0
}

// compareID orders UUIDs as PostgreSQL does (bytewise).
func compareID(a, b uuid.UUID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// metadataJSON encodes record metadata (nil = {}), normalised like every
// backend reads it back.
func metadataJSON(m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return []byte("{}"), nil
	}
	return json.Marshal(m)
}
