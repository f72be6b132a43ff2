package postgres

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/queuesgo/queues/queuestype"
)

// seedEveryStatus inserts, with the columns every schema since 0003 has,
// one record in each status (task "legacy.<status>", args {"n":1}, queue q,
// priority 5, max_retries 3, the given retry_count, one interruption,
// metadata {"m":"v"}) and returns their IDs: the records a migration test
// checks read back unchanged.
func seedEveryStatus(t *testing.T, b *Backend, pool *pgxpool.Pool, retryCount int) map[queuestype.Status]uuid.UUID {
	t.Helper()
	ids := make(map[queuestype.Status]uuid.UUID, len(queuestype.AllStatuses))
	for _, s := range queuestype.AllStatuses {
		id := uuid.New()
		ids[s] = id
		var scheduled, started, heartbeat, completed, result, errText any
		switch s {
		case queuestype.StatusScheduled:
			scheduled = time.Now().Add(time.Hour)
		case queuestype.StatusRunning:
			started, heartbeat = time.Now(), time.Now()
		case queuestype.StatusCompleted:
			started, completed, result = time.Now(), time.Now(), `{"ok":true}`
		case queuestype.StatusPending:
		default:
			completed, errText = time.Now(), "boom"
		}
		_, err := pool.Exec(t.Context(), `INSERT INTO `+b.n.task+` (id, task_name, args, queue, execution_backend, status, priority,
    max_retries, retry_count, scheduled_at, created_at, queued_at, started_at, heartbeat_at, completed_at, result, error,
    metadata, policy, interruptions)
VALUES ($1, $2, '{"n":1}', 'q', 'local', $3, 5, 3, $4, $5, now(), now(), $6, $7, $8, $9::jsonb, $10, '{"m":"v"}', '{"timeout":5}', 1)`,
			id, "legacy."+string(s), string(s), retryCount, scheduled, started, heartbeat, completed, result, errText)
		if err != nil {
			t.Fatalf("insert %s: %v", s, err)
		}
	}
	return ids
}
