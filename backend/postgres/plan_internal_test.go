package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/queuesgo/queues"
)

// TestSettlePlansIgnoreStaleStatistics: statistics taken while nothing ran
// or expired (the table ANALYZEd with every record completed) must not make
// the claim's expiry sweep read every pending record, nor the statements
// that join unnest(ids) to the table by id scan the running records once
// per element. Each statement is explained on 2,000 records in a
// transaction that is rolled back.
func TestSettlePlansIgnoreStaleStatistics(t *testing.T) {
	b, pool := planBackend(t)
	ctx := t.Context()
	const n = 2000
	items := make([]driver.EnqueueParams, n)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: "plan", Args: json.RawMessage(`{}`), Queue: queues.DefaultQueue, ExecutionBackend: "local"}
	}
	// Statistics of a table where every record completed and none had a
	// deadline, then a new backlog of the same size.
	if _, err := b.Enqueue(ctx, items); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE "+b.n.task+" SET status = 'completed', completed_at = now()"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE "+b.n.task); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Enqueue(ctx, items); err != nil {
		t.Fatal(err)
	}
	// The expiry sweep sent before each claim, with the setting ClaimMany
	// gives it, reads the expiry index (no record has a deadline), not
	// every pending record.
	var a sqlArgs
	sweep := b.claimSweepSQL(driver.ClaimParams{Limit: 10, WorkerID: "w", ExecutionBackend: "local", Queues: []string{queues.DefaultQueue}}, &a)
	if plan := explainRolledBack(t, pool, sortOff, sweep, a...); !strings.Contains(plan, "_expiry") || strings.Contains(plan, "Rows Removed by Filter") {
		t.Errorf("the claim's expiry sweep does not read the expiry index:\n%s", plan)
	}
	if plan := explainRolledBack(t, pool, sortOff, b.q.expire, 100); !strings.Contains(plan, "_expiry") || strings.Contains(plan, "Rows Removed by Filter") {
		t.Errorf("ExpireOverdue does not read the expiry index:\n%s", plan)
	}
	// Terminal cleanup walks the terminal index in order (no sort), with
	// per-status cutoffs (failed kept here).
	cut := time.Now().Add(time.Hour)
	if plan := explainRolledBack(t, pool, "", b.q.cleanup, cut, nil, cut, cut, 100); !strings.Contains(plan, "_terminal") || strings.Contains(plan, "Sort") {
		t.Errorf("CleanupTerminal does not read the terminal index in order:\n%s", plan)
	}
	// So does its per-task form.
	if plan := explainRolledBack(t, pool, "", b.q.cleanupTask, cut, []string{"other"}, cut, nil, cut, cut,
		[]string{"other"}, []string{"failed"}, []time.Time{cut}, 100); !strings.Contains(plan, "_terminal") || strings.Contains(plan, "Sort") {
		t.Errorf("CleanupTerminal with per-task cutoffs does not read the terminal index in order:\n%s", plan)
	}
	res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: n, WorkerID: "w", ExecutionBackend: "local"})
	if err != nil || len(res.Claimed) != n {
		t.Fatalf("claimed %d of %d: %v", len(res.Claimed), n, err)
	}
	ids := make([]uuid.UUID, n)
	gens := make([]int32, n)
	results := make([]json.RawMessage, n)
	bools := make([]bool, n)
	delays := make([]int64, n)
	prios := make([]int32, n)
	errs := make([]string, n)
	workers := make([]*string, n)
	tos, requeues := make([]string, n), make([]string, n)
	stales, staleAll := make([]int64, n), make([]int64, n)
	for i := range tos {
		tos[i], requeues[i] = "failed", "pending"
		errs[i] = driver.StaleError
		stales[i], staleAll[i] = time.Hour.Microseconds(), -1
	}
	for i, r := range res.Claimed {
		ids[i] = uuid.UUID(r.ID)
		gens[i] = int32(r.RetryCount)
		results[i] = json.RawMessage(`{}`)
	}
	for _, st := range []struct {
		name string
		sql  string
		args []any
	}{
		{"complete", b.q.completeBare, []any{ids, gens, results, workers}},
		{"settle", b.q.settle, []any{ids, gens, tos, results, workers, delays, bools, make([]*int32, n), workers, workers, delays, bools, results}},
		{"touch", b.q.touch, []any{ids, gens, make([]json.RawMessage, n)}},
		{"nullBeats", b.q.nullBeats, []any{ids, gens}},
		// The writes of stale recovery: requeues fenced on the heartbeat
		// still being stale (older than an hour, or any heartbeat).
		{"settle stale", b.q.settle, []any{ids, gens, requeues, results, errs, delays, bools, prios, workers, workers, stales, bools, results}},
		{"settle stale any", b.q.settle, []any{ids, gens, requeues, results, errs, delays, bools, prios, workers, workers, staleAll, bools, results}},
	} {
		plan := explainRolledBack(t, pool, "", st.sql, st.args...)
		if strings.Contains(plan, "Rows Removed by Join Filter") || strings.Contains(plan, "queue_task_heartbeat") {
			t.Errorf("%s joins through the running records, not the primary key:\n%s", st.name, plan)
		}
	}
	// ListStale reads running records without a heartbeat from their own
	// index and the others from the heartbeat index, both in order.
	for _, us := range []int64{-1, time.Hour.Microseconds()} {
		plan := explainRolledBack(t, pool, "", b.q.staleList, us, 100)
		if !strings.Contains(plan, "_stale_null") || !strings.Contains(plan, "_heartbeat") || strings.Contains(plan, "Sort") {
			t.Errorf("ListStale(%dµs) does not read the stale indexes in order:\n%s", us, plan)
		}
	}
}

// explainRolledBack returns EXPLAIN ANALYZE of sql, run behind the claim and
// settle planner settings (and before, when set) in a transaction that is
// rolled back.
func explainRolledBack(t *testing.T, pool *pgxpool.Pool, before, sql string, args ...any) string {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	for _, s := range []string{planSettings, before} {
		if s == "" {
			continue
		}
		if _, err := tx.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, FORMAT TEXT) "+sql, args...)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, sql)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	return strings.Join(lines, "\n")
}

// TestClaimPlanIgnoresStaleStatistics: a queue-filtered claim reads its
// queue's entries of the claim index even when the statistics know nothing
// of that queue (it is new since the last ANALYZE) and think the claim
// indexes empty, while another queue's backlog sorts ahead of it in the
// all-queues index.
func TestClaimPlanIgnoresStaleStatistics(t *testing.T) {
	b, pool := planBackend(t)
	ctx := t.Context()
	batch := func(queue string, n int) []driver.EnqueueParams {
		items := make([]driver.EnqueueParams, n)
		for i := range items {
			items[i] = driver.EnqueueParams{TaskName: "plan", Args: json.RawMessage(`{}`), Queue: queue, ExecutionBackend: "local"}
		}
		return items
	}
	if _, err := b.Enqueue(ctx, batch("old", 2000)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE "+b.n.task+" SET status = 'completed', completed_at = now()"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE "+b.n.task); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Enqueue(ctx, batch("backlog", 5000)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Enqueue(ctx, batch("fresh", 10)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []driver.ClaimParams{
		{Limit: 10, WorkerID: "w", ExecutionBackend: "local", Queues: []string{"fresh"}},
		{Limit: 10, WorkerID: "w", ExecutionBackend: "local", Queues: []string{"fresh"}, QueueLimits: map[string]int{"fresh": 5}},
		{Limit: 10, WorkerID: "w", ExecutionBackend: "local", Queues: []string{"fresh", "other"}},
	} {
		var a sqlArgs
		sel, ok := b.claimSelect(p, &a)
		if !ok {
			t.Fatalf("%+v: nothing to claim", p)
		}
		plan := explainRolledBack(t, pool, sortOff, "SELECT count(*) FROM ("+sel+") c", a...)
		if strings.Contains(plan, "_claim_all") || strings.Contains(plan, "Rows Removed by Filter") {
			t.Errorf("claim %v walks other queues' records:\n%s", p.Queues, plan)
		}
	}
	// A claim over every queue reads the all-queues index in order.
	var a sqlArgs
	sel, _ := b.claimSelect(driver.ClaimParams{Limit: 10, WorkerID: "w", ExecutionBackend: "local"}, &a)
	if plan := explainRolledBack(t, pool, sortOff, "SELECT count(*) FROM ("+sel+") c", a...); !strings.Contains(plan, "_claim_all") || strings.Contains(plan, "Sort") {
		t.Errorf("a claim over every queue does not read the all-queues index in order:\n%s", plan)
	}
}

// planBackend returns a migrated backend on a schema of its own (dropped
// when the test ends), and its pool.
func planBackend(t testing.TB) (*Backend, *pgxpool.Pool) {
	t.Helper()
	pool := internalPool(t)
	schema := "queues_plan_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	})
	b, err := New(pool, Options{Schema: schema, Namespace: "plan"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Migrate(context.Background(), driver.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	return b, pool
}

// rounds puts a repeated ID in a later round and orders every round by ID,
// so batched writes lock their records in one order.
func TestRoundsOrderByID(t *testing.T) {
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	in := []uuid.UUID{ids[3], ids[1], ids[3], ids[0], ids[2], ids[1]}
	var ops []*op[uuid.UUID, bool]
	for _, id := range in {
		ops = append(ops, &op[uuid.UUID, bool]{in: id})
	}
	rs := rounds(ops, func(u uuid.UUID) uuid.UUID { return u })
	if len(rs) != 2 || len(rs[0]) != 4 || len(rs[1]) != 2 {
		t.Fatalf("rounds of sizes %d", len(rs))
	}
	for i, r := range rs {
		for j := 1; j < len(r); j++ {
			if a, b := r[j-1].in, r[j].in; bytes.Compare(a[:], b[:]) >= 0 {
				t.Fatalf("round %d not in ID order at %d", i, j)
			}
		}
	}
}
