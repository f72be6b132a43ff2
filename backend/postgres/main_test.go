package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/internal/testservice"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/queuesgo/queues/backend/postgres"
)

// defaultTestURL is the server the tests use unless QUEUES_TEST_POSTGRES_URL is set.
const defaultTestURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func testURL() string {
	if u := os.Getenv("QUEUES_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return defaultTestURL
}

// TestMain raises the default -parallel: the contract cases mostly wait on
// the server (and on quiet windows), not on the two local cores.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			explicit = true
		}
	})
	if !explicit {
		_ = flag.Set("test.parallel", "12")
	}
	code := testservice.Main(m)
	if sharedPool != nil {
		sharedPool.Close()
	}
	os.Exit(code)
}

var (
	poolOnce   sync.Once
	sharedPool *pgxpool.Pool
	poolErr    error
)

// testPool returns the pool shared by every test, skipping (or failing when
// QUEUES_REQUIRE_SERVICES=1) when the server is unreachable.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	poolOnce.Do(func() {
		cfg, err := pgxpool.ParseConfig(testURL())
		if err != nil {
			poolErr = err
			return
		}
		cfg.MaxConns = 40
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err == nil {
			err = p.Ping(ctx)
		}
		if err != nil {
			if p != nil {
				p.Close()
			}
			poolErr = err
			return
		}
		sharedPool = p
	})
	if poolErr != nil {
		testservice.Unavailable(t, "PostgreSQL at "+testservice.Redact(testURL()), "set QUEUES_TEST_POSTGRES_URL", poolErr)
	}
	return sharedPool
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freshOptions returns options with a unique schema and namespace, and
// registers the schema's removal.
func freshOptions(t testing.TB) postgres.Options {
	t.Helper()
	pool := testPool(t)
	id := randHex(6)
	schema := "queues_test_" + id
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	return postgres.Options{Schema: schema, Namespace: "t" + id}
}

// newBackend returns a migrated, opened backend on a fresh schema.
func newBackend(t testing.TB, opts postgres.Options) *postgres.Backend {
	t.Helper()
	pool := testPool(t)
	b, err := postgres.New(pool, opts)
	if err != nil {
		t.Fatalf("postgres.New: %v", err)
	}
	ctx := context.Background()
	if _, err := b.Migrate(ctx, driver.MigrateOptions{}); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// fresh returns a backend on its own schema and namespace.
func fresh(t testing.TB) *postgres.Backend {
	t.Helper()
	return newBackend(t, freshOptions(t))
}

func mustExec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := testPool(t).Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

var _ = fmt.Sprint
