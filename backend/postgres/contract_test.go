package postgres_test

import (
	"testing"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues/backend/backendtest"
	"github.com/queuesgo/queues/backend/postgres"
)

// The first-party stores must keep the registry of live workers, and count
// their backlog exactly (the engine's sampled fallback is for other stores).
var (
	_ driver.WorkerRegistry = (*postgres.Backend)(nil)
	_ driver.BacklogCounter = (*postgres.Backend)(nil)
)

// TestContract runs the shared backend contract suite (backend/backendtest),
// backend and service groups, each case on its own schema and notification
// namespace, against the live server.
func TestContract(t *testing.T) {
	testPool(t)
	backendtest.Run(t, backendtest.Factory{
		New: func(t *testing.T) driver.Backend { return fresh(t) },
	})
}
