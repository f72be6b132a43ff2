package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// legacyRecord is a record as the build before 0002_task_policy wrote it:
// the policy and the interruption count inside metadata.
type legacyRecord struct {
	status   queuestype.Status
	metadata string // the stored metadata JSON
	// want: what the record reads back as after the migration.
	wantPolicy        queuestype.Policy
	wantInterruptions int
	wantMetadata      map[string]any
}

// TestMigratePolicyFromLegacyMetadata builds the schema of the previous
// version (0001 only), writes records in every status the way that build
// wrote them (policy keys and interruptions in metadata, next to user keys,
// some malformed), runs Migrate and checks that each record reads back with
// the policy queuestype.PolicyFromMetadata gives for its old metadata, the
// counter, its status and its user metadata without the moved keys; and
// that the migrated records then settle like new ones.
func TestMigratePolicyFromLegacyMetadata(t *testing.T) {
	b, pool := unmigratedBackend(t)
	ctx := t.Context()

	// The previous schema: 0001 only, recorded in the ledger as Migrate did.
	applyFirstMigrations(t, b, pool, 1, "0002_task_policy")

	yes, no := true, false
	full := `{"timeout": 1.5, "retry_backoff": {"initial_delay": 2, "multiplier": 1.5, "max_delay": 60},
		"requeue_on_stale": false, "requeue_on_shutdown": true, "log_level": "debug", "log_success": true,
		"description": "sends mail", "_correlation_id": "req-7", "unique_by": "arguments", "unique_version": "v1",
		"unique_until": "forever", "interruptions": 2, "tenant": "t1", "nested": {"a": [1, "x", null]}}`
	fullPolicy := queuestype.Policy{
		Timeout:           1500 * time.Millisecond,
		RetryBackoff:      queuestype.RetryBackoff{InitialDelay: 2 * time.Second, Multiplier: 1.5, MaxDelay: time.Minute},
		NoStaleRequeue:    true,
		RequeueOnShutdown: &yes,
		LogLevel:          "debug", LogSuccess: true, Description: "sends mail", CorrelationID: "req-7",
		UniqueBy: "arguments", UniqueVersion: "v1", UniqueUntil: queuestype.UniqueForever,
	}
	userOnly := map[string]any{"tenant": "t1", "nested": map[string]any{"a": []any{1.0, "x", nil}}}
	cases := []legacyRecord{}
	// Every status carries the full legacy set.
	for _, s := range queuestype.AllStatuses {
		cases = append(cases, legacyRecord{status: s, metadata: full, wantPolicy: fullPolicy, wantInterruptions: 2, wantMetadata: userOnly})
	}
	// The forms an earlier engine wrote, and malformed values it ignored.
	cases = append(cases,
		legacyRecord{status: queuestype.StatusPending,
			metadata:          `{"retry_backoff": {"initial_delay": 0.25, "multiplier": 1, "max_delay": null}, "requeue_on_stale": true, "requeue_on_shutdown": false, "log_success": false, "unique_until": "terminal", "interruptions": 1.9, "k": 1}`,
			wantPolicy:        queuestype.Policy{RetryBackoff: queuestype.RetryBackoff{InitialDelay: 250 * time.Millisecond, Multiplier: 1}, RequeueOnShutdown: &no, UniqueUntil: "terminal"},
			wantInterruptions: 1, wantMetadata: map[string]any{"k": 1.0}},
		legacyRecord{status: queuestype.StatusRunning,
			metadata:   `{"timeout": "abc", "retry_backoff": "fast", "requeue_on_stale": "no", "requeue_on_shutdown": 1, "log_level": 3, "description": "", "unique_version": 2, "interruptions": "two", "progress_detail": {"step": 1}}`,
			wantPolicy: queuestype.Policy{}, wantInterruptions: 0, wantMetadata: map[string]any{"progress_detail": map[string]any{"step": 1.0}}},
		legacyRecord{status: queuestype.StatusScheduled,
			metadata:   `{"timeout": -1, "retry_backoff": {"initial_delay": -2, "multiplier": 0.5, "max_delay": 0}, "_correlation_id": "c", "unique_version": ""}`,
			wantPolicy: queuestype.Policy{CorrelationID: "c"}, wantMetadata: map[string]any{}},
		legacyRecord{status: queuestype.StatusRunning,
			metadata:   `{"retry_backoff": {"multiplier": 3}, "timeout": 0.000001, "interruptions": 3}`,
			wantPolicy: queuestype.Policy{Timeout: time.Microsecond, RetryBackoff: queuestype.RetryBackoff{Multiplier: 3}}, wantInterruptions: 3, wantMetadata: map[string]any{}},
		legacyRecord{status: queuestype.StatusCompleted, metadata: `{"only": "user"}`, wantMetadata: map[string]any{"only": "user"}},
		legacyRecord{status: queuestype.StatusFailed, metadata: `{}`, wantMetadata: map[string]any{}},
	)

	ids := make([]uuid.UUID, len(cases))
	for i, c := range cases {
		// The test's expectations must be PolicyFromMetadata's reading.
		var md map[string]any
		if err := json.Unmarshal([]byte(c.metadata), &md); err != nil {
			t.Fatalf("case %d metadata: %v", i, err)
		}
		if got := queuestype.PolicyFromMetadata(md); !reflect.DeepEqual(got, c.wantPolicy) {
			t.Fatalf("case %d: PolicyFromMetadata = %+v, the test expects %+v", i, got, c.wantPolicy)
		}
		ids[i] = uuid.Must(uuid.NewV7())
		insertLegacy(t, b, ids[i], c.status, i, c.metadata)
	}

	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !slices.Equal(rep.AppliedNow, Versions()[1:]) {
		t.Fatalf("Migrate applied %v; want %v", rep.AppliedNow, Versions()[1:])
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}
	defer func() { _ = b.Close(context.Background()) }()

	for i, c := range cases {
		name := fmt.Sprintf("case %d (%s)", i, c.status)
		r, err := b.GetTask(ctx, ids[i])
		if err != nil {
			t.Fatalf("%s: GetTask: %v", name, err)
		}
		if r.Status != c.status {
			t.Errorf("%s: status %s", name, r.Status)
		}
		if !reflect.DeepEqual(r.Policy, c.wantPolicy) {
			t.Errorf("%s: policy %+v; want %+v", name, r.Policy, c.wantPolicy)
		}
		if r.Interruptions != c.wantInterruptions {
			t.Errorf("%s: interruptions %d; want %d", name, r.Interruptions, c.wantInterruptions)
		}
		if !reflect.DeepEqual(r.Metadata, c.wantMetadata) {
			t.Errorf("%s: metadata %v; want %v", name, r.Metadata, c.wantMetadata)
		}
		for _, k := range queuestype.LegacyMetadataKeys {
			if _, ok := r.Metadata[k]; ok {
				t.Errorf("%s: metadata still holds %q", name, k)
			}
		}
		// The stored text itself decodes to the same policy.
		var raw string
		if err := pool.QueryRow(ctx, `SELECT policy::text FROM `+b.n.task+` WHERE id = $1`, ids[i]).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if p, err := queuestype.DecodePolicy(raw); err != nil || !reflect.DeepEqual(p, c.wantPolicy) {
			t.Errorf("%s: stored policy %s decodes to %+v, %v", name, raw, p, err)
		}
		if got, want := r.AttemptsConsumed(), max(r.RetryCount-c.wantInterruptions, 0); got != want {
			t.Errorf("%s: attempts consumed %d; want %d", name, got, want)
		}
	}

	// Migrated records settle like new ones: the running record with two
	// interruptions is requeued as a third, the pending one is claimed and
	// completed.
	run := ids[slices.IndexFunc(cases, func(c legacyRecord) bool { return c.status == queuestype.StatusRunning })]
	res, err := b.Settle(ctx, []driver.Transition{{ID: run, Generation: 3, To: queuestype.StatusPending, Interrupted: true}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("Settle of a migrated running record: %v, %+v", err, res)
	}
	if r := res[0].Record; r.Interruptions != 3 || r.RetryCount != 4 || r.Status != queuestype.StatusPending || !reflect.DeepEqual(r.Policy, fullPolicy) {
		t.Fatalf("requeued migrated record: %+v", r)
	}
	pend := ids[0]
	c, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: pend, WorkerID: "w"})
	if err != nil || len(c.Claimed) != 1 {
		t.Fatalf("ClaimByID of a migrated pending record: %+v, %v", c, err)
	}
	res, err = b.Settle(ctx, []driver.Transition{{ID: pend, Generation: 3, To: queuestype.StatusCompleted, Result: json.RawMessage(`1`), Claimed: c.Claimed[0]}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("Settle completion of a migrated record: %v, %+v", err, res)
	}
	if got, _ := b.GetTask(ctx, pend); !reflect.DeepEqual(got, res[0].Record) {
		t.Fatalf("completed record %+v\nreads back as %+v", res[0].Record, got)
	}
}

// insertLegacy writes a record the way the build before 0002_task_policy
// did, with the status's timestamps; n varies the fields.
func insertLegacy(t *testing.T, b *Backend, id uuid.UUID, s queuestype.Status, n int, metadata string) {
	t.Helper()
	var sched, started, completed, beat, worker, result, errText any
	switch s {
	case queuestype.StatusScheduled:
		sched = "infinity"
	case queuestype.StatusRunning:
		started, beat, worker = "now", "now", "w-old"
	case queuestype.StatusCompleted:
		started, completed, worker, result = "now", "now", "w-old", `{"ok":true}`
	case queuestype.StatusFailed, queuestype.StatusCancelled:
		started, completed, worker, errText = "now", "now", "w-old", "boom"
	case queuestype.StatusExpired:
		completed = "now"
	}
	_, err := b.pool.Exec(t.Context(), `INSERT INTO `+b.n.task+` (id, task_name, args, queue, execution_backend, status, priority,
    max_retries, retry_count, scheduled_at, created_at, queued_at, started_at, completed_at, heartbeat_at, worker_id, result,
    error, task_key, metadata)
VALUES ($1, 'legacy.task', '{"n":1}', 'default', 'local', $2, $3, 5, 3, $4::timestamptz, now(), now(), $5::timestamptz,
    $6::timestamptz, $7::timestamptz, $8, $9::jsonb, $10, $11, $12::jsonb)`,
		id, string(s), n, sched, started, completed, beat, worker, result, errText, fmt.Sprintf("legacy:%d", n), metadata)
	if err != nil {
		t.Fatalf("insert legacy %s record: %v", s, err)
	}
}

// unmigratedBackend returns a backend on a schema of its own that does not
// exist yet (dropped when the test ends), and its pool.
func unmigratedBackend(t *testing.T) (*Backend, *pgxpool.Pool) {
	t.Helper()
	pool := internalPool(t)
	schema := "queues_mig_" + uuid.NewString()[:8]
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	b, err := New(pool, Options{Schema: schema, Namespace: "mig"})
	if err != nil {
		t.Fatal(err)
	}
	return b, pool
}

func TestFirstSearchPathSchema(t *testing.T) {
	for in, want := range map[string]string{
		`"$user", public`:            "public",
		`$user,app`:                  "app",
		`"$user",  "X y" , z`:        "X y",
		`"My ""Schema""", public`:    `My "Schema"`,
		`  spaced  ,x`:               "spaced",
		`"a,b"`:                      "a,b",
		``:                           "",
		`"$user"`:                    "",
		`"Queues Test ""ab""" , pub`: `Queues Test "ab"`,
	} {
		if got := firstSearchPathSchema(in); got != want {
			t.Errorf("firstSearchPathSchema(%q) = %q, want %q", in, got, want)
		}
	}
}
