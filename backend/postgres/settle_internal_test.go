package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// stmtCounter is a pgx tracer counting executions of each statement text.
type stmtCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *stmtCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	c.n[d.SQL]++
	c.mu.Unlock()
	return ctx
}

func (c *stmtCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *stmtCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (c *stmtCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.mu.Lock()
	c.n[d.SQL]++
	c.mu.Unlock()
}

func (c *stmtCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (c *stmtCounter) count(sql string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[sql]
}

func (c *stmtCounter) reset() {
	c.mu.Lock()
	c.n = map[string]int{}
	c.mu.Unlock()
}

// settleBackend returns an opened backend on a schema of its own, on a
// pool of its own traced by the returned counter.
func settleBackend(t *testing.T) (*Backend, *pgxpool.Pool, *stmtCounter) {
	t.Helper()
	plain := internalPool(t)
	cfg := plain.Config().Copy()
	tr := &stmtCounter{n: map[string]int{}}
	cfg.ConnConfig.Tracer = tr
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	schema := "queues_settle_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = plain.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	})
	b, err := New(pool, Options{Schema: schema, Namespace: "s" + schema[len(schema)-8:]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Migrate(t.Context(), driver.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b, pool, tr
}

// runningRecords enqueues n records and claims them all for worker.
func runningRecords(t *testing.T, b *Backend, n int, worker string) []*queuestype.Record {
	t.Helper()
	items := make([]driver.EnqueueParams, n)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: fmt.Sprintf("settle.%d", i%7), Args: json.RawMessage(`{}`), MaxRetries: 3,
			Policy: queuestype.Policy{Timeout: time.Second, Description: "d"}}
	}
	if _, err := b.Enqueue(t.Context(), items); err != nil {
		t.Fatal(err)
	}
	res, err := b.ClaimMany(t.Context(), driver.ClaimParams{Limit: n, WorkerID: worker})
	if err != nil || len(res.Claimed) != n {
		t.Fatalf("claimed %d of %d: %v", len(res.Claimed), n, err)
	}
	return res.Claimed
}

// One Settle call of many transitions of every kind costs one complete
// statement (with its Claimed and NoRecord shortcuts) and one settle statement,
// returns every result in input order, and wakes workers once for the
// records requeued due at once.
func TestSettleBatchIsOneStatementPerKind(t *testing.T) {
	b, _, tr := settleBackend(t)
	ctx := t.Context()
	const n = 400
	wake, err := b.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs := runningRecords(t, b, n, "w1")
	// Drain the hint of the enqueue (subscribed first, so it must come).
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wakeup hint after the enqueue")
	}
	rand.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	ts := make([]driver.Transition, n)
	prio := 5
	for i, r := range recs {
		tr := driver.Transition{ID: r.ID, Generation: r.RetryCount}
		switch i % 6 {
		case 0:
			tr.To, tr.Result = queuestype.StatusCompleted, json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
		case 1:
			tr.To, tr.Result, tr.Claimed, tr.NoRecord = queuestype.StatusCompleted, json.RawMessage(`1`), r, true
		case 2:
			tr.To, tr.Error = queuestype.StatusPending, "retry"
		case 3:
			tr.To, tr.Error, tr.Delay, tr.Priority = queuestype.StatusPending, "later", time.Hour, &prio
		case 4:
			tr.To, tr.Error, tr.StaleAfter = queuestype.StatusFailed, "stale", -1
		case 5:
			tr.To, tr.Interrupted, tr.WorkerID = queuestype.StatusPending, true, "w1"
		}
		ts[i] = tr
	}
	tr.reset()
	res, err := b.Settle(ctx, ts)
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if got := tr.count(b.q.settle); got != 1 {
		t.Errorf("settle statements = %d, want 1", got)
	}
	if got := tr.count(b.q.complete) + tr.count(b.q.completeSlim) + tr.count(b.q.completeBare); got != 1 {
		t.Errorf("complete statements = %d, want 1", got)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
		if ts[i].NoRecord {
			if r.Record != nil {
				t.Errorf("result %d: NoRecord returned a record", i)
			}
			continue
		}
		if r.Record == nil || r.Record.ID != ts[i].ID {
			t.Fatalf("result %d: record %+v for %s", i, r.Record, ts[i].ID)
		}
		want := map[int]queuestype.Status{0: queuestype.StatusCompleted, 2: queuestype.StatusPending, 3: queuestype.StatusScheduled,
			4: queuestype.StatusFailed, 5: queuestype.StatusPending}[i%6]
		if r.Record.Status != want {
			t.Errorf("result %d: status %s, want %s", i, r.Record.Status, want)
		}
		if r.Record.Policy.Timeout != time.Second || r.Record.Policy.Description != "d" {
			t.Errorf("result %d: policy %+v", i, r.Record.Policy)
		}
		if i%6 == 5 && r.Record.Interruptions != 1 {
			t.Errorf("result %d: interruptions %d", i, r.Record.Interruptions)
		}
		if i%6 == 3 && r.Record.Priority != 5 {
			t.Errorf("result %d: priority %d", i, r.Record.Priority)
		}
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wakeup hint after requeues due at once")
	}
}

// Transitions the statements cannot carry are refused one by one, before
// anything is sent; the rest of the call is applied.
func TestSettleRefusesBadItems(t *testing.T) {
	b, _, _ := settleBackend(t)
	recs := runningRecords(t, b, 4, "w")
	res, err := b.Settle(t.Context(), []driver.Transition{
		{ID: recs[0].ID, To: queuestype.StatusRunning},
		{ID: recs[1].ID, To: queuestype.StatusCompleted, Result: json.RawMessage(`{"a":`)},
		{ID: recs[2].ID, To: queuestype.StatusCompleted, Result: json.RawMessage(`"nul \u0000"`)},
		{ID: recs[3].ID, To: queuestype.StatusFailed, Error: "bad \x00 bytes \xff here"},
	})
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	for i := range 3 {
		if !errors.Is(res[i].Err, queuestype.ErrConfig) {
			t.Errorf("item %d: err %v, want ErrConfig", i, res[i].Err)
		}
		if got, _ := b.GetTask(t.Context(), recs[i].ID); got.Status != queuestype.StatusRunning {
			t.Errorf("item %d: refused transition wrote status %s", i, got.Status)
		}
	}
	if res[3].Err != nil || res[3].Record.Status != queuestype.StatusFailed || res[3].Record.Error != "bad \uFFFD bytes \uFFFD here" {
		t.Fatalf("item 3: %+v", res[3])
	}
}

// Settles and heartbeat touches of the same records, each in random order,
// from several goroutines at once, never deadlock: every batched write
// locks its records in ID order.
func TestSettleConcurrentWithHeartbeatsNoDeadlock(t *testing.T) {
	b, _, _ := settleBackend(t)
	ctx := t.Context()
	const n = 300
	recs := runningRecords(t, b, n, "w")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			touches := make([]driver.HeartbeatTouch, n)
			for i, r := range recs {
				gen := r.RetryCount
				touches[i] = driver.HeartbeatTouch{ID: r.ID, ExpectedRetryCount: &gen}
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				rand.Shuffle(n, func(i, j int) { touches[i], touches[j] = touches[j], touches[i] })
				if _, err := b.TouchHeartbeats(ctx, touches); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	// Four callers settle overlapping, shuffled quarters (each record
	// twice: one wins, the other loses its fence).
	order := make([]*queuestype.Record, 0, 2*n)
	order = append(order, recs...)
	order = append(order, recs...)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var swg sync.WaitGroup
	var mu sync.Mutex
	won := map[uuid.UUID]int{}
	for q := range 4 {
		part := order[q*len(order)/4 : (q+1)*len(order)/4]
		swg.Add(1)
		go func() {
			defer swg.Done()
			ts := make([]driver.Transition, len(part))
			for i, r := range part {
				ts[i] = driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queuestype.StatusPending, Error: "x", StaleAfter: -1}
				if i%2 == 0 {
					ts[i] = driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)}
				}
			}
			res, err := b.Settle(ctx, ts)
			if err != nil {
				errc <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for i, r := range res {
				switch {
				case r.Err == nil:
					won[ts[i].ID]++
				case !errors.Is(r.Err, queuestype.ErrFenceLost):
					errc <- r.Err
				}
			}
		}()
	}
	swg.Wait()
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("concurrent settle and heartbeats: %v", err)
	}
	for _, r := range recs {
		if won[r.ID] != 1 {
			got, _ := b.GetTask(ctx, r.ID)
			t.Fatalf("record %s settled %d times, want exactly once; stored %+v", r.ID, won[r.ID], got)
		}
	}
}

// A heartbeat committed while a stale settle waits for the record's lock
// is seen by the settle's fence: the live attempt keeps the record.
func TestSettleStaleFenceSeesHeartbeatCommittedMeanwhile(t *testing.T) {
	b, pool, _ := settleBackend(t)
	ctx := t.Context()
	rec := runningRecords(t, b, 1, "w")[0]
	if err := b.NullHeartbeats(ctx, []queuestype.Fence{{ID: rec.ID, RetryCount: 0}}); err != nil {
		t.Fatal(err)
	}
	listed, err := b.ListStale(ctx, time.Hour, 10)
	if err != nil || len(listed) != 1 || listed[0].ID != rec.ID {
		t.Fatalf("ListStale = %v, %v", listed, err)
	}
	// A touch in flight: the row is locked by a transaction not yet committed.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `UPDATE `+b.n.task+` SET heartbeat_at = now() WHERE id = $1`, rec.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan driver.SettleResult, 1)
	go func() {
		res, err := b.Settle(ctx, []driver.Transition{{ID: rec.ID, Generation: 0, To: queuestype.StatusPending,
			Error: driver.StaleError, StaleAfter: time.Hour}})
		if err != nil {
			done <- driver.SettleResult{Err: err}
			return
		}
		done <- res[0]
	}()
	// Wait until the settle is blocked on the row lock.
	waitLockWait(t, pool, b.n.task+" t SET%status = CASE WHEN v.tgt")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if !errors.Is(r.Err, queuestype.ErrFenceLost) {
			t.Fatalf("stale settle after a heartbeat = %+v; want ErrFenceLost", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the settle did not finish after the touch committed")
	}
	if got, _ := b.GetTask(ctx, rec.ID); got.Status != queuestype.StatusRunning || got.HeartbeatAt.IsZero() {
		t.Fatalf("record after the lost stale settle: %+v", got)
	}
}

// ListStale leaves out running records holding a dispatch reservation (a
// dispatch_until; a running record holds one only when migrated from a
// build that recognised the marker in any status), whatever their ref.
func TestListStaleSkipsDispatchReservations(t *testing.T) {
	b, pool, _ := settleBackend(t)
	ctx := t.Context()
	recs := runningRecords(t, b, 3, "w")
	if _, err := pool.Exec(ctx, `UPDATE `+b.n.task+` SET execution_ref = 'opaque-token', dispatch_until = now() + interval '1 minute'
WHERE id = $1`, recs[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetExecutionRef(ctx, recs[2].ID, "__queues_dispatching__:1:x"); err != nil {
		t.Fatal(err)
	}
	got, err := b.ListStale(ctx, -1, 10)
	if err != nil || len(got) != 2 || !slices.ContainsFunc(got, func(r *queuestype.Record) bool { return r.ID == recs[2].ID }) ||
		slices.ContainsFunc(got, func(r *queuestype.Record) bool { return r.ID == recs[0].ID }) {
		t.Fatalf("ListStale = %v, %v; want %s and %s", got, err, recs[1].ID, recs[2].ID)
	}
}

// waitLockWait returns once a statement containing the LIKE pattern
// (truncated statement texts are matched from their start) waits for a
// lock; it fails the test after 10 seconds.
func waitLockWait(t *testing.T, pool *pgxpool.Pool, pattern string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`, pattern).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statement like %q waited for a lock", pattern)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A heartbeat touch committed while a completion waits for the record's
// lock leaves the completion's fence holding: the completion lands (the
// coalesced write's snapshot cannot see the touched row version, so the
// record is written again after locking it), for each shape of the
// complete statement and for the settle statement.
func TestSettleLandsWhenHeartbeatCommitsMeanwhile(t *testing.T) {
	b, pool, _ := settleBackend(t)
	ctx := t.Context()
	recs := runningRecords(t, b, 4, "w")
	cases := []struct {
		name    string
		tr      driver.Transition
		pattern string
	}{
		{"complete", driver.Transition{To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)}, b.n.task + " t SET status = 'completed'"},
		{"complete claimed", driver.Transition{To: queuestype.StatusCompleted, Result: json.RawMessage(`2`), Claimed: recs[1]}, b.n.task + " t SET status = 'completed'"},
		{"complete bare", driver.Transition{To: queuestype.StatusCompleted, NoRecord: true}, b.n.task + " t SET status = 'completed'"},
		{"retry", driver.Transition{To: queuestype.StatusPending, Error: "again", WorkerID: "w"}, b.n.task + " t SET%status = CASE WHEN v.tgt"},
	}
	for i, c := range cases {
		tr := c.tr
		tr.ID, tr.Generation = recs[i].ID, 0
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE `+b.n.task+` SET heartbeat_at = now(), metadata = metadata || '{"p":1}' WHERE id = $1`, tr.ID); err != nil {
			t.Fatal(err)
		}
		done := make(chan driver.SettleResult, 1)
		go func() {
			res, err := b.Settle(ctx, []driver.Transition{tr})
			if err != nil {
				done <- driver.SettleResult{Err: err}
				return
			}
			done <- res[0]
		}()
		waitLockWait(t, pool, c.pattern)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		var r driver.SettleResult
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the settle did not finish after the touch committed", c.name)
		}
		if r.Err != nil {
			t.Fatalf("%s: settle after a concurrent heartbeat = %v; want it applied", c.name, r.Err)
		}
		got, err := b.GetTask(ctx, tr.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[queuestype.Status]queuestype.Status{queuestype.StatusCompleted: queuestype.StatusCompleted,
			queuestype.StatusPending: queuestype.StatusPending}[tr.To]
		if got.Status != want || got.Metadata["p"] != 1.0 {
			t.Fatalf("%s: stored %+v", c.name, got)
		}
		if r.Record != nil && !tr.NoRecord {
			if a, b := mustJSON(t, r.Record), mustJSON(t, got); a != b {
				t.Fatalf("%s: returned %s\nstored %s", c.name, a, b)
			}
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// BenchmarkSettleCompletions measures completions through the coalesced
// complete statement: each record completed by a goroutine of its own as
// workers do, with one single-transition Settle call (returning the settled
// record, or with NoRecord not), and a whole claimed batch settled by one
// Settle call. Complete is the shape the store's former Complete method was
// measured with (one goroutine per record, the claimed record given, the
// settled record returned), now a single completed transition through
// Settle; it keeps its name so numbers from before and after the method's
// removal compare (it is the same write as Settle). ns/op is per record.
//
//	go test -run '^$' -bench SettleCompletions ./backend/postgres/
func BenchmarkSettleCompletions(b *testing.B) {
	for _, mode := range []string{"Complete", "Settle", "SettleNoRecord", "SettleBatch"} {
		b.Run(mode, func(b *testing.B) {
			be, _ := planBackend(b)
			ctx := context.Background()
			const chunk = 500
			for done := 0; done < b.N; {
				n := min(chunk, b.N-done)
				items := make([]driver.EnqueueParams, n)
				for i := range items {
					items[i] = driver.EnqueueParams{TaskName: "bench", Args: json.RawMessage(`{}`),
						Policy: queuestype.Policy{Timeout: time.Minute, Description: "bench"}}
				}
				if _, err := be.Enqueue(ctx, items); err != nil {
					b.Fatal(err)
				}
				done += n
			}
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				res, err := be.ClaimMany(ctx, driver.ClaimParams{Limit: chunk, WorkerID: "w"})
				if err != nil || len(res.Claimed) == 0 {
					b.Fatalf("claim: %v after %d", err, done)
				}
				if mode == "SettleBatch" {
					ts := make([]driver.Transition, len(res.Claimed))
					for i, r := range res.Claimed {
						ts[i] = driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queuestype.StatusCompleted,
							Result: json.RawMessage(`null`), Claimed: r, NoRecord: true}
					}
					if out, err := be.Settle(ctx, ts); err != nil || out[0].Err != nil {
						b.Fatal(err, out[0].Err)
					}
				} else {
					var wg sync.WaitGroup
					for _, r := range res.Claimed {
						wg.Add(1)
						go func() {
							defer wg.Done()
							out, err := be.Settle(ctx, []driver.Transition{{ID: r.ID, Generation: r.RetryCount,
								To: queuestype.StatusCompleted, Result: json.RawMessage(`null`), Claimed: r, NoRecord: mode == "SettleNoRecord"}})
							if err == nil {
								err = out[0].Err
							}
							if err == nil && mode != "SettleNoRecord" && (out[0].Record == nil || out[0].Record.Status != queuestype.StatusCompleted) {
								err = fmt.Errorf("settled record %+v", out[0].Record)
							}
							if err != nil {
								b.Error(err)
							}
						}()
					}
					wg.Wait()
				}
				done += len(res.Claimed)
			}
		})
	}
}

// A record named twice in one call gets its transitions in input order,
// whichever statements carry them: the first applies, the second finds
// the record changed.
func TestSettleRepeatedRecordInInputOrder(t *testing.T) {
	b, _, _ := settleBackend(t)
	ctx := t.Context()
	recs := runningRecords(t, b, 20, "w")
	retry := func(r *queuestype.Record) driver.Transition {
		return driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queuestype.StatusPending, Error: "again"}
	}
	done := func(r *queuestype.Record) driver.Transition {
		return driver.Transition{ID: r.ID, Generation: r.RetryCount, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`)}
	}
	var ts []driver.Transition
	var want []queuestype.Status
	for i, r := range recs {
		if i%2 == 0 {
			ts = append(ts, retry(r), done(r))
			want = append(want, queuestype.StatusPending)
		} else {
			ts = append(ts, done(r), retry(r))
			want = append(want, queuestype.StatusCompleted)
		}
	}
	res, err := b.Settle(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		first, second := res[2*i], res[2*i+1]
		if first.Err != nil || first.Record == nil || first.Record.Status != want[i] {
			t.Fatalf("record %d: first transition %+v; want %s", i, first, want[i])
		}
		if !errors.Is(second.Err, queuestype.ErrFenceLost) {
			t.Fatalf("record %d: second transition %+v; want ErrFenceLost", i, second)
		}
		if got, _ := b.GetTask(ctx, r.ID); got.Status != want[i] {
			t.Fatalf("record %d: stored status %s; want %s", i, got.Status, want[i])
		}
	}
}

// The store applies the transition it is given and decides nothing: a
// retry of a record whose retry budget is spent is requeued, a failure of a
// record with budget left fails, a stale requeue of a record whose policy
// says not to requeue on stale is requeued, and a stale failure of one
// that would be requeued fails. Those decisions are the engine's (and
// tested there). The fences still hold: an interruption names the owning
// worker, a stale write needs a heartbeat still stale, an external failure
// names the execution ref.
func TestSettleAppliesTransitionAsGiven(t *testing.T) {
	b, _, _ := settleBackend(t)
	ctx := t.Context()
	enqueue := func(maxRetries int, pol queuestype.Policy) *queuestype.Record {
		t.Helper()
		out, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "given", Args: json.RawMessage(`{}`),
			MaxRetries: maxRetries, Priority: 3, Policy: pol}})
		if err != nil || out[0].Err != nil {
			t.Fatal(err, out[0].Err)
		}
		return out[0].Record
	}
	claim := func(id uuid.UUID) *queuestype.Record {
		t.Helper()
		res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: id, WorkerID: "w"})
		if err != nil || len(res.Claimed) != 1 {
			t.Fatalf("claim %s: %+v, %v", id, res, err)
		}
		return res.Claimed[0]
	}
	settle := func(tr driver.Transition) driver.SettleResult {
		t.Helper()
		res, err := b.Settle(ctx, []driver.Transition{tr})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 {
			t.Fatalf("%d results for one transition", len(res))
		}
		if res[0].Err == nil {
			got, err := b.GetTask(ctx, tr.ID)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := mustJSON(t, res[0].Record), mustJSON(t, got); a != b {
				t.Fatalf("returned %s\nstored %s", a, b)
			}
		}
		return res[0]
	}
	requeued := func(what string, r driver.SettleResult, gen int, errText string, delay time.Duration, prio int) {
		t.Helper()
		rec := r.Record
		if r.Err != nil || rec == nil {
			t.Fatalf("%s: %+v", what, r)
		}
		status := queuestype.StatusPending
		if delay > 0 {
			status = queuestype.StatusScheduled
		}
		if rec.Status != status || rec.RetryCount != gen || rec.Error != errText || rec.WorkerID != "" || rec.ExecutionRef != "" ||
			!rec.StartedAt.IsZero() || !rec.HeartbeatAt.IsZero() || !rec.CompletedAt.IsZero() || rec.Priority != prio {
			t.Fatalf("%s: stored %+v", what, rec)
		}
		if delay > 0 && rec.ScheduledAt.Sub(rec.QueuedAt) != delay || delay == 0 && !rec.ScheduledAt.IsZero() {
			t.Fatalf("%s: scheduled_at %v, queued_at %v; want %v apart", what, rec.ScheduledAt, rec.QueuedAt, delay)
		}
	}
	failed := func(what string, r driver.SettleResult, errText string) {
		t.Helper()
		rec := r.Record
		if r.Err != nil || rec == nil {
			t.Fatalf("%s: %+v", what, r)
		}
		if rec.Status != queuestype.StatusFailed || rec.RetryCount != 0 || rec.Error != errText || rec.WorkerID != "w" ||
			rec.CompletedAt.IsZero() || !rec.HeartbeatAt.IsZero() || rec.StartedAt.IsZero() {
			t.Fatalf("%s: stored %+v", what, rec)
		}
	}

	// A retry with no budget left (MaxRetries 0) is requeued as told.
	r := claim(enqueue(0, queuestype.Policy{}).ID)
	requeued("retry without budget", settle(driver.Transition{ID: r.ID, Generation: 0, To: queuestype.StatusPending,
		Error: "boom", Delay: 90 * time.Second}), 1, "boom", 90*time.Second, 3)

	// A failure with budget left fails as told.
	r = claim(enqueue(5, queuestype.Policy{}).ID)
	failed("failure with budget", settle(driver.Transition{ID: r.ID, Generation: 0, To: queuestype.StatusFailed, Error: "final"}), "final")

	// Stale writes: the records' heartbeats are cleared, so they are stale.
	noRequeue := claim(enqueue(0, queuestype.Policy{NoStaleRequeue: true}).ID)
	requeue := claim(enqueue(5, queuestype.Policy{}).ID)
	fresh := claim(enqueue(5, queuestype.Policy{}).ID)
	if err := b.NullHeartbeats(ctx, []queuestype.Fence{{ID: noRequeue.ID}, {ID: requeue.ID}}); err != nil {
		t.Fatal(err)
	}
	listed, err := b.ListStale(ctx, time.Hour, 10)
	if err != nil {
		t.Fatal(err)
	}
	stale := map[uuid.UUID]bool{}
	for _, x := range listed {
		stale[x.ID] = true
	}
	if !stale[noRequeue.ID] || !stale[requeue.ID] || stale[fresh.ID] {
		t.Fatalf("ListStale listed %v", listed)
	}
	prio := 7
	requeued("stale requeue against the policy", settle(driver.Transition{ID: noRequeue.ID, Generation: 0, To: queuestype.StatusPending,
		Error: driver.StaleError, Priority: &prio, StaleAfter: time.Hour}), 1, driver.StaleError, 0, 7)
	failed("stale failure with budget", settle(driver.Transition{ID: requeue.ID, Generation: 0, To: queuestype.StatusFailed,
		Error: driver.StaleError, StaleAfter: time.Hour}), driver.StaleError)
	// A record with a live heartbeat is not stale an hour's worth: the
	// fence keeps it with its attempt.
	if r := settle(driver.Transition{ID: fresh.ID, Generation: 0, To: queuestype.StatusPending, Error: driver.StaleError,
		StaleAfter: time.Hour}); !errors.Is(r.Err, queuestype.ErrFenceLost) {
		t.Fatalf("stale requeue of a live record = %+v; want ErrFenceLost", r)
	}
	if got, _ := b.GetTask(ctx, fresh.ID); got.Status != queuestype.StatusRunning || got.RetryCount != 0 {
		t.Fatalf("live record after the lost stale write: %+v", got)
	}

	// An interruption names the owning worker.
	r = claim(enqueue(0, queuestype.Policy{}).ID)
	if res := settle(driver.Transition{ID: r.ID, Generation: 0, To: queuestype.StatusPending, Interrupted: true,
		WorkerID: "other"}); !errors.Is(res.Err, queuestype.ErrFenceLost) {
		t.Fatalf("interruption by another worker = %+v; want ErrFenceLost", res)
	}
	res := settle(driver.Transition{ID: r.ID, Generation: 0, To: queuestype.StatusPending, Interrupted: true, WorkerID: "w"})
	requeued("interruption", res, 1, "", 0, 3)
	if res.Record.Interruptions != 1 {
		t.Fatalf("interruption: interruptions %d, want 1", res.Record.Interruptions)
	}
	// A second interruption of the old generation finds the record changed.
	if res := settle(driver.Transition{ID: r.ID, Generation: 0, To: queuestype.StatusPending, Interrupted: true,
		WorkerID: "w"}); !errors.Is(res.Err, queuestype.ErrFenceLost) {
		t.Fatalf("repeated interruption = %+v; want ErrFenceLost", res)
	}

	// An external run's failure names its execution ref; the record may
	// still be pending (the remote side never claimed it).
	x := enqueue(5, queuestype.Policy{})
	if _, err := b.SetExecutionRef(ctx, x.ID, "ext-1"); err != nil {
		t.Fatal(err)
	}
	wrong, right := "ext-2", "ext-1"
	if res := settle(driver.Transition{ID: x.ID, Generation: 0, To: queuestype.StatusFailed, Error: "remote",
		ExpectedRef: &wrong}); !errors.Is(res.Err, queuestype.ErrFenceLost) {
		t.Fatalf("external failure with another ref = %+v; want ErrFenceLost", res)
	}
	res = settle(driver.Transition{ID: x.ID, Generation: 0, To: queuestype.StatusFailed, Error: "remote", ExpectedRef: &right})
	if res.Err != nil || res.Record.Status != queuestype.StatusFailed || res.Record.Error != "remote" ||
		res.Record.ExecutionRef != "ext-1" || res.Record.CompletedAt.IsZero() {
		t.Fatalf("external failure: %+v", res)
	}

	// A missing record is reported as such.
	if res := settle(driver.Transition{ID: uuid.New(), To: queuestype.StatusFailed}); !errors.Is(res.Err, queuestype.ErrTaskNotFound) ||
		!errors.Is(res.Err, queuestype.ErrFenceLost) {
		t.Fatalf("settle of a missing record = %+v; want ErrTaskNotFound and ErrFenceLost", res)
	}
}
