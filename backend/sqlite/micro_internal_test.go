package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestMicroComplete(t *testing.T) {
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
	db := b.cdb
	conn, _ := db.Conn(ctx)
	defer conn.Close()
	ids := make([]string, n)
	mustX := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	run := func(label string, fn func(st *sql.Stmt, id string) error, q string) {
		_, err := conn.ExecContext(ctx, "DELETE FROM queue_task")
		mustX(err)
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		mustX(err)
		now := time.Now().UnixMicro()
		for i := range ids {
			ids[i] = uuid.Must(uuid.NewV7()).String()
			_, err := conn.ExecContext(ctx, sqlInsertTask, ids[i], "noop", `{"I":1}`, "default", "local", nil, "running", 0, 0, nil, nil, now, now, nil, `{"_correlation_id":"x"}`)
			mustX(err)
		}
		_, err = conn.ExecContext(ctx, "UPDATE queue_task SET heartbeat_at = created_at, started_at = created_at, worker_id='w'")
		mustX(err)
		_, err = conn.ExecContext(ctx, "COMMIT")
		mustX(err)
		st, err := conn.PrepareContext(ctx, q)
		mustX(err)
		defer st.Close()
		t0 := time.Now()
		for i := 0; i < n; i += 100 {
			_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
			mustX(err)
			for _, id := range ids[i : i+100] {
				mustX(fn(st, id))
			}
			_, err = conn.ExecContext(ctx, "COMMIT")
			mustX(err)
		}
		fmt.Printf("%-40s %6.1f µs/op\n", label, float64(time.Since(t0).Microseconds())/n)
	}
	now := time.Now().UnixMicro()
	scanAll := func(rows *sql.Rows) error {
		_, err := scanRecords(rows, nil)
		return err
	}
	run("update returning all", func(st *sql.Stmt, id string) error {
		rows, err := st.QueryContext(ctx, now, "{}", id, 0)
		if err != nil {
			return err
		}
		return scanAll(rows)
	}, sqlComplete)
	run("update exec", func(st *sql.Stmt, id string) error {
		_, err := st.ExecContext(ctx, now, "{}", id, 0)
		return err
	}, `UPDATE OR FAIL queue_task SET status = 'completed', completed_at = ?, heartbeat_at = NULL, result = ?, error = NULL WHERE id = ? AND status = 'running' AND retry_count = ?`)
	run("update returning 2 cols", func(st *sql.Stmt, id string) error {
		var a, b sql.NullString
		return st.QueryRowContext(ctx, now, "{}", id, 0).Scan(&a, &b)
	}, `UPDATE OR FAIL queue_task SET status = 'completed', completed_at = ?, heartbeat_at = NULL, result = ?, error = NULL WHERE id = ? AND status = 'running' AND retry_count = ? RETURNING execution_ref, metadata`)
	run("update no OR FAIL exec", func(st *sql.Stmt, id string) error {
		_, err := st.ExecContext(ctx, now, "{}", id, 0)
		return err
	}, `UPDATE queue_task SET status = 'completed', completed_at = ?, heartbeat_at = NULL, result = ?, error = NULL WHERE id = ? AND status = 'running' AND retry_count = ?`)
	run("select all by id", func(st *sql.Stmt, id string) error {
		rows, err := st.QueryContext(ctx, id)
		if err != nil {
			return err
		}
		return scanAll(rows)
	}, sqlSelectByID)
	run("update status only exec", func(st *sql.Stmt, id string) error {
		_, err := st.ExecContext(ctx, id)
		return err
	}, `UPDATE OR FAIL queue_task SET status = 'completed' WHERE id = ?`)
	run("update hb only exec", func(st *sql.Stmt, id string) error {
		_, err := st.ExecContext(ctx, id)
		return err
	}, `UPDATE OR FAIL queue_task SET worker_id = 'x' WHERE id = ?`)
}
