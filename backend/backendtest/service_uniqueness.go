package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
)

type userArgs struct {
	User  string  `json:"user"`
	Page  int     `json:"page"`
	Score float64 `json:"score"`
}

type narrowArgs struct {
	User    string `json:"user"`
	TraceID string `json:"trace_id"`
}

func (a narrowArgs) IdentityArgs() any { return map[string]any{"user": a.User} }

func testSvcUniqueness(t *testing.T, f Factory) {
	// Terminal uniqueness through the service.
	t.Run("TerminalKeyDedup", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "u.key", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil })
		})
		ctx := context.Background()
		a, _ := task.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{Key: "report:42"})
		b, _ := task.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{Key: "report:42"})
		if a.Deduplicated || !b.Deduplicated || a.ID != b.ID {
			t.Fatalf("a=%v/%v b=%v/%v", a.ID, a.Deduplicated, b.ID, b.Deduplicated)
		}
		env.worker(queues.WorkerConfig{})
		env.waitStatus(a.ID, queues.StatusCompleted)
		c, _ := task.Enqueue(ctx, env.svc, noArgs{}, queues.EnqueueOptions{Key: "report:42"})
		if c.Deduplicated || c.ID == a.ID {
			t.Fatalf("after completion a new record must be created: %v %v", c.ID, c.Deduplicated)
		}
	})

	// Arguments mode: same JSON → same key; IdentityArgs narrows; NaN and size limits.
	t.Run("ArgumentsMode", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[userArgs, none]
		var narrow *queues.Task[narrowArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "u.args", func(ctx context.Context, _ userArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{UniqueBy: queues.UniqueByArguments})
			narrow = queues.MustRegister(r, "u.narrow", func(ctx context.Context, _ narrowArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{UniqueBy: queues.UniqueByArguments})
		}, func(c *queues.Config) { c.MaxArgumentIdentityBytes = 64 })
		ctx := context.Background()
		a, err := task.Enqueue(ctx, env.svc, userArgs{User: "ann", Page: 1})
		if err != nil {
			t.Fatal(err)
		}
		b, err := env.svc.EnqueueRaw(ctx, "u.args", json.RawMessage(`{"page":1,"score":0,"user":"ann"}`), queues.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !b.Deduplicated || b.ID != a.ID {
			t.Fatalf("same JSON must give the same key: %v %v", a.ID, b.ID)
		}
		rec := a.Record()
		if !strings.HasPrefix(rec.Key, "q:u:v1:arguments:") || len(rec.Key) != len("q:u:v1:arguments:")+64 ||
			rec.Policy.UniqueBy != "arguments" || rec.Policy.UniqueVersion != "v1" {
			t.Fatalf("key %q metadata %v", rec.Key, rec.Metadata)
		}
		c, _ := task.Enqueue(ctx, env.svc, userArgs{User: "ann", Page: 2})
		if c.Deduplicated {
			t.Fatal("different arguments must not dedupe")
		}
		n1, _ := narrow.Enqueue(ctx, env.svc, narrowArgs{User: "bob", TraceID: "t1"})
		n2, _ := narrow.Enqueue(ctx, env.svc, narrowArgs{User: "bob", TraceID: "t2"})
		if !n2.Deduplicated || n1.ID != n2.ID {
			t.Fatal("IdentityArgs must narrow the identity to user")
		}
		if _, err := task.Enqueue(ctx, env.svc, userArgs{User: "ann", Score: math.NaN()}); !errors.Is(err, queues.ErrIdentity) && !errors.Is(err, queues.ErrInvalidArgs) {
			t.Fatalf("NaN: %v", err)
		}
		_, err = task.Enqueue(ctx, env.svc, userArgs{User: strings.Repeat("x", 100)})
		var tooLarge *queues.IdentityTooLargeError
		if !errors.Is(err, queues.ErrIdentityTooLarge) || !errors.As(err, &tooLarge) || tooLarge.Max != 64 {
			t.Fatalf("too large: %v", err)
		}
	})

	// Task mode and forever reservations through the service.
	t.Run("ForeverThroughService", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "u.forever", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{UniqueBy: queues.UniqueByTask, UniqueUntil: queues.UniqueUntilForever})
		})
		ctx := context.Background()
		a, err := task.Enqueue(ctx, env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.Record().Key, "q:u:v1:task:") || !a.Record().Policy.Forever() {
			t.Fatalf("record %+v", a.Record())
		}
		env.worker(queues.WorkerConfig{})
		env.waitStatus(a.ID, queues.StatusCompleted)
		if n, err := env.b.CleanupTerminal(ctx, driver.CleanupAll(time.Now().Add(time.Hour), 100)); err != nil || n != 1 {
			t.Fatalf("cleanup = %d, %v", n, err)
		}
		b, err := task.Enqueue(ctx, env.svc, noArgs{})
		if err != nil {
			t.Fatal(err)
		}
		if !b.Deduplicated || b.ID != a.ID || b.Record() != nil {
			t.Fatalf("forever owner handle expected, got %v dedup=%v", b.ID, b.Deduplicated)
		}
		res, _ := env.svc.GetIdentity(ctx, a.Record().Key)
		if res == nil || res.TaskID != a.ID || res.TaskName != "u.forever" {
			t.Fatalf("reservation %+v", res)
		}
		if ok, err := env.svc.ResetIdentity(ctx, a.Record().Key); !ok || err != nil {
			t.Fatalf("reset = %v, %v", ok, err)
		}
		c, _ := task.Enqueue(ctx, env.svc, noArgs{})
		if c.Deduplicated || c.ID == a.ID {
			t.Fatal("after reset a new record must be created")
		}
	})

	// EnqueueMany: in-batch duplicates, active duplicates, input order.
	t.Run("EnqueueManyKeys", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[userArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "u.many", func(ctx context.Context, _ userArgs) (none, error) { return none{}, nil })
		})
		ctx := context.Background()
		pre, _ := task.Enqueue(ctx, env.svc, userArgs{User: "z"}, queues.EnqueueOptions{Key: "k-active"})
		res, err := env.svc.EnqueueMany(ctx, []queues.EnqueueRequest{
			task.Request(userArgs{User: "a"}, queues.EnqueueOptions{Key: "k1"}),
			task.Request(userArgs{User: "b"}),
			task.Request(userArgs{User: "c"}, queues.EnqueueOptions{Key: "k1"}),
			task.Request(userArgs{User: "d"}, queues.EnqueueOptions{Key: "k-active"}),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 4 || res[0].ID != res[2].ID || !res[2].Deduplicated || res[0].Deduplicated || res[3].ID != pre.ID || !res[3].Deduplicated {
			t.Fatalf("results %+v", res)
		}
		var args userArgs
		_ = json.Unmarshal(res[1].Record().Args, &args)
		if args.User != "b" {
			t.Fatalf("input order lost: %+v", args)
		}
		st, _ := env.svc.Statistics(ctx, "")
		if st.Pending != 3 {
			t.Fatalf("pending %d, want 3", st.Pending)
		}
	})
}
