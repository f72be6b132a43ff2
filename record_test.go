package queues

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
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
	want := strings.Fields("id task_name args queue execution_backend execution_profile execution_ref worker_id status priority max_retries retry_count scheduled_at expires_at created_at queued_at started_at completed_at heartbeat_at result error key metadata")
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
	cases := []struct {
		retry int
		md    map[string]any
		want  int
	}{
		{3, nil, 3},
		{3, map[string]any{queuestype.MetaInterruptions: 2}, 1},
		{3, map[string]any{queuestype.MetaInterruptions: float64(1)}, 2},
		{3, map[string]any{queuestype.MetaInterruptions: json.Number("3")}, 0},
		{3, map[string]any{queuestype.MetaInterruptions: "two"}, 3},
		{1, map[string]any{queuestype.MetaInterruptions: 5}, 0},
	}
	for _, c := range cases {
		r := &Record{RetryCount: c.retry, Metadata: c.md}
		if got := r.AttemptsConsumed(); got != c.want {
			t.Errorf("retry %d md %v: got %d want %d", c.retry, c.md, got, c.want)
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
	if got := FixedBackoff(3 * time.Second).Delay(7); got != 3*time.Second {
		t.Errorf("fixed: %v", got)
	}
	if got := (RetryBackoff{}).Delay(3); got != 0 {
		t.Errorf("zero backoff: %v", got)
	}
	if got := (RetryBackoff{InitialDelay: time.Hour, Multiplier: 10}).Delay(1000); got <= 0 {
		t.Errorf("overflow must saturate, got %v", got)
	}
	// Round trip through metadata, as persisted on records.
	back := queuestype.BackoffFromMetadata(map[string]any{queuestype.MetaRetryBackoff: b.Metadata()})
	if back != b {
		t.Errorf("metadata round trip: %+v", back)
	}
	js, _ := json.Marshal(map[string]any{queuestype.MetaRetryBackoff: RetryBackoff{InitialDelay: time.Second}.Metadata()})
	var md map[string]any
	_ = json.Unmarshal(js, &md)
	if got := queuestype.BackoffFromMetadata(md); got.Delay(4) != time.Second || got.MaxDelay != 0 {
		t.Errorf("decoded JSON backoff: %+v", got)
	}
}

func TestStaleRequeueDecision(t *testing.T) {
	r := &Record{MaxRetries: 1, RetryCount: 1, Metadata: map[string]any{queuestype.MetaInterruptions: 1,
		queuestype.MetaRetryBackoff: FixedBackoff(time.Minute).Metadata()}}
	requeue, handler, delay := driver.StaleRequeueDecision(r)
	if !requeue || handler || delay != time.Minute {
		t.Errorf("interrupted record: requeue=%v handler=%v delay=%v", requeue, handler, delay)
	}
	r = &Record{MaxRetries: 5, Metadata: map[string]any{queuestype.MetaRequeueOnStale: false}}
	if requeue, handler, _ := driver.StaleRequeueDecision(r); requeue || !handler {
		t.Errorf("requeue_on_stale=false: requeue=%v handler=%v", requeue, handler)
	}
	r = &Record{MaxRetries: 0}
	if requeue, handler, _ := driver.StaleRequeueDecision(r); requeue || handler {
		t.Errorf("no budget: requeue=%v handler=%v", requeue, handler)
	}
}
