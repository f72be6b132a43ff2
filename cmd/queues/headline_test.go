package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// traceLine is one attempt recorded by a demo task in QUEUES_DEMO_TRACE.
type traceLine struct {
	id      uuid.UUID
	task    string
	attempt int
	pid     int
}

func readTrace(t *testing.T, path string) []traceLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []traceLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 {
			t.Fatalf("bad trace line %q", sc.Text())
		}
		id, err := uuid.Parse(fs[0])
		if err != nil {
			t.Fatalf("bad trace line %q", sc.Text())
		}
		attempt, _ := strconv.Atoi(fs[2])
		pid, _ := strconv.Atoi(fs[3])
		out = append(out, traceLine{id: id, task: fs[1], attempt: attempt, pid: pid})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// allRecords pages through every record of the store.
func allRecords(t *testing.T, svc *queues.Service) map[uuid.UUID]*queues.Record {
	t.Helper()
	out := map[uuid.UUID]*queues.Record{}
	var cursor uuid.UUID
	for {
		page, err := svc.ListTasks(context.Background(), queues.TaskFilter{Limit: 500, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Items {
			out[r.ID] = r
		}
		if page.NextCursor == uuid.Nil {
			return out
		}
		cursor = page.NextCursor
	}
}

// TestTwoProcessesExactlyOnce is the first acceptance test: this test process
// enqueues 10,000 demo.noop records through the Go API while a `queues run`
// worker process claims them from the same SQLite file. Every record must
// complete, and the worker's execution trace (one O_APPEND line per attempt)
// must hold each ID exactly once: a double claim or a re-run would show up as
// a second line.
//
// The two processes overlap by construction, not by timing: after the first
// batch this process waits until the worker has claimed from it, and only
// then writes the other 99 batches while the worker keeps claiming. (The
// worker hears of another process's records only at its next poll, since
// SQLite hints stay within one process, so an enqueue faster than the
// worker's idle poll used to finish before the worker claimed anything.)
func TestTwoProcessesExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	const total = 10000
	e := newEnv(t)
	svc := e.service()
	ctx := context.Background()

	w := e.start("run", "--max-concurrency", "16", "--batch-size", "32", "--worker-id", "exactly-once",
		"--heartbeat-interval", "1s", "--stale-after", "30s")
	w.waitStderr(t, "queues worker started", 15*time.Second)

	enqueued := make(map[uuid.UUID]bool, total)
	start := time.Now()
	const batch = 100
	for i := 0; i < total; i += batch {
		reqs := make([]queues.EnqueueRequest, batch)
		for j := range reqs {
			reqs[j] = queues.EnqueueRequest{Task: "demo.noop", RawArgs: json.RawMessage(`{"n":` + strconv.Itoa(i+j) + `}`)}
		}
		res, err := svc.EnqueueMany(ctx, reqs)
		if err != nil {
			t.Fatalf("enqueue batch %d: %v", i/batch, err)
		}
		for _, r := range res {
			enqueued[r.ID] = true
		}
		if i == 0 {
			waitStats(t, svc, 30*time.Second, func(st queues.Statistics) bool { return st.Completed+st.Running > 0 })
		}
	}
	enqueueTime := time.Since(start)
	if len(enqueued) != total {
		t.Fatalf("enqueued %d distinct records, want %d", len(enqueued), total)
	}
	during, err := svc.Statistics(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("when enqueueing ended: %d completed, %d running", during.Completed, during.Running)
	st := waitStats(t, svc, 120*time.Second, func(st queues.Statistics) bool {
		return st.Completed+st.Failed+st.Cancelled+st.Expired >= total
	})
	t.Logf("enqueued %d in %s; all settled after %s", total, enqueueTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if st.Completed != total || st.Total != total {
		t.Fatalf("counts %+v, want %d completed", st, total)
	}
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("worker exit %d\nstderr: %s", code, w.stderr.String())
	}

	// The store: every record completed on its first attempt by the worker process.
	recs := allRecords(t, svc)
	if len(recs) != total {
		t.Fatalf("store holds %d records, want %d", len(recs), total)
	}
	for id, r := range recs {
		if !enqueued[id] {
			t.Fatalf("record %s was not enqueued by this test", id)
		}
		if r.Status != queues.StatusCompleted || r.RetryCount != 0 || r.WorkerID != "exactly-once" {
			t.Fatalf("record %s: %s retry_count %d worker %q", id, r.Status, r.RetryCount, r.WorkerID)
		}
	}
	// The trace: exactly one execution per record, all in the worker process.
	lines := readTrace(t, e.trace)
	seen := make(map[uuid.UUID]int, total)
	for _, l := range lines {
		seen[l.id]++
		if l.pid != w.cmd.Process.Pid {
			t.Fatalf("record %s ran in pid %d, not the worker process %d", l.id, l.pid, w.cmd.Process.Pid)
		}
		if l.attempt != 1 {
			t.Fatalf("record %s ran as attempt %d", l.id, l.attempt)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("record %s executed %d times", id, n)
		}
		if !enqueued[id] {
			t.Fatalf("executed unknown record %s", id)
		}
	}
	if len(lines) != total || len(seen) != total {
		t.Fatalf("trace has %d lines for %d records, want %d each", len(lines), len(seen), total)
	}
}

// TestKillAndRecover is the second acceptance test: a `queues run` worker is
// SIGKILLed in the middle of a batch of slow tasks; a second worker with stale
// recovery takes over. Every record must complete, and exactly the records
// that were running at the kill are executed a second time (generation 1).
func TestKillAndRecover(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	const total = 240
	e := newEnv(t)
	svc := e.service()
	ctx := context.Background()
	reqs := make([]queues.EnqueueRequest, total)
	for i := range reqs {
		reqs[i] = queues.EnqueueRequest{Task: "demo.sleep", RawArgs: json.RawMessage(`{"ms":200}`),
			Options: queues.EnqueueOptions{Retries: queues.Ptr(3)}}
	}
	res, err := svc.EnqueueMany(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[uuid.UUID]bool, total)
	for _, r := range res {
		ids[r.ID] = true
	}

	// Crash recovery is on by default, so the doomed worker takes the
	// fleet's stale-recovery lock too; the lock outlives a killed holder for
	// one check interval, so a short interval lets the rescuer take over soon.
	first := e.start("run", "--max-concurrency", "8", "--worker-id", "doomed", "--stale-check-interval", "200ms")
	first.waitStderr(t, "queues worker started", 15*time.Second)
	waitStats(t, svc, 30*time.Second, func(st queues.Statistics) bool { return st.Completed >= 40 && st.Running > 0 })
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(t, 10*time.Second); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("first worker exit %d, want %d", code, 128+int(syscall.SIGKILL))
	}
	// What the kill left behind: records still running, owned by the dead worker.
	var orphans []uuid.UUID
	for id, r := range allRecords(t, svc) {
		if r.Status == queues.StatusRunning {
			if r.WorkerID != "doomed" {
				t.Fatalf("running record %s owned by %q", id, r.WorkerID)
			}
			orphans = append(orphans, id)
		}
	}
	if len(orphans) == 0 || len(orphans) > 8 {
		t.Fatalf("%d records left running by the killed worker, want 1..8", len(orphans))
	}
	completedBefore, _ := svc.Statistics(ctx, "")
	t.Logf("killed the worker with %d completed and %d running", completedBefore.Completed, len(orphans))

	second := e.start("run", "--max-concurrency", "8", "--worker-id", "rescuer",
		"--stale-after", "1s", "--heartbeat-interval", "200ms", "--stale-check-interval", "200ms")
	second.waitStderr(t, "queues worker started", 15*time.Second)
	st := waitStats(t, svc, 60*time.Second, func(st queues.Statistics) bool {
		return st.Completed+st.Failed+st.Cancelled+st.Expired >= total
	})
	if st.Completed != total {
		t.Fatalf("counts %+v: want all %d completed", st, total)
	}
	second.signal(t, syscall.SIGTERM)
	if code := second.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("second worker exit %d\nstderr: %s", code, second.stderr.String())
	}

	recs := allRecords(t, svc)
	if len(recs) != total {
		t.Fatalf("store holds %d records, want %d", len(recs), total)
	}
	orphan := map[uuid.UUID]bool{}
	for _, id := range orphans {
		orphan[id] = true
		r := recs[id]
		if r.Status != queues.StatusCompleted || r.RetryCount != 1 || r.WorkerID != "rescuer" {
			t.Errorf("orphan %s: %s retry_count %d worker %q, want completed by the rescuer on generation 1",
				id, r.Status, r.RetryCount, r.WorkerID)
		}
	}
	for id, r := range recs {
		if !ids[id] {
			t.Fatalf("unexpected record %s", id)
		}
		if !orphan[id] && r.RetryCount != 0 {
			t.Errorf("record %s was not running at the kill but has retry_count %d", id, r.RetryCount)
		}
	}
	// The trace: one execution per record, two for the orphans (the killed
	// attempt and its recovery), none lost.
	runs := map[uuid.UUID][]traceLine{}
	for _, l := range readTrace(t, e.trace) {
		runs[l.id] = append(runs[l.id], l)
	}
	if len(runs) != total {
		t.Fatalf("trace covers %d records, want %d", len(runs), total)
	}
	for id, ls := range runs {
		last := ls[len(ls)-1]
		switch {
		case !orphan[id]:
			if len(ls) != 1 {
				t.Errorf("record %s executed %d times, want once", id, len(ls))
			}
		// An orphan ran once in the killed worker (unless it was killed
		// between its claim and the task's first line) and once in the rescuer.
		case len(ls) > 2:
			t.Errorf("orphan %s executed %d times", id, len(ls))
		case last.attempt != 2 || last.pid != second.cmd.Process.Pid:
			t.Errorf("orphan %s: last execution %+v, want attempt 2 in the rescuer (pid %d)", id, last, second.cmd.Process.Pid)
		case len(ls) == 2 && (ls[0].attempt != 1 || ls[0].pid != first.cmd.Process.Pid):
			t.Errorf("orphan %s: first execution %+v", id, ls[0])
		}
	}
}
