package queuescli

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// queues get shows the snoozes and the error history, oldest first.
func TestWriteRecordShowsErrorHistory(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := &queues.Record{ID: uuid.New(), TaskName: "t", Status: queues.StatusFailed, Error: "second\nline", SnoozeCount: 2,
		RetryCount: 3, Interruptions: 0, MaxRetries: 1,
		Errors: []queues.AttemptError{{Attempt: 1, At: at, Error: "first", WorkerID: "w1"}, {Attempt: 4, At: at.Add(time.Second), Error: "second\nline", Trace: "stack"}}}
	var b strings.Builder
	if err := writeRecord(&b, rec); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"snoozes:", "2\n",
		"error (attempt 1):  2026-01-02T03:04:05Z on w1: first\n",
		"error (attempt 4):  2026-01-02T03:04:06Z: second; line\n",
		"retries used 1 of 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "attempt 1)") > strings.Index(out, "attempt 4)") {
		t.Errorf("history not oldest first:\n%s", out)
	}
}
