package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/queuesgo/queues/driver"
)

var _ driver.BacklogCounter = (*Backend)(nil)

// sqlBacklog counts the unreserved open records per (execution backend,
// queue) with ?1 = now (µs). "Due" is exactly sqlDue, the claim's
// predicate; "later" is a scheduled_at after now, whatever the deadline (a
// later record past its deadline waits for the expiry sweep, as it does in
// the memory store). Reserved records are in neither.
var sqlBacklog = `SELECT execution_backend, queue,
    sum(CASE WHEN (scheduled_at IS NULL OR scheduled_at <= ` + sqlNow + `) AND (expires_at IS NULL OR expires_at > ` + sqlNow + `) THEN 1 ELSE 0 END) AS due,
    sum(CASE WHEN scheduled_at > ` + sqlNow + ` THEN 1 ELSE 0 END) AS later
FROM queue_task WHERE ` + sqlOpen + ` AND ` + sqlUnreserved + `
GROUP BY execution_backend, queue HAVING due + later > 0
ORDER BY execution_backend, queue`

// CountBacklog counts the due and later records of every (queue, execution
// backend) in one statement on a reader connection, by the backend clock.
//
// Cost: the statement walks the claim index (queue_task_claim, whose rows
// are exactly the open records, already in (execution backend, queue)
// order, so the grouping needs no sort) and reads each open record's row
// for its scheduled_at, expires_at and dispatch_until: linear in the open
// records, independent of the terminal ones; one result row per partition.
func (b *Backend) CountBacklog(ctx context.Context) ([]driver.BacklogCount, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []driver.BacklogCount
	err := b.readRows(ctx, sqlBacklog, []any{micros(b.now())}, func(rows *sql.Rows) error {
		var c driver.BacklogCount
		if err := rows.Scan(&c.ExecutionBackend, &c.Queue, &c.Due, &c.Later); err != nil {
			return err
		}
		// A busy retry reads the rows again from the first one: they are
		// ordered, so a row not after the last kept one starts over.
		if n := len(out); n > 0 && !backlogAfter(c, out[n-1]) {
			out = out[:0]
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: count backlog: %w", err)
	}
	return out, nil
}

// backlogAfter reports whether c sorts after p in (execution backend,
// queue) order.
func backlogAfter(c, p driver.BacklogCount) bool {
	if c.ExecutionBackend != p.ExecutionBackend {
		return c.ExecutionBackend > p.ExecutionBackend
	}
	return c.Queue > p.Queue
}
