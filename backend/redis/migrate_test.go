package redis

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
	goredis "github.com/redis/go-redis/v9"
)

// legacyCase is one record written in the layout-1 form, with what it must
// read back as after the migration.
type legacyCase struct {
	name   string
	id     uuid.UUID
	status queuestype.Status
	// merged is the metadata a layout-1 reader saw (base plus overlays):
	// the policy must be what PolicyFromMetadata reads from it.
	merged        map[string]any
	interruptions int
	userMeta      map[string]any // the metadata left after the migration
	overlaysLeft  bool           // user overlay fields remain (mo kept)
}

// toLayout1 rewrites a record written by this build into the form a
// layout-1 build wrote: no policy or interruptions field; interruptions
// counted in the "m:interruptions" overlay field (as layout-1 Interrupt
// wrote it).
func toLayout1(t *testing.T, c goredis.UniversalClient, b *Backend, id uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	k := b.taskKey(id)
	f, err := c.HMGet(ctx, k, "policy", "interruptions").Result()
	if err != nil {
		t.Fatal(err)
	}
	if f[0] != nil {
		t.Fatalf("set-up: record %s has a policy field %v", id, f[0])
	}
	if s, ok := f[1].(string); ok && s != "" {
		if err := c.HSet(ctx, k, "m:interruptions", s, "mo", "1").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.HDel(ctx, k, "interruptions").Err(); err != nil {
		t.Fatal(err)
	}
}

// buildLayout1 writes one layout-1 record in every status on b's prefix
// (plus records without legacy keys), sets the layout version to "1" and
// returns the cases. Records are written by this build's own writes with
// the policy keys in the metadata (a layout-1 engine put them there) and
// then brought to the layout-1 form by toLayout1.
func buildLayout1(t *testing.T, c goredis.UniversalClient, b *Backend) []*legacyCase {
	t.Helper()
	ctx := context.Background()
	enq := func(p driver.EnqueueParams) *queuestype.Record {
		t.Helper()
		if p.TaskName == "" {
			p.TaskName = "legacy.task"
		}
		outs, err := b.Enqueue(ctx, []driver.EnqueueParams{p})
		if err != nil || outs[0].Err != nil || outs[0].Record == nil {
			t.Fatalf("Enqueue: %v %+v", err, outs)
		}
		return outs[0].Record
	}
	claim := func(id uuid.UUID) *queuestype.Record {
		t.Helper()
		res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: id, WorkerID: "w1"})
		if err != nil || len(res.Claimed) != 1 {
			t.Fatalf("ClaimByID(%s): %v %+v", id, err, res)
		}
		return res.Claimed[0]
	}
	settle := func(tr driver.Transition) *queuestype.Record {
		t.Helper()
		rs, err := b.Settle(ctx, []driver.Transition{tr})
		if err != nil || rs[0].Err != nil {
			t.Fatalf("Settle %s as %s: %v %+v", tr.ID, tr.To, err, rs)
		}
		return rs[0].Record
	}
	var cases []*legacyCase

	// pending: every policy key in the base metadata, next to user keys.
	pendMeta := map[string]any{
		"timeout": 30.0, "retry_backoff": map[string]any{"initial_delay": 2.0, "multiplier": 3.0, "max_delay": 60.0},
		"requeue_on_stale": false, "description": "sends mail", "_correlation_id": "req-1", "log_level": "warning",
		"log_success": true, "tenant": "t1", "nested": map[string]any{"a": []any{1.0, "x"}},
	}
	r := enq(driver.EnqueueParams{Metadata: pendMeta, MaxRetries: 3})
	cases = append(cases, &legacyCase{name: "pending", id: r.ID, status: queuestype.StatusPending, merged: pendMeta,
		userMeta: map[string]any{"tenant": "t1", "nested": map[string]any{"a": []any{1.0, "x"}}}})

	// scheduled: identity policy keys; a large integer user value keeps its digits.
	schedMeta := map[string]any{"requeue_on_shutdown": true, "unique_by": "arguments", "unique_version": "v2",
		"unique_until": "terminal", "big": json.Number("12345678901234567890")}
	r = enq(driver.EnqueueParams{Metadata: schedMeta, Key: "k-sched", ScheduledAt: time.Now().Add(time.Hour)})
	cases = append(cases, &legacyCase{name: "scheduled", id: r.ID, status: queuestype.StatusScheduled,
		merged:   map[string]any{"requeue_on_shutdown": true, "unique_by": "arguments", "unique_version": "v2", "unique_until": "terminal", "big": 12345678901234567890.0},
		userMeta: map[string]any{"big": 12345678901234567890.0}})

	// running: interrupted once (counted in the m:interruptions overlay),
	// claimed again; a heartbeat patch wrote a policy key and a user key
	// as overlay fields.
	runMeta := map[string]any{"log_level": "info", "timeout": 5.0, "keep": "me"}
	r = enq(driver.EnqueueParams{Metadata: runMeta})
	run := claim(r.ID)
	settle(driver.Transition{ID: r.ID, Generation: run.RetryCount, To: queuestype.StatusPending, Interrupted: true, WorkerID: "w1"})
	toLayout1(t, c, b, r.ID)
	claim(r.ID)
	if _, err := b.TouchHeartbeats(ctx, []driver.HeartbeatTouch{{ID: r.ID, MetadataPatch: map[string]any{"progress": 0.5, "log_level": "debug"}}}); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, &legacyCase{name: "running", id: r.ID, status: queuestype.StatusRunning,
		merged:        map[string]any{"log_level": "debug", "timeout": 5.0, "keep": "me", "progress": 0.5, "interruptions": 1.0},
		interruptions: 1, userMeta: map[string]any{"keep": "me", "progress": 0.5}, overlaysLeft: true})

	// completed (by the hot path): interruptions in the base metadata (an
	// even earlier form) and an overlay holding only a policy key.
	compMeta := map[string]any{"interruptions": 2.0, "log_success": false, "description": "d"}
	r = enq(driver.EnqueueParams{Metadata: compMeta})
	run = claim(r.ID)
	if _, err := b.TouchHeartbeats(ctx, []driver.HeartbeatTouch{{ID: r.ID, MetadataPatch: map[string]any{"_correlation_id": "c-9"}}}); err != nil {
		t.Fatal(err)
	}
	settle(driver.Transition{ID: r.ID, Generation: run.RetryCount, To: queuestype.StatusCompleted, Claimed: run, Result: json.RawMessage(`{"ok":true}`)})
	cases = append(cases, &legacyCase{name: "completed", id: r.ID, status: queuestype.StatusCompleted,
		merged:        map[string]any{"interruptions": 2.0, "log_success": false, "description": "d", "_correlation_id": "c-9"},
		interruptions: 2, userMeta: map[string]any{}})

	// failed
	failMeta := map[string]any{"timeout": 1.5, "retry_backoff": map[string]any{"initial_delay": 0.25}, "x": 1.0}
	r = enq(driver.EnqueueParams{Metadata: failMeta})
	run = claim(r.ID)
	settle(driver.Transition{ID: r.ID, Generation: run.RetryCount, To: queuestype.StatusFailed, Error: "boom"})
	cases = append(cases, &legacyCase{name: "failed", id: r.ID, status: queuestype.StatusFailed, merged: failMeta,
		userMeta: map[string]any{"x": 1.0}})

	// cancelled
	cancMeta := map[string]any{"requeue_on_stale": true, "requeue_on_shutdown": false, "who": "ops"}
	r = enq(driver.EnqueueParams{Metadata: cancMeta})
	if _, err := b.Cancel(ctx, driver.CancelParams{ID: r.ID}); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, &legacyCase{name: "cancelled", id: r.ID, status: queuestype.StatusCancelled, merged: cancMeta,
		userMeta: map[string]any{"who": "ops"}})

	// expired
	expMeta := map[string]any{"log_level": "error", "unique_by": "task", "unique_version": "v1"}
	r = enq(driver.EnqueueParams{Metadata: expMeta, ExpiresAt: time.Now().Add(-time.Second)})
	if got, err := b.ExpireOverdue(ctx, 10); err != nil || len(got) != 1 || got[0].ID != r.ID {
		t.Fatalf("ExpireOverdue: %v %+v", err, got)
	}
	cases = append(cases, &legacyCase{name: "expired", id: r.ID, status: queuestype.StatusExpired, merged: expMeta,
		userMeta: map[string]any{}})

	// pending with a forever key known only from its metadata (no forever
	// field): after the migration the policy says forever.
	fvMeta := map[string]any{"unique_until": "forever", "unique_by": "task"}
	r = enq(driver.EnqueueParams{Metadata: fvMeta, Key: "k-forever"})
	cases = append(cases, &legacyCase{name: "forever", id: r.ID, status: queuestype.StatusPending, merged: fvMeta,
		userMeta: map[string]any{}})

	// No legacy keys: left exactly as it is (overlay included).
	r = enq(driver.EnqueueParams{Metadata: map[string]any{"a": 1.0}})
	claim(r.ID)
	if _, err := b.TouchHeartbeats(ctx, []driver.HeartbeatTouch{{ID: r.ID, MetadataPatch: map[string]any{"step": "two"}}}); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, &legacyCase{name: "user-only", id: r.ID, status: queuestype.StatusRunning,
		merged: map[string]any{"a": 1.0, "step": "two"}, userMeta: map[string]any{"a": 1.0, "step": "two"}, overlaysLeft: true})
	r = enq(driver.EnqueueParams{})
	cases = append(cases, &legacyCase{name: "no-metadata", id: r.ID, status: queuestype.StatusPending,
		merged: map[string]any{}, userMeta: map[string]any{}})

	for _, lc := range cases {
		toLayout1(t, c, b, lc.id)
	}
	if err := c.Set(ctx, b.prefix+":version", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// checkMigrated checks every case reads back with the policy, counter,
// status and user metadata it must have, and that the raw hash holds no
// legacy key.
func checkMigrated(t *testing.T, c goredis.UniversalClient, b *Backend, cases []*legacyCase) {
	t.Helper()
	ctx := context.Background()
	if v := c.Get(ctx, b.prefix+":version").Val(); v != LayoutVersion {
		t.Fatalf("layout version after migration = %q, want %q", v, LayoutVersion)
	}
	ids := make([]uuid.UUID, len(cases))
	for i, lc := range cases {
		ids[i] = lc.id
	}
	batch, err := b.GetTasks(ctx, ids)
	if err != nil || len(batch) != len(cases) {
		t.Fatalf("GetTasks: %v, %d records", err, len(batch))
	}
	for i, lc := range cases {
		want := queuestype.PolicyFromMetadata(lc.merged)
		raw := c.HGetAll(ctx, b.taskKey(lc.id)).Val()
		if want.IsZero() {
			if _, ok := raw["policy"]; ok {
				t.Errorf("%s: zero policy stored as %q", lc.name, raw["policy"])
			}
		} else {
			stored, err := queuestype.DecodePolicy(raw["policy"])
			if err != nil || !reflect.DeepEqual(stored, want) {
				t.Errorf("%s: stored policy %q decodes to %+v, %v; want %+v", lc.name, raw["policy"], stored, err, want)
			}
		}
		for _, k := range queuestype.LegacyMetadataKeys {
			if _, ok := raw["m:"+k]; ok {
				t.Errorf("%s: overlay field m:%s left", lc.name, k)
			}
		}
		if _, ok := raw["mo"]; ok != lc.overlaysLeft {
			t.Errorf("%s: mo field present = %v, want %v", lc.name, ok, lc.overlaysLeft)
		}
		var base map[string]any
		if s := raw["metadata"]; s != "" {
			if err := json.Unmarshal([]byte(s), &base); err != nil {
				t.Fatalf("%s: metadata field %q: %v", lc.name, s, err)
			}
		}
		for _, k := range queuestype.LegacyMetadataKeys {
			if _, ok := base[k]; ok {
				t.Errorf("%s: metadata field still holds %s: %s", lc.name, k, raw["metadata"])
			}
		}
		got, err := b.GetTask(ctx, lc.id)
		if err != nil {
			t.Fatalf("%s: GetTask: %v", lc.name, err)
		}
		for label, rec := range map[string]*queuestype.Record{"GetTask": got, "GetTasks": batch[i]} {
			if rec.ID != lc.id || rec.Status != lc.status {
				t.Errorf("%s (%s): id %s status %s, want %s %s", lc.name, label, rec.ID, rec.Status, lc.id, lc.status)
			}
			if !reflect.DeepEqual(rec.Policy, want) {
				t.Errorf("%s (%s): policy %+v, want %+v", lc.name, label, rec.Policy, want)
			}
			if rec.Interruptions != lc.interruptions {
				t.Errorf("%s (%s): interruptions %d, want %d", lc.name, label, rec.Interruptions, lc.interruptions)
			}
			if !reflect.DeepEqual(rec.Metadata, lc.userMeta) {
				t.Errorf("%s (%s): metadata %v, want %v", lc.name, label, rec.Metadata, lc.userMeta)
			}
		}
	}
	// The big integer kept its digits in the stored text.
	for _, lc := range cases {
		if lc.name == "scheduled" {
			if s := c.HGet(ctx, b.taskKey(lc.id), "metadata").Val(); s != `{"big":12345678901234567890}` {
				t.Errorf("scheduled: metadata field %s", s)
			}
		}
	}
}

// snapshot reads every record hash of the cases.
func snapshot(t *testing.T, c goredis.UniversalClient, b *Backend, cases []*legacyCase) map[uuid.UUID]map[string]string {
	t.Helper()
	out := map[uuid.UUID]map[string]string{}
	for _, lc := range cases {
		out[lc.id] = c.HGetAll(context.Background(), b.taskKey(lc.id)).Val()
	}
	return out
}

// testMigrateLayout1 builds layout-1 records in every status on a fresh
// prefix of c, migrates them with Migrate, checks them, checks a second
// run changes nothing, and checks the migrated records behave: the
// interrupted one keeps counting, the forever key is honoured.
func testMigrateLayout1(t *testing.T, c goredis.UniversalClient) {
	ctx := context.Background()
	b, err := New(c, Options{Prefix: randName("p"), Namespace: randName("ns")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close(context.Background())
		_ = deletePrefix(context.Background(), c, b.prefix)
	})
	cases := buildLayout1(t, c, b)
	before := snapshot(t, c, b, cases)

	rep, err := b.Migrate(ctx, driver.MigrateOptions{DryRun: true})
	if err != nil || !reflect.DeepEqual(rep.Pending, []string{migrationPolicy, migrationDispatch}) || !reflect.DeepEqual(rep.Applied, []string{migrationLayout}) {
		t.Fatalf("Migrate(dry run) on layout 1 = %+v, %v", rep, err)
	}
	if after := snapshot(t, c, b, cases); !reflect.DeepEqual(after, before) {
		t.Fatal("a dry run changed records")
	}
	rep, err = b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || !reflect.DeepEqual(rep.AppliedNow, []string{migrationPolicy, migrationDispatch}) || len(rep.Applied) != 3 {
		t.Fatalf("Migrate on layout 1 = %+v, %v", rep, err)
	}
	checkMigrated(t, c, b, cases)
	for _, lc := range cases {
		if lc.name == "user-only" || lc.name == "no-metadata" {
			if got := c.HGetAll(ctx, b.taskKey(lc.id)).Val(); !reflect.DeepEqual(got, before[lc.id]) {
				t.Errorf("%s: a record without legacy keys changed: %v → %v", lc.name, before[lc.id], got)
			}
		}
	}

	// A migration cut short is finished by the next run; records already
	// migrated are left as they are.
	migrated := snapshot(t, c, b, cases)
	if err := c.Set(ctx, b.prefix+":version", layoutMigrating, 0).Err(); err != nil {
		t.Fatal(err)
	}
	rep, err = b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || !reflect.DeepEqual(rep.AppliedNow, []string{migrationPolicy, migrationDispatch}) {
		t.Fatalf("Migrate on a migration cut short = %+v, %v", rep, err)
	}
	if again := snapshot(t, c, b, cases); !reflect.DeepEqual(again, migrated) {
		t.Fatalf("a second migration changed records:\n%v\n%v", migrated, again)
	}
	rep, err = b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil || len(rep.AppliedNow) != 0 || len(rep.Applied) != 3 {
		t.Fatalf("Migrate on layout 3 = %+v, %v", rep, err)
	}

	byName := map[string]*legacyCase{}
	for _, lc := range cases {
		byName[lc.name] = lc
	}
	// The running record's counter goes on from the migrated value.
	run := byName["running"]
	rs, err := b.Settle(ctx, []driver.Transition{{ID: run.id, Generation: 1, To: queuestype.StatusPending, Interrupted: true, WorkerID: "w1"}})
	if err != nil || rs[0].Err != nil {
		t.Fatalf("interruption after migration: %v %+v", err, rs)
	}
	if got := rs[0].Record; got.Interruptions != 2 || got.RetryCount != 2 || got.AttemptsConsumed() != 0 || got.Status != queuestype.StatusPending {
		t.Fatalf("interruption after migration = %+v; want pending, interruptions 2, retry_count 2", got)
	}
	// The forever key is known from the policy: a forever enqueue of the
	// same key returns the record instead of an identity conflict.
	outs, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "legacy.task", Key: "k-forever", Forever: true}})
	if err != nil || outs[0].Err != nil || !outs[0].Existing || outs[0].Record == nil || outs[0].Record.ID != byName["forever"].id {
		t.Fatalf("forever enqueue over a migrated forever record = %+v, %v", outs, err)
	}
	// A terminal-only key is not forever: the same enqueue is a conflict.
	outs, err = b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "legacy.task", Key: "k-sched", Forever: true}})
	if err != nil || !errors.Is(outs[0].Err, queuestype.ErrIdentityConflict) {
		t.Fatalf("forever enqueue over a migrated terminal-key record = %+v, %v; want ErrIdentityConflict", outs, err)
	}
}

// TestMigrateLayout1Policies builds layout-1 records in every status
// (pending, scheduled, running, completed, failed, cancelled, expired)
// carrying policy keys and interruptions in their metadata and overlay
// fields, runs Migrate, and checks each reads back with the policy
// PolicyFromMetadata gives, its interruptions counter, its status and only
// its user metadata.
func TestMigrateLayout1Policies(t *testing.T) {
	requireServer(t)
	testMigrateLayout1(t, admin)
}

// TestOpenMigratesLayout1 checks Open migrates a layout-1 prefix, and that
// a build of layout 1 would refuse the prefix afterwards (the version is no
// longer "1").
func TestOpenMigratesLayout1(t *testing.T) {
	b := newTestBackend(t, Options{})
	cases := buildLayout1(t, admin, b)
	ctx := context.Background()
	other, err := New(admin, Options{Prefix: b.prefix[1 : len(b.prefix)-1], Namespace: randName("ns")})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Open(ctx); err != nil {
		t.Fatalf("Open on layout 1: %v", err)
	}
	defer other.Close(ctx)
	checkMigrated(t, admin, other, cases)
}

// TestClusterMigrateLayout1 runs the migration through a
// *redis.ClusterClient: its SCAN runs inside a script, on the node that
// holds the prefix's slot.
func TestClusterMigrateLayout1(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster run skipped in -short mode")
	}
	addrs := clusterAddrs(t)
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = client.Close() })
	testMigrateLayout1(t, client)
}

// TestMigrateManyRecords migrates more records than one SCAN step and one
// apply call hold, and checks each.
func TestMigrateManyRecords(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	const n = 1500
	items := make([]driver.EnqueueParams, n)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: "many", Metadata: map[string]any{"i": float64(i), "timeout": float64(i%7 + 1), "interruptions": float64(i % 3)}}
	}
	outs, err := b.Enqueue(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Set(ctx, b.prefix+":version", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Migrate(ctx, driver.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, n)
	for i, o := range outs {
		ids[i] = o.Record.ID
	}
	recs, err := b.GetTasks(ctx, ids)
	if err != nil || len(recs) != n {
		t.Fatalf("GetTasks: %v, %d", err, len(recs))
	}
	for i, r := range recs {
		if r.Policy.Timeout != time.Duration(i%7+1)*time.Second || r.Interruptions != i%3 ||
			!reflect.DeepEqual(r.Metadata, map[string]any{"i": float64(i)}) {
			t.Fatalf("record %d: policy %+v interruptions %d metadata %v", i, r.Policy, r.Interruptions, r.Metadata)
		}
	}
}

// TestMigrateRereadsChangedRecord checks a record written between the
// migration's read and its write is not overwritten with what was read: the
// write is refused, the record read again and migrated as it is now.
func TestMigrateRereadsChangedRecord(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := context.Background()
	outs, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "race", Metadata: map[string]any{"log_level": "info", "u": 1.0}}})
	if err != nil {
		t.Fatal(err)
	}
	id := outs[0].Record.ID
	res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: id, WorkerID: "w"})
	if err != nil || len(res.Claimed) != 1 {
		t.Fatalf("ClaimByID: %v %+v", err, res)
	}
	read := admin.HGetAll(ctx, b.taskKey(id)).Val()
	// A heartbeat lands after the read: a user key and a policy key.
	if _, err := b.TouchHeartbeats(ctx, []driver.HeartbeatTouch{{ID: id, MetadataPatch: map[string]any{"v": "late", "log_level": "debug"}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.migrateRecords(ctx, map[string]map[string]string{id.String(): read}); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetTask(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Policy.LogLevel != "debug" || !reflect.DeepEqual(got.Metadata, map[string]any{"u": 1.0, "v": "late"}) {
		t.Fatalf("after a migration that raced a heartbeat: policy %+v metadata %v", got.Policy, got.Metadata)
	}
	// A record that already has a policy field is left alone.
	before := admin.HGetAll(ctx, b.taskKey(id)).Val()
	stale := map[string]string{"id": id.String(), "metadata": `{"timeout":9}`}
	if err := b.migrateRecords(ctx, map[string]map[string]string{id.String(): stale}); err != nil {
		t.Fatal(err)
	}
	if after := admin.HGetAll(ctx, b.taskKey(id)).Val(); !reflect.DeepEqual(after, before) {
		t.Fatalf("a record with a policy field was rewritten: %v → %v", before, after)
	}
}
