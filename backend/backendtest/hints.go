package backendtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// testHints covers the optional hint capabilities: Waker, WorkerController,
// DueTimer and CompletionWaiter.
func testHints(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"WakeupOnDueEnqueueOnly", wakeupOnDueEnqueue},
		{"WakeupOncePerBatch", wakeupOncePerBatch},
		{"WakeupOnRequeuesAndReroutes", wakeupOnRequeues},
		{"WakeupChannelClosesWithCtx", wakeupChannelCloses},
		{"WorkerControlTargetsWorker", workerControlTargetsWorker},
		{"DueTimerNextDue", dueTimerNextDue},
		{"CompletionWaiterWakesOnTerminal", completionWaiterWakes},
		{"CompletionWaiterHonoursCtx", completionWaiterHonoursCtx},
	})
}

// A subscriber receives a hint after an enqueue of a due record;
// a following short wait gets none; a future-scheduled enqueue sends none;
// claims and settles send none.
func wakeupOnDueEnqueue(t *testing.T, b driver.Backend) {
	ch, _ := subscribe(t, require[driver.Waker](t, b))
	enqueueOne(t, b, item("wake.future", scheduledAt(at(time.Hour))))
	expectNoHint(t, ch, "future-scheduled enqueue")
	rec := enqueueOne(t, b, item("wake.due"))
	expectHint(t, ch, "due enqueue")
	expectNoHint(t, ch, "after the due enqueue's hint")
	complete(t, b, claimByID(t, b, rec.ID, workerA))
	expectNoHint(t, ch, "claim and complete")
}

// An Enqueue call of many due
// records sends one hint.
func wakeupOncePerBatch(t *testing.T, b driver.Backend) {
	ch, _ := subscribe(t, require[driver.Waker](t, b))
	var items []driver.EnqueueParams
	for range 10 {
		items = append(items, item("wake.batch"))
	}
	enqueue(t, b, items...)
	expectHint(t, ch, "batch enqueue")
	expectNoHint(t, ch, "after the batch hint")
}

// Hints fire for records that become pending and due: a retry
// without delay, an interrupt, a stale requeue, ClearExecutionRef and
// SetExecutionBackend; a delayed retry sends none.
func wakeupOnRequeues(t *testing.T, b driver.Backend) {
	w := require[driver.Waker](t, b)
	delayed := running(t, b, item("wake.delayed", retries(1)))
	retried := running(t, b, item("wake.retried", retries(1)))
	interrupted := running(t, b, item("wake.interrupted", retries(1)))
	stale := running(t, b, item("wake.stale", retries(1)))
	cleared := enqueueOne(t, b, item("wake.cleared", execution("cloudrun", "")))
	ref := newRef("cloudrun")
	setRef(t, b, cleared.ID, ref)
	rerouted := enqueueOne(t, b, item("wake.rerouted", execution("cloudrun", "")))
	setRef(t, b, rerouted.ID, newRef("cloudrun"))
	ch, _ := subscribe(t, w)

	_, err := settleCall(t, b, driver.Transition{ID: delayed.ID, To: queuestype.StatusPending, Error: "later", Delay: time.Hour})
	wantNoErr(t, "Settle(delayed retry)", err)
	expectNoHint(t, ch, "delayed retry")
	failRetry(t, b, retried, "now")
	expectHint(t, ch, "immediate retry")
	_, err = interrupt(t, b, interrupted.ID, 0, workerA)
	wantNoErr(t, "Settle(interrupted)", err)
	expectHint(t, ch, "interrupt")
	wantInt(t, "stale requeued", recoverAll(t, b, 10).Requeued, 1)
	wantStatus(t, "stale record", get(t, b, stale.ID), queues.StatusPending)
	expectHint(t, ch, "stale requeue")
	_, err = disp(t, b).ClearExecutionRef(t.Context(), cleared.ID, 0, ref)
	wantNoErr(t, "ClearExecutionRef", err)
	expectHint(t, ch, "ClearExecutionRef")
	_, err = disp(t, b).SetExecutionBackend(t.Context(), rerouted.ID, "local", "")
	wantNoErr(t, "SetExecutionBackend", err)
	expectHint(t, ch, "SetExecutionBackend")
}

// The channel is closed when ctx ends.
func wakeupChannelCloses(t *testing.T, b driver.Backend) {
	ch, cancel := subscribe(t, require[driver.Waker](t, b))
	enqueueOne(t, b, item("wake.close"))
	cancel()
	expectClosed(t, ch, "Wakeups")
}

// A control hint reaches only the named
// worker; the channels close when ctx ends.
func workerControlTargetsWorker(t *testing.T, b driver.Backend) {
	wc := require[driver.WorkerController](t, b)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Unique IDs, in case the control transport is shared beyond this backend.
	suffix := "-" + uuid.NewString()[:8]
	wa, wb := workerA+suffix, workerB+suffix
	chA, err := wc.WorkerControl(ctx, wa)
	wantNoErr(t, "WorkerControl(a)", err)
	chB, err := wc.WorkerControl(ctx, wb)
	wantNoErr(t, "WorkerControl(b)", err)
	wantNoErr(t, "NotifyWorkerControl(a)", wc.NotifyWorkerControl(t.Context(), wa))
	expectHint(t, chA, "control hint for worker a")
	expectNoHint(t, chB, "worker b after a hint for worker a")
	wantNoErr(t, "NotifyWorkerControl(c)", wc.NotifyWorkerControl(t.Context(), "worker-c"+suffix))
	wantNoErr(t, "NotifyWorkerControl(b)", wc.NotifyWorkerControl(t.Context(), wb))
	expectHint(t, chB, "control hint for worker b")
	expectNoHint(t, chA, "worker a after hints for other workers")
	cancel()
	expectClosed(t, chA, "WorkerControl(a)")
	expectClosed(t, chB, "WorkerControl(b)")
}

// NextDue reports the earliest future
// scheduled_at among pending/scheduled records (Redis ignores the queue filter).
func dueTimerNextDue(t *testing.T, b driver.Backend) {
	dt := require[driver.DueTimer](t, b)
	next := func(queues []string) (time.Time, bool) {
		t.Helper()
		tm, ok, err := dt.NextDue(t.Context(), queues)
		wantNoErr(t, "NextDue", err)
		return tm, ok
	}
	if tm, ok := next(nil); ok {
		t.Fatalf("NextDue on an empty store = %s, want none", tm)
	}
	enqueueOne(t, b, item("due.now"))
	running(t, b, item("due.running", scheduledAt(at(-time.Minute))))
	if tm, ok := next(nil); ok {
		t.Fatalf("NextDue without future records = %s, want none", tm)
	}
	soon, later, cancelledAt := at(30*time.Minute), at(time.Hour), at(10*time.Minute)
	enqueueOne(t, b, item("due.later", inQueue("a"), scheduledAt(later)))
	enqueueOne(t, b, item("due.soon", inQueue("b"), scheduledAt(soon)))
	c := enqueueOne(t, b, item("due.cancelled", inQueue("a"), scheduledAt(cancelledAt)))
	_, err := b.Cancel(t.Context(), driver.CancelParams{ID: c.ID})
	wantNoErr(t, "Cancel", err)

	tm, ok := next(nil)
	if !ok {
		t.Fatal("NextDue = none, want the earliest future scheduled_at")
	}
	wantNear(t, "NextDue(all)", tm, soon, storeTolerance)
	tm, ok = next([]string{"a"})
	if !ok {
		t.Fatal("NextDue(a) = none")
	}
	if b.Name() == "redis" {
		if !tm.Equal(soon) && !tm.Equal(later) {
			wantNear(t, "NextDue(a)", tm, later, storeTolerance)
		}
	} else {
		wantNear(t, "NextDue(a)", tm, later, storeTolerance)
	}
}

// WaitForCompletion returns after the
// record reaches a terminal state (complete, cancel, terminal fail).
func completionWaiterWakes(t *testing.T, b driver.Backend) {
	cw := require[driver.CompletionWaiter](t, b)
	settles := []struct {
		name   string
		setup  func() *queues.Record
		settle func(rec *queues.Record)
	}{
		{"complete", func() *queues.Record { return running(t, b, item("wait.complete")) },
			func(rec *queues.Record) { complete(t, b, rec) }},
		{"cancel", func() *queues.Record { return enqueueOne(t, b, item("wait.cancel")) },
			func(rec *queues.Record) {
				_, err := b.Cancel(t.Context(), driver.CancelParams{ID: rec.ID})
				wantNoErr(t, "Cancel", err)
			}},
		{"fail", func() *queues.Record { return running(t, b, item("wait.fail")) },
			func(rec *queues.Record) {
				_, err := settleCall(t, b, driver.Transition{ID: rec.ID, To: queuestype.StatusFailed, Error: "x"})
				wantNoErr(t, "Settle(failed)", err)
			}},
	}
	for _, s := range settles {
		// Announcements are lossy; the subscription may race the settle, so a
		// lost one is retried with a fresh record a few times.
		ok := false
		for attempt := 0; attempt < 3 && !ok; attempt++ {
			rec := s.setup()
			done := make(chan error, 1)
			entered := make(chan struct{})
			go func() {
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				defer cancel()
				close(entered)
				done <- cw.WaitForCompletion(ctx, rec.ID)
			}()
			<-entered
			s.settle(rec)
			select {
			case err := <-done:
				switch {
				case err == nil:
					ok = true
				case errors.Is(err, context.DeadlineExceeded):
					// lost announcement; retry
				default:
					t.Fatalf("WaitForCompletion after %s: %v", s.name, err)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("WaitForCompletion did not return within %s after %s", waitTimeout, s.name)
			}
		}
		if !ok {
			t.Fatalf("WaitForCompletion never returned after %s (3 attempts)", s.name)
		}
	}
}

// CompletionWaiter blocks until a terminal announcement or ctx ends:
// without a terminal transition it returns the ctx error.
func completionWaiterHonoursCtx(t *testing.T, b driver.Backend) {
	cw := require[driver.CompletionWaiter](t, b)
	rec := running(t, b, item("wait.timeout"))
	other := running(t, b, item("wait.other"))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		done <- cw.WaitForCompletion(ctx, rec.ID)
	}()
	complete(t, b, other) // another record's announcement is not ours
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitForCompletion without completion = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("WaitForCompletion did not return within %s after its ctx ended", waitTimeout)
	}
	wantStatus(t, "waited-on record", get(t, b, rec.ID), queues.StatusRunning)
}
