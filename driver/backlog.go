package driver

import "context"

// BacklogCount is the number of waiting records of one queue routed to one
// execution backend.
type BacklogCount struct {
	Queue            string `json:"queue"`
	ExecutionBackend string `json:"execution_backend"`
	// Due counts pending or scheduled records that are due now, not
	// expired and not reserved by a dispatch: what a worker could claim.
	Due int `json:"due"`
	// Later counts pending or scheduled records due in the future.
	Later int `json:"later"`
}

// BacklogCounter is the optional capability of a store that counts its
// waiting records by queue and execution backend in one bounded query, so
// an operator sees which transports records wait for. Without it the
// engine samples ListPending instead.
type BacklogCounter interface {
	// CountBacklog returns one BacklogCount per (queue, execution backend)
	// that holds waiting records, in no particular order; groups with
	// nothing waiting are left out.
	CountBacklog(ctx context.Context) ([]BacklogCount, error)
}
