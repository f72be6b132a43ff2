package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/queuesgo/queues/backend/sqlite"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// legacyMetadata are metadata documents as the previous schema stored them:
// policy keys and the interruption count mixed with the caller's own keys,
// including values of the wrong type and edge values, which the migration
// must treat exactly as queuestype.PolicyFromMetadata does.
var legacyMetadata = []string{
	// Every policy key, well-formed.
	`{"timeout":30,"retry_backoff":{"initial_delay":1.5,"multiplier":2,"max_delay":60},"requeue_on_stale":false,` +
		`"requeue_on_shutdown":true,"log_level":"debug","log_success":true,"description":"nightly report",` +
		`"_correlation_id":"corr-1","unique_by":"arguments","unique_version":"v1","unique_until":"forever","interruptions":2,` +
		`"user":"alice","nested":{"a":[1,2,{"b":null}]}}`,
	// Edge values: a float that needs 17 digits, a multiplier below 1 and
	// a negative cap (both dropped), requeue_on_stale true (the default),
	// requeue_on_shutdown false (kept: it overrides the worker),
	// log_success false, a numeric version (the version is a string such
	// as "v1", so it is dropped), a fractional count (truncated).
	`{"timeout":0.30000000000000004,"retry_backoff":{"multiplier":0.5,"max_delay":-1},"requeue_on_stale":true,` +
		`"requeue_on_shutdown":false,"log_success":false,"unique_version":2.7,"interruptions":1.9,"progress_detail":"half"}`,
	// Wrong types: every key is dropped from the policy, and still removed
	// from metadata.
	`{"timeout":"30","retry_backoff":5,"requeue_on_stale":"false","requeue_on_shutdown":"yes","log_level":3,` +
		`"log_success":"true","description":null,"_correlation_id":7,"unique_by":["task"],"unique_version":1,` +
		`"unique_until":null,"interruptions":"2","timeout_hint":"kept: not a policy key"}`,
	// Tiny and huge durations, a backoff with its delay only.
	`{"timeout":1e-12,"retry_backoff":{"initial_delay":0.001},"interruptions":0,"unique_until":"terminal","unique_by":"task","unique_version":""}`,
	`{"timeout":1e+300,"retry_backoff":{"initial_delay":3,"multiplier":1,"max_delay":1e+300},"description":"quote \" and \\ and ünïcode"}`,
	// Only the counter.
	`{"interruptions":3,"progress":0.5}`,
	// No legacy key at all: nothing moves.
	`{"user":"bob","n":1}`,
	`{}`,
}

// legacyRow is one record written with the previous schema's columns.
type legacyRow struct {
	id       uuid.UUID
	status   queuestype.Status
	metadata string
	key      string
}

// TestMigratePolicyFromMetadata builds a file with the previous schema
// (migration 0001 only), writes records in every status carrying legacy
// policy metadata and interruption counts the way the previous code did,
// opens it (which applies 0002) and checks that every record reads back
// with the policy PolicyFromMetadata gives, the counter, its status and
// generation, and its metadata minus exactly the legacy keys.
func TestMigratePolicyFromMetadata(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	rows := writePreviousSchema(t, path)

	b, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	dry, err := b.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dry.Applied, []string{"0001_create_queue_tasks"}) || !slices.Contains(dry.Pending, "0002_task_policy") {
		t.Fatalf("DryRun on the previous schema = %+v", dry)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open (migrates): %v", err)
	}
	if got := queueStrings(t, b, `SELECT version FROM queue_migration ORDER BY version`); !slices.Equal(got, sqlite.Versions()) {
		t.Fatalf("applied = %v, want %v", got, sqlite.Versions())
	}

	check := func(when string) {
		t.Helper()
		for _, r := range rows {
			var md map[string]any
			if err := json.Unmarshal([]byte(r.metadata), &md); err != nil {
				t.Fatal(err)
			}
			wantPolicy := queuestype.PolicyFromMetadata(md)
			wantInterruptions := 0
			if v, ok := md[queuestype.MetaInterruptions].(float64); ok {
				wantInterruptions = int(v)
			}
			wantMeta := queuestype.NormalizeMetadata(md)
			for _, k := range queuestype.LegacyMetadataKeys {
				delete(wantMeta, k)
			}

			rec, err := b.GetTask(ctx, r.id)
			if err != nil {
				t.Fatalf("%s: GetTask %s: %v", when, r.status, err)
			}
			name := fmt.Sprintf("%s: %s record with %s", when, r.status, r.metadata)
			if rec.Status != r.status || rec.RetryCount != 4 || rec.Key != r.key {
				t.Errorf("%s: status %s generation %d key %q, want %s 4 %q", name, rec.Status, rec.RetryCount, rec.Key, r.status, r.key)
			}
			if !reflect.DeepEqual(rec.Policy, wantPolicy) {
				t.Errorf("%s:\n policy %+v\n want   %+v", name, rec.Policy, wantPolicy)
			}
			if rec.Interruptions != wantInterruptions {
				t.Errorf("%s: interruptions %d, want %d", name, rec.Interruptions, wantInterruptions)
			}
			if !reflect.DeepEqual(rec.Metadata, wantMeta) {
				t.Errorf("%s:\n metadata %v\n want     %v", name, rec.Metadata, wantMeta)
			}
			// The stored text itself decodes with DecodePolicy.
			var text string
			if err := b.DB().QueryRowContext(ctx, `SELECT policy FROM queue_task WHERE id = ?`, r.id.String()).Scan(&text); err != nil {
				t.Fatal(err)
			}
			if p, err := queuestype.DecodePolicy(text); err != nil || !reflect.DeepEqual(p, wantPolicy) {
				t.Errorf("%s: stored policy %s decodes to %+v, %v; want %+v", name, text, p, err, wantPolicy)
			}
		}
	}
	check("after migration")

	// Closing and opening again applies nothing and changes nothing.
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || len(rep.AppliedNow) != 0 {
		t.Fatalf("second Migrate = %+v, %v", rep, err)
	}
	check("after reopening")

	// The migrated records work with the new code. A migrated forever
	// holder (unique_until was in its metadata) keeps its key for forever
	// enqueues once its reservation is gone.
	holder := rows[0] // pending, every policy key, unique_until forever
	if holder.status != queuestype.StatusPending || holder.key == "" {
		t.Fatalf("fixture: first row is %s with key %q", holder.status, holder.key)
	}
	out, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "t", Key: holder.key, Forever: true}})
	if err != nil {
		t.Fatal(err)
	}
	if o := out[0]; o.Err != nil || !o.Existing || o.Record == nil || o.Record.ID != holder.id {
		t.Fatalf("forever enqueue over a migrated forever holder = %+v (err %v), want the holder", o, o.Err)
	}
	// A migrated non-forever holder still conflicts.
	plain := rows[len(legacyMetadata)-1] // pending, metadata {}
	if plain.status != queuestype.StatusPending || plain.key == "" {
		t.Fatalf("fixture: row is %s with key %q", plain.status, plain.key)
	}
	out, err = b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "t", Key: plain.key, Forever: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(out[0].Err, queuestype.ErrIdentityConflict) {
		t.Fatalf("forever enqueue over a migrated plain holder = %+v, want ErrIdentityConflict", out[0])
	}

	// The migrated running records are interrupted through the new
	// counter (2 before, from metadata) and metadata stays free of it.
	var running legacyRow
	for _, r := range rows {
		if r.status == queuestype.StatusRunning && r.metadata == legacyMetadata[0] {
			running = r
		}
	}
	res, err := b.Settle(ctx, []driver.Transition{{ID: running.id, Generation: 4, To: queuestype.StatusPending, Interrupted: true, WorkerID: "old-worker"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	rec := res[0].Record
	if rec.Status != queuestype.StatusPending || rec.WorkerID != "" {
		t.Fatalf("interrupted migrated record: status %s worker %q, want pending and no worker", rec.Status, rec.WorkerID)
	}
	if rec.Interruptions != 3 || rec.RetryCount != 5 || rec.AttemptsConsumed() != 2 {
		t.Fatalf("interrupted migrated record: interruptions %d generation %d consumed %d, want 3 5 2",
			rec.Interruptions, rec.RetryCount, rec.AttemptsConsumed())
	}
	if _, ok := rec.Metadata[queuestype.MetaInterruptions]; ok {
		t.Fatalf("the interruption wrote metadata.interruptions: %v", rec.Metadata)
	}
	if got, err := b.GetTask(ctx, running.id); err != nil || !reflect.DeepEqual(got, rec) {
		t.Fatalf("GetTask after the interruption = %+v, %v; Settle returned %+v", got, err, rec)
	}
}

// writePreviousSchema creates path with the previous schema (the SQL of
// migration 0001, recorded in the ledger as the previous code did) and
// writes one record per status and legacy metadata document, with the
// previous code's column list. Rows come back in status order, then
// document order; pending rows hold keys.
func writePreviousSchema(t *testing.T, path string) []legacyRow {
	t.Helper()
	ctx := context.Background()
	ddl, err := os.ReadFile(filepath.Join("migrations", "0001_create_queue_tasks.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, string(ddl)); err != nil {
		t.Fatalf("previous schema: %v", err)
	}
	now := time.Now().UnixMicro()
	if _, err := db.ExecContext(ctx, `INSERT INTO queue_migration (version, applied_at) VALUES ('0001_create_queue_tasks', ?)`, now); err != nil {
		t.Fatal(err)
	}
	// The previous code's INSERT: the 23 columns of 0001.
	const insert = `INSERT INTO queue_task (id, task_name, args, queue, execution_backend, execution_profile, execution_ref, worker_id,
status, priority, max_retries, retry_count, scheduled_at, expires_at, created_at, queued_at, started_at,
completed_at, heartbeat_at, result, error, task_key, metadata)
VALUES (?, 'legacy.task', '{"x":1}', 'default', 'local', NULL, NULL, ?, ?, 3, 9, 4, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	var rows []legacyRow
	for _, status := range queuestype.AllStatuses {
		for i, md := range legacyMetadata {
			r := legacyRow{id: uuid.New(), status: status, metadata: md}
			var worker, scheduled, started, completed, heartbeat, result, errText, key any
			switch status {
			case queuestype.StatusPending:
				r.key = fmt.Sprintf("legacy-key-%d", i)
				key = r.key
			case queuestype.StatusScheduled:
				scheduled = now + int64(time.Hour/time.Microsecond)
			case queuestype.StatusRunning:
				worker, started, heartbeat = "old-worker", now, now
			case queuestype.StatusCompleted:
				worker, started, completed, result = "old-worker", now, now, `{"ok":true}`
			case queuestype.StatusFailed:
				worker, started, completed, errText = "old-worker", now, now, "boom"
			case queuestype.StatusCancelled, queuestype.StatusExpired:
				completed = now
			}
			if _, err := db.ExecContext(ctx, insert, r.id.String(), worker, string(status), scheduled, now, now,
				started, completed, heartbeat, result, errText, key, md); err != nil {
				t.Fatalf("insert %s record: %v", status, err)
			}
			rows = append(rows, r)
		}
	}
	return rows
}
