package events

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalidEvent is wrapped by every error returned from Event.Validate and
// Event.UnmarshalJSON.
var ErrInvalidEvent = errors.New("events: invalid event")

// Event levels accepted in Event.Level (empty means unset).
const (
	LevelDebug    = "debug"
	LevelInfo     = "info"
	LevelWarning  = "warning"
	LevelError    = "error"
	LevelCritical = "critical"
)

// occurredAtLayout is RFC 3339 in UTC with exactly six fractional digits.
const occurredAtLayout = "2006-01-02T15:04:05.000000Z"

// NewID returns a fresh event ID: the 32 lowercase hexadecimal characters of a
// random (version 4) UUID, without dashes.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return hex.EncodeToString(b[:])
}

// DedupKey returns the key consumers deduplicate on: EventKey when set, else ID.
func (e Event) DedupKey() string {
	if e.EventKey != "" {
		return e.EventKey
	}
	return e.ID
}

// Normalize fills defaults in place: ID (NewID) when empty, OccurredAt (now in
// UTC, truncated to microseconds so that it equals its wire form) when zero,
// SchemaVersion (1) when 0, and Payload ({}) when nil. Other fields are left
// untouched.
func (e *Event) Normalize(now time.Time) {
	if e.ID == "" {
		e.ID = NewID()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = now.UTC().Truncate(time.Microsecond)
	}
	if e.SchemaVersion == 0 {
		e.SchemaVersion = SchemaVersion
	}
	if e.Payload == nil {
		e.Payload = map[string]any{}
	}
}

// ValidScope reports whether s is one of the five scopes.
func ValidScope(s Scope) bool {
	switch s {
	case ScopeTask, ScopeQueue, ScopeWorker, ScopeGlobal, ScopeCustom:
		return true
	}
	return false
}

// ValidLevel reports whether l is one of debug, info, warning, error, critical.
func ValidLevel(l string) bool {
	switch l {
	case LevelDebug, LevelInfo, LevelWarning, LevelError, LevelCritical:
		return true
	}
	return false
}

// Validate checks the envelope invariants: Type is non-empty, Scope is one of
// the five scopes, Entity (when set) has a non-empty type and id, and Level
// (when set) is a known level. Errors wrap ErrInvalidEvent.
func (e Event) Validate() error {
	if e.Type == "" {
		return fmt.Errorf("%w: type is required", ErrInvalidEvent)
	}
	if !ValidScope(e.Scope) {
		return fmt.Errorf("%w: scope %q is not one of task, queue, worker, global, custom", ErrInvalidEvent, e.Scope)
	}
	if e.Entity != nil && (e.Entity.Type == "" || e.Entity.ID == "") {
		return fmt.Errorf("%w: entity type and id are required", ErrInvalidEvent)
	}
	if e.Level != "" && !ValidLevel(e.Level) {
		return fmt.Errorf("%w: level %q is not one of debug, info, warning, error, critical", ErrInvalidEvent, e.Level)
	}
	return nil
}

// wireWriter appends JSON values to a buffer with HTML escaping disabled.
type wireWriter struct {
	buf bytes.Buffer
	enc *json.Encoder
	err error
}

func newWireWriter() *wireWriter {
	w := &wireWriter{}
	w.buf.Grow(512)
	w.enc = json.NewEncoder(&w.buf)
	w.enc.SetEscapeHTML(false)
	return w
}

func (w *wireWriter) raw(s string) {
	if w.err == nil {
		w.buf.WriteString(s)
	}
}

// value encodes v and strips the newline that json.Encoder appends.
func (w *wireWriter) value(v any) {
	if w.err != nil {
		return
	}
	if err := w.enc.Encode(v); err != nil {
		w.err = err
		return
	}
	w.buf.Truncate(w.buf.Len() - 1)
}

// key writes `,"name":` (without the comma for the first key).
func (w *wireWriter) key(name string, first bool) {
	if !first {
		w.raw(",")
	}
	w.raw(`"` + name + `":`)
}

func (w *wireWriter) str(name, v string) {
	w.key(name, false)
	if v == "" {
		w.raw("null")
		return
	}
	w.value(v)
}

func (w *wireWriter) intp(name string, v *int) {
	w.key(name, false)
	if v == nil {
		w.raw("null")
		return
	}
	w.value(*v)
}

func (w *wireWriter) floatp(name string, v *float64) {
	w.key(name, false)
	if v == nil {
		w.raw("null")
		return
	}
	if math.IsNaN(*v) || math.IsInf(*v, 0) {
		w.err = fmt.Errorf("%s: unsupported number %v", name, *v)
		return
	}
	w.value(*v)
}

// MarshalJSON encodes the envelope in its wire format: the keys
// type, scope, id, scopeKey, taskId, taskName, queue, workerId,
// executionBackend, executionProfile, attempt, sequence, level, message,
// progressCurrent, progressTotal, progressPercent, actor, entity, payload,
// occurredAt, schemaVersion, eventKey in exactly that order. Empty strings and
// nil pointers are written as null (the keys are kept); a nil Payload is
// written as {}; OccurredAt is written in UTC with six fractional digits and
// a Z (a zero OccurredAt is written as null — call Normalize before
// publishing); SchemaVersion 0 is written as 1. Actor omits its empty
// members; Entity always has type and id and omits an empty name.
//
// HTML characters are never escaped here. Note that json.Marshal(event)
// re-escapes <, > and & in the output of any MarshalJSON method; call
// MarshalJSON directly (or use an Encoder with SetEscapeHTML(false)) to get
// the exact wire bytes.
func (e Event) MarshalJSON() ([]byte, error) {
	w := newWireWriter()
	w.raw("{")
	w.key("type", true)
	w.value(e.Type)
	w.key("scope", false)
	w.value(string(e.Scope))
	w.str("id", e.ID)
	w.str("scopeKey", e.ScopeKey)
	w.str("taskId", e.TaskID)
	w.str("taskName", e.TaskName)
	w.str("queue", e.Queue)
	w.str("workerId", e.WorkerID)
	w.str("executionBackend", e.ExecutionBackend)
	w.str("executionProfile", e.ExecutionProfile)
	w.intp("attempt", e.Attempt)
	w.intp("sequence", e.Sequence)
	w.str("level", e.Level)
	w.str("message", e.Message)
	w.floatp("progressCurrent", e.ProgressCurrent)
	w.floatp("progressTotal", e.ProgressTotal)
	w.floatp("progressPercent", e.ProgressPercent)

	w.key("actor", false)
	if e.Actor == nil {
		w.raw("null")
	} else {
		w.raw("{")
		first := true
		for _, m := range [...]struct{ k, v string }{{"type", e.Actor.Type}, {"id", e.Actor.ID}, {"name", e.Actor.Name}} {
			if m.v == "" {
				continue
			}
			w.key(m.k, first)
			w.value(m.v)
			first = false
		}
		w.raw("}")
	}

	w.key("entity", false)
	if e.Entity == nil {
		w.raw("null")
	} else {
		w.raw("{")
		w.key("type", true)
		w.value(e.Entity.Type)
		w.key("id", false)
		w.value(e.Entity.ID)
		if e.Entity.Name != "" {
			w.key("name", false)
			w.value(e.Entity.Name)
		}
		w.raw("}")
	}

	w.key("payload", false)
	if e.Payload == nil {
		w.raw("{}")
	} else {
		w.value(e.Payload)
	}

	w.key("occurredAt", false)
	if e.OccurredAt.IsZero() {
		w.raw("null")
	} else {
		t := e.OccurredAt.UTC()
		if y := t.Year(); y < 0 || y > 9999 {
			w.err = fmt.Errorf("occurredAt: year %d outside [0,9999]", y)
		}
		w.raw(`"` + t.Format(occurredAtLayout) + `"`)
	}

	w.key("schemaVersion", false)
	sv := e.SchemaVersion
	if sv == 0 {
		sv = SchemaVersion
	}
	w.value(sv)
	w.str("eventKey", e.EventKey)
	w.raw("}")
	if w.err != nil {
		return nil, fmt.Errorf("events: encode event %q: %w", e.Type, w.err)
	}
	return w.buf.Bytes(), nil
}

// UnmarshalJSON decodes the wire format written by MarshalJSON. The input
// must be a JSON object (anything else, including null, is an error); keys
// are matched exactly and unknown keys are ignored; null and missing values
// leave the zero value (a missing or null payload stays nil, a missing
// schemaVersion stays 0). Payload numbers decode as float64. occurredAt
// accepts any RFC 3339 time and is converted to UTC. On error the receiver
// is left unchanged; errors wrap ErrInvalidEvent.
func (e *Event) UnmarshalJSON(data []byte) error {
	obj, err := decodeObject(data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	var out Event
	d := fieldDecoder{obj: obj}
	out.Type = d.str("type")
	out.Scope = Scope(d.str("scope"))
	out.ID = d.str("id")
	out.ScopeKey = d.str("scopeKey")
	out.TaskID = d.str("taskId")
	out.TaskName = d.str("taskName")
	out.Queue = d.str("queue")
	out.WorkerID = d.str("workerId")
	out.ExecutionBackend = d.str("executionBackend")
	out.ExecutionProfile = d.str("executionProfile")
	out.Attempt = d.intp("attempt")
	out.Sequence = d.intp("sequence")
	out.Level = d.str("level")
	out.Message = d.str("message")
	out.ProgressCurrent = d.floatp("progressCurrent")
	out.ProgressTotal = d.floatp("progressTotal")
	out.ProgressPercent = d.floatp("progressPercent")
	if raw, ok := d.present("actor"); ok {
		if sub, err := decodeObject(raw); err != nil {
			d.fail("actor", err)
		} else {
			sd := fieldDecoder{obj: sub}
			out.Actor = &Actor{Type: sd.str("type"), ID: sd.str("id"), Name: sd.str("name")}
			if sd.err != nil {
				d.fail("actor", sd.err)
			}
		}
	}
	if raw, ok := d.present("entity"); ok {
		if sub, err := decodeObject(raw); err != nil {
			d.fail("entity", err)
		} else {
			sd := fieldDecoder{obj: sub}
			out.Entity = &EntityRef{Type: sd.str("type"), ID: sd.str("id"), Name: sd.str("name")}
			if sd.err != nil {
				d.fail("entity", sd.err)
			}
		}
	}
	if raw, ok := d.present("payload"); ok {
		if _, err := decodeObject(raw); err != nil {
			d.fail("payload", err)
		} else {
			var p map[string]any
			if err := json.Unmarshal(raw, &p); err != nil {
				d.fail("payload", err)
			}
			out.Payload = p
		}
	}
	if s := d.str("occurredAt"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			d.fail("occurredAt", err)
		}
		out.OccurredAt = t.UTC()
	}
	if p := d.intp("schemaVersion"); p != nil {
		out.SchemaVersion = *p
	}
	out.EventKey = d.str("eventKey")
	if d.err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, d.err)
	}
	*e = out
	return nil
}

// decodeObject decodes data as a JSON object into its raw members.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// fieldDecoder reads members of a decoded object, remembering the first error.
type fieldDecoder struct {
	obj map[string]json.RawMessage
	err error
}

func (d *fieldDecoder) fail(key string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", key, err)
	}
}

// present returns the raw member when it exists and is not null.
func (d *fieldDecoder) present(key string) (json.RawMessage, bool) {
	raw, ok := d.obj[key]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return nil, false
	}
	return raw, true
}

func (d *fieldDecoder) str(key string) string {
	raw, ok := d.present(key)
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		d.fail(key, errors.New("not a string"))
		return ""
	}
	return s
}

func (d *fieldDecoder) intp(key string) *int {
	raw, ok := d.present(key)
	if !ok {
		return nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		d.fail(key, errors.New("not a number"))
		return nil
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		d.fail(key, fmt.Errorf("%v is not an integer in range", f))
		return nil
	}
	n := int(f)
	return &n
}

func (d *fieldDecoder) floatp(key string) *float64 {
	raw, ok := d.present(key)
	if !ok {
		return nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		d.fail(key, errors.New("not a number"))
		return nil
	}
	return &f
}
