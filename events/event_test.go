package events

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func intp(n int) *int             { return &n }
func floatp(f float64) *float64   { return &f }
func mustTime(s string) time.Time { t, _ := time.Parse(time.RFC3339Nano, s); return t }

func TestMarshalMinimalKeepsNullsInOrder(t *testing.T) {
	e := Event{Type: TypeStarted, Scope: ScopeTask}
	got, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"task.started","scope":"task","id":null,"scopeKey":null,"taskId":null,"taskName":null,` +
		`"queue":null,"workerId":null,"executionBackend":null,"executionProfile":null,"attempt":null,` +
		`"sequence":null,"level":null,"message":null,"progressCurrent":null,"progressTotal":null,` +
		`"progressPercent":null,"actor":null,"entity":null,"payload":{},"occurredAt":null,` +
		`"schemaVersion":1,"eventKey":null}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func fullEvent() Event {
	return Event{
		Type:             TypeProgress,
		Scope:            ScopeTask,
		ID:               "0123456789abcdef0123456789abcdef",
		ScopeKey:         "sk",
		TaskID:           "7f1c0a52-4a5e-4b8e-9f00-0c1d2e3f4a5b",
		TaskName:         "crawl.page",
		Queue:            "default",
		WorkerID:         "host-1:42",
		ExecutionBackend: "local",
		ExecutionProfile: "fast",
		Attempt:          intp(2),
		Sequence:         intp(7),
		Level:            LevelInfo,
		Message:          "half <done> & more",
		ProgressCurrent:  floatp(5),
		ProgressTotal:    floatp(10),
		ProgressPercent:  floatp(50.5),
		Actor:            &Actor{Type: "user", ID: "u1"},
		Entity:           &EntityRef{Type: "site", ID: "s1", Name: "Crème"},
		Payload:          map[string]any{"z": 1.5, "a": []any{"x", true, nil}, "html": "<b>"},
		OccurredAt:       time.Date(2026, 11, 29, 10, 0, 0, 123456789, time.UTC),
		SchemaVersion:    1,
		EventKey:         "key-1",
	}
}

func TestMarshalFull(t *testing.T) {
	got, err := fullEvent().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"task.progress","scope":"task","id":"0123456789abcdef0123456789abcdef","scopeKey":"sk",` +
		`"taskId":"7f1c0a52-4a5e-4b8e-9f00-0c1d2e3f4a5b","taskName":"crawl.page","queue":"default",` +
		`"workerId":"host-1:42","executionBackend":"local","executionProfile":"fast","attempt":2,"sequence":7,` +
		`"level":"info","message":"half <done> & more","progressCurrent":5,"progressTotal":10,` +
		`"progressPercent":50.5,"actor":{"type":"user","id":"u1"},"entity":{"type":"site","id":"s1","name":"Crème"},` +
		`"payload":{"a":["x",true,null],"html":"<b>","z":1.5},"occurredAt":"2026-11-29T10:00:00.123456Z",` +
		`"schemaVersion":1,"eventKey":"key-1"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if !json.Valid(got) {
		t.Fatal("invalid JSON")
	}
}

func TestMarshalActorEntityShapes(t *testing.T) {
	e := Event{Type: "x", Scope: ScopeGlobal, Actor: &Actor{Name: "Bob"}, Entity: &EntityRef{Type: "t", ID: "i"}}
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, `"actor":{"name":"Bob"},"entity":{"type":"t","id":"i"},`) {
		t.Fatalf("unexpected actor/entity: %s", s)
	}
	e.Actor = &Actor{}
	b, _ = e.MarshalJSON()
	if !strings.Contains(string(b), `"actor":{},`) {
		t.Fatalf("empty actor: %s", b)
	}
}

func TestOccurredAtMicrosecondsZ(t *testing.T) {
	cases := map[time.Time]string{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC):         "2026-01-02T03:04:05.000000Z",
		time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC): "2026-01-02T03:04:05.999999Z",
		time.Date(2026, 1, 2, 3, 4, 5, 1000, time.UTC):      "2026-01-02T03:04:05.000001Z",
		// Non-UTC input is converted.
		time.Date(2026, 1, 2, 5, 4, 5, 120000000, time.FixedZone("X", 2*3600)): "2026-01-02T03:04:05.120000Z",
	}
	for in, want := range cases {
		b, err := Event{Type: "x", Scope: ScopeGlobal, OccurredAt: in}.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"occurredAt":"`+want+`"`) {
			t.Errorf("%v: got %s, want occurredAt %s", in, b, want)
		}
	}
	if _, err := (Event{Type: "x", Scope: ScopeGlobal, OccurredAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}).MarshalJSON(); err == nil {
		t.Error("year 10000 should not encode")
	}
}

func TestSchemaVersionZeroEncodesOne(t *testing.T) {
	b, _ := Event{Type: "x", Scope: ScopeGlobal}.MarshalJSON()
	if !strings.Contains(string(b), `"schemaVersion":1,`) {
		t.Fatal(string(b))
	}
	b, _ = Event{Type: "x", Scope: ScopeGlobal, SchemaVersion: 3}.MarshalJSON()
	if !strings.Contains(string(b), `"schemaVersion":3,`) {
		t.Fatal(string(b))
	}
}

func TestMarshalUnsupportedValues(t *testing.T) {
	nan := 0.0
	nan = nan / nan
	if _, err := (Event{Type: "x", Scope: ScopeTask, ProgressPercent: &nan}).MarshalJSON(); err == nil {
		t.Error("NaN progress should fail")
	}
	if _, err := (Event{Type: "x", Scope: ScopeTask, Payload: map[string]any{"c": make(chan int)}}).MarshalJSON(); err == nil {
		t.Error("chan payload should fail")
	}
}

func TestJSONMarshalAndEncoderUseMarshalJSON(t *testing.T) {
	e := fullEvent()
	direct, _ := e.MarshalJSON()
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSuffix(sb.String(), "\n") != string(direct) {
		t.Fatalf("encoder output differs:\n%s\n%s", sb.String(), direct)
	}
	// A pointer works too.
	viaPtr, _ := json.Marshal(&e)
	var back Event
	if err := json.Unmarshal(viaPtr, &back); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	in := fullEvent()
	in.OccurredAt = in.OccurredAt.Truncate(time.Microsecond)
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var out Event
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip mismatch:\n%#v\n%#v", in, out)
	}
	b2, _ := out.MarshalJSON()
	if string(b) != string(b2) {
		t.Fatalf("re-encode differs:\n%s\n%s", b, b2)
	}

	// Minimal event: nulls decode to zero values.
	min := Event{Type: "custom.thing", Scope: ScopeCustom}
	b, _ = min.MarshalJSON()
	var back Event
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	want := min
	want.Payload = map[string]any{}
	want.SchemaVersion = 1
	if !reflect.DeepEqual(want, back) {
		t.Fatalf("got %#v want %#v", back, want)
	}
}

func TestUnmarshalRejectsNonObject(t *testing.T) {
	for _, in := range []string{`null`, `[]`, `"x"`, `1`, `true`, ``, `  `, `[{"type":"x"}]`, `{`} {
		var e Event
		err := e.UnmarshalJSON([]byte(in))
		if err == nil || !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%q: err = %v, want ErrInvalidEvent", in, err)
		}
	}
	// Through encoding/json too: a null or scalar Event value is rejected,
	// while a null *Event field stays nil (encoding/json handles that).
	var ev Event
	if err := json.Unmarshal([]byte(`null`), &ev); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("json.Unmarshal(null): %v", err)
	}
	var evs []Event
	if err := json.Unmarshal([]byte(`[1]`), &evs); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("json.Unmarshal([1]): %v", err)
	}
	var holder struct{ E *Event }
	if err := json.Unmarshal([]byte(`{"E":null}`), &holder); err != nil || holder.E != nil {
		t.Errorf("null *Event field: %v %v", err, holder.E)
	}
}

func TestUnmarshalTypeErrorsAndUnknownKeys(t *testing.T) {
	bad := []string{
		`{"type":1,"scope":"task"}`,
		`{"type":"x","attempt":"2"}`,
		`{"type":"x","attempt":1.5}`,
		`{"type":"x","payload":[1]}`,
		`{"type":"x","payload":"s"}`,
		`{"type":"x","actor":"me"}`,
		`{"type":"x","entity":[]}`,
		`{"type":"x","occurredAt":"yesterday"}`,
		`{"type":"x","progressTotal":"10"}`,
	}
	for _, in := range bad {
		e := Event{Type: "keep"}
		if err := e.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("%s: expected error", in)
		} else if e.Type != "keep" {
			t.Errorf("%s: receiver modified on error", in)
		}
	}
	var e Event
	in := `{"type":"x","scope":"queue","TYPE":"no","unknown":{"a":1},"payload":{"n":3,"big":12345678901},` +
		`"occurredAt":"2026-11-29T12:00:00.5+02:00","attempt":3.0,"schemaVersion":null}`
	if err := e.UnmarshalJSON([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if e.Type != "x" || e.Scope != ScopeQueue || *e.Attempt != 3 || e.SchemaVersion != 0 {
		t.Fatalf("decoded %#v", e)
	}
	if _, ok := e.Payload["n"].(float64); !ok {
		t.Fatalf("payload number is %T, want float64", e.Payload["n"])
	}
	if want := time.Date(2026, 11, 29, 10, 0, 0, 500000000, time.UTC); !e.OccurredAt.Equal(want) || e.OccurredAt.Location() != time.UTC {
		t.Fatalf("occurredAt %v", e.OccurredAt)
	}
}

func TestNewIDFormat(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !re.MatchString(id) {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestNormalize(t *testing.T) {
	now := time.Date(2026, 11, 29, 11, 0, 0, 123456789, time.FixedZone("X", 3600))
	var e Event
	e.Normalize(now)
	if len(e.ID) != 32 || e.SchemaVersion != 1 || e.Payload == nil || len(e.Payload) != 0 {
		t.Fatalf("normalized %#v", e)
	}
	if want := time.Date(2026, 11, 29, 10, 0, 0, 123456000, time.UTC); e.OccurredAt != want {
		t.Fatalf("occurredAt %v want %v", e.OccurredAt, want)
	}
	keep := Event{ID: "abc", OccurredAt: mustTime("2020-01-01T00:00:00Z"), SchemaVersion: 2, Payload: map[string]any{"a": 1}}
	k2 := keep
	k2.Normalize(now)
	if !reflect.DeepEqual(keep, k2) {
		t.Fatalf("Normalize changed set fields: %#v", k2)
	}
}

func TestValidate(t *testing.T) {
	ok := []Event{
		{Type: "x", Scope: ScopeTask},
		{Type: "x", Scope: ScopeQueue, Level: LevelCritical},
		{Type: "x", Scope: ScopeWorker, Entity: &EntityRef{Type: "a", ID: "b"}},
		{Type: "x", Scope: ScopeGlobal},
		{Type: "x", Scope: ScopeCustom},
	}
	for _, e := range ok {
		if err := e.Validate(); err != nil {
			t.Errorf("%#v: %v", e, err)
		}
	}
	bad := []Event{
		{Scope: ScopeTask},
		{Type: "x"},
		{Type: "x", Scope: "tasks"},
		{Type: "x", Scope: ScopeTask, Entity: &EntityRef{Type: "a"}},
		{Type: "x", Scope: ScopeTask, Entity: &EntityRef{ID: "a"}},
		{Type: "x", Scope: ScopeTask, Level: "warn"},
	}
	for _, e := range bad {
		if err := e.Validate(); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%#v: err = %v", e, err)
		}
	}
}

func TestDedupKey(t *testing.T) {
	if k := (Event{ID: "a"}).DedupKey(); k != "a" {
		t.Fatal(k)
	}
	if k := (Event{ID: "a", EventKey: "k"}).DedupKey(); k != "k" {
		t.Fatal(k)
	}
}
