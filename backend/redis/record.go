package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

// micros encodes a time as integer microseconds ("" for the zero time).
func micros(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

// fromMicros decodes integer microseconds to a UTC time.
func fromMicros(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(n).UTC(), nil
}

// encodeMetaPairs encodes each top-level metadata value as JSON: (key,
// json) pairs, stored as overlay fields "m:<key>". A value that cannot be
// encoded is stored as its fmt text, as the memory backend normalizes it.
func encodeMetaPairs(m map[string]any) []string {
	out := make([]string, 0, 2*len(m))
	for k, v := range m {
		raw, err := json.Marshal(v)
		if err != nil {
			raw, _ = json.Marshal(fmt.Sprint(v))
		}
		out = append(out, k, string(raw))
	}
	return out
}

// encodeMeta encodes a metadata object as JSON ("" when empty) and returns
// the normalized map a reader decodes from it.
func encodeMeta(m map[string]any) (string, map[string]any, error) {
	if len(m) == 0 {
		return "", map[string]any{}, nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		// Fall back per value, as the memory backend normalizes them.
		obj := make(map[string]json.RawMessage, len(m))
		kv := encodeMetaPairs(m)
		for i := 0; i < len(kv); i += 2 {
			obj[kv[i]] = json.RawMessage(kv[i+1])
		}
		if raw, err = json.Marshal(obj); err != nil {
			return "", nil, fmt.Errorf("redis: encode metadata: %w", err)
		}
	}
	var back map[string]any
	if err := json.Unmarshal(raw, &back); err != nil {
		return "", nil, fmt.Errorf("redis: encode metadata: %w", err)
	}
	return string(raw), back, nil
}

// recordFields is the order in which scripts return a record's values
// (the Lua FIELDS table); nil means null. Metadata overlay pairs
// ("m:<key>", json) may follow.
var recordFields = []string{"id", "task_name", "args", "queue", "execution_backend", "execution_profile", "execution_ref",
	"worker_id", "status", "priority", "max_retries", "retry_count", "scheduled_at", "expires_at", "created_at",
	"queued_at", "started_at", "completed_at", "heartbeat_at", "result", "error", "key", "metadata", "policy", "interruptions",
	"dispatch_until", "snooze_count", "errors", "tags", "ix", "forever", "mo"}

// decodeRecord builds a record from a script reply (recordFields values,
// then overlay pairs).
func decodeRecord(v any) (*queuestype.Record, error) {
	a, ok := v.([]any)
	if !ok || len(a) < len(recordFields) {
		return nil, fmt.Errorf("redis: record reply is %T", v)
	}
	r := &queuestype.Record{}
	for i, k := range recordFields {
		s, _ := a[i].(string)
		if err := setField(r, k, s); err != nil {
			return nil, fmt.Errorf("redis: record field %s: %w", k, err)
		}
	}
	if r.Metadata == nil {
		r.Metadata = make(map[string]any)
	}
	for i := len(recordFields); i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		s, _ := a[i+1].(string)
		if err := setField(r, k, s); err != nil {
			return nil, fmt.Errorf("redis: record field %s: %w", k, err)
		}
	}
	if r.ID == uuid.Nil {
		return nil, errors.New("redis: record without id")
	}
	return r, nil
}

// metaCache keeps decoded metadata by its JSON text: records of one task
// usually share it, and a deep copy is several times cheaper than decoding.
var metaCache = struct {
	sync.Mutex
	m map[string]map[string]any
}{m: map[string]map[string]any{}}

const metaCacheMax = 4096

func decodeMetaCached(s string) (map[string]any, error) {
	if len(s) > 1024 {
		var m map[string]any
		err := json.Unmarshal([]byte(s), &m)
		return m, err
	}
	metaCache.Lock()
	c, ok := metaCache.m[s]
	metaCache.Unlock()
	if ok {
		return queuestype.CloneMetadata(c), nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	metaCache.Lock()
	if len(metaCache.m) >= metaCacheMax {
		clear(metaCache.m)
	}
	metaCache.m[s] = queuestype.CloneMetadata(m)
	metaCache.Unlock()
	return m, nil
}

// policyCache keeps decoded policies by their JSON text: the records of one
// task share it, and claims decode a policy per record.
var policyCache = struct {
	sync.Mutex
	m map[string]queuestype.Policy
}{m: map[string]queuestype.Policy{}}

const policyCacheMax = 1024

// decodePolicyCached decodes a stored policy; the result shares nothing
// with the cache.
func decodePolicyCached(s string) (queuestype.Policy, error) {
	policyCache.Lock()
	p, ok := policyCache.m[s]
	policyCache.Unlock()
	if !ok {
		var err error
		if p, err = queuestype.DecodePolicy(s); err != nil {
			return queuestype.Policy{}, err
		}
		if len(s) <= 1024 {
			policyCache.Lock()
			if len(policyCache.m) >= policyCacheMax {
				clear(policyCache.m)
			}
			policyCache.m[s] = p
			policyCache.Unlock()
		}
	}
	if v := p.RequeueOnShutdown; v != nil {
		c := *v
		p.RequeueOnShutdown = &c
	}
	return p, nil
}

// encodePolicy is the stored text of p: "" (no field) for the zero policy.
func encodePolicy(p queuestype.Policy) string {
	if p.IsZero() {
		return ""
	}
	return queuestype.EncodePolicy(p)
}

// decodeFields builds a record from an HGETALL reply; metadata overlay
// fields ("m:<key>") apply after the base metadata.
func decodeFields(m map[string]string) (*queuestype.Record, error) {
	r := &queuestype.Record{}
	overlays := false
	for k, v := range m {
		if strings.HasPrefix(k, "m:") {
			overlays = true
			continue
		}
		if err := setField(r, k, v); err != nil {
			return nil, fmt.Errorf("redis: record field %s: %w", k, err)
		}
	}
	if r.Metadata == nil {
		r.Metadata = make(map[string]any)
	}
	if overlays {
		for k, v := range m {
			if strings.HasPrefix(k, "m:") {
				if err := setField(r, k, v); err != nil {
					return nil, fmt.Errorf("redis: record field %s: %w", k, err)
				}
			}
		}
	}
	if r.ID == uuid.Nil {
		return nil, errors.New("redis: record without id")
	}
	return r, nil
}

func setField(r *queuestype.Record, k, s string) error {
	if s == "" {
		// A script reply appends changed fields after the stored ones; ""
		// marks a field that became null.
		clearField(r, k)
		return nil
	}
	var err error
	switch k {
	case "id":
		r.ID, err = uuid.Parse(s)
	case "task_name":
		r.TaskName = s
	case "args":
		r.Args = json.RawMessage(s)
	case "queue":
		r.Queue = s
	case "execution_backend":
		r.ExecutionBackend = s
	case "execution_profile":
		r.ExecutionProfile = s
	case "execution_ref":
		r.ExecutionRef = s
	case "worker_id":
		r.WorkerID = s
	case "status":
		r.Status = queuestype.Status(s)
	case "priority":
		r.Priority, err = strconv.Atoi(s)
	case "max_retries":
		r.MaxRetries, err = strconv.Atoi(s)
	case "retry_count":
		r.RetryCount, err = strconv.Atoi(s)
	case "scheduled_at":
		r.ScheduledAt, err = fromMicros(s)
	case "expires_at":
		r.ExpiresAt, err = fromMicros(s)
	case "created_at":
		r.CreatedAt, err = fromMicros(s)
	case "queued_at":
		r.QueuedAt, err = fromMicros(s)
	case "started_at":
		r.StartedAt, err = fromMicros(s)
	case "completed_at":
		r.CompletedAt, err = fromMicros(s)
	case "heartbeat_at":
		r.HeartbeatAt, err = fromMicros(s)
	case "result":
		r.Result = json.RawMessage(s)
	case "error":
		r.Error = s
	case "key":
		r.Key = s
	case "policy":
		r.Policy, err = decodePolicyCached(s)
	case "interruptions":
		r.Interruptions, err = strconv.Atoi(s)
	case "dispatch_until":
		r.DispatchUntil, err = fromMicros(s)
	case "snooze_count":
		r.SnoozeCount, err = strconv.Atoi(s)
	case "errors":
		r.Errors, err = driver.DecodeErrorHistory(s)
	case "tags":
		if s != "" {
			r.Tags = strings.Split(s, ",")
		}
	case "metadata":
		m, err := decodeMetaCached(s)
		if err != nil {
			return err
		}
		if r.Metadata == nil {
			r.Metadata = m
		} else {
			for k, v := range m {
				if _, set := r.Metadata[k]; !set {
					r.Metadata[k] = v
				}
			}
		}
	default:
		if mk, ok := strings.CutPrefix(k, "m:"); ok {
			var x any
			if json.Unmarshal([]byte(s), &x) != nil {
				x = s
			}
			if r.Metadata == nil {
				r.Metadata = make(map[string]any)
			}
			r.Metadata[mk] = x
		}
	}
	return err
}

func clearField(r *queuestype.Record, k string) {
	switch k {
	case "args":
		r.Args = nil
	case "execution_profile":
		r.ExecutionProfile = ""
	case "execution_ref":
		r.ExecutionRef = ""
	case "worker_id":
		r.WorkerID = ""
	case "scheduled_at":
		r.ScheduledAt = time.Time{}
	case "expires_at":
		r.ExpiresAt = time.Time{}
	case "started_at":
		r.StartedAt = time.Time{}
	case "completed_at":
		r.CompletedAt = time.Time{}
	case "heartbeat_at":
		r.HeartbeatAt = time.Time{}
	case "result":
		r.Result = nil
	case "error":
		r.Error = ""
	case "key":
		r.Key = ""
	case "policy":
		r.Policy = queuestype.Policy{}
	case "interruptions":
		r.Interruptions = 0
	case "dispatch_until":
		r.DispatchUntil = time.Time{}
	case "snooze_count":
		r.SnoozeCount = 0
	case "errors":
		r.Errors = nil
	case "tags":
		r.Tags = nil
	default:
		if mk, ok := strings.CutPrefix(k, "m:"); ok {
			delete(r.Metadata, mk)
		}
	}
}

// decodeRecords decodes a list of flat records.
func decodeRecords(v any) ([]*queuestype.Record, error) {
	a, ok := v.([]any)
	if !ok {
		if v == nil {
			return []*queuestype.Record{}, nil
		}
		return nil, fmt.Errorf("redis: records reply is %T", v)
	}
	out := make([]*queuestype.Record, 0, len(a))
	for _, x := range a {
		r, err := decodeRecord(x)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// reservationJSON is the stored form of a forever reservation.
type reservationJSON struct {
	Key       string    `json:"key"`
	TaskID    uuid.UUID `json:"task_id"`
	TaskName  string    `json:"task_name"`
	CreatedUS int64     `json:"created_us"`
}

func decodeReservation(s string) (*queuestype.Reservation, error) {
	var j reservationJSON
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return nil, fmt.Errorf("redis: reservation: %w", err)
	}
	return &queuestype.Reservation{Key: j.Key, TaskID: j.TaskID, TaskName: j.TaskName, CreatedAt: time.UnixMicro(j.CreatedUS).UTC()}, nil
}
