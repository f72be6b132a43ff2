package sqlite

import (
	"context"
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
)

// TestGroupIsolation queues, into one group transaction, writes that fail in
// every way a write can (a failing statement, a failing statement inside a
// savepoint, a panic) between writes that succeed: each failure is reported
// to its own caller only, leaves nothing behind, and the others commit.
func TestGroupIsolation(t *testing.T) {
	ctx := context.Background()
	b, err := Open(filepath.Join(t.TempDir(), "g.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	w := b.w

	// Hold the writer so that everything below lands in one group.
	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = w.doExclusive(ctx, func(*dconn) error { close(held); <-hold; return nil })
	}()
	<-held

	existing, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		name    string
		wantErr bool
		run     func() error
	}
	insert := func(id uuid.UUID) error {
		_, err := b.Enqueue(ctx, []driver.EnqueueParams{{ID: id, TaskName: "g", Args: json.RawMessage(`{}`)}})
		return err
	}
	goodIDs := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	calls := []call{
		{"good 1", false, func() error { return insert(goodIDs[0]) }},
		{"existing id (savepoint)", true, func() error { return insert(existing) }},
		{"bad statement", true, func() error {
			return w.do(ctx, false, func(tx *wtx) error {
				if _, err := tx.exec(`INSERT INTO queue_task_reservation (identity_key, task_id, task_name, created_at) VALUES ('k', 't', 'n', 1)`); err != nil {
					return err
				}
				_, err := tx.exec(`INSERT INTO no_such_table VALUES (1)`)
				return err
			})
		}},
		{"good 2", false, func() error { return insert(goodIDs[1]) }},
		{"panic", true, func() error {
			return w.do(ctx, false, func(tx *wtx) error {
				if _, err := tx.exec(`INSERT INTO queue_task_reservation (identity_key, task_id, task_name, created_at) VALUES ('p', 't', 'n', 1)`); err != nil {
					return err
				}
				panic("boom")
			})
		}},
		{"good 3", false, func() error { return insert(goodIDs[2]) }},
	}
	// The existing record must be there before the group runs: insert it
	// first, outside the held writer's queue order, by releasing it in order.
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	existingDone := make(chan error, 1)
	go func() { existingDone <- insert(existing) }()
	for len(w.reqs) < 1 { // the first insert is queued ahead of the others
		runtime.Gosched()
	}
	for i, c := range calls {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.run() }()
		for len(w.reqs) < i+2 { // keep the queue order
			runtime.Gosched()
		}
	}
	close(hold)
	if err := <-existingDone; err != nil {
		t.Fatalf("first insert: %v", err)
	}
	wg.Wait()
	for i, c := range calls {
		if (errs[i] != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, errs[i], c.wantErr)
		}
	}
	for _, id := range goodIDs {
		if _, err := b.GetTask(ctx, id); err != nil {
			t.Errorf("good record %s: %v", id, err)
		}
	}
	for _, k := range []string{"k", "p"} {
		if r, err := b.GetIdentity(ctx, k); err != nil || r != nil {
			t.Errorf("reservation %q of a failed write = %+v, %v; want none", k, r, err)
		}
	}
	if st, err := b.Statistics(ctx, ""); err != nil || st.Total != 4 {
		t.Errorf("records = %+v, %v; want 4", st, err)
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "already exists") {
		t.Errorf("existing id error = %v, want \"already exists\"", errs[1])
	}
}
