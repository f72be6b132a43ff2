package redis

import (
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
)

// The first-party stores must keep schedule pauses.
var _ driver.SchedulePauser = (*Backend)(nil)

// TestSchedulePauseKey checks the documented key: a pause is a field of the
// hash <p>:schedule_pauses holding since in µs from the server's TIME, a
// second pause leaves the field alone, and a resume deletes it.
func TestSchedulePauseKey(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := t.Context()
	if err := b.PauseSchedule(ctx, "report:nightly"); err != nil {
		t.Fatal(err)
	}
	hk := b.prefix + ":schedule_pauses"
	us, err := admin.HGet(ctx, hk, "report:nightly").Int64()
	if err != nil {
		t.Fatalf("HGET %s report:nightly: %v", hk, err)
	}
	srv, err := admin.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := srv.Sub(time.UnixMicro(us)); d < 0 || d > time.Minute {
		t.Fatalf("since %v; want the server's TIME (now %v)", time.UnixMicro(us), srv)
	}
	// A value the test writes stands for an old pause: pausing again keeps it.
	if err := admin.HSet(ctx, hk, "report:nightly", "1000000").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.PauseSchedule(ctx, "report:nightly"); err != nil {
		t.Fatal(err)
	}
	ps, err := b.PausedSchedules(ctx)
	if err != nil || len(ps) != 1 || !ps[0].Since.Equal(time.Unix(1, 0)) || ps[0].Since.Location() != time.UTC {
		t.Fatalf("PausedSchedules = %+v, %v; want report:nightly since 1970-01-01T00:00:01Z", ps, err)
	}
	if ok, err := b.ResumeSchedule(ctx, "report:nightly"); err != nil || !ok {
		t.Fatalf("ResumeSchedule = %v, %v", ok, err)
	}
	if n, err := admin.Exists(ctx, hk).Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS %s after the last resume = %d, %v; want 0", hk, n, err)
	}
}
