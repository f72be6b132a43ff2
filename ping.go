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
// deadline: Ping returns when ctx ends even if the store's client does not
// watch ctx (some clients only apply their own socket timeouts), with an
// error matching ctx.Err(). The error may carry connection detail such as a
// host name: log it rather than showing it to clients.
func (s *Service) Ping(ctx context.Context) error {
	done := make(chan error, 1) // buffered: a late answer must not block the goroutine
	go func() { done <- s.ping(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	if err != nil {
		return fmt.Errorf("queues: ping %s store: %w", s.backend.Name(), err)
	}
	return nil
}

func (s *Service) ping(ctx context.Context) error {
	if p, ok := s.backend.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	if _, err := s.backend.GetTask(ctx, uuid.Nil); !errors.Is(err, ErrTaskNotFound) {
		return err
	}
	return nil
}
