package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/queuesgo/queues/backend/postgres"
	"github.com/queuesgo/queues/driver"
)

// countingConn counts the client's writes to the server. pgx flushes once
// per round trip (a query, a pipeline of queries, a BEGIN or COMMIT), so
// the writes a call makes are its round trips.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// countingPool returns a one-connection pool on the test server whose
// writes are counted, and the counter.
func countingPool(t *testing.T) (*pgxpool.Pool, *atomic.Int64) {
	t.Helper()
	testPool(t) // skips when the server is unreachable
	cfg, err := pgxpool.ParseConfig(testURL())
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, writes: &writes}, nil
	}
	cfg.MaxConns, cfg.MinConns = 1, 1
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, &writes
}

// The round trips of an enqueue, counted on the wire: one for unkeyed
// items, one for keyed items (the keyed statements run as one pipeline,
// one implicit transaction), new keys or held ones, and one inside a
// caller's transaction.
func TestEnqueueRoundTrips(t *testing.T) {
	ctx := context.Background()
	pool, writes := countingPool(t)
	opts := freshOptions(t)
	if _, err := newBackend(t, opts).Migrate(ctx, driver.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := postgres.New(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)

	items := func(keyed, forever bool, n int) []driver.EnqueueParams {
		out := make([]driver.EnqueueParams, n)
		for i := range out {
			out[i] = driver.EnqueueParams{TaskName: "rt", Args: json.RawMessage(`{}`), ExecutionBackend: "local"}
			if keyed {
				out[i].Key = "rt:" + uuid.NewString()
				out[i].Forever = forever && i%2 == 0
			}
		}
		return out
	}
	measure := func(what string, want int64, fn func() error) {
		t.Helper()
		if err := fn(); err != nil { // warm the statement cache
			t.Fatalf("%s: %v", what, err)
		}
		writes.Store(0)
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := writes.Load()
		t.Logf("%s: %d round trips", what, got)
		if got != want {
			t.Errorf("%s: %d round trips, want %d", what, got, want)
		}
	}
	enqueue := func(ps []driver.EnqueueParams) func() error {
		return func() error {
			for i := range ps {
				ps[i].ID = uuid.Nil
			}
			_, err := b.Enqueue(ctx, ps)
			return err
		}
	}
	measure("unkeyed EnqueueMany(10)", 1, enqueue(items(false, false, 10)))
	measure("keyed EnqueueMany(10), new keys", 1, func() error { return enqueue(items(true, false, 10))() })
	measure("keyed+forever EnqueueMany(10), new keys", 1, func() error { return enqueue(items(true, true, 10))() })
	held := items(true, true, 10)
	measure("keyed+forever EnqueueMany(10), keys held", 1, enqueue(held))

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	measure("unkeyed EnqueueTx(10)", 1, func() error {
		_, err := b.EnqueueTx(ctx, tx, items(false, false, 10))
		return err
	})
	measure("keyed EnqueueTx(10)", 1, func() error {
		_, err := b.EnqueueTx(ctx, tx, items(true, true, 10))
		return err
	})
}

// Concurrent keyed enqueues of the same keys: the callers that lose the
// race for a key (a unique violation of the one-statement insert) retry
// and resolve to the winner, inside a caller's transaction too; one record
// and one reservation per key.
func TestKeyedEnqueueRace(t *testing.T) {
	ctx := context.Background()
	b := fresh(t)
	pool := testPool(t)
	keys := make([]string, 6)
	for i := range keys {
		keys[i] = "race:" + uuid.NewString()
	}
	batch := func() []driver.EnqueueParams {
		out := make([]driver.EnqueueParams, len(keys))
		for i, k := range keys {
			out[i] = driver.EnqueueParams{TaskName: "race", Args: json.RawMessage(`{}`), ExecutionBackend: "local",
				Key: k, Forever: i%2 == 0}
		}
		return out
	}
	const callers = 12
	results := make([][]driver.EnqueueOutcome, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	done := make(chan int)
	for c := range callers {
		go func() {
			defer func() { done <- c }()
			<-start
			if c%2 == 0 {
				results[c], errs[c] = b.Enqueue(ctx, batch())
				return
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				errs[c] = err
				return
			}
			defer tx.Rollback(ctx)
			if results[c], errs[c] = b.EnqueueTx(ctx, tx, batch()); errs[c] == nil {
				errs[c] = tx.Commit(ctx)
			}
		}()
	}
	close(start)
	for range callers {
		<-done
	}
	winners := map[string]uuid.UUID{}
	for i, k := range keys {
		rec, err := b.GetTaskByKey(ctx, k)
		if err != nil {
			t.Fatalf("key %s: %v", k, err)
		}
		winners[k] = rec.ID
		if i%2 == 0 {
			if r, err := b.GetIdentity(ctx, k); err != nil || r == nil || r.TaskID != rec.ID {
				t.Fatalf("reservation of %s = %+v, %v; want task %s", k, r, err, rec.ID)
			}
		}
	}
	for c := range callers {
		if errs[c] != nil {
			t.Fatalf("caller %d: %v", c, errs[c])
		}
		for i, o := range results[c] {
			id := uuid.Nil
			switch {
			case o.Record != nil:
				id = o.Record.ID
			case o.Owner != nil:
				id = o.Owner.TaskID
			}
			if id != winners[keys[i]] {
				t.Fatalf("caller %d item %d: %+v, want task %s", c, i, o, winners[keys[i]])
			}
		}
	}
	st, err := b.Statistics(ctx, "")
	if err != nil || st.Total != len(keys) {
		t.Fatalf("statistics %+v, %v; want %d records", st, err, len(keys))
	}
}

// An enqueue that fails inside a caller's transaction (an ID that already
// exists), keyed or not, is rolled back to its savepoint: the caller's
// transaction goes on, and its own earlier writes commit.
func TestEnqueueTxFailureKeepsTx(t *testing.T) {
	ctx := context.Background()
	b := fresh(t)
	pool := testPool(t)
	first, err := b.Enqueue(ctx, []driver.EnqueueParams{item("exists")})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	kept, err := b.EnqueueTx(ctx, tx, []driver.EnqueueParams{item("kept")})
	if err != nil {
		t.Fatal(err)
	}
	dup := item("dup")
	dup.ID, dup.Key = first[0].Record.ID, "k:"+uuid.NewString()
	fresh := item("fresh")
	fresh.Key = "k:" + uuid.NewString()
	if _, err := b.EnqueueTx(ctx, tx, []driver.EnqueueParams{fresh, dup}); err == nil {
		t.Fatal("keyed EnqueueTx with an existing ID succeeded")
	}
	plainDup := item("plain.dup")
	plainDup.ID = first[0].Record.ID
	if _, err := b.EnqueueTx(ctx, tx, []driver.EnqueueParams{item("plain"), plainDup}); err == nil {
		t.Fatal("EnqueueTx with an existing ID succeeded")
	}
	after, err := b.EnqueueTx(ctx, tx, []driver.EnqueueParams{fresh})
	if err != nil {
		t.Fatalf("the caller's transaction is unusable after a failed enqueue: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uuid.UUID{kept[0].Record.ID, after[0].Record.ID} {
		if _, err := b.GetTask(ctx, id); err != nil {
			t.Fatalf("record %s after commit: %v", id, err)
		}
	}
}

// BenchmarkEnqueueKeyed times one keyed Enqueue call of 1 and of 10 new
// keys (half of them forever) from one goroutine: the call's latency.
func BenchmarkEnqueueKeyed(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			be := fresh(b)
			ctx := context.Background()
			ps := make([]driver.EnqueueParams, n)
			for b.Loop() {
				for i := range ps {
					ps[i] = driver.EnqueueParams{TaskName: "bench", Args: json.RawMessage(`{}`), ExecutionBackend: "local",
						Key: "bench:" + uuid.NewString(), Forever: i%2 == 0}
				}
				if _, err := be.Enqueue(ctx, ps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
