package queuescli

import (
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
)

// The stale-threshold check uses the worker's real default heartbeat interval.
func TestDefaultHeartbeatInterval(t *testing.T) {
	svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	w, err := svc.NewWorker(queues.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Config().HeartbeatInterval; got != defaultHeartbeatInterval {
		t.Fatalf("a worker's default heartbeat interval is %s, queuescli assumes %s", got, defaultHeartbeatInterval)
	}
}
