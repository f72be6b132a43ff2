package queues_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queuestype"
)

// wantLimit requires err to be a *queues.LimitError on field.
func wantLimit(t *testing.T, what string, err error, field string, tooLarge bool) {
	t.Helper()
	var le *queues.LimitError
	if !errors.As(err, &le) || le.Field != field || le.TooLarge != tooLarge {
		t.Fatalf("%s: error %v, want a LimitError on %q (too large %v)", what, err, field, tooLarge)
	}
	if !errors.Is(err, queues.ErrLimit) || !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("%s: %v does not match ErrLimit and ErrConfig", what, err)
	}
}

// A Config may tighten the limits but not loosen them.
func TestConfigLimitsMayOnlyTighten(t *testing.T) {
	b := memory.New(memory.Options{})
	for name, l := range map[string]queuestype.Limits{
		"args above the maximum":  {ArgsBytes: 2 << 20},
		"negative result":         {ResultBytes: -1},
		"retries above 1000":      {MaxRetries: 1001},
		"timeout above 7 days":    {MaxTimeout: 8 * 24 * time.Hour},
		"negative schedule ahead": {MaxScheduleAhead: -time.Second},
		"queue name above 128":    {QueueNameBytes: 129},
		"error text below marker": {ErrorTextBytes: 3},
	} {
		_, err := queues.New(queues.Config{Backend: b, Limits: l})
		var ce *queues.ConfigError
		if !errors.As(err, &ce) || !strings.HasPrefix(ce.Field, "Limits.") {
			t.Errorf("%s: got %v, want a ConfigError on Limits.*", name, err)
		}
	}
	if _, err := queues.New(queues.Config{Backend: b, Limits: queuestype.DefaultLimits()}); err != nil {
		t.Fatalf("the defaults themselves: %v", err)
	}
}

// Tightened limits refuse an enqueue before any store call, on every
// enqueue path, naming the field; nothing is written.
func TestConfigLimitsTightenEnqueue(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "lim.echo", func(ctx context.Context, a map[string]string) (empty, error) { return empty{}, nil })
	svc := quietService(t, reg, func(c *queues.Config) {
		c.Limits = queuestype.Limits{ArgsBytes: 100, QueueNameBytes: 8, MaxRetries: 5, MaxScheduleAhead: time.Hour,
			MetadataBytes: 64, KeyBytes: 16, MaxTimeout: time.Minute}
	})
	ctx := context.Background()
	big := map[string]string{"s": strings.Repeat("x", 100)}
	rows := []struct {
		name     string
		enqueue  func() error
		field    string
		tooLarge bool
	}{
		{"typed args", func() error { _, err := task.Enqueue(ctx, svc, big); return err }, "args", true},
		{"raw args", func() error {
			_, err := svc.EnqueueRaw(ctx, "lim.echo", json.RawMessage(`{"s":"`+strings.Repeat("x", 100)+`"}`), queues.EnqueueOptions{})
			return err
		}, "args", true},
		{"typed NUL", func() error { _, err := task.Enqueue(ctx, svc, map[string]string{"s": "\x00"}); return err }, "args", false},
		{"raw NUL", func() error {
			_, err := svc.EnqueueRaw(ctx, "lim.echo", json.RawMessage(`{"s":"\u0000"}`), queues.EnqueueOptions{})
			return err
		}, "args", false},
		{"queue", func() error {
			_, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Queue: "ninechars"})
			return err
		}, "queue", true},
		{"queue charset", func() error {
			_, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Queue: " "})
			return err
		}, "queue", false},
		{"retries", func() error {
			_, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Retries: queues.Ptr(6)})
			return err
		}, "max_retries", false},
		{"run after", func() error {
			_, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{RunAfter: 2 * time.Hour})
			return err
		}, "scheduled_at", false},
		{"metadata", func() error {
			_, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Metadata: map[string]any{"m": strings.Repeat("m", 64)}})
			return err
		}, "metadata", true},
		{"key", func() error {
			_, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Key: strings.Repeat("k", 17)})
			return err
		}, "key", true},
		{"timeout", func() error {
			_, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Timeout: 2 * time.Minute})
			return err
		}, "timeout", false},
		{"execution backend", func() error {
			_, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{ExecutionBackend: "no such"})
			return err
		}, "execution_backend", false},
	}
	for _, r := range rows {
		wantLimit(t, r.name, r.enqueue(), r.field, r.tooLarge)
	}
	_, err := svc.EnqueueMany(ctx, []queues.EnqueueRequest{task.Request(nil), task.Request(big)})
	var be *queues.BatchError
	if !errors.As(err, &be) || be.Index != 1 {
		t.Fatalf("EnqueueMany = %v, want a BatchError on item 1", err)
	}
	wantLimit(t, "EnqueueMany", err, "args", true)
	if st, _ := svc.Statistics(ctx, ""); st.Total != 0 {
		t.Fatalf("%d records written by refused enqueues", st.Total)
	}
	if _, err := task.Enqueue(ctx, svc, map[string]string{"s": "ok"}, queues.EnqueueOptions{Queue: "eight.ch", Retries: queues.Ptr(5)}); err != nil {
		t.Fatalf("an enqueue within the limits: %v", err)
	}
}

// Transactional enqueue checks the configured limits too.
func TestConfigLimitsEnqueueTx(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "lim.tx", func(ctx context.Context, _ string) (empty, error) { return empty{}, nil })
	store := txStore{memory.New(memory.Options{})}
	svc := quietService(t, reg, func(c *queues.Config) { c.Backend = store; c.Limits.ArgsBytes = 10 })
	tx := &fakeTx{}
	_, err := queues.EnqueueTx(context.Background(), svc, tx, task, strings.Repeat("a", 10))
	wantLimit(t, "EnqueueTx", err, "args", true)
	if len(tx.items) != 0 {
		t.Fatalf("%d items reached the transaction", len(tx.items))
	}
}

// A result over the limit fails the attempt terminally after one attempt,
// storing the limit's text; a retry cannot shrink it.
func TestResultOverLimitFailsTerminally(t *testing.T) {
	var runs atomic.Int32
	reg := queues.NewRegistry()
	big := queues.MustRegister(reg, "lim.big", func(ctx context.Context, _ empty) (string, error) {
		runs.Add(1)
		return strings.Repeat("r", 100), nil
	}, queues.TaskOptions{Retries: 3})
	nul := queues.MustRegister(reg, "lim.nul", func(ctx context.Context, _ empty) (string, error) {
		return "a\x00", nil
	}, queues.TaskOptions{Retries: 3})
	svc := quietService(t, reg, func(c *queues.Config) { c.Limits.ResultBytes = 64 })
	runWorker(t, svc, queues.WorkerConfig{PollInterval: 5 * time.Millisecond, MaxConcurrency: 2})
	ctx := context.Background()
	r1, err := big.Enqueue(ctx, svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := nul.Enqueue(ctx, svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rec, err := r1.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != queues.StatusFailed || rec.RetryCount != 0 || runs.Load() != 1 ||
		rec.Error != "queues: result: 102 bytes is too large (limit 64 bytes)" {
		t.Fatalf("record %s retry_count %d error %q after %d runs", rec.Status, rec.RetryCount, rec.Error, runs.Load())
	}
	rec, err = r2.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != queues.StatusFailed || rec.RetryCount != 0 || !strings.Contains(rec.Error, `queues: result: \u0000 escape`) {
		t.Fatalf("NUL result: record %s retry_count %d error %q", rec.Status, rec.RetryCount, rec.Error)
	}
}

// An error text over the limit is truncated at a UTF-8 boundary with a
// marker, never refused.
func TestErrorTextTruncated(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "lim.fail", func(ctx context.Context, _ empty) (empty, error) {
		return empty{}, queues.NonRetryable(errors.New(long))
	})
	svc := quietService(t, reg, func(c *queues.Config) { c.Limits.ErrorTextBytes = 101 })
	runWorker(t, svc, queues.WorkerConfig{PollInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := task.Enqueue(ctx, svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := res.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const marker = " …[truncated]"
	kept := strings.TrimSuffix(rec.Error, marker)
	if rec.Status != queues.StatusFailed || len(rec.Error) > 101 || kept == rec.Error || !utf8.ValidString(rec.Error) ||
		!strings.HasPrefix(long, kept) || len(kept) < 101-len(marker)-1 {
		t.Fatalf("stored error %q (%d bytes)", rec.Error, len(rec.Error))
	}
}

// Registration refuses task names over the limits.
func TestRegisterTaskNameLimits(t *testing.T) {
	reg := queues.NewRegistry()
	fn := func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil }
	for _, name := range []string{"", "a\nb", "a\x00", "bad\xff", strings.Repeat("t", 256)} {
		if _, err := queues.Register(reg, name, fn); !errors.Is(err, queues.ErrLimit) {
			t.Errorf("Register(%q) = %v, want ErrLimit", name, err)
		}
	}
	if _, err := queues.Register(reg, strings.Repeat("t", 255), fn); err != nil {
		t.Fatalf("a 255-byte name: %v", err)
	}
	// Defaults every enqueue would refuse are refused at registration.
	for field, o := range map[string]queues.TaskOptions{
		"queue":             {Queue: "a queue"},
		"execution_backend": {ExecutionBackend: strings.Repeat("e", 65)},
		"execution_profile": {ExecutionProfile: "gpu/large"},
		"key":               {Key: "k\x00"},
		"max_retries":       {Retries: 1001},
		"timeout":           {Timeout: 8 * 24 * time.Hour},
	} {
		_, err := queues.Register(reg, "lim.opts."+field, fn, o)
		var le *queues.LimitError
		if !errors.As(err, &le) || le.Field != field {
			t.Errorf("TaskOptions with a bad %s: %v", field, err)
		}
	}
}

// A Beat detail with a NUL is written with U+FFFD in its place: the
// heartbeat that carries it is never refused.
func TestBeatDetailStorable(t *testing.T) {
	release := make(chan struct{})
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "lim.beat", func(ctx context.Context, _ empty) (empty, error) {
		queues.Beat(ctx, "a\x00b")
		return untilReleased(ctx, release)
	})
	svc := quietService(t, reg)
	runWorker(t, svc, queues.WorkerConfig{PollInterval: 5 * time.Millisecond, HeartbeatInterval: 20 * time.Millisecond})
	defer close(release)
	res, err := task.Enqueue(context.Background(), svc, empty{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the progress detail", func() bool {
		rec, err := svc.GetTask(context.Background(), res.ID)
		return err == nil && rec.Metadata[queuestype.MetaProgressDetail] == "a\uFFFDb"
	})
}
