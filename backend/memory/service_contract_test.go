package memory_test

import (
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/backendtest"
	"github.com/queuesgo/queues/backend/memory"
)

func TestServiceContract(t *testing.T) {
	backendtest.RunService(t, backendtest.Factory{New: func(t *testing.T) queues.Backend { return memory.New(memory.Options{}) }})
}
