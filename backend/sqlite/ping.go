package sqlite

import (
	"context"
	"fmt"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

var _ driver.Pinger = (*Backend)(nil)

// Ping reads the database header through the reader pool: it proves the
// file is still there and readable without taking the write lock. A backend
// that is not open (before Open, after Close) returns an error matching
// queuestype.ErrClosed.
func (b *Backend) Ping(ctx context.Context) error {
	_, rdb, err := b.handles()
	if err != nil {
		return fmt.Errorf("sqlite: ping: %w: %w", queuestype.ErrClosed, err)
	}
	var v int64
	// schema_version is read from page 1, so a missing or unreadable file
	// fails here, where SELECT 1 would not touch the file at all.
	if err := rdb.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&v); err != nil {
		return fmt.Errorf("sqlite: ping %s: %w", b.path, err)
	}
	return nil
}
