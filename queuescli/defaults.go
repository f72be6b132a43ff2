package queuescli

import "time"

// defaultHeartbeatInterval is the heartbeat interval of a worker whose
// WorkerConfig.HeartbeatInterval is zero (the field's doc gives it; package
// queues keeps the value unexported). TestDefaultHeartbeatInterval checks
// the two agree.
const defaultHeartbeatInterval = 30 * time.Second
