package queuestype

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRecordJSONHasExactlyTheSpecKeys(t *testing.T) {
	rec := Record{ID: uuid.Must(uuid.NewV7()), TaskName: "t", Queue: "default", Status: StatusPending,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), QueuedAt: time.Now()}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := strings.Fields("id task_name args queue execution_backend execution_profile execution_ref worker_id status priority max_retries retry_count scheduled_at expires_at created_at queued_at started_at completed_at heartbeat_at result error key metadata policy interruptions dispatch_until snooze_count errors tags")
	if len(m) != len(want) {
		t.Fatalf("got %d keys, want %d: %s", len(m), len(want), b)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("missing key %q", k)
		}
	}
	for _, k := range []string{"scheduled_at", "worker_id", "result", "error", "key", "args"} {
		if m[k] != nil {
			t.Errorf("%s = %v, want null", k, m[k])
		}
	}
	if got := m["created_at"].(string); got != "2026-01-02T02:04:05Z" {
		t.Errorf("created_at = %q, want UTC with Z", got)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != rec.ID || !back.CreatedAt.Equal(rec.CreatedAt) || back.WorkerID != "" || back.Status != StatusPending {
		t.Errorf("round trip mismatch: %+v", back)
	}
}

func TestAttemptsConsumedSubtractsInterruptions(t *testing.T) {
	cases := []struct{ retry, interruptions, want int }{
		{3, 0, 3}, {3, 2, 1}, {3, 3, 0}, {1, 5, 0},
	}
	for _, c := range cases {
		r := &Record{RetryCount: c.retry, Interruptions: c.interruptions}
		if got := r.AttemptsConsumed(); got != c.want {
			t.Errorf("retry %d interruptions %d: got %d want %d", c.retry, c.interruptions, got, c.want)
		}
	}
}

func TestRetryBackoffDelay(t *testing.T) {
	b := RetryBackoff{InitialDelay: time.Second, Multiplier: 2, MaxDelay: 5 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for n, w := range want {
		if got := b.Delay(n); got != w {
			t.Errorf("Delay(%d) = %v, want %v", n, got, w)
		}
	}
	if got := (RetryBackoff{InitialDelay: 3 * time.Second, Multiplier: 1}).Delay(7); got != 3*time.Second {
		t.Errorf("fixed: %v", got)
	}
	if got := (RetryBackoff{}).Delay(3); got != 0 {
		t.Errorf("zero backoff: %v", got)
	}
	if got := (RetryBackoff{InitialDelay: time.Hour, Multiplier: 10}).Delay(1000); got <= 0 {
		t.Errorf("overflow must saturate, got %v", got)
	}
	// Round trip through metadata, as persisted on records.
	back := BackoffFromMetadata(map[string]any{MetaRetryBackoff: b.Metadata()})
	if back != b {
		t.Errorf("metadata round trip: %+v", back)
	}
	js, _ := json.Marshal(map[string]any{MetaRetryBackoff: RetryBackoff{InitialDelay: time.Second}.Metadata()})
	var md map[string]any
	_ = json.Unmarshal(js, &md)
	if got := BackoffFromMetadata(md); got.Delay(4) != time.Second || got.MaxDelay != 0 {
		t.Errorf("decoded JSON backoff: %+v", got)
	}
}

func TestPolicyJSONRoundTrip(t *testing.T) {
	no := false
	p := Policy{Timeout: 1500 * time.Millisecond, RetryBackoff: RetryBackoff{InitialDelay: time.Second, Multiplier: 2, MaxDelay: time.Minute},
		NoStaleRequeue: true, RequeueOnShutdown: &no, LogLevel: "warning", LogSuccess: true, Description: "d",
		CorrelationID: "c", UniqueBy: "arguments", UniqueVersion: "v1", UniqueUntil: UniqueForever}
	enc := EncodePolicy(p)
	back, err := DecodePolicy(enc)
	if err != nil {
		t.Fatal(err)
	}
	if EncodePolicy(back) != enc || back.RequeueOnShutdown == nil || *back.RequeueOnShutdown || !back.Forever() {
		t.Fatalf("round trip: %s → %+v", enc, back)
	}
	if got := EncodePolicy(Policy{}); got != "{}" {
		t.Errorf("zero policy encodes as %s, want {}", got)
	}
	for _, s := range []string{"", "null", "{}"} {
		if z, err := DecodePolicy(s); err != nil || !z.IsZero() {
			t.Errorf("DecodePolicy(%q) = %+v, %v; want the zero policy", s, z, err)
		}
	}
	if _, err := DecodePolicy("[1]"); err == nil {
		t.Error("DecodePolicy accepts a non-object")
	}
}

// PolicyFromMetadata reads what an earlier schema kept in metadata, the
// mapping every store migration applies.
func TestPolicyFromMetadata(t *testing.T) {
	var md map[string]any
	legacy := `{"timeout":2.5,"retry_backoff":{"initial_delay":1,"multiplier":2,"max_delay":null},"requeue_on_stale":false,
		"requeue_on_shutdown":true,"log_level":"debug","log_success":true,"description":"x","_correlation_id":"req-1",
		"unique_by":"task","unique_version":"v1","unique_until":"forever","interruptions":2,"tenant":"t1"}`
	if err := json.Unmarshal([]byte(legacy), &md); err != nil {
		t.Fatal(err)
	}
	p := PolicyFromMetadata(md)
	if p.Timeout != 2500*time.Millisecond || p.RetryBackoff != (RetryBackoff{InitialDelay: time.Second, Multiplier: 2}) ||
		!p.NoStaleRequeue || p.RequeueOnShutdown == nil || !*p.RequeueOnShutdown || p.LogLevel != "debug" || !p.LogSuccess ||
		p.Description != "x" || p.CorrelationID != "req-1" || p.UniqueBy != "task" || p.UniqueVersion != "v1" || !p.Forever() {
		t.Fatalf("PolicyFromMetadata = %+v", p)
	}
	for _, k := range LegacyMetadataKeys {
		if !IsReservedMetadataKey(k) {
			t.Errorf("legacy key %q is not reserved", k)
		}
		delete(md, k)
	}
	if len(md) != 1 || md["tenant"] != "t1" {
		t.Errorf("after removing the legacy keys: %v, want only tenant", md)
	}
	for k, want := range map[string]bool{"_x": true, "progress_detail": true, "tenant": false, "timeouts": false} {
		if IsReservedMetadataKey(k) != want {
			t.Errorf("IsReservedMetadataKey(%q) = %v, want %v", k, !want, want)
		}
	}
}
