package memory_test

import (
	"context"
	"testing"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues/backend/backendtest"
	"github.com/queuesgo/queues/backend/memory"
)

// The first-party stores count their backlog exactly (the engine's sampled
// fallback is for other stores).
var _ driver.BacklogCounter = (*memory.Backend)(nil)

// TestContract runs the shared store contract suite (backend/backendtest)
// against the memory backend.
func TestContract(t *testing.T) {
	backendtest.Run(t, backendtest.Factory{
		New: func(t *testing.T) driver.Backend {
			b := memory.New(memory.Options{})
			if err := b.Open(t.Context()); err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			return b
		},
	})
}
