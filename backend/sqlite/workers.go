package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/queuesgo/queues/driver"
)

var _ driver.WorkerRegistry = (*Backend)(nil)

// maxWorkerPurge bounds how many expired entries one ListWorkers deletes,
// so a registry that collected many dead entries is cleaned over several
// calls instead of holding the writer for long.
const maxWorkerPurge = 1000

// RegisterWorker inserts or replaces the queue_worker row of w.ID, stamping
// seen_at with the backend clock and expires_at with seen_at + ttl. It goes
// through the single writer like every other write.
func (b *Backend) RegisterWorker(ctx context.Context, w driver.WorkerInfo, ttl time.Duration) error {
	if err := driver.CheckRegisterWorker(ctx, w, ttl); err != nil {
		return err
	}
	wr, _, err := b.handles()
	if err != nil {
		return err
	}
	queues := w.Queues
	if queues == nil {
		queues = []string{}
	}
	qs, err := json.Marshal(queues)
	if err != nil {
		return fmt.Errorf("sqlite: register worker: %w", err)
	}
	err = wr.do(ctx, false, func(tx *wtx) error {
		now := b.now()
		_, err := tx.exec(`INSERT INTO queue_worker (id, host, pid, queues, execution_backend, concurrency, running,
    started_at, version, seen_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    execution_backend = excluded.execution_backend, concurrency = excluded.concurrency, running = excluded.running,
    started_at = excluded.started_at, version = excluded.version, seen_at = excluded.seen_at,
    expires_at = excluded.expires_at`,
			w.ID, w.Host, int64(w.PID), string(qs), w.ExecutionBackend, int64(w.Concurrency), int64(w.Running),
			micros(w.StartedAt), w.Version, micros(now), micros(now.Add(ttl)))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: register worker: %w", err)
	}
	return nil
}

// RemoveWorker deletes the queue_worker row of id, if any.
func (b *Backend) RemoveWorker(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wr, _, err := b.handles()
	if err != nil {
		return err
	}
	err = wr.do(ctx, false, func(tx *wtx) error {
		_, err := tx.exec(`DELETE FROM queue_worker WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: remove worker: %w", err)
	}
	return nil
}

// ListWorkers reads up to limit live entries (expires_at after the backend
// clock) in id order (SQLite's BINARY collation: byte-wise) on the reader
// pool. When expired entries exist, it then deletes up to maxWorkerPurge of
// them through the writer; a registry without dead entries costs no write.
func (b *Backend) ListWorkers(ctx context.Context, limit int) ([]driver.WorkerInfo, error) {
	limit, err := driver.WorkerListLimit(ctx, limit)
	if err != nil {
		return nil, err
	}
	wr, _, err := b.handles()
	if err != nil {
		return nil, err
	}
	now := micros(b.now())
	out := []driver.WorkerInfo{}
	err = b.readRows(ctx, `SELECT id, host, pid, queues, execution_backend, concurrency, running, started_at, version,
    seen_at, expires_at FROM queue_worker WHERE expires_at > ? ORDER BY id LIMIT ?`, []any{now, limit},
		func(rows *sql.Rows) error {
			var (
				w                       driver.WorkerInfo
				qs                      string
				started, seen, expires  int64
				pid, concurrency, runng int64
			)
			if err := rows.Scan(&w.ID, &w.Host, &pid, &qs, &w.ExecutionBackend, &concurrency, &runng, &started,
				&w.Version, &seen, &expires); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(qs), &w.Queues); err != nil {
				return fmt.Errorf("worker %q queues: %w", w.ID, err)
			}
			w.PID, w.Concurrency, w.Running = int(pid), int(concurrency), int(runng)
			w.StartedAt, w.SeenAt, w.ExpiresAt = fromMicros(started), fromMicros(seen), fromMicros(expires)
			// A busy retry reads the rows again from the first one: the
			// order is ascending, so a row not after the last kept one
			// starts the listing over.
			if n := len(out); n > 0 && w.ID <= out[n-1].ID {
				out = out[:0]
			}
			out = append(out, w)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("sqlite: list workers: %w", err)
	}
	expired, err := b.readRow(ctx, `SELECT 1 FROM queue_worker WHERE expires_at <= ? LIMIT 1`, []any{now}, new(int))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list workers: %w", err)
	}
	if expired {
		err := wr.do(ctx, false, func(tx *wtx) error {
			_, err := tx.exec(`DELETE FROM queue_worker WHERE id IN
    (SELECT id FROM queue_worker WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`, now, maxWorkerPurge)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("sqlite: delete expired workers: %w", err)
		}
	}
	return out, nil
}
