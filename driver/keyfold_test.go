package driver_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

func TestPrepareEnqueue(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	in := driver.EnqueueParams{TaskName: "t", Priority: 3, Key: "", Forever: true,
		ScheduledAt: time.Date(2024, 1, 1, 1, 0, 0, 0, loc)}
	p, err := driver.PrepareEnqueue(0, in)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID == uuid.Nil || p.ID.Version() != 7 {
		t.Errorf("generated ID %s, want a UUIDv7", p.ID)
	}
	if p.Queue != queuestype.DefaultQueue || p.ExecutionBackend != queuestype.ExecutionLocal {
		t.Errorf("defaults: queue %q, backend %q", p.Queue, p.ExecutionBackend)
	}
	if p.ScheduledAt.Location() != time.UTC || !p.ScheduledAt.Equal(in.ScheduledAt) || !p.ExpiresAt.IsZero() {
		t.Errorf("times: scheduled %v, expires %v", p.ScheduledAt, p.ExpiresAt)
	}
	if p.Forever {
		t.Error("Forever without a key stays set")
	}
	if in.ID != uuid.Nil || in.Queue != "" {
		t.Error("the caller's item was changed")
	}

	id := uuid.New()
	p, err = driver.PrepareEnqueue(1, driver.EnqueueParams{TaskName: "t", ID: id, Queue: "q", ExecutionBackend: "cloud", Key: "k", Forever: true})
	if err != nil || p.ID != id || p.Queue != "q" || p.ExecutionBackend != "cloud" || !p.Forever {
		t.Errorf("given values: %+v, %v", p, err)
	}

	for _, prio := range []int{queuestype.MinPriority - 1, queuestype.MaxPriority + 1} {
		_, err := driver.PrepareEnqueue(4, driver.EnqueueParams{TaskName: "t", Priority: prio})
		var le *queuestype.LimitError
		if !errors.As(err, &le) || le.Field != "items[4].priority" || !errors.Is(err, queuestype.ErrConfig) {
			t.Errorf("priority %d: %v", prio, err)
		}
	}
	for _, prio := range []int{queuestype.MinPriority, queuestype.MaxPriority} {
		if _, err := driver.PrepareEnqueue(0, driver.EnqueueParams{TaskName: "t", Priority: prio}); err != nil {
			t.Errorf("priority %d: %v", prio, err)
		}
	}
}

// fakeKeys is a store's key state for KeyFolder tests.
type fakeKeys struct {
	reservations map[string]*queuestype.Reservation
	holders      map[string]*queuestype.Record
	forever      map[string]bool // holders enqueued with a forever identity
	resCalls     []string
	holderCalls  []string
	fail         error
}

func (f *fakeKeys) folder() driver.KeyFolder[*queuestype.Record] {
	return driver.NewKeyFolder(
		func(key string) (*queuestype.Reservation, error) {
			f.resCalls = append(f.resCalls, key)
			return f.reservations[key], f.fail
		},
		func(key string) (driver.KeyHolder[*queuestype.Record], bool, error) {
			f.holderCalls = append(f.holderCalls, key)
			h := f.holders[key]
			if h == nil || f.fail != nil {
				return driver.KeyHolder[*queuestype.Record]{}, false, f.fail
			}
			return driver.KeyHolder[*queuestype.Record]{Rec: h, ID: h.ID, Status: h.Status, CreatedAt: h.CreatedAt, Forever: f.forever[key]}, true, nil
		})
}

type item struct {
	key     string
	forever bool
}

// describe renders a decision compactly: I (insert, +R reserve, +T take
// over), S<j>, E<holder>, O<j or stored>, C (conflict).
func describe(d driver.KeyDecision[*queuestype.Record]) string {
	switch d.Action {
	case driver.KeyInsert:
		s := "I"
		if d.Reserve {
			s += "+R"
		}
		if d.TakeOver {
			s += "+T:" + d.Holder.TaskName
		}
		return s
	case driver.KeyStaged:
		return fmt.Sprintf("S%d", d.Of)
	case driver.KeyExisting:
		return "E:" + d.Holder.TaskName
	case driver.KeyOwner:
		if d.Owner != nil {
			return "O:" + d.Owner.TaskName
		}
		return fmt.Sprintf("O%d", d.Of)
	case driver.KeyConflict:
		if !errors.Is(d.Err, queuestype.ErrIdentityConflict) {
			return "C?"
		}
		if strings.Contains(d.Err.Error(), "held by task") {
			return "C:held"
		}
		return "C"
	}
	return "?"
}

func TestKeyFolder(t *testing.T) {
	active := &queuestype.Record{ID: uuid.New(), TaskName: "active", Status: queuestype.StatusRunning}
	done := &queuestype.Record{ID: uuid.New(), TaskName: "done", Status: queuestype.StatusCompleted}
	res := &queuestype.Reservation{Key: "r", TaskID: uuid.New(), TaskName: "owner"}
	cases := []struct {
		name    string
		items   []item
		holders map[string]*queuestype.Record
		forever map[string]bool
		want    string
	}{
		{"unkeyed items insert", []item{{"", false}, {"", true}}, nil, nil, "I I"},
		{"a repeated key folds into the first", []item{{"k", false}, {"k", false}, {"j", false}, {"k", false}}, nil, nil, "I S0 I S0"},
		{"an active holder is returned", []item{{"k", false}, {"k", false}}, map[string]*queuestype.Record{"k": active}, nil, "E:active E:active"},
		{"a terminal holder gives its key up", []item{{"k", false}, {"k", false}}, map[string]*queuestype.Record{"k": done}, nil, "I+T:done S0"},
		{"a stored reservation owns forever items only", []item{{"r", true}, {"r", false}, {"r", true}}, nil, nil, "O:owner I O:owner"},
		{"a forever key reserved in the call", []item{{"f", true}, {"f", true}, {"f", false}}, nil, nil, "I+R O0 S0"},
		{"a forever item after a plain insert conflicts", []item{{"k", false}, {"k", true}}, nil, nil, "I C"},
		{"a plain active holder conflicts with forever items", []item{{"k", true}, {"k", false}}, map[string]*queuestype.Record{"k": active}, nil, "C:held E:active"},
		{"an active forever holder keeps its key", []item{{"k", true}}, map[string]*queuestype.Record{"k": active}, map[string]bool{"k": true}, "E:active"},
		{"a forever item takes over a terminal holder", []item{{"k", true}, {"k", true}}, map[string]*queuestype.Record{"k": done}, nil, "I+R+T:done O0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeKeys{reservations: map[string]*queuestype.Reservation{"r": res}, holders: c.holders, forever: c.forever}
			folder := f.folder()
			var got []string
			for i, it := range c.items {
				d, err := folder.Decide(i, it.key, it.forever)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, describe(d))
			}
			if s := strings.Join(got, " "); s != c.want {
				t.Fatalf("decisions %q, want %q", s, c.want)
			}
		})
	}
}

func TestKeyFolderLooksUpOnlyWhatDecides(t *testing.T) {
	f := &fakeKeys{}
	folder := f.folder()
	for i, it := range []item{{"", false}, {"a", false}, {"a", false}, {"b", true}, {"b", true}} {
		if _, err := folder.Decide(i, it.key, it.forever); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(f.resCalls, ",") != "b" || strings.Join(f.holderCalls, ",") != "a,b" {
		t.Fatalf("reservation lookups %v, holder lookups %v; want [b] and [a b]", f.resCalls, f.holderCalls)
	}
	boom := errors.New("boom")
	f = &fakeKeys{fail: boom}
	folder = f.folder()
	if _, err := folder.Decide(0, "k", false); !errors.Is(err, boom) {
		t.Fatalf("a holder lookup error: %v", err)
	}
	if _, err := folder.Decide(0, "k", true); !errors.Is(err, boom) {
		t.Fatalf("a reservation lookup error: %v", err)
	}
}

func TestKeyOutcomes(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	inserted := []*queuestype.Record{{ID: uuid.New(), TaskName: "t0", Key: "f", CreatedAt: now}}
	holder := &queuestype.Record{ID: uuid.New(), TaskName: "h"}
	stored := &queuestype.Reservation{Key: "r", TaskID: uuid.New(), TaskName: "owner"}
	conflict := driver.IdentityConflict("k")
	ds := []driver.KeyDecision[*queuestype.Record]{
		{Action: driver.KeyInsert, Reserve: true, Of: -1},
		{Action: driver.KeyStaged, Of: 0},
		{Action: driver.KeyExisting, Holder: holder, Of: -1},
		{Action: driver.KeyOwner, Of: 0},
		{Action: driver.KeyOwner, Owner: stored, Of: -1},
		{Action: driver.KeyConflict, Err: conflict, Of: -1},
	}
	outs, err := driver.KeyOutcomes(ds,
		func(j int) *queuestype.Record { return inserted[j] },
		func(h *queuestype.Record) (*queuestype.Record, error) { return h.Clone(), nil })
	if err != nil {
		t.Fatal(err)
	}
	if outs[0].Record != inserted[0] || outs[0].Existing {
		t.Errorf("insert: %+v", outs[0])
	}
	if outs[1].Record == inserted[0] || outs[1].Record.ID != inserted[0].ID || !outs[1].Existing {
		t.Errorf("staged: want an existing clone of item 0's record, got %+v", outs[1])
	}
	if outs[2].Record == holder || outs[2].Record.ID != holder.ID || !outs[2].Existing {
		t.Errorf("existing: %+v", outs[2])
	}
	want := queuestype.Reservation{Key: "f", TaskID: inserted[0].ID, TaskName: "t0", CreatedAt: now}
	if o := outs[3].Owner; o == nil || *o != want || outs[3].Record != nil || !outs[3].Existing {
		t.Errorf("owner from the call: %+v", outs[3])
	}
	if o := outs[4].Owner; o == nil || o == stored || *o != *stored || !outs[4].Existing {
		t.Errorf("stored owner: want a copy, got %+v", outs[4])
	}
	if !errors.Is(outs[5].Err, queuestype.ErrIdentityConflict) || outs[5].Record != nil {
		t.Errorf("conflict: %+v", outs[5])
	}

	boom := errors.New("boom")
	if _, err := driver.KeyOutcomes(ds[2:3], nil, func(*queuestype.Record) (*queuestype.Record, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("a holder read error: %v", err)
	}
}
