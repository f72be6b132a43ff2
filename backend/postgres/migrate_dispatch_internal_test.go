package postgres

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestMigrateDispatchUntilFromMarkers builds the schema of the previous
// version (0001 and 0002), writes records the way that build reserved them
// (the marker "__queues_dispatching__:<unix deadline>:<uuid>" in
// execution_ref) next to ordinary ones, runs Migrate and checks that each
// reserved record holds its marker's deadline as DispatchUntil and is still
// skipped by claims and ListPending, that the others hold none, and that a
// migrated reservation is released like a new one.
func TestMigrateDispatchUntilFromMarkers(t *testing.T) {
	b, pool := unmigratedBackend(t)
	ctx := t.Context()

	applyFirstMigrations(t, b, pool, 2, "0003_dispatch_until")

	deadline := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)
	marker := "__queues_dispatching__:" + strconv.FormatInt(deadline.Unix(), 10) + ":" + uuid.NewString()
	past := time.Unix(1_700_000_000, 0).UTC()
	pastMarker := "__queues_dispatching__:" + strconv.FormatInt(past.Unix(), 10) + ":" + uuid.NewString()
	cases := []struct {
		name   string
		status queuestype.Status
		ref    string
		want   time.Time // zero: no reservation
	}{
		{"reserved", queuestype.StatusPending, marker, deadline},
		{"reserved, lapsed", queuestype.StatusPending, pastMarker, past},
		{"reserved, unreadable deadline", queuestype.StatusPending, "__queues_dispatching__:soon:x", time.Unix(0, 0).UTC()},
		{"plain pending", queuestype.StatusPending, "", time.Time{}},
		{"finalized ref", queuestype.StatusPending, "cloudrun:exec-1", time.Time{}},
		{"running external", queuestype.StatusRunning, "cloudrun:exec-2", time.Time{}},
		{"completed with a marker", queuestype.StatusCompleted, "__queues_dispatching__:" + strconv.FormatInt(deadline.Unix(), 10) + ":y", time.Time{}},
	}
	ids := make([]uuid.UUID, len(cases))
	for i, c := range cases {
		ids[i] = uuid.New()
		var started, completed any
		switch c.status {
		case queuestype.StatusRunning:
			started = "now"
		case queuestype.StatusCompleted:
			started, completed = "now", "now"
		}
		_, err := pool.Exec(ctx, `INSERT INTO `+b.n.task+` (id, task_name, queue, execution_backend, execution_ref, status,
    created_at, queued_at, started_at, completed_at)
VALUES ($1, 'legacy.dispatch', 'default', 'cloudrun', nullif($2, ''), $3, now() - interval '1 minute', now() - interval '1 minute',
    $4::timestamptz, $5::timestamptz)`, ids[i], c.ref, string(c.status), started, completed)
		if err != nil {
			t.Fatalf("insert %s: %v", c.name, err)
		}
	}

	rep, err := b.Migrate(ctx, driver.MigrateOptions{})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if len(rep.AppliedNow) != 5 || rep.AppliedNow[0] != "0003_dispatch_until" || rep.AppliedNow[1] != "0004_workers" ||
		rep.AppliedNow[2] != "0005_schedule_pauses" || rep.AppliedNow[3] != "0006_snooze_errors" || rep.AppliedNow[4] != "0007_tags" {
		t.Fatalf("Migrate applied %v; want [0003_dispatch_until 0004_workers 0005_schedule_pauses 0006_snooze_errors 0007_tags]", rep.AppliedNow)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatalf("Open after Migrate: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })

	for i, c := range cases {
		r, err := b.GetTask(ctx, ids[i])
		if err != nil {
			t.Fatalf("%s: GetTask: %v", c.name, err)
		}
		if !r.DispatchUntil.Equal(c.want) {
			t.Errorf("%s: DispatchUntil %v; want %v", c.name, r.DispatchUntil, c.want)
		}
		if r.ExecutionRef != c.ref || r.Status != c.status {
			t.Errorf("%s: ref %q status %s; want %q %s", c.name, r.ExecutionRef, r.Status, c.ref, c.status)
		}
	}

	// Reserved records stay out of ListPending and of every claim.
	pending, err := b.ListPending(ctx, driver.ListPendingParams{})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[uuid.UUID]bool{}
	for _, r := range pending {
		listed[r.ID] = true
	}
	for i, c := range cases[:3] {
		if listed[ids[i]] {
			t.Errorf("%s: ListPending lists a reserved record", c.name)
		}
		ref := c.ref
		res, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: ids[i], WorkerID: "w", ExpectedRef: &ref})
		if err != nil || len(res.Claimed) != 0 || len(res.Expired) != 0 {
			t.Errorf("%s: ClaimByID = %+v, %v; want nothing", c.name, res, err)
		}
	}
	if !listed[ids[3]] || !listed[ids[4]] {
		t.Errorf("ListPending = %d records; want the plain and the finalized one", len(pending))
	}
	res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: 100, WorkerID: "w", ExpireOverdue: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Claimed {
		for i, c := range cases[:3] {
			if r.ID == ids[i] {
				t.Errorf("%s: ClaimMany claimed a reserved record", c.name)
			}
		}
	}
	if len(res.Claimed) != 2 {
		t.Errorf("ClaimMany claimed %d records; want the plain and the finalized one", len(res.Claimed))
	}

	// A migrated reservation is released like a new one, and is then claimable.
	rel, err := b.ReleaseDispatch(ctx, driver.ReleaseDispatchParams{ID: ids[1], Marker: pastMarker})
	if err != nil {
		t.Fatalf("ReleaseDispatch of a migrated reservation: %v", err)
	}
	if !rel.DispatchUntil.IsZero() || rel.ExecutionRef != "" {
		t.Fatalf("released record: dispatch_until %v, ref %q", rel.DispatchUntil, rel.ExecutionRef)
	}
	res, err = b.ClaimByID(ctx, driver.ClaimByIDParams{ID: ids[1], WorkerID: "w"})
	if err != nil || len(res.Claimed) != 1 {
		t.Fatalf("ClaimByID after release = %+v, %v", res, err)
	}
}

// applyFirstMigrations builds the schema of an earlier build: the first n
// embedded migrations, recorded in the ledger as Migrate records them. It
// checks that the embedded migration n+1 is want, the one under test, and
// that Open refuses the earlier schema.
func applyFirstMigrations(t *testing.T, b *Backend, pool *pgxpool.Pool, n int, want string) {
	t.Helper()
	ctx := t.Context()
	ms, err := embedded.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) <= n || ms[n].Version != want {
		t.Fatalf("embedded versions %v; want %s at position %d", Versions(), want, n+1)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{b.n.schema}.Sanitize()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE `+b.n.migration+` (version text NOT NULL PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		for _, m := range ms[:n] {
			sql, err := b.n.render(m)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+b.n.migration+` (version) VALUES ($1)`, m.Version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("build the previous schema: %v", err)
	}
	if err := b.Open(ctx); !errors.Is(err, ErrNotMigrated) {
		t.Fatalf("Open on the previous schema = %v; want ErrNotMigrated", err)
	}
}
