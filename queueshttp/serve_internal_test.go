package queueshttp

import (
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
)

// Without an in-app worker, Serve waits as long as a worker's default drain.
func TestDefaultGracefulShutdownTimeout(t *testing.T) {
	svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	w, err := svc.NewWorker(queues.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Config().GracefulShutdownTimeout; got != defaultGracefulShutdownTimeout {
		t.Fatalf("a worker's default GracefulShutdownTimeout is %s, queueshttp assumes %s", got, defaultGracefulShutdownTimeout)
	}
}
