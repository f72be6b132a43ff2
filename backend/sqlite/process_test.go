package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/sqlite"
)

// Environment of the helper process (this test binary run again).
const (
	helperRole = "QUEUES_SQLITE_HELPER"     // "claim" or "enqueue-one"
	helperDB   = "QUEUES_SQLITE_HELPER_DB"  // database file
	helperN    = "QUEUES_SQLITE_HELPER_N"   // records the claim role waits for
	helperOut  = "QUEUES_SQLITE_HELPER_OUT" // file receiving the claimed IDs
)

// TestHelperProcess is not a test: it is the second OS process of the
// cross-process tests, selected by QUEUES_SQLITE_HELPER.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperRole)
	if role == "" {
		t.Skip("helper process only")
	}
	if err := runHelper(role); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runHelper(role string) error {
	ctx := context.Background()
	b, err := sqlite.Open(os.Getenv(helperDB), sqlite.Options{})
	if err != nil {
		return err
	}
	if err := b.Open(ctx); err != nil {
		return err
	}
	defer b.Close(ctx)
	switch role {
	case "enqueue-one":
		_, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "from.other.process", Args: json.RawMessage(`{}`),
			Queue: queues.DefaultQueue, ExecutionBackend: "local"}})
		return err
	case "claim":
		n, err := strconv.Atoi(os.Getenv(helperN))
		if err != nil {
			return err
		}
		out, err := os.Create(os.Getenv(helperOut))
		if err != nil {
			return err
		}
		defer out.Close()
		w := bufio.NewWriter(out)
		defer w.Flush()
		fmt.Println("ready")
		return claimAndComplete(ctx, b, "child", n, func(id uuid.UUID) { fmt.Fprintln(w, id) })
	}
	return fmt.Errorf("unknown role %q", role)
}

// claimAndComplete claims batches and completes every record concurrently
// until the store holds total completed records. Every error is fatal.
func claimAndComplete(ctx context.Context, b *sqlite.Backend, worker string, total int, claimed func(uuid.UUID)) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 50, WorkerID: worker, ExecutionBackend: "local", ExpireOverdue: true})
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if len(res.Claimed) == 0 {
			st, err := b.Statistics(ctx, "")
			if err != nil {
				return fmt.Errorf("statistics: %w", err)
			}
			if st.Completed >= total {
				return nil
			}
			time.Sleep(2 * time.Millisecond)
			continue
		}
		errs := make(chan error, len(res.Claimed))
		var wg sync.WaitGroup
		for _, rec := range res.Claimed {
			if rec.WorkerID != worker || rec.Status != queues.StatusRunning {
				return fmt.Errorf("claimed %s with worker %q status %s", rec.ID, rec.WorkerID, rec.Status)
			}
			claimed(rec.ID)
			wg.Go(func() {
				res, err := b.Settle(ctx, []driver.Transition{{ID: rec.ID, Generation: rec.RetryCount, To: queues.StatusCompleted,
					Result: json.RawMessage(`{"by":"` + worker + `"}`)}})
				if err == nil {
					err = res[0].Err
				}
				if err != nil {
					errs <- fmt.Errorf("complete %s: %w", rec.ID, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
	}
	return errors.New("timed out")
}

// helper starts this test binary as the helper process with role.
func helper(t *testing.T, role, db string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), append([]string{helperRole + "=" + role, helperDB + "=" + db}, env...)...)
	return cmd
}

// TestTwoProcesses: one OS process enqueues 10,000 records (bulk and single
// calls) while another process claims and completes them; from the middle of
// the enqueueing on, this process claims and completes too, so two processes
// claim from one file while one of them writes new records.
// Every record is completed exactly once, by one claimer, and no call fails
// (no "database is locked").
func TestTwoProcesses(t *testing.T) {
	const total = 10_000
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "shared.db")
	b := openTempAt(t, db, sqlite.Options{})

	outFile := filepath.Join(dir, "child-claims.txt")
	cmd := helper(t, "claim", db, helperN+"="+strconv.Itoa(total), helperOut+"="+outFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the other process has opened the file and starts claiming.
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		t.Fatalf("claiming process did not start: %q %v\n%s", line, err, stderr.String())
	}
	childDone := make(chan error, 1)
	go func() { childDone <- cmd.Wait() }()

	var (
		mu         sync.Mutex
		mine       = map[uuid.UUID]bool{}
		enqueued   []uuid.UUID
		claimerErr = make(chan error, 1)
		enqErr     error
	)
	startClaimer := make(chan struct{})
	go func() {
		<-startClaimer
		// SQLite's write lock is not fair: this process's writer, committing
		// back to back, can keep the other process from ever taking it, and
		// then this process claims everything. Start claiming here only once
		// the other process has claimed a record (or after a deadline, which
		// fails the test below).
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			var n int
			if err := b.DB().QueryRowContext(ctx, `SELECT count(*) FROM queue_task WHERE worker_id = 'child'`).Scan(&n); err != nil {
				claimerErr <- err
				return
			}
			if n > 0 {
				break
			}
		}
		claimerErr <- claimAndComplete(ctx, b, "parent", total, func(id uuid.UUID) {
			mu.Lock()
			defer mu.Unlock()
			if mine[id] {
				panic("parent claimed " + id.String() + " twice")
			}
			mine[id] = true
		})
	}()
	// Enqueue: 95 bulk calls of 100, then 500 single calls from 5 goroutines.
	// This process starts claiming too once half is enqueued.
	for i := 0; i < 95 && enqErr == nil; i++ {
		if i == 50 {
			close(startClaimer)
		}
		items := make([]driver.EnqueueParams, 100)
		for j := range items {
			items[j] = driver.EnqueueParams{TaskName: "shared", Args: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i*100+j)),
				Queue: queues.DefaultQueue, ExecutionBackend: "local"}
		}
		outs, err := b.Enqueue(ctx, items)
		if err != nil {
			enqErr = err
			break
		}
		for _, o := range outs {
			enqueued = append(enqueued, o.Record.ID)
		}
	}
	var wg sync.WaitGroup
	for g := range 5 {
		wg.Go(func() {
			for k := range 100 {
				outs, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "shared",
					Args: json.RawMessage(fmt.Sprintf(`{"g":%d,"k":%d}`, g, k)), Queue: queues.DefaultQueue, ExecutionBackend: "local"}})
				mu.Lock()
				if err != nil && enqErr == nil {
					enqErr = err
				}
				if err == nil {
					enqueued = append(enqueued, outs[0].Record.ID)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if enqErr != nil {
		t.Fatalf("enqueue: %v", enqErr)
	}
	if len(enqueued) != total {
		t.Fatalf("enqueued %d, want %d", len(enqueued), total)
	}
	select {
	case err := <-childDone:
		if err != nil {
			t.Fatalf("claiming process: %v\n%s", err, stderr.String())
		}
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("claiming process did not finish\n%s", stderr.String())
	}
	if err := <-claimerErr; err != nil {
		t.Fatalf("claiming in this process: %v", err)
	}

	data, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	theirs := map[uuid.UUID]bool{}
	for _, line := range strings.Fields(string(data)) {
		id, err := uuid.Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		if theirs[id] {
			t.Fatalf("the other process claimed %s twice", id)
		}
		theirs[id] = true
	}
	for id := range theirs {
		if mine[id] {
			t.Fatalf("record %s claimed by both processes", id)
		}
	}
	if len(mine)+len(theirs) != total {
		t.Fatalf("claimed %d here + %d there, want %d in all", len(mine), len(theirs), total)
	}
	if len(theirs) == 0 {
		t.Fatal("the other process claimed nothing")
	}
	st, err := b.Statistics(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Completed != total || st.Total != total {
		t.Fatalf("statistics %+v, want %d completed", st, total)
	}
	recs, err := b.GetTasks(ctx, enqueued[:100])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		want := "parent"
		if theirs[r.ID] {
			want = "child"
		}
		if r.WorkerID != want || r.Status != queues.StatusCompleted || string(r.Result) != `{"by":"`+want+`"}` {
			t.Fatalf("record %s: worker %q status %s result %s, want completed by %s", r.ID, r.WorkerID, r.Status, r.Result, want)
		}
	}
	t.Logf("claimed %d here and %d in the other process", len(mine), len(theirs))
}

// TestCrossProcessWakeup: a commit by another process reaches a Wakeups
// subscriber through the PRAGMA data_version poll; this process's own
// claims and completes do not.
func TestCrossProcessWakeup(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "shared.db")
	b := openTempAt(t, db, sqlite.Options{PollInterval: 20 * time.Millisecond})
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	hints, err := b.Wakeups(sub)
	if err != nil {
		t.Fatal(err)
	}
	// Own writes that make nothing claimable send no hint, polled or not.
	own, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "own", Args: json.RawMessage(`{}`),
		Queue: queues.DefaultQueue, ExecutionBackend: "local", ScheduledAt: time.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Cancel(ctx, driver.CancelParams{ID: own[0].Record.ID}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hints:
		t.Fatal("hint without a claimable record or another process")
	case <-time.After(200 * time.Millisecond):
	}

	if out, err := helper(t, "enqueue-one", db).CombinedOutput(); err != nil {
		t.Fatalf("enqueuing process: %v\n%s", err, out)
	}
	select {
	case <-hints:
	case <-time.After(5 * time.Second):
		t.Fatal("no hint within 5s after another process enqueued")
	}
	res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 10, WorkerID: "w", ExecutionBackend: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Claimed) != 1 || res.Claimed[0].TaskName != "from.other.process" {
		t.Fatalf("claimed %v, want the other process's record", res.Claimed)
	}
}

// openTempAt opens a backend on path, closed when the test ends.
func openTempAt(tb testing.TB, path string, opts sqlite.Options) *sqlite.Backend {
	tb.Helper()
	b, err := sqlite.Open(path, opts)
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	if err := b.Open(context.Background()); err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}
