package driver

import (
	"encoding/json"
	"fmt"

	"github.com/queuesgo/queues/queuestype"
)

// EncodeErrorHistory is the stored JSON form of an error history a
// Transition carries: "" when h is nil (the write keeps the stored
// history), else a JSON array. Texts are stored as FitErrorText gives
// them (no NUL, valid UTF-8; jsonb refuses an escaped NUL), each error
// under the hard error-text limit and each trace under ErrorTraceBytes.
func EncodeErrorHistory(h []queuestype.AttemptError) (string, error) {
	if h == nil {
		return "", nil
	}
	b, err := json.Marshal(FitErrorHistory(h))
	if err != nil {
		return "", fmt.Errorf("encode error history: %w", err)
	}
	return string(b), nil
}

// FitErrorHistory returns a copy of h (nil for nil) with its texts in the
// form every store keeps them (see EncodeErrorHistory).
func FitErrorHistory(h []queuestype.AttemptError) []queuestype.AttemptError {
	if h == nil {
		return nil
	}
	fit := make([]queuestype.AttemptError, len(h))
	for i, e := range h {
		e.Error = queuestype.FitErrorText(e.Error, hardLimits.ErrorTextBytes)
		e.Trace = queuestype.FitErrorText(e.Trace, queuestype.ErrorTraceBytes)
		e.WorkerID = queuestype.FitErrorText(e.WorkerID, hardLimits.ErrorTextBytes)
		fit[i] = e
	}
	return fit
}

// DecodeErrorHistory reads a stored error history; "" (a record written
// before the history existed) reads as none.
func DecodeErrorHistory(s string) ([]queuestype.AttemptError, error) {
	if s == "" || s == "null" {
		return nil, nil
	}
	var h []queuestype.AttemptError
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, fmt.Errorf("decode error history: %w", err)
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}
