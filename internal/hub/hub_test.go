package hub

import (
	"context"
	"testing"
	"time"
)

func TestHubCoalescesAndCloses(t *testing.T) {
	var h Hub
	ctx, cancel := context.WithCancel(context.Background())
	a, _ := h.Subscribe(ctx, "w1")
	b, _ := h.Subscribe(context.Background(), "w2")
	h.Notify("w1")
	h.Notify("w1")
	if _, ok := <-a; !ok {
		t.Fatal("closed early")
	}
	select {
	case <-a:
		t.Fatal("two hints were not coalesced")
	case <-b:
		t.Fatal("a hint reached another key")
	default:
	}
	if !h.Has("w1") || h.Has("w3") {
		t.Fatal("Has is wrong")
	}
	cancel()
	select {
	case _, ok := <-a:
		if ok {
			t.Fatal("received a hint instead of close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after ctx ended")
	}
	h.Close()
	if _, ok := <-b; ok {
		t.Fatal("Close did not close subscribers")
	}
	if _, err := h.Subscribe(ctx, "x"); err == nil {
		t.Fatal("subscribing with an ended ctx must fail")
	}
}

func TestSendChecksContext(t *testing.T) {
	var h Hub
	ch, _ := h.Subscribe(context.Background(), "w")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Send(ctx, "w"); err == nil {
		t.Fatal("Send on an ended ctx must fail")
	}
	select {
	case <-ch:
		t.Fatal("Send on an ended ctx sent a hint")
	default:
	}
	if err := h.Send(context.Background(), "w"); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; !ok {
		t.Fatal("no hint")
	}
	h.Close()
}

func TestSetAndKeyed(t *testing.T) {
	s := Set{}
	a, b := make(chan struct{}, 1), make(chan struct{}, 1)
	s[a], s[b] = struct{}{}, struct{}{}
	s.Notify()
	s.Notify() // coalesces
	if len(a) != 1 || len(b) != 1 {
		t.Fatal("Notify did not reach every channel once")
	}
	if !s.Drop(a) || s.Drop(a) || len(s) != 1 {
		t.Fatal("Drop must remove a channel once")
	}
	if _, ok := <-a; !ok {
		t.Fatal("the pending hint is lost") // a closed buffered channel still yields its hint
	}
	if _, ok := <-a; ok {
		t.Fatal("Drop did not close the channel")
	}
	s.Close()
	if len(s) != 0 {
		t.Fatal("Close left channels")
	}
	var nilSet Set
	nilSet.Notify() // a nil set is empty

	k := Keyed{}
	c1, c2, c3 := make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{}, 1)
	k.Add("w1", c1)
	k.Add("w1", c2)
	k.Add("w2", c3)
	k["w1"].Notify()
	if len(c1) != 1 || len(c2) != 1 || len(c3) != 0 {
		t.Fatal("a keyed notify reached the wrong channels")
	}
	k.NotifyAll()
	if len(c3) != 1 {
		t.Fatal("NotifyAll missed a channel")
	}
	if !k.Remove("w2", c3) || k.Remove("w2", c3) {
		t.Fatal("Remove must remove a channel once")
	}
	if _, ok := k["w2"]; ok {
		t.Fatal("an empty set was kept")
	}
	select {
	case <-c3:
	default:
		t.Fatal("Remove must not close or drain the channel")
	}
	if !k.Drop("w1", c1) || k.Drop("w3", c1) {
		t.Fatal("Drop of a keyed channel")
	}
	k.CloseKey("w1")
	if _, ok := k["w1"]; ok {
		t.Fatal("CloseKey kept the set")
	}
	<-c2
	if _, ok := <-c2; ok {
		t.Fatal("CloseKey did not close the set's channels")
	}
	k.Add("w4", make(chan struct{}))
	k.Close()
	if len(k) != 0 {
		t.Fatal("Close left sets")
	}
}
