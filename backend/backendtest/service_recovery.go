package backendtest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/events"
)

func testSvcRecovery(t *testing.T, f Factory) {
	// Stale recovery across two workers: a worker that stops heartbeating loses its record to another.
	t.Run("StaleAcrossWorkers", func(t *testing.T) {
		t.Parallel()
		b := f.New(t)
		releaseA := make(chan struct{})
		var aCalls, bCalls atomic.Int32
		var task *queues.Task[noArgs, none]
		regA := func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.stale", func(ctx context.Context, _ noArgs) (none, error) {
				aCalls.Add(1)
				<-releaseA
				return none{}, nil
			}, queues.TaskOptions{Retries: 1})
		}
		regB := func(r *queues.Registry) {
			queues.MustRegister(r, "r.stale", func(ctx context.Context, _ noArgs) (none, error) {
				bCalls.Add(1)
				return none{}, nil
			}, queues.TaskOptions{Retries: 1})
		}
		envA := newSvcOn(t, b, regA)
		envB := newSvcOn(t, b, regB)
		res, _ := task.Enqueue(context.Background(), envA.svc, noArgs{})
		// Worker A claims, then "hangs": its heartbeat interval is far away.
		wA, _ := envA.svc.NewWorker(queues.WorkerConfig{ID: "hung-a", HeartbeatInterval: time.Hour, KeepRunningOnClaimLoss: true})
		if n, _ := wA.RunOnce(context.Background()); n != 1 {
			t.Fatal("A claimed nothing")
		}
		envB.worker(queues.WorkerConfig{ID: "rescuer-b", StaleAfter: 150 * time.Millisecond, StaleCheckInterval: 50 * time.Millisecond})
		rec := envB.waitStatus(res.ID, queues.StatusCompleted)
		if rec.WorkerID != "rescuer-b" || rec.RetryCount != 1 || bCalls.Load() != 1 {
			t.Fatalf("rescued record %+v calls %d", rec, bCalls.Load())
		}
		// A wakes up: its fenced complete must not apply.
		close(releaseA)
		_ = wA.Wait(context.Background())
		envA.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeClaimLost) })
		if ev := envA.eventsOf(res.ID, events.TypeClaimLost)[0]; ev.Payload["phase"] != "complete" {
			t.Fatalf("claim_lost phase %v", ev.Payload["phase"])
		}
		if rec, _ := envA.svc.GetTask(context.Background(), res.ID); rec.WorkerID != "rescuer-b" || rec.Status != queues.StatusCompleted {
			t.Fatalf("stale attempt overwrote the record: %+v", rec)
		}
		_, _ = wA.Stop(context.Background(), true)
	})

	// Heartbeat misses cancel the attempt with ErrClaimLost and publish task.claim_lost.
	t.Run("HeartbeatClaimLoss", func(t *testing.T) {
		t.Parallel()
		cause := make(chan error, 1)
		started := make(chan struct{}, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.lost", func(ctx context.Context, _ noArgs) (none, error) {
				started <- struct{}{}
				<-ctx.Done()
				cause <- context.Cause(ctx)
				return none{}, ctx.Err()
			}, queues.TaskOptions{Retries: 2})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		w := env.worker(queues.WorkerConfig{HeartbeatInterval: 20 * time.Millisecond, HeartbeatMissThreshold: 2, Queues: []string{"default"}})
		<-started
		// Another process requeues the record (as stale recovery would).
		if err := takeClaimAway(env.b); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-cause:
			if !errors.Is(c, queues.ErrClaimLost) {
				t.Fatalf("cause %v", c)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("claim loss never detected")
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeClaimLost) })
		_ = w
	})

	// The worker's periodic expiry sweep expires records it would never claim, with task.expired.
	t.Run("ExpirySweep", func(t *testing.T) {
		t.Parallel()
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.expire", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{Queue: "elsewhere"})
		})
		res, err := task.Enqueue(context.Background(), env.svc, noArgs{}, queues.EnqueueOptions{ExpiresIn: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		env.worker(queues.WorkerConfig{Queues: []string{"default"}, ExpiryCheckInterval: 20 * time.Millisecond})
		rec := env.waitStatus(res.ID, queues.StatusExpired)
		if rec.CompletedAt.IsZero() || !rec.StartedAt.IsZero() {
			t.Fatalf("expired record %+v", rec)
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeExpired) })
		ev := env.eventsOf(res.ID, events.TypeExpired)[0]
		if ev.Message != "Task expired before execution" || ev.Payload["expires_at"] == nil {
			t.Fatalf("task.expired %+v", ev)
		}
	})

	// Beat details reach metadata.progress_detail through the heartbeat.
	t.Run("BeatPersists", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.beat", func(ctx context.Context, _ noArgs) (none, error) {
				queues.Beat(ctx, "row 5")
				<-release
				return none{}, nil
			})
		})
		defer close(release)
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		env.worker(queues.WorkerConfig{HeartbeatInterval: 20 * time.Millisecond})
		if !svcEventually(10*time.Second, func() bool {
			rec, _ := env.svc.GetTask(context.Background(), res.ID)
			return rec != nil && rec.Metadata["progress_detail"] == "row 5"
		}) {
			t.Fatal("progress_detail never written")
		}
	})

	// Service.RecoverStale publishes task.stale_failed, the summary, and runs the hook.
	t.Run("RecoverStaleEventsAndHook", func(t *testing.T) {
		t.Parallel()
		hooked := make(chan uuid.UUID, 1)
		var task *queues.Task[noArgs, none]
		env := newSvc(t, f, func(r *queues.Registry) {
			task = queues.MustRegister(r, "r.hook", func(ctx context.Context, _ noArgs) (none, error) { return none{}, nil },
				queues.TaskOptions{OnStaleFailure: func(ctx context.Context, rec *queues.Record) { hooked <- rec.ID }})
		})
		res, _ := task.Enqueue(context.Background(), env.svc, noArgs{})
		if cr, err := env.b.ClaimMany(context.Background(), driver.ClaimParams{Limit: 1, WorkerID: "gone"}); err != nil || len(cr.Claimed) != 1 {
			t.Fatalf("claim: %v", err)
		}
		if err := env.b.NullHeartbeats(context.Background(), []queuestype.Fence{{ID: res.ID}}); err != nil {
			t.Fatal(err)
		}
		sr, err := env.svc.RecoverStale(context.Background(), queues.StaleOptions{StaleAfter: time.Hour})
		if err != nil || sr.Failed != 1 || len(sr.FailedTaskIDs) != 1 || sr.FailedTaskIDs[0] != res.ID {
			t.Fatalf("recover = %+v, %v", sr, err)
		}
		select {
		case id := <-hooked:
			if id != res.ID {
				t.Fatalf("hook for %v", id)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("hook not called")
		}
		env.waitEvents(res.ID, func(ts []string) bool { return hasType(ts, events.TypeStaleFailed) })
		found := false
		for _, ev := range env.sink.Events() {
			if ev.Type == events.TypeStaleRecovery && ev.Payload["failed"] == float64(1) {
				found = true
			}
		}
		if !found {
			t.Fatal("no worker.stale_recovery summary")
		}
		if _, err := env.svc.RecoverStale(context.Background(), queues.StaleOptions{}); !errors.Is(err, queues.ErrConfig) {
			t.Fatalf("zero StaleAfter: %v", err)
		}
	})
}
