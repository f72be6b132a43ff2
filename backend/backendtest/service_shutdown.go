package backendtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
)

func testSvcShutdown(t *testing.T, f Factory) {
	// RequeueOnShutdown with a 50ms drain: escalation, pending, task.interrupted.
	t.Run("RequeueOnShutdown", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "s.requeue", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				return none{}, ctx.Err()
			}, queues.TaskOptions{Priority: 7})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		w, _ := env.svc.NewWorker(queues.WorkerConfig{RequeueOnShutdown: true, GracefulShutdownTimeout: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond})
		errc := make(chan error, 1)
		go func() { errc <- w.Run(context.Background()) }()
		<-started
		claimed, _ := env.svc.GetTask(context.Background(), res.ID)
		sr, err := w.Stop(context.Background(), false)
		if err != nil || !sr.Escalated {
			t.Fatalf("stop = %+v, %v", sr, err)
		}
		if err := <-errc; !errors.Is(err, queues.ErrEscalated) {
			t.Fatalf("Run returned %v, want ErrEscalated", err)
		}
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.Status != queues.StatusPending || !rec.StartedAt.IsZero() || !rec.HeartbeatAt.IsZero() || rec.WorkerID != "" ||
			rec.RetryCount != 1 || rec.Priority != 7 || rec.QueuedAt.Before(claimed.QueuedAt) || rec.Interruptions != 1 {
			t.Fatalf("after interrupt %+v", rec)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeInterrupted) })
	})

	// Without requeue, a shutdown clears the heartbeat so stale recovery takes the record at once.
	t.Run("ShutdownNullsHeartbeat", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "s.null", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				return none{}, ctx.Err()
			})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		w, _ := env.svc.NewWorker(queues.WorkerConfig{GracefulShutdownTimeout: 20 * time.Millisecond})
		if n, _ := w.RunOnce(context.Background()); n != 1 {
			t.Fatal("nothing claimed")
		}
		<-started
		sr, _ := w.Stop(context.Background(), false)
		if !sr.Escalated {
			t.Fatal("stop must escalate")
		}
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.Status != queues.StatusRunning || !rec.HeartbeatAt.IsZero() {
			t.Fatalf("status %s heartbeat %v", rec.Status, rec.HeartbeatAt)
		}
	})

	// The interruption budget: a record interrupted MaxInterruptions times fails its next shutdown.
	t.Run("InterruptionBudget", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{}, 4)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "s.budget", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				return none{}, ctx.Err()
			})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		for i := 0; i < 2; i++ {
			w, _ := env.svc.NewWorker(queues.WorkerConfig{RequeueOnShutdown: true, MaxInterruptions: 1, GracefulShutdownTimeout: 10 * time.Millisecond})
			if n, err := w.RunOnce(context.Background()); n != 1 || err != nil {
				t.Fatalf("round %d: RunOnce = %d, %v", i, n, err)
			}
			<-started
			_, _ = w.Stop(context.Background(), true)
		}
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.Status != queues.StatusFailed || rec.Error != "Interrupted during shutdown" {
			t.Fatalf("status %s error %q", rec.Status, rec.Error)
		}
	})

	// An attempt that ignores cancellation is abandoned after FinalCancelTimeout and its slot held.
	t.Run("IgnoredCancellation", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "s.stubborn", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-release
				return none{}, nil
			})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		w, _ := env.svc.NewWorker(queues.WorkerConfig{FinalCancelTimeout: 50 * time.Millisecond, RequeueOnShutdown: true})
		if n, _ := w.RunOnce(context.Background()); n != 1 {
			t.Fatal("nothing claimed")
		}
		<-started
		sr, _ := w.Stop(context.Background(), true)
		if !sr.Escalated || w.InFlight() != 1 {
			t.Fatalf("stop %+v inflight %d", sr, w.InFlight())
		}
		rec, _ := env.svc.GetTask(context.Background(), res.ID)
		if rec.Status != queues.StatusRunning || !rec.HeartbeatAt.IsZero() {
			t.Fatalf("abandoned record: status %s heartbeat %v", rec.Status, rec.HeartbeatAt)
		}
		close(release)
		if err := w.Wait(context.Background()); err != nil || w.InFlight() != 0 {
			t.Fatal("slot not released")
		}
		if rec, _ := env.svc.GetTask(context.Background(), res.ID); rec.Status != queues.StatusRunning {
			t.Fatalf("a late return must not settle the abandoned attempt: %s", rec.Status)
		}
	})
}
