package driver

import (
	"encoding/json"
	"fmt"

	"github.com/queuesgo/queues/queuestype"
)

// EncodeErrorHistory is the stored JSON form of an error history a
// Transition carries: "" when h is nil (the write keeps the stored
// history), else a JSON array.
func EncodeErrorHistory(h []queuestype.AttemptError) (string, error) {
	if h == nil {
		return "", nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("encode error history: %w", err)
	}
	return string(b), nil
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
