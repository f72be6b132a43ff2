package sqlite

import (
	"context"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

var _ driver.Dispatcher = (*Backend)(nil)

// Settle is not built yet on this store.
func (b *Backend) Settle(ctx context.Context, ts []driver.Transition) ([]driver.SettleResult, error) {
	return nil, queuestype.ErrUnsupported
}

// ListStale is not built yet on this store.
func (b *Backend) ListStale(ctx context.Context, staleAfter time.Duration, limit int) ([]*queuestype.Record, error) {
	return nil, queuestype.ErrUnsupported
}
