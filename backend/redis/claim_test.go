package redis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/queuesgo/queues/driver"
)

// The running index of a queue holds only in-flight records, so it is
// small, and Redis would keep it as a listpack, where every claim and
// completion is a linear scan and a memmove. The claim converts it to a
// skiplist with a long member that it removes again in the same call: the
// index must end up a skiplist holding exactly the claimed records.
func TestClaimKeepsRunningIndexASkiplist(t *testing.T) {
	b := newTestBackend(t, Options{})
	ctx := t.Context()
	items := make([]driver.EnqueueParams, 5)
	for i := range items {
		items[i] = driver.EnqueueParams{TaskName: "noop", Args: json.RawMessage(`{}`), Queue: "q1", ExecutionBackend: "local"}
	}
	if _, err := b.Enqueue(ctx, items); err != nil {
		t.Fatal(err)
	}
	key := b.prefix + ":idx:running:q1"
	for round, limit := range []int{3, 2} {
		res, err := b.ClaimMany(ctx, driver.ClaimParams{Limit: limit, WorkerID: "w", ExecutionBackend: "local"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Claimed) != limit {
			t.Fatalf("round %d: claimed %d, want %d", round, len(res.Claimed), limit)
		}
		enc, err := admin.ObjectEncoding(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if enc != "skiplist" {
			t.Errorf("round %d: running index encoding %q, want skiplist", round, enc)
		}
	}
	members, err := admin.ZRange(ctx, key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 5 {
		t.Fatalf("running index holds %d members, want the 5 claimed: %q", len(members), members)
	}
	for _, m := range members {
		if len(m) != 16+36 || strings.Contains(m, "~") {
			t.Errorf("running index member %q is not <created_at><id>", m)
		}
	}
}
