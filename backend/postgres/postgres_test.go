package postgres_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/postgres"
)

func item(task string) driver.EnqueueParams {
	return driver.EnqueueParams{TaskName: task, Args: json.RawMessage(`{}`), Queue: queues.DefaultQueue, ExecutionBackend: "local"}
}

func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func expectHint(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no hint within 5s", what)
	}
}

func expectNoHint(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: unexpected hint", what)
	case <-time.After(200 * time.Millisecond):
	}
}

// Migrations are explicit: Open refuses an unmigrated schema with a message
// naming `queues migrate`; DryRun reports, Migrate applies once, and a
// second Migrate applies nothing.
func TestMigrateExplicit(t *testing.T) {
	pool := testPool(t)
	opts := freshOptions(t)
	b, err := postgres.New(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	err = b.Open(ctx)
	if !errors.Is(err, postgres.ErrNotMigrated) || !strings.Contains(err.Error(), "queues migrate") {
		t.Fatalf("Open on an empty schema = %v; want ErrNotMigrated naming `queues migrate`", err)
	}
	if _, err := b.Enqueue(ctx, []driver.EnqueueParams{item("x")}); !errors.Is(err, postgres.ErrNotMigrated) {
		t.Fatalf("Enqueue on an unmigrated schema = %v; want ErrNotMigrated", err)
	}
	dry, err := b.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Applied) != 0 || !slices.Equal(dry.Pending, postgres.Versions()) || len(dry.AppliedNow) != 0 {
		t.Fatalf("dry run = %+v; want every embedded version pending", dry)
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, b.TaskTable()).Scan(&exists); err != nil || exists {
		t.Fatalf("dry run created the task table (exists=%v, err=%v)", exists, err)
	}
	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.AppliedNow, postgres.Versions()) || !slices.Equal(rep.Applied, postgres.Versions()) {
		t.Fatalf("migrate = %+v", rep)
	}
	again, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || len(again.AppliedNow) != 0 || !slices.Equal(again.Applied, postgres.Versions()) {
		t.Fatalf("second migrate = %+v, %v; want nothing applied", again, err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}
	if _, err := b.Enqueue(ctx, []driver.EnqueueParams{item("x")}); err != nil {
		t.Fatal(err)
	}
	// A version this build does not know is refused.
	if _, err := pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{opts.Schema, "queue_migration"}.Sanitize()+` (version) VALUES ('9999_future')`); err != nil {
		t.Fatal(err)
	}
	b2, _ := postgres.New(pool, opts)
	if err := b2.Open(ctx); !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("Open on a newer schema = %v; want ErrSchemaTooNew", err)
	}
	if _, err := b2.Migrate(ctx, driver.MigrateOptions{}); !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("Migrate on a newer schema = %v; want ErrSchemaTooNew", err)
	}
}

// Concurrent migrators serialize on the advisory lock: every call succeeds
// and each version is applied exactly once.
func TestMigrateConcurrent(t *testing.T) {
	pool := testPool(t)
	opts := freshOptions(t)
	var wg sync.WaitGroup
	var applied atomic.Int32
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := postgres.New(pool, opts)
			if err != nil {
				errs <- err
				return
			}
			rep, err := b.Migrate(context.Background(), driver.MigrateOptions{})
			if err != nil {
				errs <- err
				return
			}
			applied.Add(int32(len(rep.AppliedNow)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if int(applied.Load()) != len(postgres.Versions()) {
		t.Fatalf("versions applied %d times in total, want %d", applied.Load(), len(postgres.Versions()))
	}
}

// Schema and table prefix isolate stores: two prefixes in one schema never
// see each other's records; long derived names are shortened to 63 bytes.
func TestSchemaAndPrefix(t *testing.T) {
	base := freshOptions(t)
	a := base
	a.TablePrefix = "app_"
	bo := base
	bo.TablePrefix = "other_with_a_rather_long_prefix_for_shortening_"
	bo.Namespace = base.Namespace + "_b"
	ba := newBackend(t, a)
	bb := newBackend(t, bo)
	if !strings.Contains(ba.TaskTable(), `"app_queue_task"`) || !strings.HasPrefix(ba.TaskTable(), `"`+base.Schema+`".`) {
		t.Fatalf("task table %s", ba.TaskTable())
	}
	ctx := t.Context()
	if _, err := ba.Enqueue(ctx, []driver.EnqueueParams{item("a.1"), item("a.2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.Enqueue(ctx, []driver.EnqueueParams{item("b.1")}); err != nil {
		t.Fatal(err)
	}
	sa, _ := ba.Statistics(ctx, "")
	sb, _ := bb.Statistics(ctx, "")
	if sa.Total != 2 || sb.Total != 1 {
		t.Fatalf("totals a=%d b=%d; want 2 and 1", sa.Total, sb.Total)
	}
	var long string
	if err := testPool(t).QueryRow(ctx, `SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND relname LIKE 'other_with%' ORDER BY length(relname) DESC LIMIT 1`, base.Schema).Scan(&long); err != nil {
		t.Fatal(err)
	}
	if len(long) > 63 {
		t.Fatalf("derived name %q is %d bytes", long, len(long))
	}
}

// Transactional enqueue: a rollback leaves nothing (no record, no
// reservation, no hint); a commit makes single and bulk records visible and
// delivers one hint only then.
func TestEnqueueTx(t *testing.T) {
	b := fresh(t)
	pool := testPool(t)
	ctx := t.Context()
	wake, err := b.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Rollback.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := "q:u:v1:task:" + uuid.NewString()
	forever := item("tx.forever")
	forever.Key, forever.Forever = key, true
	outs, err := b.EnqueueTx(ctx, tx, []driver.EnqueueParams{item("tx.rolled"), forever})
	if err != nil {
		t.Fatal(err)
	}
	rolled := outs[0].Record.ID
	if _, err := b.GetTask(ctx, rolled); !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("record visible outside its open transaction: %v", err)
	}
	expectNoHint(t, wake, "enqueue inside an open transaction")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetTask(ctx, rolled); !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("record after rollback: %v", err)
	}
	if r, _ := b.GetIdentity(ctx, key); r != nil {
		t.Fatalf("reservation after rollback: %+v", r)
	}
	expectNoHint(t, wake, "rolled-back enqueue")

	// Commit: single, then bulk (one hint each).
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	one, err := b.EnqueueTx(ctx, tx, []driver.EnqueueParams{item("tx.one")})
	if err != nil {
		t.Fatal(err)
	}
	expectNoHint(t, wake, "before commit")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	expectHint(t, wake, "after commit")
	if got, err := b.GetTask(ctx, one[0].Record.ID); err != nil || got.Status != queues.StatusPending {
		t.Fatalf("committed record = %+v, %v", got, err)
	}
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bulk := []driver.EnqueueParams{item("tx.b1"), item("tx.b2"), forever}
	many, err := b.EnqueueTx(ctx, tx, bulk)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	expectHint(t, wake, "after bulk commit")
	expectNoHint(t, wake, "after the one bulk hint")
	for _, o := range many {
		if _, err := b.GetTask(ctx, o.Record.ID); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := b.GetIdentity(ctx, key); r == nil || r.TaskID != many[2].Record.ID {
		t.Fatalf("reservation after commit = %+v", r)
	}

	// A nil transaction is a configuration error.
	if _, err := b.EnqueueTx(ctx, nil, []driver.EnqueueParams{item("x")}); !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("EnqueueTx(nil) = %v; want ErrConfig", err)
	}
}

// The service's EnqueueTx goes through the backend's TxEnqueuer.
func TestServiceEnqueueTx(t *testing.T) {
	b := fresh(t)
	pool := testPool(t)
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "svc.tx", func(ctx context.Context, a struct{ N int }) (struct{}, error) { return struct{}{}, nil })
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Close(context.Background())
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := queues.EnqueueTx(ctx, svc, tx, task, struct{ N int }{1})
	if err != nil {
		t.Fatal(err)
	}
	many, err := queues.EnqueueManyTx(ctx, svc, tx, []queues.EnqueueRequest{task.Request(struct{ N int }{2})})
	if err != nil || len(many) != 1 {
		t.Fatalf("EnqueueManyTx = %v, %v", many, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uuid.UUID{res.ID, many[0].ID} {
		if rec, err := b.GetTask(ctx, id); err != nil || rec.TaskName != "svc.tx" {
			t.Fatalf("record after commit = %+v, %v", rec, err)
		}
	}

	// A transaction on a pgx.Conn works too (Tx is the pgx.Tx interface).
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	connTx, err := conn.Conn().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	onConn, err := queues.EnqueueTx(ctx, svc, connTx, task, struct{ N int }{3})
	if err != nil {
		t.Fatal(err)
	}
	if err := connTx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetTask(ctx, onConn.ID); err != nil {
		t.Fatal(err)
	}

	// Another transaction type is refused, naming both types.
	var sqlTx *sql.Tx
	_, err = queues.EnqueueTx(ctx, svc, sqlTx, task, struct{ N int }{4})
	if !errors.Is(err, queues.ErrUnsupported) || !strings.Contains(err.Error(), "pgx.Tx") || !strings.Contains(err.Error(), "*sql.Tx") {
		t.Fatalf("EnqueueTx(*sql.Tx) = %v; want ErrUnsupported naming pgx.Tx and *sql.Tx", err)
	}
}

// logBuffer is a concurrency-safe slog sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Killing the listener connection with pg_terminate_backend costs latency,
// never correctness: the backend logs that workers fall back to polling,
// closes the hint channels (the worker resubscribes), reconnects by itself,
// and the worker keeps claiming throughout.
func TestListenerKilled(t *testing.T) {
	opts := freshOptions(t)
	var logs logBuffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b := newBackend(t, opts)
	var ran atomic.Int64
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "kill.noop", func(ctx context.Context, _ struct{}) (struct{}, error) {
		ran.Add(1)
		return struct{}{}, nil
	})
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Close(context.Background())
	w, err := svc.NewWorker(queues.WorkerConfig{ID: "kill-worker", MaxConcurrency: 4, PollInterval: 50 * time.Millisecond,
		PollBackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	defer func() {
		_, _ = w.Stop(context.Background(), true)
		<-done
	}()
	<-w.Ready()
	enqueue := func(n int) {
		for range n {
			if _, err := task.Enqueue(ctx, svc, struct{}{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	enqueue(3)
	waitUntil(t, 10*time.Second, "the first records to run", func() bool { return ran.Load() == 3 })
	pid := b.ListenerPID()
	if pid == 0 {
		t.Fatal("no listener connection")
	}
	var killed bool
	if err := testPool(t).QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int32(pid)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, killed, err)
	}
	// Records enqueued right after the kill are claimed anyway (by polling
	// while the listener is down, or by hints once it is back).
	enqueue(5)
	waitUntil(t, 15*time.Second, "records enqueued after the kill to run", func() bool { return ran.Load() == 8 })
	waitUntil(t, 10*time.Second, "the listener to reconnect", func() bool {
		p := b.ListenerPID()
		return p != 0 && p != pid
	})
	if !strings.Contains(logs.String(), "fall back to polling") {
		t.Fatalf("no fallback log line; logs:\n%s", logs.String())
	}
	// Hints work again after the reconnect.
	wake, err := b.Wakeups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	enqueue(1)
	expectHint(t, wake, "a wakeup after the reconnect")
	waitUntil(t, 10*time.Second, "the last record to run", func() bool { return ran.Load() == 9 })
}

// With Options.HeartbeatPool, heartbeat touches and nulls do not wait for
// the main pool: they succeed while every main-pool connection is taken.
func TestHeartbeatPool(t *testing.T) {
	testPool(t)
	ctx := t.Context()
	mkPool := func(n int32) *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(testURL())
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = n
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	main, hb := mkPool(2), mkPool(1)
	opts := freshOptions(t)
	opts.HeartbeatPool = hb
	b, err := postgres.New(main, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Migrate(ctx, driver.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	outs, err := b.Enqueue(ctx, []driver.EnqueueParams{item("hb")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: outs[0].Record.ID, WorkerID: "w"})
	if err != nil || len(res.Claimed) != 1 {
		t.Fatalf("claim = %+v, %v", res, err)
	}
	gen := 0
	// Saturate the main pool.
	var held []*pgxpool.Conn
	for range 2 {
		c, err := main.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	hr, err := b.TouchHeartbeats(short, []driver.HeartbeatTouch{{ID: res.Claimed[0].ID, ExpectedRetryCount: &gen,
		MetadataPatch: map[string]any{queuestype.MetaProgressDetail: "busy"}}})
	if err != nil || len(hr.Touched) != 1 {
		t.Fatalf("TouchHeartbeats with the main pool saturated = %+v, %v", hr, err)
	}
	if err := b.NullHeartbeats(short, []queuestype.Fence{{ID: res.Claimed[0].ID, RetryCount: 0}}); err != nil {
		t.Fatalf("NullHeartbeats with the main pool saturated: %v", err)
	}
	// The main pool really is saturated.
	blocked, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := b.GetTask(blocked, res.Claimed[0].ID); err == nil {
		t.Fatal("GetTask succeeded with the main pool saturated; the test proves nothing")
	}
	for _, c := range held {
		c.Release()
	}
	held = nil
	got, err := b.GetTask(ctx, res.Claimed[0].ID)
	if err != nil || !got.HeartbeatAt.IsZero() || got.Metadata[queuestype.MetaProgressDetail] != "busy" {
		t.Fatalf("record after heartbeat-pool writes = %+v, %v", got, err)
	}
}

// Statistics on a large table: active counts stay exact through the partial
// indexes and terminal counts are planner estimates (here forced with
// ExactStatisticsLimit 1 after ANALYZE).
func TestStatisticsLargeTable(t *testing.T) {
	opts := freshOptions(t)
	opts.ExactStatisticsLimit = 1
	b := newBackend(t, opts)
	ctx := t.Context()
	items := make([]driver.EnqueueParams, 300)
	for i := range items {
		items[i] = item("stats")
	}
	if _, err := b.Enqueue(ctx, items); err != nil {
		t.Fatal(err)
	}
	res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 250, WorkerID: "w", ExecutionBackend: "local"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Claimed[:200] {
		out, err := b.Settle(ctx, []driver.Transition{{ID: r.ID, Generation: 0, To: queuestype.StatusCompleted}})
		if err != nil {
			t.Fatal(err)
		}
		if out[0].Err != nil {
			t.Fatal(out[0].Err)
		}
	}
	mustExec(t, "ANALYZE "+b.TaskTable())
	st, err := b.Statistics(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 50 || st.Running != 50 {
		t.Fatalf("active counts %+v; want pending 50, running 50 exactly", st)
	}
	if st.Completed < 150 || st.Completed > 250 {
		t.Fatalf("completed estimate %d; want about 200", st.Completed)
	}
	if !st.Estimated {
		t.Fatalf("statistics %+v from planner estimates do not say Estimated", st)
	}
	qs, err := b.QueueStatistics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := qs[queues.DefaultQueue]; d.Pending != 50 || d.Running != 50 || d.Completed < 150 || !d.Estimated {
		t.Fatalf("queue statistics %+v", qs)
	}
	// ExactStatistics counts what Statistics estimated.
	for _, q := range []string{"", queues.DefaultQueue} {
		ex, err := b.ExactStatistics(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := queuestype.Statistics{Pending: 50, Running: 50, Completed: 200, Total: 300}
		if ex != want {
			t.Fatalf("ExactStatistics(%q) = %+v, want %+v", q, ex, want)
		}
	}
}

// Below the limit the counts are exact and say so.
func TestStatisticsSmallTableExact(t *testing.T) {
	b := fresh(t)
	if _, err := b.Enqueue(t.Context(), []driver.EnqueueParams{item("stats")}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, "ANALYZE "+b.TaskTable())
	st, err := b.Statistics(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if st != (queuestype.Statistics{Pending: 1, Total: 1}) {
		t.Fatalf("statistics %+v, want one exact pending record", st)
	}
}

// Wakeups off: no LISTEN connection, channels never fire, capabilities say so.
func TestWakeupsOff(t *testing.T) {
	opts := freshOptions(t)
	opts.Wakeups = queues.Ptr(false)
	b := newBackend(t, opts)
	if c := b.Capabilities(); c.WakeupTransport != "" || c.ControlTransport != "" {
		t.Fatalf("capabilities with wakeups off: %+v", c)
	}
	ch, err := b.Wakeups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Enqueue(t.Context(), []driver.EnqueueParams{item("quiet")}); err != nil {
		t.Fatal(err)
	}
	expectNoHint(t, ch, "enqueue with wakeups off")
	if b.ListenerPID() != 0 {
		t.Fatal("a listener connection was opened with wakeups off")
	}
}

// Connect owns its pool; a bad URL is a configuration error that does not
// echo the URL.
func TestConnect(t *testing.T) {
	testPool(t)
	ctx := t.Context()
	_, err := postgres.Connect(ctx, "postgres://user:secret@[::1", postgres.Options{})
	if !errors.Is(err, queues.ErrConfig) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Connect(bad url) = %v", err)
	}
	opts := freshOptions(t)
	opts.HeartbeatConns = 1
	b, err := postgres.Connect(ctx, testURL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); !errors.Is(err, postgres.ErrNotMigrated) {
		t.Fatalf("Open before migrate = %v", err)
	}
	if _, err := b.Migrate(ctx, driver.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Pool().Ping(ctx); err == nil {
		t.Fatal("the owned pool is still open after Close")
	}
}

// Vacuum clears the dead claim-index entries that worked records leave
// behind (autovacuum is off on the test server): afterwards an idle claim
// probe reads a handful of index pages instead of stepping over every
// claimed record's old entry.
func TestVacuumClearsDeadClaimEntries(t *testing.T) {
	b := fresh(t)
	ctx := t.Context()
	items := make([]driver.EnqueueParams, 5000)
	for i := range items {
		items[i] = item("vac")
	}
	if _, err := b.Enqueue(ctx, items); err != nil {
		t.Fatal(err)
	}
	for claimed := 0; claimed < len(items); {
		res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 1000, WorkerID: "w", ExecutionBackend: "local"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Claimed) == 0 {
			t.Fatalf("claimed %d of %d, then nothing", claimed, len(items))
		}
		claimed += len(res.Claimed)
	}
	probe := func() int {
		t.Helper()
		tx, err := testPool(t).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background())
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"); err != nil {
			t.Fatal(err)
		}
		var plan []struct {
			Plan struct {
				SharedHit  int `json:"Shared Hit Blocks"`
				SharedRead int `json:"Shared Read Blocks"`
			} `json:"Plan"`
		}
		err = tx.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM `+b.TaskTable()+`
WHERE status IN ('pending', 'scheduled') AND execution_backend = 'local' AND queue = 'default'
ORDER BY priority DESC, queued_at, created_at, id LIMIT 1`).Scan(&plan)
		if err != nil {
			t.Fatal(err)
		}
		return plan[0].Plan.SharedHit + plan[0].Plan.SharedRead
	}
	before := probe()
	if before < 20 {
		t.Fatalf("probe read %d buffers before VACUUM; expected the dead entries of 5000 claimed records to cost more", before)
	}
	// VACUUM removes only the entries no open snapshot of the database can
	// see; other tests of the package run transactions in the same
	// database, so a VACUUM may leave some behind until they end. Vacuum
	// again until the probe is cheap, within a deadline.
	deadline := time.Now().Add(20 * time.Second)
	var after, vacuums int
	for {
		if err := b.Vacuum(ctx); err != nil {
			t.Fatalf("Vacuum: %v", err)
		}
		vacuums++
		if after = probe(); after <= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe read %d buffers after %d VACUUMs; want the dead entries gone", after, vacuums)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("idle claim probe: %d buffers before VACUUM, %d after %d VACUUM(s)", before, after, vacuums)
	if err := b.Vacuum(canceledCtx()); err == nil {
		t.Fatal("Vacuum with a cancelled context succeeded")
	}
}

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
