package driver_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// CheckCleanup returns the defaults, then each listed task's cutoffs
// (tasks sorted); CleanupCutoffFor gives a listed task only its own.
func TestCheckCleanupByTask(t *testing.T) {
	at := time.Unix(1000, 0)
	p := driver.CleanupParams{
		Before: map[queuestype.Status]time.Time{queuestype.StatusFailed: at},
		ByTask: map[string]map[queuestype.Status]time.Time{
			"b": {queuestype.StatusCompleted: at.Add(time.Hour), queuestype.StatusExpired: at},
			"a": {},
		},
	}
	cuts, limit, err := driver.CheckCleanup(context.Background(), p)
	if err != nil || limit != driver.DefaultCleanupLimit {
		t.Fatalf("CheckCleanup = %d, %v", limit, err)
	}
	want := []driver.CleanupCutoff{
		{Status: queuestype.StatusFailed, Before: at},
		{Task: "b", Status: queuestype.StatusCompleted, Before: at.Add(time.Hour)},
		{Task: "b", Status: queuestype.StatusExpired, Before: at},
	}
	if !slices.Equal(cuts, want) {
		t.Fatalf("cutoffs = %+v, want %+v", cuts, want)
	}
	if got := driver.CleanupOverridden(p); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("CleanupOverridden = %v", got)
	}
	for _, c := range []struct {
		task string
		st   queuestype.Status
		want bool
	}{
		{"other", queuestype.StatusFailed, true},
		{"other", queuestype.StatusCompleted, false},
		{"a", queuestype.StatusFailed, false},
		{"b", queuestype.StatusFailed, false},
		{"b", queuestype.StatusCompleted, true},
	} {
		if _, ok := driver.CleanupCutoffFor(p, c.task, c.st); ok != c.want {
			t.Errorf("CleanupCutoffFor(%s, %s) = %v, want %v", c.task, c.st, ok, c.want)
		}
	}
}
