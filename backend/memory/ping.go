package memory

import (
	"context"
	"fmt"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

var _ driver.Pinger = (*Backend)(nil)

// Ping reports whether the backend is open: records live in this process, so
// there is nothing to reach. After Close it returns an error matching
// queuestype.ErrClosed until the next Open.
func (b *Backend) Ping(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("memory: ping: %w", queuestype.ErrClosed)
	}
	return nil
}
