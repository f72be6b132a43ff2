package queuestype

import "time"

// AttemptError is one failed attempt in a record's error history: which
// attempt (1-based, the generation's attempt number), when it ended by the
// deciding worker's clock, its error text, a bounded trace (the stack of a
// panic; empty otherwise) and the worker that ran it.
type AttemptError struct {
	Attempt  int       `json:"attempt"`
	At       time.Time `json:"at"`
	Error    string    `json:"error"`
	Trace    string    `json:"trace,omitempty"`
	WorkerID string    `json:"worker,omitempty"`
}

// Bounds of a record's error history. The newest entry is always kept; the
// oldest are dropped first.
const (
	// ErrorHistoryEntries is how many failed attempts a record keeps.
	ErrorHistoryEntries = 20
	// ErrorTraceBytes bounds one entry's trace.
	ErrorTraceBytes = 4 * kib
	// ErrorHistoryBytes bounds the error and trace texts of all entries
	// together, so a record with long error texts keeps fewer of them.
	ErrorHistoryBytes = 128 * kib
)

// AppendAttemptError returns history with e appended, e's trace fitted to
// ErrorTraceBytes (e's error text is expected fitted already), and the
// oldest entries dropped while the list is over ErrorHistoryEntries or
// ErrorHistoryBytes. history is not modified.
func AppendAttemptError(history []AttemptError, e AttemptError) []AttemptError {
	e.Trace = FitErrorText(e.Trace, ErrorTraceBytes)
	e.At = e.At.UTC()
	out := make([]AttemptError, 0, min(len(history)+1, ErrorHistoryEntries))
	size := len(e.Error) + len(e.Trace)
	keep := 0 // how many of the newest old entries fit
	for i := len(history) - 1; i >= 0 && keep < ErrorHistoryEntries-1; i-- {
		n := len(history[i].Error) + len(history[i].Trace)
		if size+n > ErrorHistoryBytes {
			break
		}
		size += n
		keep++
	}
	out = append(out, history[len(history)-keep:]...)
	return append(out, e)
}

// CloneAttemptErrors returns a copy of h (nil for nil).
func CloneAttemptErrors(h []AttemptError) []AttemptError {
	if h == nil {
		return nil
	}
	return append([]AttemptError(nil), h...)
}
