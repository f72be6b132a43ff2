package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues/backend/backendtest"
	"github.com/queuesgo/queues/backend/sqlite"
)

// The first-party stores must keep the registry of live workers, and count
// their backlog exactly (the engine's sampled fallback is for other stores).
var (
	_ driver.WorkerRegistry = (*sqlite.Backend)(nil)
	_ driver.BacklogCounter = (*sqlite.Backend)(nil)
)

// openTemp opens a backend on a fresh file in t.TempDir().
func openTemp(t testing.TB, opts sqlite.Options) *sqlite.Backend {
	t.Helper()
	b, err := sqlite.Open(filepath.Join(t.TempDir(), "queues.db"), opts)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	if err := b.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// TestContract runs the shared backend contract suite (backendtest), backend
// and service groups, with a fresh database file per case.
func TestContract(t *testing.T) {
	backendtest.Run(t, backendtest.Factory{
		New: func(t *testing.T) driver.Backend { return openTemp(t, sqlite.Options{}) },
	})
}
