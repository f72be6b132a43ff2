package postgres

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/queuesgo/queues/internal/testservice"
)

// internalPool opens a small pool for the package-internal tests, skipping
// (or failing with QUEUES_REQUIRE_SERVICES=1) when the server is unreachable.
func internalPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := os.Getenv("QUEUES_TEST_POSTGRES_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := pgxpool.New(ctx, url)
	if err == nil {
		err = p.Ping(ctx)
	}
	if err != nil {
		if p != nil {
			p.Close()
		}
		testservice.Unavailable(t, "PostgreSQL at "+testservice.Redact(url), "set QUEUES_TEST_POSTGRES_URL", err)
	}
	t.Cleanup(p.Close)
	return p
}
