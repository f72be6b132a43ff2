package backendtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// testPing covers the optional Pinger: an open store answers, a closed one
// reports ErrClosed.
func testPing(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"OpenStoreAnswers", pingOpen},
		{"ClosedStoreRefuses", pingClosed},
	})
}

func pinger(t *testing.T, b driver.Backend) driver.Pinger {
	t.Helper()
	p, ok := b.(driver.Pinger)
	if !ok {
		t.Skipf("%s does not implement driver.Pinger", b.Name())
	}
	return p
}

func pingOpen(t *testing.T, b driver.Backend) {
	p := pinger(t, b)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for i := range 3 { // repeated pings must not leak or exhaust connections
		if err := p.Ping(ctx); err != nil {
			t.Fatalf("Ping %d on an open store: %v", i, err)
		}
	}
}

func pingClosed(t *testing.T, b driver.Backend) {
	p := pinger(t, b)
	if err := b.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := p.Ping(ctx)
	if !errors.Is(err, queuestype.ErrClosed) {
		t.Fatalf("Ping after Close = %v, want an error matching ErrClosed", err)
	}
}
