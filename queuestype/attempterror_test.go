package queuestype

import (
	"strings"
	"testing"
	"time"
)

func TestAppendAttemptErrorCapsCountAndBytes(t *testing.T) {
	var h []AttemptError
	for i := 1; i <= ErrorHistoryEntries+5; i++ {
		h = AppendAttemptError(h, AttemptError{Attempt: i, At: time.Now(), Error: "e"})
	}
	if len(h) != ErrorHistoryEntries || h[0].Attempt != 6 || h[len(h)-1].Attempt != ErrorHistoryEntries+5 {
		t.Fatalf("count cap: len %d, first %d, last %d", len(h), h[0].Attempt, h[len(h)-1].Attempt)
	}
	big := strings.Repeat("x", 16*kib)
	h = nil
	for i := 1; i <= 12; i++ {
		h = AppendAttemptError(h, AttemptError{Attempt: i, Error: big, Trace: strings.Repeat("t", 2*ErrorTraceBytes)})
	}
	size := 0
	for i, e := range h {
		size += len(e.Error) + len(e.Trace)
		if len(e.Trace) > ErrorTraceBytes {
			t.Errorf("entry %d trace %d bytes, over %d", i, len(e.Trace), ErrorTraceBytes)
		}
		if i > 0 && e.Attempt != h[i-1].Attempt+1 {
			t.Errorf("entries out of order: %d after %d", e.Attempt, h[i-1].Attempt)
		}
	}
	if size > ErrorHistoryBytes || h[len(h)-1].Attempt != 12 || len(h) >= 12 {
		t.Fatalf("byte cap: %d entries, %d bytes, last attempt %d", len(h), size, h[len(h)-1].Attempt)
	}
	one := AppendAttemptError(nil, AttemptError{Attempt: 1, Error: strings.Repeat("y", ErrorHistoryBytes+1)})
	if len(one) != 1 {
		t.Fatalf("the newest entry must always be kept, got %d", len(one))
	}
}
