package postgres

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// recordColumns is the column list every record read selects, in scan order.
var recordColumns = []string{
	"id", "task_name", "args", "queue", "execution_backend", "execution_profile", "execution_ref",
	"worker_id", "status", "priority", "max_retries", "retry_count", "scheduled_at", "expires_at",
	"created_at", "queued_at", "started_at", "completed_at", "heartbeat_at", "result", "error",
	"task_key", "metadata", "policy", "interruptions", "dispatch_until", "snooze_count", "errors",
	"tags",
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

// scanRecord reads one record (the recordColumns). Rows from a query decode
// the raw wire values directly (see decodeRaw); a single pgx.Row goes
// through pgx's scanner.
func scanRecord(row scanner) (*queuestype.Record, error) {
	if rows, ok := row.(pgx.Rows); ok {
		if r, ok, err := decodeRaw(rows); ok {
			return r, err
		}
	}
	var (
		r                                   queuestype.Record
		args, result, meta, policy, history []byte
		snoozes                             int32
		profile, ref, worker, errText, key  pgtype.Text
		status                              string
		prio, maxRetries, retryCount, intr  int32
		sched, expires, started, done, beat pgtype.Timestamptz
		dispatchUntil                       pgtype.Timestamptz
		created, queued                     time.Time
		tags                                []string
	)
	dest := []any{(*[16]byte)(&r.ID), &r.TaskName, &args, &r.Queue, &r.ExecutionBackend, &profile, &ref,
		&worker, &status, &prio, &maxRetries, &retryCount, &sched, &expires,
		&created, &queued, &started, &done, &beat, &result, &errText,
		&key, &meta, &policy, &intr, &dispatchUntil, &snoozes, &history, &tags}
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
	r.Status = queuestype.Status(status)
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
	m, err := decodeMetadata(meta)
	if err != nil {
		return nil, fmt.Errorf("decode metadata of %s: %w", r.ID, err)
	}
	r.Metadata = m
	if r.Policy, err = decodePolicy(policy); err != nil {
		return nil, fmt.Errorf("decode policy of %s: %w", r.ID, err)
	}
	r.Interruptions = int(intr)
	r.DispatchUntil = tsTime(dispatchUntil)
	r.SnoozeCount = int(snoozes)
	if r.Errors, err = driver.DecodeErrorHistory(string(history)); err != nil {
		return nil, fmt.Errorf("decode errors of %s: %w", r.ID, err)
	}
	if len(tags) > 0 {
		r.Tags = tags
	}
	return &r, nil
}

// pgEpoch is the zero of PostgreSQL's binary timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// decodeRaw decodes a record straight from the binary wire values of the
// current row, skipping pgx's per-column scan plans (the claim and settle
// paths decode thousands of records per second). ok is false when a column
// did not arrive in the expected binary format; the caller then scans
// normally.
func decodeRaw(rows pgx.Rows) (*queuestype.Record, bool, error) {
	fds := rows.FieldDescriptions()
	v := rows.RawValues()
	if len(v) != len(recordColumns) {
		return nil, false, nil
	}
	// Binary everywhere except text columns (identical in both formats) and
	// jsonb (either: pgx asks for text).
	for i := range fds {
		switch fds[i].DataTypeOID {
		case pgtype.TextOID, pgtype.VarcharOID, pgtype.JSONBOID:
		default:
			if fds[i].Format != pgx.BinaryFormatCode {
				return nil, false, nil
			}
		}
	}
	var r queuestype.Record
	if len(v[0]) != 16 {
		return nil, false, nil
	}
	copy(r.ID[:], v[0])
	str := func(b []byte) string { return string(b) }
	// Names repeat across records (task, queue, execution backend, worker):
	// share one string each instead of allocating per row.
	name := intern
	i4 := func(b []byte) (int, bool) {
		if len(b) != 4 {
			return 0, false
		}
		return int(int32(binary.BigEndian.Uint32(b))), true
	}
	tsv := func(b []byte) (time.Time, bool) {
		if b == nil {
			return time.Time{}, true
		}
		if len(b) != 8 {
			return time.Time{}, false
		}
		us := int64(binary.BigEndian.Uint64(b))
		return pgEpoch.Add(time.Duration(us) * time.Microsecond), true
	}
	js := func(col int, b []byte) ([]byte, bool) {
		if b == nil {
			return nil, true
		}
		if fds[col].Format == pgx.TextFormatCode {
			return append([]byte(nil), b...), true
		}
		if len(b) == 0 || b[0] != 1 {
			return nil, false
		}
		return append([]byte(nil), b[1:]...), true
	}
	r.TaskName = name(v[1])
	args, ok := js(2, v[2])
	if !ok {
		return nil, false, nil
	}
	if args != nil {
		r.Args = json.RawMessage(args)
	}
	r.Queue = name(v[3])
	r.ExecutionBackend = name(v[4])
	r.ExecutionProfile = name(v[5])
	r.ExecutionRef = str(v[6])
	r.WorkerID = name(v[7])
	r.Status = queuestype.Status(name(v[8]))
	var ok1, ok2, ok3, ok4, ok5 bool
	r.Priority, ok1 = i4(v[9])
	r.MaxRetries, ok2 = i4(v[10])
	r.RetryCount, ok3 = i4(v[11])
	r.Interruptions, ok4 = i4(v[24])
	r.SnoozeCount, ok5 = i4(v[26])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return nil, false, nil
	}
	for i, dst := range []*time.Time{&r.ScheduledAt, &r.ExpiresAt, &r.CreatedAt, &r.QueuedAt, &r.StartedAt, &r.CompletedAt, &r.HeartbeatAt} {
		t, ok := tsv(v[12+i])
		if !ok {
			return nil, false, nil
		}
		*dst = t
	}
	var okDU bool
	if r.DispatchUntil, okDU = tsv(v[25]); !okDU {
		return nil, false, nil
	}
	res, ok := js(19, v[19])
	if !ok {
		return nil, false, nil
	}
	if res != nil {
		r.Result = json.RawMessage(res)
	}
	r.Error = str(v[20])
	r.Key = str(v[21])
	meta, ok := js(22, v[22])
	if !ok {
		return nil, false, nil
	}
	m, err := decodeMetadata(meta)
	if err != nil {
		return nil, true, fmt.Errorf("decode metadata of %s: %w", r.ID, err)
	}
	r.Metadata = m
	pol, ok := js(23, v[23])
	if !ok {
		return nil, false, nil
	}
	if r.Policy, err = decodePolicy(pol); err != nil {
		return nil, true, fmt.Errorf("decode policy of %s: %w", r.ID, err)
	}
	hist, ok := js(27, v[27])
	if !ok {
		return nil, false, nil
	}
	if r.Errors, err = driver.DecodeErrorHistory(string(hist)); err != nil {
		return nil, true, fmt.Errorf("decode errors of %s: %w", r.ID, err)
	}
	if fds[28].Format != pgx.BinaryFormatCode {
		return nil, false, nil
	}
	if r.Tags, ok = decodeTextArray(v[28]); !ok {
		return nil, false, nil
	}
	return &r, true, nil
}

// decodeTextArray decodes a one-dimensional text[] in PostgreSQL's binary
// array format (dimensions, null flag, element type, then per dimension
// its length and lower bound, then per element a length and the bytes);
// nil for an empty array. ok is false for any other shape, which the
// caller then scans normally.
func decodeTextArray(b []byte) (tags []string, ok bool) {
	u32 := func() (int, bool) {
		if len(b) < 4 {
			return 0, false
		}
		n := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		return n, true
	}
	ndim, ok := u32()
	if !ok || ndim > 1 {
		return nil, false
	}
	if _, ok = u32(); !ok { // has-null flag
		return nil, false
	}
	if _, ok = u32(); !ok { // element type
		return nil, false
	}
	if ndim == 0 {
		return nil, len(b) == 0
	}
	n, ok := u32()
	if !ok || n < 0 {
		return nil, false
	}
	if _, ok = u32(); !ok { // lower bound
		return nil, false
	}
	tags = make([]string, 0, n)
	for range n {
		l, ok := u32()
		if !ok || l < 0 || l > len(b) {
			return nil, false
		}
		tags = append(tags, string(b[:l]))
		b = b[l:]
	}
	if len(tags) == 0 {
		tags = nil
	}
	return tags, len(b) == 0
}

// collectRecords reads every row of rows as a record.
func collectRecords(rows pgx.Rows, err error) ([]*queuestype.Record, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*queuestype.Record
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
func collectOne(rows pgx.Rows, err error) (*queuestype.Record, error) {
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

// metadataJSON encodes record metadata (nil = {}), normalised like every
// backend reads it back.
func metadataJSON(m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return []byte("{}"), nil
	}
	return json.Marshal(m)
}

// metaCache remembers decoded metadata objects by their JSON text: records
// of one task usually share the same system metadata, and a deep copy of a
// decoded map is several times cheaper than decoding it again.
var metaCache struct {
	sync.Mutex
	m map[string]map[string]any
}

const metaCacheMax = 512

// decodeMetadata decodes a metadata object into a caller-owned map.
func decodeMetadata(raw []byte) (map[string]any, error) {
	if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
		return map[string]any{}, nil
	}
	if len(raw) <= 1024 {
		metaCache.Lock()
		cached, ok := metaCache.m[string(raw)]
		metaCache.Unlock()
		if ok {
			return queuestype.CloneMetadata(cached), nil
		}
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	if len(raw) <= 1024 {
		metaCache.Lock()
		if metaCache.m == nil || len(metaCache.m) >= metaCacheMax {
			metaCache.m = make(map[string]map[string]any, metaCacheMax)
		}
		metaCache.m[string(raw)] = queuestype.CloneMetadata(m)
		metaCache.Unlock()
	}
	return m, nil
}

// policyCache remembers decoded policies by their JSON text: every record
// of a task carries the same policy, so most reads find it here.
var policyCache struct {
	sync.Mutex
	m map[string]queuestype.Policy
}

const policyCacheMax = 512

// decodePolicy decodes the stored policy; the returned value shares no
// memory with the cache or with other records.
func decodePolicy(raw []byte) (queuestype.Policy, error) {
	if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
		return queuestype.Policy{}, nil
	}
	policyCache.Lock()
	p, ok := policyCache.m[string(raw)]
	policyCache.Unlock()
	if !ok {
		var err error
		if p, err = queuestype.DecodePolicy(string(raw)); err != nil {
			return queuestype.Policy{}, err
		}
		if len(raw) <= 1024 {
			policyCache.Lock()
			if policyCache.m == nil || len(policyCache.m) >= policyCacheMax {
				policyCache.m = make(map[string]queuestype.Policy, policyCacheMax)
			}
			policyCache.m[string(raw)] = clonePolicy(p)
			policyCache.Unlock()
		}
	}
	return clonePolicy(p), nil
}

// clonePolicy returns p with its own copy of the one pointer field.
func clonePolicy(p queuestype.Policy) queuestype.Policy {
	if v := p.RequeueOnShutdown; v != nil {
		c := *v
		p.RequeueOnShutdown = &c
	}
	return p
}

// policyJSON is the stored text of p ("{}" for the zero policy).
func policyJSON(p queuestype.Policy) []byte {
	if p.IsZero() {
		return []byte("{}")
	}
	return []byte(queuestype.EncodePolicy(p))
}

// internMax bounds the intern table; past it, names are allocated per row.
const internMax = 4096

var internTable struct {
	sync.RWMutex
	m map[string]string
}

// intern returns b as a string shared with earlier calls for the same bytes
// (empty and long values are not kept).
func intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > 200 {
		return string(b)
	}
	internTable.RLock()
	s, ok := internTable.m[string(b)]
	internTable.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	internTable.Lock()
	if internTable.m == nil {
		internTable.m = make(map[string]string)
	}
	if len(internTable.m) < internMax {
		internTable.m[s] = s
	}
	internTable.Unlock()
	return s
}
