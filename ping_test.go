package queues_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
)

// noPinger hides memory's Pinger (and every other optional interface).
type noPinger struct{ driver.Backend }

// hungPinger never answers and ignores ctx, like a client that only applies
// its own socket timeouts.
type hungPinger struct {
	*memory.Backend
	release chan struct{}
}

func (h hungPinger) Ping(context.Context) error {
	<-h.release
	return nil
}

func TestServicePing(t *testing.T) {
	newSvc := func(b driver.Backend) *queues.Service {
		t.Helper()
		svc, err := queues.New(queues.Config{Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	mem := memory.New(memory.Options{})
	svc := newSvc(mem)
	if err := svc.Ping(t.Context()); err != nil {
		t.Fatalf("Ping on an open memory store: %v", err)
	}
	if err := mem.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Ping(t.Context()); !errors.Is(err, queues.ErrClosed) {
		t.Fatalf("Ping after Close = %v, want ErrClosed", err)
	}

	// Without a Pinger the point read stands in.
	if err := newSvc(noPinger{memory.New(memory.Options{})}).Ping(t.Context()); err != nil {
		t.Fatalf("Ping without a Pinger: %v", err)
	}

	hung := hungPinger{memory.New(memory.Options{}), make(chan struct{})}
	defer close(hung.release)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := newSvc(hung).Ping(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Ping on a hung store = %v after %s, want DeadlineExceeded at the ctx deadline", err, time.Since(start))
	}
}
