package queuestype

import (
	"errors"
	"fmt"
)

// ErrLimit reports an input over one of the size or range limits. Every
// *LimitError matches it and ErrConfig.
var ErrLimit = errors.New("queues: input over a limit")

// LimitError is an input value over a limit: Field names the value
// ("args", "queue", "items[2].key", "result", ...), Limit states the limit
// ("1048576 bytes", "128 characters", "0..1000") and Problem what was
// wrong with the value. It matches ErrLimit and ErrConfig. TooLarge is true
// when the value was refused for its size (HTTP answers 413 then, 400 for
// the other limits).
type LimitError struct {
	Field    string
	Limit    string
	Problem  string
	TooLarge bool
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("queues: %s: %s (limit %s)", e.Field, e.Problem, e.Limit)
}

// Is makes errors.Is(err, ErrLimit) and errors.Is(err, ErrConfig) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit || target == ErrConfig }
