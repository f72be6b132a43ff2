package queues_test

import (
	"errors"
	"fmt"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
func errorsIs(err, target error) bool         { return errors.Is(err, target) }
