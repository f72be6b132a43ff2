package queues_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/driver"
)

// A backend without TxEnqueuer refuses transactional enqueue with ErrUnsupported and writes nothing.
func TestEnqueueTxUnsupported(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "tx", func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil })
	svc := quietService(t, reg)
	ctx := context.Background()
	if _, err := queues.EnqueueTx(ctx, svc, struct{}{}, task, empty{}); !errorsIs(err, queues.ErrUnsupported) ||
		!strings.Contains(err.Error(), "memory backend cannot enqueue inside a transaction") {
		t.Fatalf("EnqueueTx = %v, want ErrUnsupported naming the backend", err)
	}
	if _, err := queues.EnqueueManyTx(ctx, svc, struct{}{}, []queues.EnqueueRequest{task.Request(empty{})}); !errorsIs(err, queues.ErrUnsupported) {
		t.Fatalf("EnqueueManyTx = %v, want ErrUnsupported", err)
	}
	if _, err := queues.EnqueueManyTx(ctx, svc, struct{}{}, []queues.EnqueueRequest{{Task: "missing"}}); !errorsIs(err, queues.ErrUnknownTask) {
		t.Fatalf("unknown task in a tx batch = %v", err)
	}
	if st, _ := svc.Statistics(ctx, ""); st.Total != 0 {
		t.Fatalf("wrote %d records", st.Total)
	}
}

// fakeTx is the transaction type of txStore.
type fakeTx struct{ items []driver.EnqueueParams }

// txStore is a memory store that takes a *fakeTx: EnqueueTx stages the
// items in the transaction and commit enqueues them.
type txStore struct{ driver.Backend }

func (s txStore) EnqueueTx(ctx context.Context, tx *fakeTx, items []driver.EnqueueParams) ([]driver.EnqueueOutcome, error) {
	if tx == nil {
		return nil, &queues.ConfigError{Field: "tx", Problem: "is nil"}
	}
	outs := make([]driver.EnqueueOutcome, len(items))
	items = append([]driver.EnqueueParams(nil), items...)
	for i := range items {
		if items[i].ID == uuid.Nil {
			items[i].ID = uuid.New()
		}
		outs[i].Record = &queues.Record{ID: items[i].ID, TaskName: items[i].TaskName, Status: queues.StatusPending}
	}
	tx.items = append(tx.items, items...)
	return outs, nil
}

func (s txStore) commit(ctx context.Context, tx *fakeTx) error {
	_, err := s.Enqueue(ctx, tx.items)
	return err
}

// The transaction type is a type parameter: the store is asserted as
// driver.TxEnqueuer[Tx] for the type the caller passes.
func TestEnqueueTxTyped(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "tx", func(ctx context.Context, a struct{ N int }) (empty, error) { return empty{}, nil })
	store := txStore{memory.New(memory.Options{})}
	svc := quietService(t, reg, func(c *queues.Config) { c.Backend = store })
	ctx := context.Background()

	tx := &fakeTx{}
	one, err := queues.EnqueueTx(ctx, svc, tx, task, struct{ N int }{1})
	if err != nil {
		t.Fatal(err)
	}
	many, err := queues.EnqueueManyTx(ctx, svc, tx, []queues.EnqueueRequest{task.Request(struct{ N int }{2}), task.Request(struct{ N int }{3})})
	if err != nil || len(many) != 2 {
		t.Fatalf("EnqueueManyTx = %v, %v", many, err)
	}
	if st, _ := svc.Statistics(ctx, ""); st.Total != 0 {
		t.Fatalf("%d records before commit", st.Total)
	}
	if err := store.commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if st, _ := svc.Statistics(ctx, ""); st.Total != 3 {
		t.Fatalf("%d records after commit, want 3", st.Total)
	}
	if rec, err := svc.GetTask(ctx, one.ID); err != nil || rec.TaskName != "tx" {
		t.Fatalf("committed record = %+v, %v", rec, err)
	}

	// Another transaction type: ErrUnsupported naming both types.
	var sqlTx *sql.Tx
	_, err = queues.EnqueueTx(ctx, svc, sqlTx, task, struct{ N int }{4})
	if !errorsIs(err, queues.ErrUnsupported) || !strings.Contains(err.Error(), "*queues_test.fakeTx") || !strings.Contains(err.Error(), "*sql.Tx") {
		t.Fatalf("EnqueueTx(*sql.Tx) = %v, want ErrUnsupported naming *queues_test.fakeTx and *sql.Tx", err)
	}
	if _, err := queues.EnqueueManyTx(ctx, svc, sqlTx, []queues.EnqueueRequest{task.Request(struct{ N int }{4})}); !errorsIs(err, queues.ErrUnsupported) {
		t.Fatalf("EnqueueManyTx(*sql.Tx) = %v, want ErrUnsupported", err)
	}

	// A nil transaction of the right type.
	if _, err := queues.EnqueueTx(ctx, svc, (*fakeTx)(nil), task, struct{ N int }{5}); !errorsIs(err, queues.ErrConfig) {
		t.Fatalf("EnqueueTx(nil) = %v, want ErrConfig", err)
	}

	// The immediate execution backend cannot run inside a transaction.
	_, err = queues.EnqueueTx(ctx, svc, &fakeTx{}, task, struct{ N int }{6}, queues.EnqueueOptions{ExecutionBackend: queues.ExecutionImmediate})
	if !errorsIs(err, queues.ErrConfig) {
		t.Fatalf("EnqueueTx(immediate) = %v, want ErrConfig", err)
	}
	if st, _ := svc.Statistics(ctx, ""); st.Total != 3 {
		t.Fatalf("%d records, want 3", st.Total)
	}
}
