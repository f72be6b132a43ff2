package postgres_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/queuesgo/queues/backend/postgres"
	"github.com/queuesgo/queues/driver"
)

// Migrate creates the schema the connection's search_path names when it
// does not exist (the CLI picks a schema with ?search_path=), instead of
// failing with "no schema has been selected to create in".
func TestMigrateCreatesSearchPathSchema(t *testing.T) {
	pool := testPool(t)
	schema := `Queues Test "` + randHex(4) + `"` // needs quoting: upper case, space, quote
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(testURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", `"$user", `+pgx.Identifier{schema}.Sanitize())
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx does not read + as a space
	ctx := t.Context()
	b, err := postgres.Connect(ctx, u.String(), postgres.Options{Namespace: "t" + randHex(4)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if len(rep.AppliedNow) == 0 || len(rep.AppliedNow) != len(postgres.Versions()) {
		t.Fatalf("applied now %v, want every version %v", rep.AppliedNow, postgres.Versions())
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no table in schema %q", schema)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}
	if _, err := b.Statistics(ctx, ""); err != nil {
		t.Fatal(err)
	}
	// A second Migrate finds the schema up to date.
	rep, err = b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || len(rep.AppliedNow) != 0 {
		t.Fatalf("second Migrate = %+v, %v", rep, err)
	}
}
