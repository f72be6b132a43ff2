package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// TestMigrateTags builds the 0006 schema holding a record in every status,
// runs Migrate and checks that it applies 0007_tags only, that every
// record reads back without tags (through both decoders: ListTasks decodes
// wire values, GetTask scans), that the tag filter uses the GIN index and
// that new tagged records are listed by tag beside the migrated ones.
func TestMigrateTags(t *testing.T) {
	b, pool := unmigratedBackend(t)
	ctx := t.Context()
	applyFirstMigrations(t, b, pool, 6, "0007_tags")

	ids := seedEveryStatus(t, b, pool, 2)
	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !slices.Equal(rep.AppliedNow, []string{"0007_tags"}) {
		t.Fatalf("Migrate applied %v; want [0007_tags]", rep.AppliedNow)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	for _, s := range queuestype.AllStatuses {
		rec, err := b.GetTask(ctx, ids[s])
		if err != nil {
			t.Fatalf("GetTask %s: %v", s, err)
		}
		if rec.Status != s || rec.Tags != nil || rec.RetryCount != 2 {
			t.Errorf("%s: record after the migration = %+v", s, rec)
		}
	}
	page, err := b.ListTasks(ctx, driver.TaskFilter{Queue: "q", Limit: 100})
	if err != nil || len(page.Items) != len(queuestype.AllStatuses) {
		t.Fatalf("ListTasks after the migration = %d items, %v", len(page.Items), err)
	}
	for _, r := range page.Items {
		if r.Tags != nil {
			t.Fatalf("listed migrated record %s has tags %q", r.ID, r.Tags)
		}
	}
	_, err = b.Enqueue(ctx, []driver.EnqueueParams{
		{TaskName: "new", Queue: "q", Args: json.RawMessage(`{}`), Tags: []string{"b", "a"}},
		{TaskName: "new", Queue: "q", Args: json.RawMessage(`{}`), Key: "k1", Tags: []string{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	page, err = b.ListTasks(ctx, driver.TaskFilter{Tag: "a"})
	if err != nil || len(page.Items) != 2 || !slices.Equal(page.Items[0].Tags, []string{"a"}) || !slices.Equal(page.Items[1].Tags, []string{"a", "b"}) {
		t.Fatalf("ListTasks by tag after the migration = %+v, %v", page.Items, err)
	}

	// The tag filter is served by the GIN index once sequential scans are
	// off (the table is too small for the planner to choose it otherwise).
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	var plan string
	rows, err := tx.Query(ctx, `EXPLAIN SELECT id FROM `+b.n.task+` WHERE tags @> ARRAY[$1::text]`, "a")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan += line + "\n"
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "queue_task_tags") {
		t.Fatalf("tag filter plan does not use the tag index:\n%s", plan)
	}
}
