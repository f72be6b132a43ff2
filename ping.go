package queues

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
)

// Ping reports whether the store answers, for readiness checks. It calls the
// store's driver.Pinger; a store without one is asked for a record that
// cannot exist (a point read by the nil ID, which every store answers with
// ErrTaskNotFound without scanning anything). Bound it with a short ctx
// deadline. The error may carry connection detail such as a host name: log
// it rather than showing it to clients.
func (s *Service) Ping(ctx context.Context) error {
	var err error
	if p, ok := s.backend.(driver.Pinger); ok {
		err = p.Ping(ctx)
	} else if _, err = s.backend.GetTask(ctx, uuid.Nil); errors.Is(err, ErrTaskNotFound) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("queues: ping %s store: %w", s.backend.Name(), err)
	}
	return nil
}
