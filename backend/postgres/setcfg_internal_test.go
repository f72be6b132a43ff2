package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPlanSettingsScopedToBatch checks that the planner settings pipelined
// before a bulk statement apply inside the batch only.
func TestPlanSettingsScopedToBatch(t *testing.T) {
	pool := internalPool(t)
	ctx := t.Context()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue(planSettings)
	b.Queue("SHOW enable_bitmapscan")
	br := conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		t.Fatal(err)
	}
	var in string
	if err := br.QueryRow().Scan(&in); err != nil {
		t.Fatal(err)
	}
	br.Close()
	var after string
	if err := conn.QueryRow(ctx, "SHOW enable_bitmapscan").Scan(&after); err != nil {
		t.Fatal(err)
	}
	t.Logf("inside batch %s, after %s", in, after)
	if in != "off" || after != "on" {
		t.Fatal("set_config(..., true) is not scoped to the batch")
	}
}
