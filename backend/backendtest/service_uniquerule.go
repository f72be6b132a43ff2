package backendtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// uniquePeriod is the short period the period cases use: long enough for a
// record to complete inside it on a loaded machine, short enough to wait out.
const uniquePeriod = 300 * time.Millisecond

// testSvcUniqueRule covers the key rules: UniqueFor (a period from enqueue)
// and UniqueWhile (the statuses in which a holder keeps its key), each
// applied atomically by the store, also under enqueuers racing from two
// services on one store.
func testSvcUniqueRule(t *testing.T, f Factory) {
	// Within the period a second enqueue returns the first record, even
	// once it completed; after the period a new record takes the key.
	t.Run("PeriodDedupAfterCompletion", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ur.period", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{Key: "digest", UniqueFor: uniquePeriod})
		})
		ctx := context.Background()
		a, err := task.Enqueue(ctx, env.svc, noArgs{})
		if err != nil || a.Deduplicated {
			t.Fatalf("first enqueue: %v %v", err, a)
		}
		env.worker(queues.WorkerConfig{})
		first := env.waitStatus(a.ID, queues.StatusCompleted)
		b, err := task.Enqueue(ctx, env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		// The completed record may have finished after the period on a very
		// slow machine; then the new record must come after it too.
		if !b.Deduplicated {
			if got := b.Record().CreatedAt.Sub(first.CreatedAt); got < uniquePeriod {
				t.Fatalf("new record %v after the first, inside the period %v", got, uniquePeriod)
			}
			t.Skip("the first record completed after its period; nothing to check")
		}
		if b.ID != a.ID {
			t.Fatalf("deduplicated to %v, want %v", b.ID, a.ID)
		}
		c := enqueueUntilNew(t, func() (*queues.TaskResult[none], error) { return task.Enqueue(ctx, env.svc, noArgs{}) })
		if c.ID == a.ID {
			t.Fatal("new record has the first record's ID")
		}
		if got := c.Record().CreatedAt.Sub(first.CreatedAt); got < uniquePeriod {
			t.Fatalf("new record %v after the first, inside the period %v", got, uniquePeriod)
		}
		if rec, err := env.svc.GetTask(ctx, a.ID); err != nil || rec.Key != "" {
			t.Fatalf("first record keeps key %q after the takeover (%v)", rec.Key, err)
		}
	})

	// A period alone: a holder still pending when its period ends gives the
	// key up; the new record holds it and the old one loses it.
	t.Run("PeriodEndsWhilePending", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ur.pending", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
		})
		ctx := context.Background()
		opts := queues.EnqueueOptions{Key: "pending-period", UniqueFor: uniquePeriod}
		a, err := task.Enqueue(ctx, env.svc, noArgs{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		b := enqueueUntilNew(t, func() (*queues.TaskResult[none], error) { return task.Enqueue(ctx, env.svc, noArgs{}, opts) })
		if got := b.Record().CreatedAt.Sub(a.Record().CreatedAt); got < uniquePeriod {
			t.Fatalf("new record %v after the first, inside the period", got)
		}
		old, err := env.svc.GetTask(ctx, a.ID)
		if err != nil || old.Status != queues.StatusPending || old.Key != "" {
			t.Fatalf("old holder: %v %+v", err, old)
		}
		held, err := env.b.GetTaskByKey(ctx, "pending-period")
		if err != nil || held.ID != b.ID {
			t.Fatalf("key held by %v (%v), want %v", held, err, b.ID)
		}
		// Without a period the pending holder keeps its key.
		d, err := task.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{Key: "pending-period"})
		if err != nil || !d.Deduplicated || d.ID != b.ID {
			t.Fatalf("default rule: %v %v", err, d)
		}
	})

	// UniqueWhile: a holder in the states deduplicates; one that leaves
	// them (pending → running) gives the key up, and still settles.
	t.Run("StatesRunningGivesUp", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ur.states", func(ctx context.Context, _ noArgs) (none, error) {
				select {
				case <-ctx.Done():
					return none{}, ctx.Err()
				case <-release:
					return none{}, nil
				}
			}, queues.TaskOptions{Key: "refresh", UniqueWhile: []queues.Status{queues.StatusPending, queues.StatusScheduled}})
		})
		ctx := context.Background()
		a, _ := task.Enqueue(ctx, env.svc, noArgs{})
		b, err := task.Enqueue(ctx, env.svc, noArgs{})
		if err != nil || !b.Deduplicated || b.ID != a.ID {
			t.Fatalf("pending holder must deduplicate: %v %v", err, b)
		}
		env.worker(queues.WorkerConfig{MaxConcurrency: 1})
		env.waitStatus(a.ID, queues.StatusRunning)
		c, err := task.Enqueue(ctx, env.svc, noArgs{})
		if err != nil || c.Deduplicated || c.ID == a.ID {
			t.Fatalf("running holder must give the key up: %v %v", err, c)
		}
		d, err := task.Enqueue(ctx, env.svc, noArgs{})
		if err != nil || !d.Deduplicated || d.ID != c.ID {
			t.Fatalf("the new pending holder must deduplicate: %v %v", err, d)
		}
		close(release)
		env.waitStatus(a.ID, queues.StatusCompleted)
		env.waitStatus(c.ID, queues.StatusCompleted)
		if rec, _ := env.svc.GetTask(ctx, a.ID); rec.Key != "" {
			t.Fatalf("old holder kept key %q", rec.Key)
		}
	})

	// UniqueWhile with a terminal status: a completed holder keeps the key,
	// a cancelled one (outside the states) gives it up.
	t.Run("StatesTerminal", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ur.terminal", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
		})
		ctx := context.Background()
		opts := queues.EnqueueOptions{Key: "once-done", UniqueWhile: []queues.Status{
			queues.StatusPending, queues.StatusScheduled, queues.StatusRunning, queues.StatusCompleted}}
		a, _ := task.Enqueue(ctx, env.svc, noArgs{}, opts)
		env.worker(queues.WorkerConfig{})
		env.waitStatus(a.ID, queues.StatusCompleted)
		b, err := task.Enqueue(ctx, env.svc, noArgs{}, opts)
		if err != nil || !b.Deduplicated || b.ID != a.ID {
			t.Fatalf("completed holder must deduplicate: %v %v", err, b)
		}
		sched := opts
		sched.Key, sched.RunAfter = "once-cancelled", time.Hour
		c, _ := task.Enqueue(ctx, env.svc, noArgs{}, sched)
		if ok, err := env.svc.Cancel(ctx, c.ID, queues.CancelOptions{}); !ok || err != nil {
			t.Fatalf("cancel: %v %v", ok, err)
		}
		d, err := task.Enqueue(ctx, env.svc, noArgs{}, sched)
		if err != nil || d.Deduplicated || d.ID == c.ID {
			t.Fatalf("cancelled holder must give the key up: %v %v", err, d)
		}
	})

	// Refused combinations, before any store call.
	t.Run("RuleConfigErrors", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		var forever *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "ur.cfg", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
			forever = queues.MustRegister(r, "ur.forever", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{UniqueBy: queues.UniqueByTask, UniqueUntil: queues.UniqueUntilForever})
		})
		ctx := context.Background()
		for name, o := range map[string]queues.EnqueueOptions{
			"no key":   {UniqueFor: time.Minute},
			"negative": {Key: "k", UniqueFor: -time.Second},
			"tiny":     {Key: "k", UniqueFor: time.Microsecond},
			"status":   {Key: "k", UniqueWhile: []queues.Status{"waiting"}},
		} {
			if _, err := task.Enqueue(ctx, env.svc, noArgs{}, o); !errors.Is(err, queues.ErrConfig) {
				t.Errorf("%s: %v, want ErrConfig", name, err)
			}
		}
		if _, err := forever.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{UniqueFor: time.Minute}); !errors.Is(err, queues.ErrConfig) {
			t.Errorf("forever + period: %v, want ErrConfig", err)
		}
		if _, err := queues.Register(queues.NewRegistry(), "x", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
			queues.TaskOptions{Key: "k", UniqueUntil: queues.UniqueUntilForever, UniqueWhile: []queues.Status{queues.StatusPending}}); !errors.Is(err, queues.ErrConfig) {
			t.Errorf("register forever + states: %v, want ErrConfig", err)
		}
	})

	// Enqueuers racing from two services on one store: one record per
	// window, every other enqueue deduplicated to it.
	t.Run("RaceTwoServices", func(t *testing.T) {
		t.Parallel()
		b := f.New(t)
		var tasks [2]*queues.Task[noArgs, none]
		envs := [2]*svcEnv{}
		for i := range envs {
			envs[i] = newSvcOn(t, b, func(r *queues.Registry) {
				tasks[i] = queues.MustRegister(r, "ur.race", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
			})
		}
		ctx := context.Background()
		race := func(o queues.EnqueueOptions) (created []uuid.UUID, dedup map[uuid.UUID]int) {
			const perService = 8
			var mu sync.Mutex
			dedup = map[uuid.UUID]int{}
			var wg sync.WaitGroup
			start := make(chan struct{})
			for s := range envs {
				for g := 0; g < perService; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						res, err := tasks[s].Enqueue(ctx, envs[s].svc, noArgs{}, o)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err != nil:
							t.Errorf("enqueue: %v", err)
						case res.Deduplicated:
							dedup[res.ID]++
						default:
							created = append(created, res.ID)
						}
					}()
				}
			}
			close(start)
			wg.Wait()
			return created, dedup
		}
		check := func(window string, created []uuid.UUID, dedup map[uuid.UUID]int, holder uuid.UUID) {
			t.Helper()
			want := holder
			if want == uuid.Nil {
				if len(created) != 1 {
					t.Fatalf("%s: %d records created, want 1", window, len(created))
				}
				want = created[0]
			} else if len(created) != 0 {
				t.Fatalf("%s: %d records created, want none", window, len(created))
			}
			for id := range dedup {
				if id != want {
					t.Fatalf("%s: deduplicated to %v, want %v", window, id, want)
				}
			}
		}

		// A fresh key with a period: one record.
		period := queues.EnqueueOptions{Key: "race-period", UniqueFor: uniquePeriod}
		created, dedup := race(period)
		check("first period", created, dedup, uuid.Nil)
		first := created[0]
		rec, err := envs[0].svc.GetTask(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		// Inside the period the pending holder keeps the key (the race
		// itself may outlast the period on a loaded machine: skip then).
		if time.Since(rec.CreatedAt) < uniquePeriod/3 {
			created, dedup = race(period)
			if time.Since(rec.CreatedAt) < uniquePeriod {
				check("same period", created, dedup, first)
			}
		}
		// The next period: exactly one record takes the key over from the
		// still-pending holder.
		waitPast(t, rec.CreatedAt.Add(uniquePeriod))
		created, dedup = race(period)
		check("next period", created, dedup, uuid.Nil)
		if old, _ := envs[1].svc.GetTask(ctx, first); old.Key != "" {
			t.Fatalf("old holder kept key %q", old.Key)
		}

		// States: a cancelled holder outside the states; one record takes
		// the key over.
		states := queues.EnqueueOptions{Key: "race-states", RunAfter: time.Hour,
			UniqueWhile: []queues.Status{queues.StatusPending, queues.StatusScheduled}}
		created, dedup = race(states)
		check("first state window", created, dedup, uuid.Nil)
		if ok, err := envs[0].svc.Cancel(ctx, created[0], queues.CancelOptions{}); !ok || err != nil {
			t.Fatalf("cancel: %v %v", ok, err)
		}
		created, dedup = race(states)
		check("second state window", created, dedup, uuid.Nil)
	})
}

// enqueueUntilNew enqueues until the store creates a new record (the period
// of the holder ended), within a deadline.
func enqueueUntilNew(t *testing.T, enqueue func() (*queues.TaskResult[none], error)) *queues.TaskResult[none] {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		res, err := enqueue()
		if err != nil {
			t.Fatal(err)
		}
		if !res.Deduplicated {
			return res
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the key was never given up")
	return nil
}

// waitPast waits until the process clock is past at plus a margin for the
// store's clock (the same host), within a deadline.
func waitPast(t *testing.T, at time.Time) {
	t.Helper()
	if !svcEventually(10*time.Second, func() bool { return time.Now().After(at.Add(50 * time.Millisecond)) }) {
		t.Fatal("clock never passed the period")
	}
}
