package backendtest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// testLimits: every store refuses a value over the hard limits
// (queuestype.DefaultLimits) with the same *queuestype.LimitError, naming
// the field, before it writes anything: for any item of an Enqueue or
// TouchHeartbeats call, for the refused transition of a Settle call (which
// reports it in that transition's result, as the Settle contract does for
// every per-transition refusal).
func testLimits(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"EnqueueRefusedWritesNothing", testLimitsEnqueue},
		{"SettleRefusedTransitionChangesNothing", testLimitsSettle},
		{"HeartbeatPatchRefused", testLimitsHeartbeat},
	})
}

// wantLimitError requires err to be a *queuestype.LimitError on field,
// matching ErrLimit and ErrConfig, with TooLarge as given.
func wantLimitError(t *testing.T, what string, err error, field string, tooLarge bool) {
	t.Helper()
	var le *queuestype.LimitError
	if !errors.As(err, &le) {
		t.Fatalf("%s: error %v (%T), want a *queuestype.LimitError on %s", what, err, err, field)
	}
	if le.Field != field || le.TooLarge != tooLarge {
		t.Fatalf("%s: LimitError field %q too_large %v, want %q %v (%v)", what, le.Field, le.TooLarge, field, tooLarge, err)
	}
	if !errors.Is(err, queuestype.ErrLimit) || !errors.Is(err, queuestype.ErrConfig) {
		t.Fatalf("%s: %v does not match ErrLimit and ErrConfig", what, err)
	}
}

// jsonString returns a JSON object {"s": "xxx…"} of exactly n bytes.
func jsonString(n int) json.RawMessage {
	return json.RawMessage(`{"s":"` + strings.Repeat("x", n-8) + `"}`)
}

func testLimitsEnqueue(t *testing.T, b driver.Backend) {
	const mib = 1 << 20
	rows := []struct {
		name     string
		opt      opt
		field    string
		tooLarge bool
	}{
		{"args over 1 MiB", func(p *driver.EnqueueParams) { p.Args = jsonString(mib + 1) }, "args", true},
		{"args NUL escape", argsJSON(`{"s":"\u0000"}`), "args", false},
		{"args raw NUL", argsJSON("{\"s\":\"a\x00\"}"), "args", false},
		{"args invalid UTF-8", argsJSON("{\"s\":\"\xff\"}"), "args", false},
		{"args unpaired surrogate", argsJSON(`{"s":"\ud800"}`), "args", false},
		{"args not JSON", argsJSON(`{"s":`), "args", false},
		{"queue of 1 MB", inQueue(strings.Repeat("q", 1_000_000)), "queue", true},
		{"queue of one space", inQueue(" "), "queue", false},
		{"queue with NUL", inQueue("a\x00b"), "queue", false},
		{"queue invalid UTF-8", inQueue("a\xffb"), "queue", false},
		{"task empty", func(p *driver.EnqueueParams) { p.TaskName = "" }, "task", false},
		{"task too long", func(p *driver.EnqueueParams) { p.TaskName = strings.Repeat("t", 256) }, "task", true},
		{"task with control character", func(p *driver.EnqueueParams) { p.TaskName = "a\nb" }, "task", false},
		{"key of 100 KB", key(strings.Repeat("k", 100_000)), "key", true},
		{"key with NUL", key("k\x00"), "key", false},
		{"key invalid UTF-8", key("k\xff"), "key", false},
		{"retries 2147483647", retries(2147483647), "max_retries", false},
		{"retries negative", retries(-1), "max_retries", false},
		{"priority 5000", priority(5000), "priority", false},
		{"run-after year 2312", scheduledAt(time.Now().Add(9e9 * time.Second)), "scheduled_at", false},
		{"expiry too far after due", expiresAt(at(400 * 24 * time.Hour)), "expires_at", false},
		{"expiry too far after a scheduled due", func(p *driver.EnqueueParams) {
			p.ScheduledAt = at(time.Hour)
			p.ExpiresAt = p.ScheduledAt.Add(367 * 24 * time.Hour)
		}, "expires_at", false},
		{"timeout 8 days", func(p *driver.EnqueueParams) { p.Policy.Timeout = 8 * 24 * time.Hour }, "timeout", false},
		{"bad execution backend name", execution("no such/backend", ""), "execution_backend", false},
		{"execution backend too long", execution(strings.Repeat("e", 65), ""), "execution_backend", true},
		{"bad execution profile name", execution("local", "gpu large"), "execution_profile", false},
		{"metadata with NUL", metadata(map[string]any{"m": "a\x00"}), "metadata", false},
		{"metadata over 64 KiB", metadata(map[string]any{"m": strings.Repeat("m", 64<<10)}), "metadata", true},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			// A valid item first, holding a forever key: the refusal of
			// the second must leave no trace of either.
			goodKey := newKey("limits")
			good := item("limits.good", withID(uuid.New()), foreverKey(goodKey))
			bad := item("limits.bad", withID(uuid.New()))
			r.opt(&bad)
			outs, err := b.Enqueue(t.Context(), []driver.EnqueueParams{good, bad})
			if err == nil {
				t.Fatalf("Enqueue accepted the item (%d outcomes)", len(outs))
			}
			wantLimitError(t, "Enqueue", err, "items[1]."+r.field, r.tooLarge)
			for _, id := range []uuid.UUID{good.ID, bad.ID} {
				if _, err := b.GetTask(t.Context(), id); !errors.Is(err, queuestype.ErrTaskNotFound) {
					t.Fatalf("record %s after a refused Enqueue: %v", id, err)
				}
			}
			if res, err := b.GetIdentity(t.Context(), goodKey); err != nil || res != nil {
				t.Fatalf("reservation after a refused Enqueue: %+v, %v", res, err)
			}
			if st := stats(t, b, ""); st.Total != 0 {
				t.Fatalf("%d records after a refused Enqueue", st.Total)
			}
		})
	}
	// At the limits, everything is accepted.
	edge := item(strings.Repeat("t", 255), inQueue(strings.Repeat("q", 128)), key(strings.Repeat("k", 1024)),
		retries(1000), priority(queuestype.MaxPriority), scheduledAt(at(365*24*time.Hour)),
		execution(strings.Repeat("e", 64), "A-z_0.9:x"), metadata(map[string]any{"m": "ok"}))
	edge.Args = jsonString(1 << 20)
	edge.ExpiresAt = edge.ScheduledAt.Add(365 * 24 * time.Hour)
	rec := enqueueOne(t, b, edge)
	if len(rec.Args) == 0 || rec.Queue != edge.Queue || rec.Key != edge.Key {
		t.Fatalf("record at the limits stored as %+v", rec)
	}
}

func testLimitsSettle(t *testing.T, b driver.Backend) {
	const mib = 1 << 20
	rows := []struct {
		name     string
		result   json.RawMessage
		tooLarge bool
	}{
		{"result over 1 MiB", jsonString(mib + 1), true},
		{"result NUL escape", json.RawMessage(`"\u0000"`), false},
		{"result raw NUL", json.RawMessage("\"a\x00\""), false},
		{"result invalid UTF-8", json.RawMessage("\"\xff\""), false},
		{"result unpaired surrogate", json.RawMessage(`"\udc00"`), false},
		{"result not JSON", json.RawMessage(`{"a":`), false},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			// The refused transition is refused on its own; the call's
			// other transition is applied.
			a := running(t, b, item("limits.a"))
			c := running(t, b, item("limits.c"))
			ok := driver.Transition{ID: a.ID, Generation: a.RetryCount, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)}
			bad := driver.Transition{ID: c.ID, Generation: c.RetryCount, To: queuestype.StatusCompleted, Result: r.result}
			res, err := b.Settle(t.Context(), []driver.Transition{ok, bad})
			wantNoErr(t, "Settle", err)
			if len(res) != 2 {
				t.Fatalf("Settle returned %d results for 2 transitions", len(res))
			}
			wantNoErr(t, "the valid transition", res[0].Err)
			wantStatus(t, "the valid transition's record", get(t, b, a.ID), queuestype.StatusCompleted)
			wantLimitError(t, "the refused transition", res[1].Err, "result", r.tooLarge)
			wantSameRecord(t, "the refused transition's record", get(t, b, c.ID), c)
		})
	}
	// An error text is never refused: NUL and invalid UTF-8 become U+FFFD
	// and a text over 16 KiB is cut to it with a marker.
	texts := []struct{ name, text, want string }{
		{"error text with NUL", "a\x00b\xff", "a\uFFFDb\uFFFD"},
		{"error text of 16 KiB", strings.Repeat("é", 8<<10), strings.Repeat("é", 8<<10)},
		{"error text over 16 KiB", strings.Repeat("é", 8<<10+1), strings.Repeat("é", 8<<10-8) + " …[truncated]"},
	}
	for _, x := range texts {
		t.Run(x.name, func(t *testing.T) {
			c := running(t, b, item("limits.err"))
			settled(t, b, driver.Transition{ID: c.ID, Generation: c.RetryCount, To: queuestype.StatusFailed, Error: x.text})
			if got := get(t, b, c.ID).Error; got != x.want {
				t.Fatalf("stored error text of %d bytes %.40q…, want %d bytes %.40q…", len(got), got, len(x.want), x.want)
			}
		})
	}
	// A result at the limit is stored.
	a := running(t, b, item("limits.big"))
	settled(t, b, driver.Transition{ID: a.ID, Generation: a.RetryCount, To: queuestype.StatusCompleted, Result: jsonString(mib)})
	var got struct{ S string }
	if err := json.Unmarshal(get(t, b, a.ID).Result, &got); err != nil || len(got.S) != mib-8 {
		t.Fatalf("a 1 MiB result was stored with %d bytes of text (%v)", len(got.S), err)
	}
}

func testLimitsHeartbeat(t *testing.T, b driver.Backend) {
	r := running(t, b, item("limits.hb"))
	gen := r.RetryCount
	_, err := b.TouchHeartbeats(t.Context(), []driver.HeartbeatTouch{{ID: r.ID, ExpectedRetryCount: &gen,
		MetadataPatch: map[string]any{queuestype.MetaProgressDetail: strings.Repeat("p", 64<<10)}}})
	wantLimitError(t, "TouchHeartbeats", err, "touches[0].metadata_patch", true)
	_, err = b.TouchHeartbeats(t.Context(), []driver.HeartbeatTouch{{ID: r.ID, ExpectedRetryCount: &gen,
		MetadataPatch: map[string]any{queuestype.MetaProgressDetail: "a\x00"}}})
	wantLimitError(t, "TouchHeartbeats", err, "touches[0].metadata_patch", false)
	wantSameRecord(t, "record after refused heartbeats", get(t, b, r.ID), r)
}
