package queueshttp_test

import (
	"context"
	"github.com/queuesgo/queues/internal/testservice"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/queuesgo/queues/backend/postgres"
	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queueshttp"
	"github.com/queuesgo/queues/queuestype"
)

// Values over a limit answer 413 too_large (size) or 400 limit_exceeded
// (content, ranges) with the limit's text; a body over MaxRequestBytes
// answers 413 request_too_large. Nothing is stored.
func TestEnqueueLimits(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	args := func(n int) string { return `{"msg":"` + strings.Repeat("x", n-10) + `"}` }
	if MaxRequestBytes := queueshttp.MaxRequestBytes; MaxRequestBytes < queuestype.DefaultLimits().ArgsBytes+queuestype.DefaultLimits().MetadataBytes {
		t.Fatalf("MaxRequestBytes %d is below the largest arguments and metadata a record may hold", MaxRequestBytes)
	}
	rows := []struct {
		body   string
		status int
		code   string
		field  string
	}{
		{`{"task":"test.echo","args":` + args(1<<20+1) + `}`, 413, "too_large", "args"},
		{`{"task":"test.echo","args":{"msg":"\u0000"}}`, 400, "limit_exceeded", "args"},
		{`{"task":"test.echo","queue":" "}`, 400, "limit_exceeded", "queue"},
		{`{"task":"test.echo","queue":"a\u0000b"}`, 400, "limit_exceeded", "queue"},
		{`{"task":"test.echo","queue":"` + strings.Repeat("q", 129) + `"}`, 413, "too_large", "queue"},
		{`{"task":"test.echo","key":"` + strings.Repeat("k", 100_000) + `"}`, 413, "too_large", "key"},
		{`{"task":"test.echo","retries":2147483647}`, 400, "limit_exceeded", "max_retries"},
		{`{"task":"test.echo","priority":5000}`, 400, "limit_exceeded", "priority"},
		{`{"task":"test.echo","run_after":9e9}`, 400, "limit_exceeded", "scheduled_at"},
		{`{"task":"test.echo","metadata":{"m":"` + strings.Repeat("m", 64<<10) + `"}}`, 413, "too_large", "metadata"},
	}
	for _, r := range rows {
		m := f.expectError("POST", "/q/api/tasks", r.body, r.status, r.code)
		msg, _ := m["message"].(string)
		if r.field != "" && !strings.HasPrefix(msg, "queues: "+r.field+": ") {
			t.Errorf("%.60s…: message %q does not name %s", r.body, msg, r.field)
		}
	}
	huge := `{"task":"test.echo","args":` + args(2<<20) + `}`
	f.expectError("POST", "/q/api/tasks", huge, 413, "request_too_large")
	if st, _ := f.svc.Statistics(t.Context(), ""); st.Total != 0 {
		t.Fatalf("refused requests stored %d records", st.Total)
	}
}

// The NUL case that PostgreSQL cannot store answers the same 400 on SQLite
// and PostgreSQL, with no store text and nothing stored.
func TestEnqueueNULSameOnSQLiteAndPostgres(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) driver.Backend{"sqlite": sqliteBackend, "postgres": postgresBackend} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureConfig{backend: open(t)})
			m := f.expectError("POST", "/q/api/tasks", `{"task":"test.echo","args":{"msg":"\u0000"}}`, 400, "limit_exceeded")
			if msg, _ := m["message"].(string); !strings.HasPrefix(msg, `queues: args: \u0000 escape`) {
				t.Fatalf("message %q", msg)
			}
			if st, _ := f.svc.Statistics(t.Context(), ""); st.Total != 0 {
				t.Fatalf("stored %d records", st.Total)
			}
		})
	}
}

func sqliteBackend(t *testing.T) driver.Backend {
	b, err := sqlite.Open(filepath.Join(t.TempDir(), "q.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postgresBackend returns a migrated store in a fresh schema, dropped when
// the test ends; it skips when PostgreSQL is unreachable.
func postgresBackend(t *testing.T) driver.Backend {
	dsn, schema := testservice.PostgresSchema(t, "queues_http")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	b, err := postgres.New(pool, postgres.Options{Schema: schema, Wakeups: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Migrate(ctx, driver.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}
