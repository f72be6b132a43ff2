package queues_test

import (
	"context"
	"testing"

	"github.com/queuesgo/queues"
)

// A backend without TxEnqueuer refuses transactional enqueue with ErrUnsupported and writes nothing.
func TestEnqueueTxUnsupported(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "tx", func(ctx context.Context, _ empty) (empty, error) { return empty{}, nil })
	svc := quietService(t, reg)
	ctx := context.Background()
	if _, err := task.EnqueueTx(ctx, svc, struct{}{}, empty{}); !errorsIs(err, queues.ErrUnsupported) {
		t.Fatalf("EnqueueTx = %v, want ErrUnsupported", err)
	}
	if _, err := svc.EnqueueManyTx(ctx, struct{}{}, []queues.EnqueueRequest{task.Request(empty{})}); !errorsIs(err, queues.ErrUnsupported) {
		t.Fatalf("EnqueueManyTx = %v, want ErrUnsupported", err)
	}
	if _, err := svc.EnqueueManyTx(ctx, struct{}{}, []queues.EnqueueRequest{{Task: "missing"}}); !errorsIs(err, queues.ErrUnknownTask) {
		t.Fatalf("unknown task in a tx batch = %v", err)
	}
	if st, _ := svc.Statistics(ctx, ""); st.Total != 0 {
		t.Fatalf("wrote %d records", st.Total)
	}
}
