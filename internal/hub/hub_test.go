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
