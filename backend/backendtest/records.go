package backendtest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// testRecords covers Enqueue and the read methods: the record model,
// GetTask/GetTasks/GetTaskByKey and the JSON form.
func testRecords(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"OpenIsIdempotentAndNamed", openIsIdempotent},
		{"CapabilitiesMatchInterfaces", capabilitiesMatchInterfaces},
		{"EnqueuePersistsFields", enqueuePersistsFields},
		{"EnqueueGeneratesUUIDv7", enqueueGeneratesUUIDv7},
		{"EnqueueKeepsCallerID", enqueueKeepsCallerID},
		{"EnqueueStatusFromScheduledAt", enqueueStatusFromScheduledAt},
		{"EnqueueBatchInputOrder", enqueueBatchInputOrder},
		{"TimestampsAreUTC", timestampsAreUTC},
		{"GetTaskMissing", getTaskMissing},
		{"GetTasksOmitsMissing", getTasksOmitsMissing},
		{"GetTaskByKey", getTaskByKey},
		{"ReturnedRecordsAreCopies", returnedRecordsAreCopies},
		{"RecordJSONRoundTrip", recordJSONRoundTrip},
	})
}

// Open is idempotent; Name is the backend's short name.
func openIsIdempotent(t *testing.T, b driver.Backend) {
	if b.Name() == "" {
		t.Fatal("Name() is empty")
	}
	wantNoErr(t, "second Open", b.Open(t.Context()))
	rec := enqueueOne(t, b, item("open.twice"))
	wantNoErr(t, "third Open", b.Open(t.Context()))
	get(t, b, rec.ID) // still usable, nothing lost
}

// Advertised capabilities are backed by the matching interface.
func capabilitiesMatchInterfaces(t *testing.T, b driver.Backend) {
	c := b.Capabilities()
	if _, ok := b.(driver.Waker); c.WakeupTransport != "" && !ok {
		t.Errorf("WakeupTransport %q advertised but driver.Waker not implemented", c.WakeupTransport)
	}
	if _, ok := b.(driver.WorkerController); c.ControlTransport != "" && !ok {
		t.Errorf("ControlTransport %q advertised but driver.WorkerController not implemented", c.ControlTransport)
	}
	if _, ok := b.(driver.CompletionWaiter); c.CompletionEvents && !ok {
		t.Error("CompletionEvents advertised but driver.CompletionWaiter not implemented")
	}
	if _, ok := b.(driver.Locker); c.Maintenance && !ok {
		t.Error("Maintenance advertised but driver.Locker not implemented")
	}
	if c.WakeupsDurable {
		t.Error("WakeupsDurable is true; hints are lossy on every backend")
	}
}

// Every field given to Enqueue is persisted and
// the backend stamps id, status, created_at and queued_at; nullable fields start null.
func enqueuePersistsFields(t *testing.T, b driver.Backend) {
	p := item("email.send",
		argsJSON(`{"to":"a@example.com","n":3,"tags":["x","y"]}`),
		inQueue("mail"), priority(7), retries(4), execution("local", "small"),
		metadata(map[string]any{"description": "send it", "tenant": "t1", "nested": map[string]any{"a": 1.5}}),
	)
	before := time.Now()
	rec := enqueueOne(t, b, p)
	after := time.Now()

	if rec.ID == uuid.Nil {
		t.Fatal("record id is nil")
	}
	wantString(t, "task_name", rec.TaskName, "email.send")
	wantJSON(t, "args", rec.Args, p.Args)
	wantString(t, "queue", rec.Queue, "mail")
	wantString(t, "execution_backend", rec.ExecutionBackend, "local")
	wantString(t, "execution_profile", rec.ExecutionProfile, "small")
	wantString(t, "execution_ref", rec.ExecutionRef, "")
	wantString(t, "worker_id", rec.WorkerID, "")
	wantStatus(t, "new record", rec, queues.StatusPending)
	wantInt(t, "priority", rec.Priority, 7)
	wantInt(t, "max_retries", rec.MaxRetries, 4)
	wantInt(t, "retry_count", rec.RetryCount, 0)
	wantZeroTime(t, "scheduled_at", rec.ScheduledAt)
	wantZeroTime(t, "expires_at", rec.ExpiresAt)
	wantBetween(t, "created_at", rec.CreatedAt, before, after)
	wantBetween(t, "queued_at", rec.QueuedAt, before, after)
	wantZeroTime(t, "started_at", rec.StartedAt)
	wantZeroTime(t, "completed_at", rec.CompletedAt)
	wantZeroTime(t, "heartbeat_at", rec.HeartbeatAt)
	if !isNullJSON(rec.Result) {
		t.Fatalf("result = %s, want null", rec.Result)
	}
	wantString(t, "error", rec.Error, "")
	wantString(t, "key", rec.Key, "")
	wantJSON(t, "metadata", rec.Metadata, p.Metadata)
	wantStored(t, b, "enqueued record", rec)
}

// The backend generates UUIDv7 IDs, distinct per record.
func enqueueGeneratesUUIDv7(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("ids.a"), item("ids.b"), item("ids.c"))
	seen := map[uuid.UUID]bool{}
	for _, r := range recs {
		if r.ID.Version() != 7 {
			t.Errorf("generated id %s is version %d, want 7", r.ID, r.ID.Version())
		}
		if seen[r.ID] {
			t.Errorf("generated id %s twice", r.ID)
		}
		seen[r.ID] = true
	}
}

// Any UUID a caller supplies is accepted and kept.
func enqueueKeepsCallerID(t *testing.T, b driver.Backend) {
	id := uuid.New() // version 4, not what the backend would generate
	rec := enqueueOne(t, b, item("ids.caller", withID(id)))
	if rec.ID != id {
		t.Fatalf("record id = %s, want the caller's %s", rec.ID, id)
	}
	got := get(t, b, id)
	wantString(t, "stored task_name", got.TaskName, "ids.caller")
}

// Enqueue writes scheduled when scheduled_at > now, else pending;
// the given scheduled_at and expires_at are kept.
func enqueueStatusFromScheduledAt(t *testing.T, b driver.Backend) {
	future, past, deadline := at(time.Hour), at(-time.Minute), at(2*time.Hour)
	recs := enqueue(t, b,
		item("sched.future", scheduledAt(future), expiresAt(deadline)),
		item("sched.past", scheduledAt(past)),
		item("sched.none"),
	)
	wantStatus(t, "future record", recs[0], queues.StatusScheduled)
	wantNear(t, "future scheduled_at", recs[0].ScheduledAt, future, storeTolerance)
	wantNear(t, "future expires_at", recs[0].ExpiresAt, deadline, storeTolerance)
	wantStatus(t, "past-due record", recs[1], queues.StatusPending)
	wantNear(t, "past scheduled_at", recs[1].ScheduledAt, past, storeTolerance)
	wantStatus(t, "unscheduled record", recs[2], queues.StatusPending)
	for _, r := range recs {
		wantStored(t, b, r.TaskName, r)
	}
}

// 1..n records in one call, outcomes in input order.
func enqueueBatchInputOrder(t *testing.T, b driver.Backend) {
	var items []driver.EnqueueParams
	for i, name := range []string{"batch.e", "batch.a", "batch.d", "batch.b", "batch.c"} {
		items = append(items, item(name, priority(i*3-5)))
	}
	recs := enqueue(t, b, items...) // checks task names in input order
	ids := map[uuid.UUID]bool{}
	for i, r := range recs {
		wantInt(t, "priority of "+r.TaskName, r.Priority, items[i].Priority)
		ids[r.ID] = true
	}
	wantInt(t, "distinct ids", len(ids), len(items))
	wantInt(t, "statistics total", stats(t, b, "").Total, len(items))
}

// All times are UTC: every timestamp a backend returns is in UTC.
func timestampsAreUTC(t *testing.T, b driver.Backend) {
	check := func(what string, tm time.Time) {
		t.Helper()
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%s location = %s, want UTC", what, tm.Location())
		}
	}
	local := time.FixedZone("UTC+5", 5*3600)
	rec := enqueueOne(t, b, item("utc", scheduledAt(at(-time.Minute).In(local)), expiresAt(at(time.Hour).In(local))))
	check("enqueue created_at", rec.CreatedAt)
	check("enqueue queued_at", rec.QueuedAt)
	check("enqueue scheduled_at", rec.ScheduledAt)
	check("enqueue expires_at", rec.ExpiresAt)
	c := claimByID(t, b, rec.ID, workerA)
	check("claim started_at", c.StartedAt)
	check("claim heartbeat_at", c.HeartbeatAt)
	done := complete(t, b, c)
	check("complete completed_at", done.CompletedAt)
	g := get(t, b, rec.ID)
	for name, tm := range map[string]time.Time{
		"created_at": g.CreatedAt, "queued_at": g.QueuedAt, "scheduled_at": g.ScheduledAt,
		"expires_at": g.ExpiresAt, "started_at": g.StartedAt, "completed_at": g.CompletedAt,
	} {
		check("stored "+name, tm)
	}
}

// GetTask on a missing ID → ErrTaskNotFound.
func getTaskMissing(t *testing.T, b driver.Backend) {
	enqueueOne(t, b, item("present"))
	rec, err := b.GetTask(t.Context(), uuid.New())
	if !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("GetTask(missing) = %v, %v; want ErrTaskNotFound", rec, err)
	}
}

// GetTasks returns the records that exist, omitting missing IDs.
func getTasksOmitsMissing(t *testing.T, b driver.Backend) {
	recs := enqueue(t, b, item("many.a"), item("many.b"), item("many.c"))
	got, err := b.GetTasks(t.Context(), []uuid.UUID{recs[2].ID, uuid.New(), recs[0].ID, uuid.New()})
	wantNoErr(t, "GetTasks", err)
	wantIDSet(t, "GetTasks ids", idsOf(got), recs[2].ID, recs[0].ID)
	for _, r := range got {
		wantStored(t, b, "GetTasks record", r)
	}
	none, err := b.GetTasks(t.Context(), []uuid.UUID{uuid.New()})
	wantNoErr(t, "GetTasks(missing)", err)
	wantInt(t, "GetTasks(missing) length", len(none), 0)
	empty, err := b.GetTasks(t.Context(), nil)
	wantNoErr(t, "GetTasks(nil)", err)
	wantInt(t, "GetTasks(nil) length", len(empty), 0)
}

// GetTaskByKey returns the active record holding the key, else ErrTaskNotFound.
func getTaskByKey(t *testing.T, b driver.Backend) {
	k := newKey("task")
	rec := enqueueOne(t, b, item("keyed", key(k)))
	enqueueOne(t, b, item("unkeyed"))
	wantString(t, "key", rec.Key, k)
	got, err := b.GetTaskByKey(t.Context(), k)
	wantNoErr(t, "GetTaskByKey", err)
	wantSameRecord(t, "GetTaskByKey", got, rec)
	missing, err := b.GetTaskByKey(t.Context(), newKey("task"))
	if !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("GetTaskByKey(missing) = %v, %v; want ErrTaskNotFound", missing, err)
	}
}

// Records returned by the
// backend and params given to it are not aliased with stored state.
func returnedRecordsAreCopies(t *testing.T, b driver.Backend) {
	md := map[string]any{"tenant": "t1", "nested": map[string]any{"a": "b"}}
	args := json.RawMessage(`{"n":1}`)
	p := item("copies", metadata(md))
	p.Args = args
	rec := enqueueOne(t, b, p)

	// Mutate what we passed in.
	md["tenant"] = "changed"
	md["nested"].(map[string]any)["a"] = "changed"
	md["added"] = true
	args[2] = 'X'

	// Mutate what we got back.
	rec.Metadata["tenant"] = "mutated"
	rec.Status = queues.StatusFailed
	rec.Args[0] = '['

	got := get(t, b, rec.ID)
	wantStatus(t, "stored record", got, queues.StatusPending)
	wantJSON(t, "stored args", got.Args, json.RawMessage(`{"n":1}`))
	wantJSON(t, "stored metadata", got.Metadata, map[string]any{"tenant": "t1", "nested": map[string]any{"a": "b"}})

	got.Metadata["tenant"] = "mutated-again"
	again := get(t, b, rec.ID)
	wantJSON(t, "stored metadata after mutating a read", again.Metadata, map[string]any{"tenant": "t1", "nested": map[string]any{"a": "b"}})
}

// A backend-returned record marshals to exactly the record keys,
// nulls kept, times RFC 3339 UTC, and decodes back to the same values.
func recordJSONRoundTrip(t *testing.T, b driver.Backend) {
	wantKeys := []string{"id", "task_name", "args", "queue", "execution_backend", "execution_profile",
		"execution_ref", "worker_id", "status", "priority", "max_retries", "retry_count", "scheduled_at",
		"expires_at", "created_at", "queued_at", "started_at", "completed_at", "heartbeat_at", "result",
		"error", "key", "metadata", "policy", "interruptions", "dispatch_until", "snooze_count", "errors", "tags"}
	timeKeys := []string{"scheduled_at", "expires_at", "created_at", "queued_at", "started_at", "completed_at", "heartbeat_at"}

	pending := enqueueOne(t, b, item("json.task",
		argsJSON(`{"to":"x","n":2}`), inQueue("mail"), priority(3), retries(2),
		scheduledAt(at(-time.Minute)), expiresAt(at(time.Hour)), key(newKey("arguments")),
		execution("cloudrun", "gpu"), metadata(map[string]any{"description": "d", "n": 1})))
	setRef(t, b, pending.ID, newRef("cloudrun"))
	run := claimByID(t, b, pending.ID, workerA)
	done, err := settleCall(t, b, driver.Transition{ID: run.ID, To: queuestype.StatusCompleted, Result: json.RawMessage(`{"sent":true,"count":2}`)})
	wantNoErr(t, "Complete", err)

	for _, c := range []struct {
		name  string
		rec   *queues.Record
		nulls []string
	}{
		{"pending", pending, []string{"execution_ref", "worker_id", "started_at", "completed_at", "heartbeat_at", "result", "error"}},
		{"running", run, []string{"completed_at", "result", "error"}},
		{"completed", done, []string{"heartbeat_at", "error"}},
	} {
		data, err := json.Marshal(c.rec)
		wantNoErr(t, c.name+" marshal", err)
		var m map[string]json.RawMessage
		wantNoErr(t, c.name+" decode object", json.Unmarshal(data, &m))
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := slices.Sorted(slices.Values(wantKeys))
		if !slices.Equal(keys, want) {
			t.Fatalf("%s record JSON keys = %v, want %v", c.name, keys, want)
		}
		for _, k := range c.nulls {
			if string(m[k]) != "null" {
				t.Errorf("%s record JSON %s = %s, want null", c.name, k, m[k])
			}
		}
		for _, k := range timeKeys {
			if string(m[k]) == "null" {
				continue
			}
			var s string
			if err := json.Unmarshal(m[k], &s); err != nil || !strings.HasSuffix(s, "Z") {
				t.Errorf("%s record JSON %s = %s, want an RFC 3339 UTC string ending in Z", c.name, k, m[k])
				continue
			}
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				t.Errorf("%s record JSON %s = %q is not RFC 3339: %v", c.name, k, s, err)
			}
		}
		if !strings.HasPrefix(strings.TrimSpace(string(m["metadata"])), "{") {
			t.Errorf("%s record JSON metadata = %s, want an object", c.name, m["metadata"])
		}
		var back queues.Record
		wantNoErr(t, c.name+" unmarshal", json.Unmarshal(data, &back))
		wantSameRecord(t, c.name+" record after a JSON round trip", &back, c.rec)
	}
}
