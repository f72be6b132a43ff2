package queuestest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queuestest"
)

// fakeTB records the failures of the helpers under test. Fatalf returns
// instead of stopping the goroutine, which the helpers allow for.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	failed bool
	msgs   []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) { f.fail(format, args...) }

func (f *fakeTB) Errorf(format string, args ...any) { f.fail(format, args...) }

func (f *fakeTB) fail(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

// requireFailed asserts the fake failed with a message holding every want.
func (f *fakeTB) requireFailed(t *testing.T, wants ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failed {
		t.Fatalf("helper did not fail the test")
	}
	msg := strings.Join(f.msgs, "\n")
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Fatalf("failure message lacks %q:\n%s", w, msg)
		}
	}
}

func (f *fakeTB) requirePassed(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed {
		t.Fatalf("helper failed the test: %s", strings.Join(f.msgs, "\n"))
	}
}

type email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Meta    struct {
		Lang string `json:"lang"`
		Tags []string
	} `json:"meta"`
}

func TestDrainRunsDueRecordsInClaimOrder(t *testing.T) {
	reg := queues.NewRegistry()
	var ran []int
	task := queues.MustRegister(reg, "n", func(ctx context.Context, n int) (int, error) {
		ran = append(ran, n)
		return n * 2, nil
	})
	svc := queuestest.NewService(t, reg)
	ctx := context.Background()
	for i, p := range []int{0, 10, 0} {
		if _, err := task.Enqueue(ctx, svc, i, queues.EnqueueOptions{Priority: queues.Ptr(p)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(ran) != 0 {
		t.Fatalf("records ran before Drain: %v", ran)
	}
	recs := queuestest.Drain(t, svc)
	if got := fmt.Sprint(ran); got != "[1 0 2]" {
		t.Fatalf("ran %s, want [1 0 2] (priority first, then enqueue order)", got)
	}
	if len(recs) != 3 {
		t.Fatalf("Drain returned %d records, want 3", len(recs))
	}
	for i, want := range []string{"2", "0", "4"} {
		if recs[i].Status != queues.StatusCompleted || string(recs[i].Result) != want {
			t.Fatalf("record %d: %s %s, want completed %s", i, recs[i].Status, recs[i].Result, want)
		}
	}
	if again := queuestest.Drain(t, svc); len(again) != 0 {
		t.Fatalf("second Drain ran %d records, want 0", len(again))
	}
}

func TestDrainRunsFollowUpsAndImmediateRetries(t *testing.T) {
	reg := queues.NewRegistry()
	var svc *queues.Service
	child := queues.MustRegister(reg, "child", func(ctx context.Context, s string) (string, error) { return s, nil })
	queues.MustRegister(reg, "parent", func(ctx context.Context, s string) (string, error) {
		_, err := child.Enqueue(ctx, svc, s+"-child")
		return s, err
	})
	calls := 0
	flaky := queues.MustRegister(reg, "flaky", func(ctx context.Context, s string) (string, error) {
		calls++
		if calls == 1 {
			return "", errors.New("first attempt fails")
		}
		return "ok", nil
	}, queues.TaskOptions{Retries: 2})
	svc = queuestest.NewService(t, reg)
	ctx := context.Background()
	if _, err := svc.EnqueueRaw(ctx, "parent", json.RawMessage(`"p"`), queues.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := flaky.Enqueue(ctx, svc, "f"); err != nil {
		t.Fatal(err)
	}
	recs := queuestest.Drain(t, svc)
	var names []string
	for _, r := range recs {
		if r.Status != queues.StatusCompleted {
			t.Fatalf("%s: %s (%s), want completed", r.TaskName, r.Status, r.Error)
		}
		names = append(names, r.TaskName)
	}
	if got := strings.Join(names, ","); got != "parent,flaky,child" {
		t.Fatalf("ran %s, want parent,flaky,child", got)
	}
	if recs[1].RetryCount != 1 || calls != 2 {
		t.Fatalf("flaky: retry_count %d after %d calls, want 1 after 2", recs[1].RetryCount, calls)
	}
}

func TestClockAdvanceMakesDelayedRecordsAndRetriesDue(t *testing.T) {
	reg := queues.NewRegistry()
	later := queues.MustRegister(reg, "later", func(ctx context.Context, s string) (string, error) { return s, nil })
	calls := 0
	backoff := queues.MustRegister(reg, "backoff", func(ctx context.Context, s string) (string, error) {
		calls++
		if calls == 1 {
			return "", errors.New("try again in ten minutes")
		}
		return "ok", nil
	}, queues.TaskOptions{Retries: 1, RetryBackoff: queues.FixedBackoff(10 * time.Minute)})
	clock := queuestest.NewClock()
	svc := queuestest.NewService(t, reg, queuestest.Options{Clock: clock})
	ctx := context.Background()
	if _, err := later.Enqueue(ctx, svc, "x", queues.EnqueueOptions{RunAfter: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := backoff.Enqueue(ctx, svc, "y"); err != nil {
		t.Fatal(err)
	}
	recs := queuestest.Drain(t, svc)
	if len(recs) != 1 || recs[0].TaskName != "backoff" || recs[0].Status != queues.StatusScheduled {
		t.Fatalf("first Drain: %v, want backoff scheduled for its retry", summary(recs))
	}
	queuestest.RequireEnqueued(t, svc, "later")

	clock.Advance(10 * time.Minute)
	recs = queuestest.Drain(t, svc)
	if len(recs) != 1 || recs[0].TaskName != "backoff" || recs[0].Status != queues.StatusCompleted {
		t.Fatalf("Drain after 10m: %v, want backoff completed", summary(recs))
	}
	queuestest.RequireNotEnqueued(t, svc, "backoff")

	clock.Advance(50 * time.Minute)
	recs = queuestest.Drain(t, svc)
	if len(recs) != 1 || recs[0].TaskName != "later" || recs[0].Status != queues.StatusCompleted {
		t.Fatalf("Drain after 1h: %v, want later completed", summary(recs))
	}
	clock.Advance(-time.Hour)
	if now := clock.Now(); now.Before(time.Now().Add(59 * time.Minute)) {
		t.Fatalf("clock went back to %v", now)
	}
}

func summary(recs []*queues.Record) string {
	var parts []string
	for _, r := range recs {
		parts = append(parts, r.TaskName+":"+string(r.Status))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func TestImmediateRunsInsideEnqueue(t *testing.T) {
	reg := queues.NewRegistry()
	upper := queues.MustRegister(reg, "upper", func(ctx context.Context, s string) (string, error) { return strings.ToUpper(s), nil })
	svc := queuestest.NewService(t, reg, queuestest.Options{Immediate: true})
	res, err := upper.Enqueue(context.Background(), svc, "hi")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := res.Value(); err != nil || v != "HI" {
		t.Fatalf("Value() = %q, %v; want HI", v, err)
	}
	if recs := queuestest.Drain(t, svc); len(recs) != 0 {
		t.Fatalf("Drain ran %d records after an immediate run", len(recs))
	}
}

func TestRunOneRunsOneAttemptThroughTheEngine(t *testing.T) {
	reg := queues.NewRegistry()
	calls := 0
	queues.MustRegister(reg, "greet", func(ctx context.Context, e email) (string, error) {
		calls++
		if e.To == "" {
			return "", errors.New("no recipient")
		}
		return "hello " + e.To, nil
	}, queues.TaskOptions{Retries: 5})
	queues.MustRegister(reg, "slow", func(ctx context.Context, _ struct{}) (string, error) {
		<-ctx.Done()
		return "", context.Cause(ctx)
	}, queues.TaskOptions{Timeout: 20 * time.Millisecond})
	var seen []string
	svc := queuestest.NewService(t, reg, queuestest.Options{Config: func(cfg *queues.Config) {
		cfg.Middleware = append(cfg.Middleware, func(next queues.Handler) queues.Handler {
			return func(ctx context.Context, rec *queues.Record) (any, error) {
				seen = append(seen, rec.TaskName)
				return next(ctx, rec)
			}
		})
	}})

	rec, err := queuestest.RunOne(t, svc, "greet", map[string]any{"to": "ada"})
	if err != nil || rec.Status != queues.StatusCompleted || string(rec.Result) != `"hello ada"` {
		t.Fatalf("RunOne = %v %s, %v; want completed \"hello ada\"", rec.Status, rec.Result, err)
	}

	rec, err = queuestest.RunOne(t, svc, "greet", map[string]any{})
	var te *queues.TaskError
	if !errors.As(err, &te) || te.Status != queues.StatusFailed || !strings.Contains(te.Message, "no recipient") {
		t.Fatalf("RunOne error = %v, want a *TaskError failed: no recipient", err)
	}
	if rec.RetryCount != 0 || calls != 2 {
		t.Fatalf("failure took %d calls (retry_count %d), want exactly one attempt", calls-1, rec.RetryCount)
	}

	rec, err = queuestest.RunOne(t, svc, "slow", struct{}{})
	if !errors.As(err, &te) || te.Status != queues.StatusFailed || rec.Status != queues.StatusFailed {
		t.Fatalf("slow: %v, want failed by its timeout", err)
	}
	if got := strings.Join(seen, ","); got != "greet,greet,slow" {
		t.Fatalf("middleware saw %s, want greet,greet,slow", got)
	}

	if _, err := queuestest.RunOne(t, svc, "greet", map[string]any{"to": 42}); !errors.Is(err, queues.ErrInvalidArgs) {
		t.Fatalf("bad args: %v, want ErrInvalidArgs", err)
	}
	if _, err := queuestest.RunOne(t, svc, "nope", 1); !errors.Is(err, queues.ErrUnknownTask) {
		t.Fatalf("unknown task: %v, want ErrUnknownTask", err)
	}
}

func TestRunOneFailsOnADeduplicatedEnqueue(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "once", func(ctx context.Context, s string) (string, error) { return s, nil },
		queues.TaskOptions{UniqueBy: queues.UniqueByArguments})
	svc := queuestest.NewService(t, reg)
	if _, err := task.Enqueue(context.Background(), svc, "a"); err != nil {
		t.Fatal(err)
	}
	f := &fakeTB{}
	queuestest.RunOne(f, svc, "once", "a")
	f.requireFailed(t, "existing record", "nothing ran")
}

func TestRequireEnqueuedMatchesPartialJSONAndFuncs(t *testing.T) {
	reg := queues.NewRegistry()
	send := queues.MustRegister(reg, "email.send", func(ctx context.Context, e email) (string, error) { return "", nil })
	queues.MustRegister(reg, "other", func(ctx context.Context, n int) (int, error) { return n, nil })
	svc := queuestest.NewService(t, reg)
	ctx := context.Background()
	e := email{To: "ada@example.com", Subject: "hi"}
	e.Meta.Lang, e.Meta.Tags = "en", []string{"a", "b"}
	if _, err := send.Enqueue(ctx, svc, e); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.EnqueueRaw(ctx, "other", json.RawMessage(`7`), queues.EnqueueOptions{RunAfter: time.Hour}); err != nil {
		t.Fatal(err)
	}

	passes := [][]any{
		nil,
		{map[string]any{"to": "ada@example.com"}},
		{map[string]any{"meta": map[string]any{"lang": "en"}}},
		{map[string]any{"meta": map[string]any{"Tags": []string{"a", "b"}}}},
		{e},
		{queuestest.ArgsFunc(func(raw json.RawMessage) bool { return strings.Contains(string(raw), "ada") })},
		{func(raw json.RawMessage) bool { return true }, map[string]any{"subject": "hi"}},
	}
	for i, m := range passes {
		f := &fakeTB{}
		got := queuestest.RequireEnqueued(f, svc, "email.send", m...)
		f.requirePassed(t)
		if len(got) != 1 || got[0].TaskName != "email.send" {
			t.Fatalf("matcher %d: matched %d records", i, len(got))
		}
		nf := &fakeTB{}
		queuestest.RequireNotEnqueued(nf, svc, "email.send", m...)
		nf.requireFailed(t, `want no pending or scheduled record of task "email.send"`, "ada@example.com")
	}

	fails := [][]any{
		{map[string]any{"to": "bob@example.com"}},
		{map[string]any{"missing": nil}},
		{map[string]any{"meta": map[string]any{"Tags": []string{"a"}}}},
		{map[string]any{"to": "ada@example.com"}, func(json.RawMessage) bool { return false }},
		{"ada@example.com"},
	}
	for _, m := range fails {
		f := &fakeTB{}
		if got := queuestest.RequireEnqueued(f, svc, "email.send", m...); len(got) != 0 {
			t.Fatalf("matched %d records", len(got))
		}
		// The message says what was looked for and lists what is enqueued.
		f.requireFailed(t, `no pending or scheduled record of task "email.send" matches`,
			"enqueued (2 pending or scheduled", `email.send pending queue=default args={"to":"ada@example.com"`,
			"other scheduled queue=default args=7 scheduled_at=")
		nf := &fakeTB{}
		queuestest.RequireNotEnqueued(nf, svc, "email.send", m...)
		nf.requirePassed(t)
	}

	f := &fakeTB{}
	queuestest.RequireEnqueued(f, svc, "absent")
	f.requireFailed(t, `task "absent" matches any arguments`)

	f = &fakeTB{}
	queuestest.RequireEnqueued(f, svc, "email.send", func() {})
	f.requireFailed(t, "matcher 0: encode func()")
}

func TestRequireEnqueuedIgnoresRecordsThatRan(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "t", func(ctx context.Context, n int) (int, error) { return n, nil })
	svc := queuestest.NewService(t, reg)
	if _, err := task.Enqueue(context.Background(), svc, 1); err != nil {
		t.Fatal(err)
	}
	queuestest.RequireEnqueued(t, svc, "t", 1)
	queuestest.Drain(t, svc)
	f := &fakeTB{}
	queuestest.RequireEnqueued(f, svc, "t")
	f.requireFailed(t, "nothing is enqueued")
	queuestest.RequireNotEnqueued(t, svc, "t")
}

func TestDrainNeedsAServiceFromNewService(t *testing.T) {
	svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTB{}
	if recs := queuestest.Drain(f, svc); recs != nil {
		t.Fatalf("Drain returned %d records", len(recs))
	}
	f.requireFailed(t, "Drain needs a running service made by queuestest.NewService")
}

func TestNewServiceFailsOnABadConfig(t *testing.T) {
	f := &fakeTB{}
	svc := queuestest.NewService(f, queues.NewRegistry(), queuestest.Options{Config: func(cfg *queues.Config) {
		cfg.Namespace = "bad namespace!"
	}})
	if svc != nil {
		t.Fatal("NewService returned a service for a bad config")
	}
	f.requireFailed(t, "queuestest: new service")
}

func TestDrainFailsOnTasksThatEnqueueForever(t *testing.T) {
	reg := queues.NewRegistry()
	var svc *queues.Service
	var loop *queues.Task[int, int]
	loop = queues.MustRegister(reg, "loop", func(ctx context.Context, n int) (int, error) {
		_, err := loop.Enqueue(ctx, svc, n+1)
		return n, err
	})
	svc = queuestest.NewService(t, reg, queuestest.Options{MaxDrainAttempts: 50})
	if _, err := loop.Enqueue(context.Background(), svc, 0); err != nil {
		t.Fatal(err)
	}
	f := &fakeTB{}
	if recs := queuestest.Drain(f, svc); recs != nil {
		t.Fatalf("Drain returned %d records", len(recs))
	}
	f.requireFailed(t, "more than 50 attempts", "enqueue each other forever")
}
