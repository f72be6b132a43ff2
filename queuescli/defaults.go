package queuescli

import (
	"slices"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/execution/subprocess"
)

// defaultHeartbeatInterval is the heartbeat interval of a worker whose
// WorkerConfig.HeartbeatInterval is zero (the field's doc gives it; package
// queues keeps the value unexported). TestDefaultHeartbeatInterval checks
// the two agree.
const defaultHeartbeatInterval = 30 * time.Second

// shippedExecutionBackends are the transports this command tree ships:
// `run --execution-backend` serves them, so every command's service
// declares them (Config.ExternalExecutionBackends) and `enqueue` accepts
// records for them, while it refuses a name nothing serves.
var shippedExecutionBackends = []string{subprocess.Name}

// declareShipped adds the shipped transports to cfg's declared names.
func declareShipped(cfg *queues.Config) {
	for _, name := range shippedExecutionBackends {
		if !slices.Contains(cfg.ExternalExecutionBackends, name) {
			cfg.ExternalExecutionBackends = append(cfg.ExternalExecutionBackends, name)
		}
	}
}
