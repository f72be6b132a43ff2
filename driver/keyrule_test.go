package driver_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

func TestKeyRuleHolds(t *testing.T) {
	created := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	in := func(d time.Duration) time.Time { return created.Add(d) }
	pending, running, completed, cancelled := queuestype.StatusPending, queuestype.StatusRunning, queuestype.StatusCompleted, queuestype.StatusCancelled
	cases := []struct {
		name   string
		rule   driver.KeyRule
		status queuestype.Status
		now    time.Time
		want   bool
	}{
		{"default active", driver.KeyRule{}, running, in(time.Hour), true},
		{"default terminal", driver.KeyRule{}, completed, in(0), false},
		{"period terminal inside", driver.KeyRule{Period: time.Minute}, completed, in(time.Minute - time.Microsecond), true},
		{"period ends exactly", driver.KeyRule{Period: time.Minute}, completed, in(time.Minute), false},
		{"period active after", driver.KeyRule{Period: time.Minute}, pending, in(2 * time.Minute), false},
		{"period sub-microsecond ignored", driver.KeyRule{Period: time.Minute + 999}, completed, in(time.Minute), false},
		{"states in", driver.KeyRule{States: []queuestype.Status{pending}}, pending, in(time.Hour), true},
		{"states out active", driver.KeyRule{States: []queuestype.Status{pending}}, running, in(0), false},
		{"states terminal in", driver.KeyRule{States: []queuestype.Status{pending, completed}}, completed, in(time.Hour), true},
		{"both: in states, inside", driver.KeyRule{Period: time.Minute, States: []queuestype.Status{completed}}, completed, in(time.Second), true},
		{"both: out of states", driver.KeyRule{Period: time.Minute, States: []queuestype.Status{completed}}, cancelled, in(time.Second), false},
		{"both: after period", driver.KeyRule{Period: time.Minute, States: []queuestype.Status{completed}}, completed, in(time.Hour), false},
	}
	for _, c := range cases {
		if got := c.rule.Holds(c.status, created, c.now); got != c.want {
			t.Errorf("%s: Holds = %v, want %v", c.name, got, c.want)
		}
	}
	if got := (driver.KeyRule{}).StatesText(); got != "pending,scheduled,running" {
		t.Errorf("default states %q", got)
	}
	if got := (driver.KeyRule{Period: time.Second}).StatesText(); got != "pending,scheduled,running,completed,failed,cancelled,expired" {
		t.Errorf("period states %q", got)
	}
}

func TestPrepareEnqueueKeyRule(t *testing.T) {
	p, err := driver.PrepareEnqueue(0, driver.EnqueueParams{TaskName: "t", UniqueFor: time.Second, UniqueWhile: []queuestype.Status{queuestype.StatusPending}})
	if err != nil || p.UniqueFor != 0 || p.UniqueWhile != nil {
		t.Errorf("rule without key kept: %+v %v", p, err)
	}
	for name, in := range map[string]driver.EnqueueParams{
		"negative": {TaskName: "t", Key: "k", UniqueFor: -time.Second},
		"status":   {TaskName: "t", Key: "k", UniqueWhile: []queuestype.Status{"waiting"}},
		"forever":  {TaskName: "t", Key: "k", Forever: true, UniqueFor: time.Second},
	} {
		if _, err := driver.PrepareEnqueue(2, in); !errors.Is(err, queuestype.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

func TestKeyFolderRule(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	running := &queuestype.Record{ID: uuid.New(), Key: "k", Status: queuestype.StatusRunning, CreatedAt: now.Add(-time.Hour)}
	f := &fakeKeys{holders: map[string]*queuestype.Record{"k": running}}
	folder := f.folder()
	pendingOnly := driver.KeyRule{States: []queuestype.Status{queuestype.StatusPending}}
	// The first item's rule lets the running holder go: insert, take over.
	d0, _ := folder.DecideRule(0, "k", false, pendingOnly, now)
	if d0.Action != driver.KeyInsert || !d0.TakeOver || d0.Holder != running {
		t.Fatalf("first item: %s", describe(d0))
	}
	// A later item of the key folds into it whatever its own rule.
	d1, _ := folder.DecideRule(1, "k", false, driver.KeyRule{}, now)
	if d1.Action != driver.KeyStaged || d1.Of != 0 {
		t.Fatalf("second item: %s", describe(d1))
	}

	// The first item's rule keeps the holder: a later item with a rule that
	// would let it go still returns the holder.
	f = &fakeKeys{holders: map[string]*queuestype.Record{"k": running}}
	folder = f.folder()
	d0, _ = folder.DecideRule(0, "k", false, driver.KeyRule{}, now)
	d1, _ = folder.DecideRule(1, "k", false, pendingOnly, now)
	if d0.Action != driver.KeyExisting || d1.Action != driver.KeyExisting || d1.Holder != running {
		t.Fatalf("kept: %s %s", describe(d0), describe(d1))
	}

	// A period keeps a completed holder until it ends.
	done := &queuestype.Record{ID: uuid.New(), Key: "p", Status: queuestype.StatusCompleted, CreatedAt: now.Add(-time.Minute)}
	f = &fakeKeys{holders: map[string]*queuestype.Record{"p": done}}
	folder = f.folder()
	if d, _ := folder.DecideRule(0, "p", false, driver.KeyRule{Period: 2 * time.Minute}, now); d.Action != driver.KeyExisting {
		t.Fatalf("inside the period: %s", describe(d))
	}
	folder = f.folder()
	if d, _ := folder.DecideRule(0, "p", false, driver.KeyRule{Period: time.Minute}, now); d.Action != driver.KeyInsert || !d.TakeOver {
		t.Fatalf("after the period: %s", describe(d))
	}
}
