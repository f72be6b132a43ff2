package dispatch_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/execution/dispatch"
)

type empty struct{}

type env struct {
	svc  *queues.Service
	b    *memory.Backend
	sink *events.MemorySink
	task *queues.Task[empty, empty]
}

func newEnv(t *testing.T) *env {
	t.Helper()
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "job", func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil })
	b := memory.New(memory.Options{})
	sink := events.NewMemorySink()
	// The records are dispatched by hand in these tests: "job" is a
	// transport this service does not configure.
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg, Logger: slog.New(slog.DiscardHandler),
		Events:                    &queues.EventsConfig{Sinks: []events.Sink{sink}},
		ExternalExecutionBackends: []string{"job"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return &env{svc: svc, b: b, sink: sink, task: task}
}

func (e *env) enqueue(t *testing.T) *queues.Record {
	t.Helper()
	res, err := e.task.Enqueue(t.Context(), e.svc, empty{}, queues.EnqueueOptions{ExecutionBackend: "job"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.svc.GetTask(t.Context(), res.ID)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func (e *env) get(t *testing.T, rec *queues.Record) *queues.Record {
	t.Helper()
	r, err := e.svc.GetTask(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) warnings(phase string) []events.Event {
	var out []events.Event
	for _, ev := range e.sink.Events() {
		if ev.Type == events.TypeEvent && ev.Payload["phase"] == phase {
			out = append(out, ev)
		}
	}
	return out
}

func TestMarker(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	m := dispatch.NewMarker(now, 0)
	if !dispatch.IsMarker(m) || !strings.HasPrefix(m, "__queues_dispatching__:") {
		t.Fatalf("marker %q", m)
	}
	parts := strings.Split(m, ":")
	if len(parts) != 3 || len(parts[2]) != 36 {
		t.Fatalf("marker %q: want prefix:<deadline>:<uuid4>", m)
	}
	d, ok := dispatch.MarkerDeadline(m)
	if !ok {
		t.Fatalf("deadline of %q not parsed", m)
	}
	if want := now.Add(15 * time.Minute); d.Before(want) || d.After(want.Add(time.Second)) {
		t.Fatalf("deadline %s, want ≈ %s", d, want)
	}
	if d, _ := dispatch.MarkerDeadline(dispatch.NewMarker(now, time.Minute)); d.Sub(now) > time.Minute+time.Second {
		t.Fatalf("lease ignored: %s", d)
	}
	for _, bad := range []string{"", "subprocess:h:1:2", "__queues_dispatching__:", "__queues_dispatching__:x:y"} {
		if _, ok := dispatch.MarkerDeadline(bad); ok {
			t.Errorf("MarkerDeadline(%q) ok", bad)
		}
	}
}

func TestRunJobDispatched(t *testing.T) {
	e := newEnv(t)
	rec := e.enqueue(t)
	var sawMarker string
	out, err := dispatch.RunJob(t.Context(), e.svc.ExecutionHost(), rec, "job", func(ctx context.Context) (string, error) {
		sawMarker = e.get(t, rec).ExecutionRef
		return "job:1", nil
	}, func(string) { t.Error("orphan cancelled") })
	if err != nil || out.Status != execution.DispatchStatusDispatched || out.Ref != "job:1" {
		t.Fatalf("RunJob = %+v, %v", out, err)
	}
	if !dispatch.IsMarker(sawMarker) {
		t.Fatalf("during launch the record held %q, want a reservation marker", sawMarker)
	}
	got := e.get(t, rec)
	if got.ExecutionRef != "job:1" || got.Status != queues.StatusPending {
		t.Fatalf("after finalize: ref %q status %s", got.ExecutionRef, got.Status)
	}
	// A second dispatch of the same generation is skipped without launching.
	out, err = dispatch.RunJob(t.Context(), e.svc.ExecutionHost(), rec, "job", func(context.Context) (string, error) {
		t.Error("launched twice")
		return "", nil
	}, nil)
	if err != nil || out.Status != execution.DispatchStatusSkipped {
		t.Fatalf("second RunJob = %+v, %v", out, err)
	}
}

func TestRunJobLaunchFailure(t *testing.T) {
	e := newEnv(t)
	rec := e.enqueue(t)
	out, err := dispatch.RunJob(t.Context(), e.svc.ExecutionHost(), rec, "job", func(context.Context) (string, error) {
		return "", errors.New("no capacity")
	}, nil)
	if out.Status != execution.DispatchStatusError || !errors.Is(err, execution.ErrDispatch) {
		t.Fatalf("RunJob = %+v, %v", out, err)
	}
	var de *execution.DispatchError
	if !errors.As(err, &de) || de.Committed || de.TaskID != rec.ID || !strings.Contains(err.Error(), "no capacity") {
		t.Fatalf("error %#v", err)
	}
	got := e.get(t, rec)
	if got.ExecutionRef != "" || got.ExecutionBackend != "job" || got.Status != queues.StatusPending {
		t.Fatalf("after failure: %+v", got)
	}
	ws := e.warnings("job.dispatch_fallback")
	if len(ws) != 1 || ws[0].Level != "warning" || ws[0].Payload["error"] != "no capacity" ||
		ws[0].Payload["fallback_execution_backend"] != nil || ws[0].TaskID != rec.ID.String() {
		t.Fatalf("fallback warnings %+v", ws)
	}
}

func TestRunJobFallback(t *testing.T) {
	e := newEnv(t)
	rec := e.enqueue(t)
	out, err := dispatch.RunJob(t.Context(), e.svc.ExecutionHost(), rec, "job", func(context.Context) (string, error) {
		return "", errors.New("binary missing")
	}, nil, dispatch.JobOptions{FallbackBackend: queues.ExecutionLocal, FallbackProfile: "small"})
	if err != nil || out.Status != execution.DispatchStatusFallback || out.FallbackBackend != "local" {
		t.Fatalf("RunJob = %+v, %v", out, err)
	}
	got := e.get(t, rec)
	if got.ExecutionRef != "" || got.ExecutionBackend != "local" || got.ExecutionProfile != "small" {
		t.Fatalf("not re-routed: backend %q profile %q ref %q", got.ExecutionBackend, got.ExecutionProfile, got.ExecutionRef)
	}
	ws := e.warnings("job.dispatch_fallback")
	if len(ws) != 1 || ws[0].Payload["fallback_execution_backend"] != "local" {
		t.Fatalf("fallback warnings %+v", ws)
	}
}

func TestRunJobOwnershipLost(t *testing.T) {
	e := newEnv(t)
	rec := e.enqueue(t)
	var orphans []string
	out, err := dispatch.RunJob(t.Context(), e.svc.ExecutionHost(), rec, "job", func(ctx context.Context) (string, error) {
		// The record is cancelled while the launch is in flight.
		if ok, err := e.svc.Cancel(ctx, rec.ID, queues.CancelOptions{}); !ok || err != nil {
			t.Errorf("Cancel = %v, %v", ok, err)
		}
		return "job:orphan", nil
	}, func(ref string) { orphans = append(orphans, ref) })
	if out.Status != execution.DispatchStatusOwnershipLost || out.Ref != "job:orphan" || !errors.Is(err, execution.ErrDispatch) {
		t.Fatalf("RunJob = %+v, %v", out, err)
	}
	if len(orphans) != 1 || orphans[0] != "job:orphan" {
		t.Fatalf("orphans %v", orphans)
	}
	if got := e.get(t, rec); got.Status != queues.StatusCancelled {
		t.Fatalf("status %s", got.Status)
	}
}

func TestRunJobCancelledContext(t *testing.T) {
	e := newEnv(t)
	rec := e.enqueue(t)
	ctx, cancel := context.WithCancel(t.Context())
	out, err := dispatch.RunJob(ctx, e.svc.ExecutionHost(), rec, "job", func(ctx context.Context) (string, error) {
		cancel()
		return "", ctx.Err()
	}, nil)
	if out.Status != execution.DispatchStatusCancelled || !errors.Is(err, context.Canceled) {
		t.Fatalf("RunJob = %+v, %v", out, err)
	}
	if got := e.get(t, rec); got.ExecutionRef != "" {
		t.Fatalf("reservation kept: %q", got.ExecutionRef)
	}
	if ws := e.warnings("job.dispatch_fallback"); len(ws) != 0 {
		t.Fatalf("a cancelled dispatch published %d fallback warnings", len(ws))
	}
	// Already-cancelled ctx: nothing is reserved.
	out, err = dispatch.RunJob(ctx, e.svc.ExecutionHost(), rec, "job", func(context.Context) (string, error) {
		t.Error("launched")
		return "", nil
	}, nil)
	if out.Status != execution.DispatchStatusCancelled || err == nil {
		t.Fatalf("RunJob = %+v, %v", out, err)
	}
}

func TestReconcileHelper(t *testing.T) {
	e := newEnv(t)
	rec := e.enqueue(t)
	if _, err := dispatch.RunJob(t.Context(), e.svc.ExecutionHost(), rec, "job", func(context.Context) (string, error) { return "job:9", nil }, nil); err != nil {
		t.Fatal(err)
	}
	rec = e.get(t, rec)
	// A probe error leaves the record as it is.
	got, err := dispatch.Reconcile(t.Context(), e.svc.ExecutionHost(), rec, func(context.Context, string) (execution.Probe, error) {
		return execution.Probe{}, errors.New("provider down")
	})
	if err == nil || got.ExecutionRef != "job:9" {
		t.Fatalf("Reconcile = %+v, %v", got, err)
	}
	// Not found: the execution never claimed the record; with no budget it fails.
	got, err = dispatch.Reconcile(t.Context(), e.svc.ExecutionHost(), rec, func(_ context.Context, ref string) (execution.Probe, error) {
		if ref != "job:9" {
			t.Errorf("probed %q", ref)
		}
		return execution.Probe{Status: execution.ProbeNotFound}, nil
	})
	if err != nil || got.Status != queues.StatusFailed || got.Error != "external execution job:9 not found" {
		t.Fatalf("Reconcile = %+v, %v", got, err)
	}
	// Terminal records are not probed.
	if _, err := dispatch.Reconcile(t.Context(), e.svc.ExecutionHost(), got, func(context.Context, string) (execution.Probe, error) {
		t.Error("probed a terminal record")
		return execution.Probe{}, nil
	}); err != nil {
		t.Fatal(err)
	}
}
