package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

func TestMicroIndexes(t *testing.T) {
	if os.Getenv("MICRO") == "" {
		t.Skip()
	}
	ctx := context.Background()
	for _, drop := range []string{"", "queue_task_claim", "queue_task_claim_all", "queue_task_heartbeat", "queue_task_terminal", "queue_task_completed_by_task", "queue_task_external", "queue_task_due", "queue_task_expiry", "queue_task_created",
		"queue_task_claim,queue_task_heartbeat,queue_task_terminal,queue_task_completed_by_task,queue_task_external,queue_task_due,queue_task_expiry,queue_task_created"} {
		b, _ := Open(filepath.Join(t.TempDir(), "m.db"), Options{})
		if err := b.Open(ctx); err != nil {
			t.Fatal(err)
		}
		conn, _ := b.cdb.Conn(ctx)
		mustX := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, ix := range strings.Split(drop, ",") {
			if ix != "" {
				_, err := conn.ExecContext(ctx, "DROP INDEX "+ix)
				mustX(err)
			}
		}
		const n = 20000
		p := queues.ClaimParams{Limit: 100, ExecutionBackend: "local", WorkerID: "w"}
		var cp params
		cp.add(nil)
		cp.add("w")
		sel := claimSelect(&cp, claimParts(&p), p.ExecutionBackend, p.Limit)
		_, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		mustX(err)
		now := time.Now().UnixMicro()
		t0 := time.Now()
		for i := 0; i < n; i++ {
			_, err := conn.ExecContext(ctx, sqlInsertTask, uuid.Must(uuid.NewV7()).String(), "noop", `{"I":1}`, "default", "local", nil, "pending", 0, 0, nil, nil, now+int64(i), now+int64(i), nil, `{"_correlation_id":"x"}`)
			mustX(err)
		}
		_, err = conn.ExecContext(ctx, "COMMIT")
		mustX(err)
		ins := time.Since(t0)
		upd, _ := conn.PrepareContext(ctx, "UPDATE OR FAIL queue_task SET status = 'running', worker_id = ?2, started_at = ?1, heartbeat_at = ?1 WHERE id IN ("+sel+") RETURNING id")
		comp, _ := conn.PrepareContext(ctx, `UPDATE OR FAIL queue_task SET status = 'completed', completed_at = ?, heartbeat_at = NULL, result = ?, error = NULL WHERE id = ? AND status = 'running' AND retry_count = ?`)
		var tc, tp time.Duration
		for done := 0; done < n; {
			ta := time.Now()
			_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
			mustX(err)
			rows, err := upd.QueryContext(ctx, append([]any{time.Now().UnixMicro()}, cp.args[1:]...)...)
			mustX(err)
			var ids []string
			for rows.Next() {
				var id string
				rows.Scan(&id)
				ids = append(ids, id)
			}
			rows.Close()
			_, err = conn.ExecContext(ctx, "COMMIT")
			mustX(err)
			tb := time.Now()
			tc += tb.Sub(ta)
			_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
			mustX(err)
			for _, id := range ids {
				_, err := comp.ExecContext(ctx, time.Now().UnixMicro(), "{}", id, 0)
				mustX(err)
			}
			_, err = conn.ExecContext(ctx, "COMMIT")
			mustX(err)
			tp += time.Since(tb)
			done += len(ids)
		}
		fmt.Printf("drop %-30.30s insert %5.1f claim %5.1f complete %5.1f µs/row\n", drop, float64(ins.Microseconds())/n, float64(tc.Microseconds())/n, float64(tp.Microseconds())/n)
		conn.Close()
		b.Close(ctx)
	}
}
