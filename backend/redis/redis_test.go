package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/backendtest"
	"github.com/queuesgo/queues/internal/testservice"
	goredis "github.com/redis/go-redis/v9"
)

// testURL is the server the tests use: QUEUES_TEST_REDIS_URL, default
// redis://127.0.0.1:6379/0. Each backend gets its own key prefix and
// namespace, so runs can overlap; tests delete only their own keys.
func testURL() string {
	if u := os.Getenv("QUEUES_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

var (
	serverOnce sync.Once
	serverErr  error
	// admin is a shared client for cleanup and inspection.
	admin *goredis.Client
)

// requireServer skips the test when the server is unreachable, or fails it
// when QUEUES_REQUIRE_SERVICES=1.
func requireServer(t testing.TB) {
	t.Helper()
	serverOnce.Do(func() {
		o, err := goredis.ParseURL(testURL())
		if err != nil {
			serverErr = err
			return
		}
		admin = goredis.NewClient(o)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		serverErr = admin.Ping(ctx).Err()
	})
	if serverErr != nil {
		testservice.Unavailable(t, "Redis at "+testservice.Redact(testURL()), "set QUEUES_TEST_REDIS_URL", serverErr)
	}
}

func randName(kind string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "qt-" + kind + "-" + hex.EncodeToString(b[:])
}

// deletePrefix removes every key of a prefix with SCAN + UNLINK.
func deletePrefix(ctx context.Context, c goredis.UniversalClient, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+":*", 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := c.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// newTestBackend opens a backend on a fresh prefix and namespace; its keys
// are deleted and it is closed when the test ends.
func newTestBackend(t testing.TB, opts Options) *Backend {
	t.Helper()
	requireServer(t)
	if opts.Prefix == "" {
		opts.Prefix = randName("p")
	}
	if opts.Namespace == "" {
		opts.Namespace = randName("ns")
	}
	b, err := Connect(context.Background(), testURL(), opts)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if err := b.Open(context.Background()); err != nil {
		_ = b.Close(context.Background())
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = b.Close(ctx)
		if err := deletePrefix(ctx, admin, b.prefix); err != nil {
			t.Errorf("delete prefix %s: %v", b.prefix, err)
		}
	})
	return b
}

// The first-party stores must keep the registry of live workers, and count
// their backlog exactly (the engine's sampled fallback is for other stores).
var (
	_ driver.WorkerRegistry = (*Backend)(nil)
	_ driver.BacklogCounter = (*Backend)(nil)
)

// TestContract runs the shared backend contract suite (backendtest), backend
// and service groups, against the live server, one prefix per case.
func TestContract(t *testing.T) {
	requireServer(t)
	backendtest.Run(t, backendtest.Factory{
		New: func(t *testing.T) driver.Backend { return newTestBackend(t, Options{}) },
	})
}

// TestContractHotPathComplete runs the backend groups of the contract suite
// with every completion given to Settle sent through the hot path
// (luaComplete) when its fences allow it: a transition without Claimed
// first reads the record and passes it as Claimed, and one for a missing
// record goes as NoRecord. The suite's own completions mostly carry
// neither, so without this the statistics, listing, cleanup and
// external-index cases would only see luaOps write completed records.
func TestContractHotPathComplete(t *testing.T) {
	requireServer(t)
	backendtest.RunBackend(t, backendtest.Factory{
		New: func(t *testing.T) driver.Backend { return hotPathComplete{newTestBackend(t, Options{})} },
	})
}

// hotPathComplete is the Backend with completions steered to the hot path.
type hotPathComplete struct{ *Backend }

// Settle reads the record of each completion without Claimed and passes it
// as Claimed (or sets NoRecord when the record is missing), unless its
// fences (ExpectedRef, StaleAfter) need the general script anyway.
func (h hotPathComplete) Settle(ctx context.Context, ts []driver.Transition) ([]driver.SettleResult, error) {
	ts = append([]driver.Transition(nil), ts...)
	for i := range ts {
		t := &ts[i]
		if t.To != queues.StatusCompleted || t.Claimed != nil || t.NoRecord || t.ExpectedRef != nil || t.StaleAfter != 0 {
			continue
		}
		rec, err := h.GetTask(ctx, t.ID)
		switch {
		case errors.Is(err, queues.ErrTaskNotFound):
			t.NoRecord = true
		case err != nil:
			return nil, err
		default:
			t.Claimed = rec
		}
	}
	return h.Backend.Settle(ctx, ts)
}
