package driver_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
)

func TestStoreErrors(t *testing.T) {
	id := uuid.MustParse("01890000-0000-7000-8000-000000000001")
	cases := []struct {
		name      string
		err       error
		is, isNot []error
		text      string
	}{
		{"FenceLost", driver.FenceLost("settle", id), []error{queuestype.ErrFenceLost}, []error{queuestype.ErrTaskNotFound}, "settle " + id.String()},
		{"NotFound", driver.NotFound(id), []error{queuestype.ErrTaskNotFound}, []error{queuestype.ErrFenceLost}, id.String()},
		{"MissingForWrite", driver.MissingForWrite("cancel", id), []error{queuestype.ErrFenceLost, queuestype.ErrTaskNotFound}, nil, "cancel " + id.String()},
		{"IdentityConflict", driver.IdentityConflict("k1"), []error{queuestype.ErrIdentityConflict}, nil, `key "k1"`},
		{"IdentityHeld", driver.IdentityHeld("k1", id.String()), []error{queuestype.ErrIdentityConflict}, nil, `key "k1" is held by task ` + id.String()},
	}
	for _, c := range cases {
		for _, target := range c.is {
			if !errors.Is(c.err, target) {
				t.Errorf("%s: %v does not match %v", c.name, c.err, target)
			}
		}
		for _, target := range c.isNot {
			if errors.Is(c.err, target) {
				t.Errorf("%s: %v matches %v", c.name, c.err, target)
			}
		}
		if !strings.Contains(c.err.Error(), c.text) {
			t.Errorf("%s: %q does not name %q", c.name, c.err, c.text)
		}
	}
}

func TestCheckLockArgs(t *testing.T) {
	ctx := context.Background()
	if err := driver.CheckLockArgs(ctx, time.Second, "tok"); err != nil {
		t.Fatalf("valid arguments: %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := driver.CheckLockArgs(ctx, ttl, "tok"); !errors.Is(err, queuestype.ErrConfig) {
			t.Errorf("ttl %s: got %v, want ErrConfig", ttl, err)
		}
	}
	if err := driver.CheckLockArgs(ctx, time.Second, ""); !errors.Is(err, queuestype.ErrConfig) {
		t.Errorf("empty token: got %v, want ErrConfig", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := driver.CheckLockArgs(done, 0, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("ended ctx: got %v, want context.Canceled first", err)
	}
}

func TestResolveNamespace(t *testing.T) {
	cases := []struct {
		ns     string
		maxLen int
		want   string
		bad    bool
	}{
		{"", 0, queuestype.DefaultNamespace, false},
		{"", 3, queuestype.DefaultNamespace, false},
		{"app", 0, "app", false},
		{"app_v2", 10, "app_v2", false},
		{"App", 0, "", true},
		{"app__x", 0, "", true},
		{"_app", 0, "", true},
		{"2app", 0, "", true},
		{strings.Repeat("a", 60), 0, strings.Repeat("a", 60), false},
		{strings.Repeat("a", 60), 48, "", true},
	}
	for _, c := range cases {
		got, err := driver.ResolveNamespace("x.Namespace", c.ns, c.maxLen)
		if c.bad {
			var ce *queuestype.ConfigError
			if !errors.As(err, &ce) || ce.Field != "x.Namespace" {
				t.Errorf("%q (max %d): got %q, %v; want a ConfigError naming the field", c.ns, c.maxLen, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q (max %d): got %q, %v; want %q", c.ns, c.maxLen, got, err, c.want)
		}
	}
}

func TestLimitsAndStarts(t *testing.T) {
	if driver.Limit(0, 7) != 7 || driver.Limit(-1, 7) != 7 || driver.Limit(3, 7) != 3 {
		t.Fatal("Limit does not default non-positive limits only")
	}
	ctx := context.Background()
	ended, cancel := context.WithCancel(ctx)
	cancel()

	if n, err := driver.CallLimit(ctx, 0, driver.DefaultPendingLimit); n != 100 || err != nil {
		t.Errorf("CallLimit(0) = %d, %v", n, err)
	}
	if _, err := driver.CallLimit(ended, 5, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("CallLimit on an ended ctx: %v", err)
	}

	for _, c := range []struct {
		ctx  context.Context
		n    int
		none bool
		err  error
	}{{ctx, 1, false, nil}, {ctx, 0, true, nil}, {ctx, -1, true, nil}, {ended, 5, true, context.Canceled}} {
		none, err := driver.NoWork(c.ctx, c.n)
		if none != c.none || !errors.Is(err, c.err) {
			t.Errorf("NoWork(n=%d) = %v, %v; want %v, %v", c.n, none, err, c.none, c.err)
		}
	}

	if empty, done, err := driver.NoItems[int](ctx, 0); !done || err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("NoItems(0) = %v, %v, %v; want an empty non-nil list", empty, done, err)
	}
	if empty, done, err := driver.NoItems[int](ended, 3); !done || !errors.Is(err, context.Canceled) || empty != nil {
		t.Errorf("NoItems on an ended ctx = %v, %v, %v", empty, done, err)
	}
	if _, done, err := driver.NoItems[int](ctx, 2); done || err != nil {
		t.Errorf("NoItems(2) = %v, %v; want work to do", done, err)
	}
}

func recs(n int) []*queuestype.Record {
	out := make([]*queuestype.Record, n)
	for i := range out {
		out[i] = &queuestype.Record{ID: uuid.New()}
	}
	return out
}

func TestNewTaskPage(t *testing.T) {
	if p := driver.NewTaskPage(nil, 5); p.Items == nil || len(p.Items) != 0 || p.NextCursor != uuid.Nil {
		t.Fatalf("nil records: %+v", p)
	}
	rs := recs(3)
	if p := driver.NewTaskPage(rs, 3); len(p.Items) != 3 || p.NextCursor != uuid.Nil {
		t.Fatalf("a full last page: %+v", p)
	}
	rs = recs(4)
	p := driver.NewTaskPage(rs, 3)
	if len(p.Items) != 3 || p.NextCursor != rs[2].ID {
		t.Fatalf("limit+1 records: %d items, cursor %s, want 3 and %s", len(p.Items), p.NextCursor, rs[2].ID)
	}
}

func TestCursorTime(t *testing.T) {
	v7, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	at, ok := driver.CursorTime(v7)
	if !ok || time.Since(at) > time.Minute || at.Location() != time.UTC {
		t.Fatalf("UUIDv7 cursor: %v, %v", at, ok)
	}
	if _, ok := driver.CursorTime(uuid.New()); ok {
		t.Fatal("a UUIDv4 cursor carries no time")
	}
}

func TestOrders(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	id := func(b byte) uuid.UUID { return uuid.UUID{b} }
	claim := []*queuestype.Record{
		{ID: id(5), Priority: 0, QueuedAt: t0, CreatedAt: t0},
		{ID: id(4), Priority: 0, QueuedAt: t0, CreatedAt: t0},
		{ID: id(3), Priority: 0, QueuedAt: t0, CreatedAt: t0.Add(-time.Second)},
		{ID: id(2), Priority: 0, QueuedAt: t0.Add(-time.Second), CreatedAt: t0},
		{ID: id(1), Priority: 5, QueuedAt: t0.Add(time.Hour), CreatedAt: t0},
	}
	got := slices.Clone(claim)
	slices.SortFunc(got, driver.ClaimOrder)
	if ids := idBytes(got); !slices.Equal(ids, []byte{1, 2, 3, 4, 5}) {
		t.Fatalf("claim order %v, want priority desc, queued_at, created_at, id", ids)
	}
	stale := []*queuestype.Record{
		{ID: id(5), HeartbeatAt: t0.Add(time.Second)},
		{ID: id(4), HeartbeatAt: t0},
		{ID: id(3), HeartbeatAt: t0},
		{ID: id(2), CreatedAt: t0},
		{ID: id(1), CreatedAt: t0.Add(-time.Second)},
	}
	slices.SortFunc(stale, driver.StaleOrder)
	if ids := idBytes(stale); !slices.Equal(ids, []byte{1, 2, 3, 4, 5}) {
		t.Fatalf("stale order %v, want null heartbeats by created_at, then oldest heartbeat, then id", ids)
	}
	a := uuid.MustParse("00000000-0000-7000-8000-00000000000a")
	b := uuid.MustParse("00000000-0000-7000-8000-0000000000a0")
	if driver.CompareID(a, b) >= 0 || driver.CompareID(b, a) <= 0 || driver.CompareID(a, a) != 0 {
		t.Fatal("CompareID is not bytewise")
	}
	if (driver.CompareID(a, b) < 0) != (a.String() < b.String()) {
		t.Fatal("CompareID disagrees with the canonical text order")
	}
}

func idBytes(rs []*queuestype.Record) []byte {
	out := make([]byte, len(rs))
	for i, r := range rs {
		out[i] = r.ID[0]
	}
	return out
}

func TestQueuesWithRecords(t *testing.T) {
	per := map[string]queuestype.Statistics{"a": {Total: 2, Pending: 2}, "b": {}, "c": {Total: 1, Running: 1}}
	got := driver.QueuesWithRecords(per)
	if len(got) != 2 || got["a"].Total != 2 || got["c"].Total != 1 {
		t.Fatalf("got %v", got)
	}
	if _, ok := got["b"]; ok {
		t.Fatal("an empty queue is listed")
	}
}

func TestOpenOnce(t *testing.T) {
	var (
		mu     sync.Mutex
		opened bool
		runs   atomic.Int32
	)
	boom := errors.New("boom")
	if err := driver.OpenOnce(&mu, &opened, func() error { runs.Add(1); return boom }); !errors.Is(err, boom) || opened {
		t.Fatalf("a failed open: %v, opened %v", err, opened)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := driver.OpenOnce(&mu, &opened, func() error { runs.Add(1); return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if !opened || runs.Load() != 2 {
		t.Fatalf("opened %v after %d runs; want one failed and one successful run", opened, runs.Load())
	}
	mu.Lock()
	opened = false // Close
	mu.Unlock()
	if err := driver.OpenOnce(&mu, &opened, func() error { runs.Add(1); return nil }); err != nil || runs.Load() != 3 {
		t.Fatalf("Open after Close: %v, %d runs", err, runs.Load())
	}
}

func TestSubsetMatch(t *testing.T) {
	have := map[string]any{"a": 1.0, "b": "x", "c": map[string]any{"d": true}}
	cases := []struct {
		want map[string]any
		ok   bool
	}{
		{nil, true},
		{map[string]any{}, true},
		{map[string]any{"a": 1}, true}, // compared by JSON encoding
		{map[string]any{"b": "x", "c": map[string]any{"d": true}}, true},
		{map[string]any{"b": "y"}, false},
		{map[string]any{"z": nil}, false},
	}
	for _, c := range cases {
		if got := driver.SubsetMatch(c.want, have); got != c.ok {
			t.Errorf("SubsetMatch(%v) = %v, want %v", c.want, got, c.ok)
		}
	}
}

func TestCheckSettleTo(t *testing.T) {
	for _, s := range []queuestype.Status{queuestype.StatusCompleted, queuestype.StatusFailed, queuestype.StatusCancelled, queuestype.StatusPending} {
		if !driver.CanSettleTo(s) || driver.CheckSettleTo(&driver.Transition{To: s}) != nil {
			t.Errorf("%s must be writable", s)
		}
	}
	for _, s := range []queuestype.Status{queuestype.StatusRunning, queuestype.StatusScheduled, queuestype.StatusExpired, ""} {
		err := driver.CheckSettleTo(&driver.Transition{ID: uuid.New(), To: s})
		if driver.CanSettleTo(s) || !errors.Is(err, queuestype.ErrConfig) {
			t.Errorf("%q: CanSettleTo %v, CheckSettleTo %v", s, driver.CanSettleTo(s), err)
		}
	}
}
