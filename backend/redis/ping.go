package redis

import (
	"context"
	"fmt"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

var _ driver.Pinger = (*Backend)(nil)

// Ping sends PING. After Close it returns an error matching
// queuestype.ErrClosed, also when the client was passed to New and is still
// open.
func (b *Backend) Ping(ctx context.Context) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("redis: ping: %w", queuestype.ErrClosed)
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}
