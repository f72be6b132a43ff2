package postgres

import (
	"context"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/jackc/pgx/v5"
)

var _ driver.WorkerRegistry = (*Backend)(nil)

// maxWorkerPurge bounds how many expired entries one ListWorkers deletes.
const maxWorkerPurge = 1000

// RegisterWorker inserts or replaces the queue_worker row of w.ID, stamping
// seen_at with the database's now() and expires_at with now() + ttl. It
// goes through the heartbeat pool (Options.HeartbeatPool) when there is
// one: a refresh is the worker's liveness signal, like a heartbeat, and must
// not wait behind a saturated main pool.
func (b *Backend) RegisterWorker(ctx context.Context, w driver.WorkerInfo, ttl time.Duration) error {
	if err := driver.CheckRegisterWorker(ctx, w, ttl); err != nil {
		return err
	}
	queues := w.Queues
	if queues == nil {
		queues = []string{}
	}
	_, err := b.hbPool.Exec(ctx, `INSERT INTO `+b.n.worker+` AS w (id, host, pid, queues, execution_backend, concurrency,
    running, started_at, version, seen_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now() + $10 * interval '1 microsecond')
ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    execution_backend = excluded.execution_backend, concurrency = excluded.concurrency, running = excluded.running,
    started_at = excluded.started_at, version = excluded.version, seen_at = excluded.seen_at,
    expires_at = excluded.expires_at`,
		w.ID, w.Host, int64(w.PID), queues, w.ExecutionBackend, int32(w.Concurrency), int32(w.Running),
		w.StartedAt, w.Version, ttl.Microseconds())
	return b.wrap("register worker", err)
}

// RemoveWorker deletes the queue_worker row of id, if any.
func (b *Backend) RemoveWorker(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := b.pool.Exec(ctx, `DELETE FROM `+b.n.worker+` WHERE id = $1`, id)
	return b.wrap("remove worker", err)
}

// ListWorkers returns up to limit rows whose expires_at is after the
// database's now(), in id order (the column's "C" collation: byte-wise),
// and in the same statement deletes up to maxWorkerPurge expired rows.
func (b *Backend) ListWorkers(ctx context.Context, limit int) ([]driver.WorkerInfo, error) {
	limit, err := driver.WorkerListLimit(ctx, limit)
	if err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, `WITH purged AS (
    DELETE FROM `+b.n.worker+` WHERE id IN (
        SELECT id FROM `+b.n.worker+` WHERE expires_at <= now() ORDER BY expires_at LIMIT $2
        FOR UPDATE SKIP LOCKED))
SELECT id, host, pid, queues, execution_backend, concurrency, running, started_at, version, seen_at, expires_at
FROM `+b.n.worker+` WHERE expires_at > now() ORDER BY id LIMIT $1`, limit, maxWorkerPurge)
	if err != nil {
		return nil, b.wrap("list workers", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (driver.WorkerInfo, error) {
		var (
			w                   driver.WorkerInfo
			pid                 int64
			concurrency, runnng int32
		)
		err := row.Scan(&w.ID, &w.Host, &pid, &w.Queues, &w.ExecutionBackend, &concurrency, &runnng, &w.StartedAt,
			&w.Version, &w.SeenAt, &w.ExpiresAt)
		w.PID, w.Concurrency, w.Running = int(pid), int(concurrency), int(runnng)
		w.StartedAt, w.SeenAt, w.ExpiresAt = w.StartedAt.UTC(), w.SeenAt.UTC(), w.ExpiresAt.UTC()
		return w, err
	})
	if err != nil {
		return nil, b.wrap("list workers", err)
	}
	if out == nil {
		out = []driver.WorkerInfo{}
	}
	return out, nil
}
