package postgres

import (
	"context"
	"fmt"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

var _ driver.Pinger = (*Backend)(nil)

// Ping checks that the pool can reach the server (one round trip on a pooled
// connection). After Close it returns an error matching queuestype.ErrClosed,
// also when the pool was passed to New and is still open.
func (b *Backend) Ping(ctx context.Context) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("postgres: ping: %w", queuestype.ErrClosed)
	}
	return b.wrap("ping", b.pool.Ping(ctx))
}
