package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

func TestMicroClaim(t *testing.T) {
	if os.Getenv("MICRO") == "" {
		t.Skip()
	}
	ctx := context.Background()
	b, _ := Open(filepath.Join(t.TempDir(), "m.db"), Options{})
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	const n = 20000
	conn, _ := b.cdb.Conn(ctx)
	defer conn.Close()
	mustX := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	p := queues.ClaimParams{Limit: 100, ExecutionBackend: "local", WorkerID: "w"}
	var cp params
	cp.add(nil)
	cp.add("w")
	sel := claimSelect(&cp, claimParts(&p), p.ExecutionBackend, p.Limit)
	run := func(label string, fn func(now int64) int) {
		_, err := conn.ExecContext(ctx, "DELETE FROM queue_task")
		mustX(err)
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		mustX(err)
		now := time.Now().UnixMicro()
		for i := 0; i < n; i++ {
			_, err := conn.ExecContext(ctx, sqlInsertTask, uuid.Must(uuid.NewV7()).String(), "noop", `{"I":1}`, "default", "local", nil, "pending", 0, 0, nil, nil, now+int64(i), now+int64(i), nil, `{"_correlation_id":"x"}`)
			mustX(err)
		}
		_, err = conn.ExecContext(ctx, "COMMIT")
		mustX(err)
		t0 := time.Now()
		done := 0
		for done < n {
			_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
			mustX(err)
			k := fn(time.Now().UnixMicro())
			_, err = conn.ExecContext(ctx, "COMMIT")
			mustX(err)
			if k == 0 {
				t.Fatal("none")
			}
			done += k
		}
		fmt.Printf("%-40s %6.1f µs/row\n", label, float64(time.Since(t0).Microseconds())/n)
	}
	claimQ := "UPDATE OR FAIL queue_task SET status = 'running', worker_id = ?2, started_at = ?1, heartbeat_at = ?1 WHERE id IN (" + sel + ") RETURNING " + recordColumns
	st1, _ := conn.PrepareContext(ctx, claimQ)
	run("update returning", func(now int64) int {
		args := append([]any{now}, cp.args[1:]...)
		rows, err := st1.QueryContext(ctx, args...)
		mustX(err)
		recs, err := scanRecords(rows, nil)
		mustX(err)
		return len(recs)
	})
	selQ := "SELECT " + recordColumns + " FROM queue_task WHERE id IN (" + sel + ")"
	st2, _ := conn.PrepareContext(ctx, selQ)
	upd, _ := conn.PrepareContext(ctx, "UPDATE OR FAIL queue_task SET status = 'running', worker_id = ?2, started_at = ?1, heartbeat_at = ?1 WHERE id IN (SELECT value FROM json_each(?3))")
	run("select + update json_each", func(now int64) int {
		args := append([]any{now}, cp.args[1:]...)
		rows, err := st2.QueryContext(ctx, args...)
		mustX(err)
		recs, err := scanRecords(rows, nil)
		mustX(err)
		ids := make([]string, len(recs))
		for i := range recs {
			ids[i] = recs[i].ID
		}
		js, _ := json.Marshal(ids)
		_, err = upd.ExecContext(ctx, now, "w", string(js))
		mustX(err)
		return len(recs)
	})
	upd2, _ := conn.PrepareContext(ctx, "UPDATE OR FAIL queue_task SET status = 'running', worker_id = ?2, started_at = ?1, heartbeat_at = ?1 WHERE id IN ("+sel+")")
	run("update exec only (no read)", func(now int64) int {
		args := append([]any{now}, cp.args[1:]...)
		res, err := upd2.ExecContext(ctx, args...)
		mustX(err)
		k, _ := res.RowsAffected()
		return int(k)
	})
	run("select only (rows stay pending)", func(now int64) int {
		args := append([]any{now}, cp.args[1:]...)
		rows, err := st2.QueryContext(ctx, args...)
		mustX(err)
		recs, err := scanRecords(rows, nil)
		mustX(err)
		_, err = conn.ExecContext(ctx, "DELETE FROM queue_task WHERE id IN (SELECT id FROM queue_task ORDER BY priority DESC, queued_at, created_at, id LIMIT 100)")
		mustX(err)
		return len(recs)
	})
}
