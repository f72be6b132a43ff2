package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func msg(ch, data string) Message { return Message{Channel: ch, Data: []byte(data)} }

// recv reads one message or fails after a timeout.
func recv(t *testing.T, s Subscription) Message {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a message")
	}
	return Message{}
}

func expectNone(t *testing.T, s Subscription) {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if ok {
			t.Fatalf("unexpected message %q on %s", m.Data, m.Channel)
		}
	default:
	}
}

func expectClosed(t *testing.T, s Subscription) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-s.C():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("subscription not closed")
		}
	}
}

func TestMemoryBrokerFanOut(t *testing.T) {
	ctx := context.Background()
	b := NewMemoryBroker(MemoryBrokerOptions{})
	a1, err := b.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := b.Subscribe(ctx, "a")
	ab, _ := b.Subscribe(ctx, "a", "b", "a") // duplicate channel is ignored
	bOnly, _ := b.Subscribe(ctx, "b")

	data := []byte("1")
	if err := b.Publish(ctx, []Message{{Channel: "a", Data: data}, msg("b", "2"), msg("c", "3")}); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X' // the broker copied the data
	for _, s := range []Subscription{a1, a2} {
		if m := recv(t, s); m.Channel != "a" || string(m.Data) != "1" {
			t.Fatalf("got %+v", m)
		}
		expectNone(t, s)
	}
	if m := recv(t, ab); string(m.Data) != "1" {
		t.Fatalf("got %+v", m)
	}
	if m := recv(t, ab); m.Channel != "b" || string(m.Data) != "2" {
		t.Fatalf("got %+v", m)
	}
	expectNone(t, ab)
	if m := recv(t, bOnly); string(m.Data) != "2" {
		t.Fatalf("got %+v", m)
	}
	expectNone(t, bOnly)

	// Order within a subscription follows publish order.
	for i := range 100 {
		_ = b.Publish(ctx, []Message{msg("a", fmt.Sprint(i))})
	}
	for i := range 100 {
		if m := recv(t, a1); string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q", i, m.Data)
		}
	}
	if b.Dropped() != 0 {
		t.Fatalf("dropped %d", b.Dropped())
	}
}

func TestMemoryBrokerReplay(t *testing.T) {
	ctx := context.Background()
	b := NewMemoryBroker(MemoryBrokerOptions{Replay: 3, Buffer: 1})
	for i := 1; i <= 5; i++ {
		_ = b.Publish(ctx, []Message{msg("a", fmt.Sprint("a", i)), msg("b", fmt.Sprint("b", i))})
	}
	s, err := b.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a3", "a4", "a5"} {
		if m := recv(t, s); string(m.Data) != want {
			t.Fatalf("got %q want %q", m.Data, want)
		}
	}
	expectNone(t, s)
	// Replay exceeds Buffer (1) yet nothing was dropped; live messages follow.
	_ = b.Publish(ctx, []Message{msg("a", "a6")})
	if m := recv(t, s); string(m.Data) != "a6" {
		t.Fatalf("got %q", m.Data)
	}

	// Multi-channel replay is merged in publish order.
	s2, _ := b.Subscribe(ctx, "b", "a")
	var got []string
	for range 6 {
		got = append(got, string(recv(t, s2).Data))
	}
	want := []string{"b3", "a4", "b4", "a5", "b5", "a6"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	expectNone(t, s2)
	if b.Dropped() != 0 {
		t.Fatalf("dropped %d", b.Dropped())
	}

	// No replay without the option.
	nb := NewMemoryBroker(MemoryBrokerOptions{})
	_ = nb.Publish(ctx, []Message{msg("a", "x")})
	s3, _ := nb.Subscribe(ctx, "a")
	expectNone(t, s3)
}

func TestMemoryBrokerSlowSubscriberDrops(t *testing.T) {
	ctx := context.Background()
	b := NewMemoryBroker(MemoryBrokerOptions{Buffer: 2})
	slow, _ := b.Subscribe(ctx, "a")
	fast, _ := b.Subscribe(ctx, "a")

	var got []string
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case m := <-fast.C():
				got = append(got, string(m.Data))
				if len(got) == 10 {
					close(done)
					return
				}
			case <-time.After(5 * time.Second):
				return
			}
		}
	})

	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range 10 {
			_ = b.Publish(ctx, []Message{msg("a", fmt.Sprint(i))})
			if i%2 == 1 {
				// Give the fast reader room so only the slow one overflows.
				for len(fast.C()) > 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("publisher blocked by a slow subscriber")
	}
	wg.Wait()
	select {
	case <-done:
	default:
		t.Fatalf("fast subscriber got %v", got)
	}
	if d := b.Dropped(); d != 8 {
		t.Fatalf("Dropped() = %d, want 8", d)
	}
	if m := recv(t, slow); string(m.Data) != "0" {
		t.Fatalf("slow got %q", m.Data)
	}
	if m := recv(t, slow); string(m.Data) != "1" {
		t.Fatalf("slow got %q", m.Data)
	}
	expectNone(t, slow)
}

func TestMemoryBrokerPublishNeverBlocks(t *testing.T) {
	b := NewMemoryBroker(MemoryBrokerOptions{Buffer: 1})
	for range 5 {
		if _, err := b.Subscribe(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			_ = b.Publish(context.Background(), []Message{msg("a", "x")})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publish blocked")
	}
	if d := b.Dropped(); d != 5*999 {
		t.Fatalf("Dropped() = %d", d)
	}
}

func TestMemoryBrokerCloseAndContext(t *testing.T) {
	b := NewMemoryBroker(MemoryBrokerOptions{})
	s, _ := b.Subscribe(context.Background(), "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	expectClosed(t, s)
	if err := b.Publish(context.Background(), []Message{msg("a", "x")}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	s2, _ := b.Subscribe(ctx, "a")
	cancel()
	expectClosed(t, s2)
	_ = s2.Close()

	if _, err := b.Subscribe(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("subscribe with done ctx: %v", err)
	}
	if _, err := b.Subscribe(context.Background()); err == nil {
		t.Fatal("subscribe without channels should fail")
	}

	s3, _ := b.Subscribe(context.Background(), "a", "b")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, s3)
	_ = s3.Close()
	_ = b.Close()
	if err := b.Publish(context.Background(), nil); !errors.Is(err, ErrBrokerClosed) {
		t.Fatalf("publish after close: %v", err)
	}
	if _, err := b.Subscribe(context.Background(), "a"); !errors.Is(err, ErrBrokerClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
}

// TestMemoryBrokerCloseRace publishes, subscribes, cancels and closes
// concurrently; run with -race to detect sends on closed channels.
func TestMemoryBrokerCloseRace(t *testing.T) {
	b := NewMemoryBroker(MemoryBrokerOptions{Replay: 4, Buffer: 4})
	stop := make(chan struct{})
	var pubs sync.WaitGroup
	for p := range 4 {
		pubs.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = b.Publish(context.Background(), []Message{msg("a", fmt.Sprint(p, i)), msg("b", "y")})
			}
		})
	}
	var subs sync.WaitGroup
	for i := range 200 {
		subs.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			s, err := b.Subscribe(ctx, "a", "b")
			if err != nil {
				t.Error(err)
				cancel()
				return
			}
			var inner sync.WaitGroup
			inner.Go(func() {
				for range s.C() {
				}
			})
			switch i % 3 {
			case 0:
				cancel()
				_ = s.Close()
			case 1:
				go cancel()
				_ = s.Close()
			default:
				go func() { _ = s.Close() }()
				cancel()
			}
			inner.Wait() // the range loop ends only when C is closed
			_ = s.Close()
		})
	}
	subs.Wait()
	// Closing the broker while publishers run is also safe.
	live := make([]Subscription, 10)
	for i := range live {
		live[i], _ = b.Subscribe(context.Background(), "a")
	}
	_ = b.Close()
	close(stop)
	pubs.Wait()
	for _, s := range live {
		expectClosed(t, s)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) != 0 {
		t.Fatalf("%d channels still have subscribers", len(b.subs))
	}
}

func encode(t *testing.T, e Event) []byte {
	t.Helper()
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMemorySink(t *testing.T) {
	ctx := context.Background()
	var s MemorySink // zero value is usable
	e1 := Event{Type: TypeStarted, Scope: ScopeTask, ID: "id1", TaskID: "t1", Queue: "q"}
	e2 := Event{Type: TypeProgress, Scope: ScopeTask, ID: "id2", TaskID: "t1", Queue: "q"}
	d1, d2 := encode(t, e1), encode(t, e2)
	tc, qc := TaskChannel("", "t1"), QueueChannel("", "q")
	if err := s.Publish(ctx, []Message{{tc, d1}, {qc, d1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, []Message{{tc, d2}}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 3 {
		t.Fatalf("messages %d", n)
	}
	evs := s.Events()
	if len(evs) != 2 || evs[0].ID != "id1" || evs[1].ID != "id2" {
		t.Fatalf("events %+v", evs)
	}
	if got := s.EventsFor(tc); len(got) != 2 || got[1].Type != TypeProgress {
		t.Fatalf("task channel %+v", got)
	}
	if got := s.EventsFor(qc); len(got) != 1 || got[0].ID != "id1" {
		t.Fatalf("queue channel %+v", got)
	}
	if got := s.EventsFor("nope"); len(got) != 0 {
		t.Fatalf("unknown channel %+v", got)
	}

	// Undecodable data is recorded but reported.
	if err := s.Publish(ctx, []Message{msg("x", "[1]")}); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("bad data: %v", err)
	}
	if len(s.Messages()) != 4 || len(s.Events()) != 2 {
		t.Fatal("bad message handling")
	}
	s.Reset()
	if len(s.Messages()) != 0 || len(s.Events()) != 0 {
		t.Fatal("reset")
	}
}

func TestMemorySinkWaitFor(t *testing.T) {
	s := NewMemorySink()
	hasCompleted := func(evs []Event) bool {
		for _, e := range evs {
			if e.Type == TypeCompleted {
				return true
			}
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	errc := make(chan error, 1)
	go func() { errc <- s.WaitFor(ctx, hasCompleted) }()
	go func() {
		for i := range 20 {
			e := Event{Type: TypeProgress, Scope: ScopeTask, ID: fmt.Sprint("p", i)}
			_ = s.Publish(context.Background(), []Message{{Channel: "c", Data: encode(t, e)}})
		}
		e := Event{Type: TypeCompleted, Scope: ScopeTask, ID: "done"}
		_ = s.Publish(context.Background(), []Message{{Channel: "c", Data: encode(t, e)}})
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Already satisfied: returns at once.
	if err := s.WaitFor(ctx, hasCompleted); err != nil {
		t.Fatal(err)
	}
	// Never satisfied: ends with the context.
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := s.WaitFor(short, func([]Event) bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// Many concurrent waiters all wake.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := s.WaitFor(ctx, func(evs []Event) bool { return len(evs) >= 25 }); err != nil {
				t.Error(err)
			}
		})
	}
	for i := range 4 {
		e := Event{Type: TypeLog, Scope: ScopeTask, ID: fmt.Sprint("l", i)}
		_ = s.Publish(context.Background(), []Message{{Channel: "c", Data: encode(t, e)}})
	}
	wg.Wait()
}

func TestMemoryBrokerEndToEndWithChannels(t *testing.T) {
	ctx := context.Background()
	b := NewMemoryBroker(MemoryBrokerOptions{})
	e := Event{Type: TypeCompleted, Scope: ScopeTask, TaskID: "T1", Queue: "Q"}
	e.Normalize(time.Now())
	sub, _ := b.Subscribe(ctx, TaskChannel("", "t1"))
	defer sub.Close()
	data := encode(t, e)
	var msgs []Message
	for _, c := range Channels("", &e, ChannelOptions{PublishGlobalLifecycle: true}) {
		msgs = append(msgs, Message{Channel: c, Data: data})
	}
	if len(msgs) != 3 {
		t.Fatalf("channels %v", msgs)
	}
	_ = b.Publish(ctx, msgs)
	var got Event
	if err := got.UnmarshalJSON(recv(t, sub).Data); err != nil {
		t.Fatal(err)
	}
	if got.ID != e.ID || !got.OccurredAt.Equal(e.OccurredAt) {
		t.Fatalf("got %+v", got)
	}
}
