package execution

import "time"

// ExitCode is the process exit code of a one-shot consumer (Host.ConsumeOne,
// `queues run-task`). Transports that launch processes read a child's
// outcome from it.
type ExitCode int

// Exit codes of ConsumeOne and `run-task`.
const (
	ExitSuccess       ExitCode = 0 // the record completed
	ExitFailure       ExitCode = 1 // the attempt failed (terminally or with a retry scheduled)
	ExitMissingTaskID ExitCode = 2 // no task ID was given
	ExitInvalidTaskID ExitCode = 3 // the task ID is not a UUID
	ExitMissingRecord ExitCode = 4 // no record has that ID
	ExitUnknownTask   ExitCode = 5 // the record's task is not registered in this binary
	ExitClaimLost     ExitCode = 6 // the record could not be claimed, expired, or the claim was lost
	ExitCancelled     ExitCode = 7 // the record was cancelled
	ExitConfigError   ExitCode = 8 // configuration or backend failure before claiming
)

// ConsumeOptions controls Host.ConsumeOne. Zero values take the service's
// worker configuration.
type ConsumeOptions struct {
	// WorkerID is persisted as the record's worker_id: "" → Config.Worker.ID.
	WorkerID string
	// ExpectedRetryCount and ExpectedRef fence the claim (broker deliveries carry them).
	ExpectedRetryCount *int
	ExpectedRef        *string
	// HeartbeatInterval is the fixed interval of the one-shot heartbeat loop: 0 → Config.Worker.HeartbeatInterval.
	HeartbeatInterval time.Duration
	// MarkerWait bounds how long a claim is retried while the dispatcher has
	// not finalized its reservation yet: 0 → 10s.
	MarkerWait time.Duration
}
