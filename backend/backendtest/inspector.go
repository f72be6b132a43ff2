package backendtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// testInspector covers the optional Inspector.
func testInspector(t *testing.T, f Factory) {
	runCases(t, f, []testCase{
		{"ListTasksPaging", inspectorPaging},
		{"ListTasksFilters", inspectorFilters},
		{"ListTasksDefaultLimit", inspectorDefaultLimit},
		{"QueueStatistics", inspectorQueueStatistics},
	})
}

// listAll pages through ListTasks with f.Limit and returns every item and the page sizes.
func listAll(t *testing.T, in driver.Inspector, f queues.TaskFilter) ([]*queues.Record, []int) {
	t.Helper()
	var all []*queues.Record
	var sizes []int
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("ListTasks paging does not end")
		}
		p, err := in.ListTasks(t.Context(), f)
		wantNoErr(t, "ListTasks", err)
		if f.Limit > 0 && len(p.Items) > f.Limit {
			t.Fatalf("ListTasks page has %d items, limit %d", len(p.Items), f.Limit)
		}
		all = append(all, p.Items...)
		sizes = append(sizes, len(p.Items))
		if p.NextCursor == uuid.Nil {
			return all, sizes
		}
		if len(p.Items) == 0 || p.NextCursor != p.Items[len(p.Items)-1].ID {
			t.Fatalf("ListTasks NextCursor %s is not the last item's ID (page of %d)", p.NextCursor, len(p.Items))
		}
		f.Cursor = p.NextCursor
	}
}

// wantNewestCreatedFirst requires created_at to be non-increasing.
func wantNewestCreatedFirst(t *testing.T, what string, recs []*queues.Record) {
	t.Helper()
	for i := 1; i < len(recs); i++ {
		if recs[i].CreatedAt.After(recs[i-1].CreatedAt) {
			t.Fatalf("%s not newest first: %s (%s) before %s (%s)", what, recs[i-1].ID, recs[i-1].CreatedAt, recs[i].ID, recs[i].CreatedAt)
		}
	}
}

// Inspector.ListTasks pages by keyset cursor, newest first, with a zero
// NextCursor on the last page: paging returns every record exactly once.
func inspectorPaging(t *testing.T, b driver.Backend) {
	in := require[driver.Inspector](t, b)
	var ids []uuid.UUID
	for i := range 11 {
		ids = append(ids, enqueueOne(t, b, item(fmt.Sprintf("page.%d", i))).ID)
	}
	all, sizes := listAll(t, in, queues.TaskFilter{Limit: 3})
	wantIDSet(t, "paged ids", idsOf(all), ids...)
	if fmt.Sprint(sizes) != "[3 3 3 2]" {
		t.Fatalf("page sizes = %v, want [3 3 3 2]", sizes)
	}
	wantNewestCreatedFirst(t, "ListTasks", all)
	for _, r := range all[:3] {
		wantStored(t, b, "listed record", r)
	}
}

func inspectorFilters(t *testing.T, b driver.Backend) {
	in := require[driver.Inspector](t, b)
	var q1a, q2b []uuid.UUID
	for i := range 4 {
		q1a = append(q1a, enqueueOne(t, b, item("list.a", inQueue("q1"))).ID)
		if i < 3 {
			q2b = append(q2b, enqueueOne(t, b, item("list.b", inQueue("q2"))).ID)
		}
	}
	run := claimByID(t, b, q1a[0], workerA)
	done := completed(t, b, item("list.b", inQueue("q1")))

	check := func(what string, f queues.TaskFilter, want ...uuid.UUID) {
		t.Helper()
		f.Limit = 2
		got, _ := listAll(t, in, f)
		wantIDSet(t, what, idsOf(got), want...)
		wantNewestCreatedFirst(t, what, got)
	}
	check("task list.b", queues.TaskFilter{TaskName: "list.b"}, append(append([]uuid.UUID{}, q2b...), done.ID)...)
	check("queue q2", queues.TaskFilter{Queue: "q2"}, q2b...)
	check("status running", queues.TaskFilter{Status: queues.StatusRunning}, run.ID)
	check("status completed", queues.TaskFilter{Status: queues.StatusCompleted}, done.ID)
	check("pending in q1", queues.TaskFilter{Status: queues.StatusPending, Queue: "q1"}, q1a[1:]...)
	check("list.a pending in q1", queues.TaskFilter{Status: queues.StatusPending, Queue: "q1", TaskName: "list.a"}, q1a[1:]...)
	check("no match", queues.TaskFilter{TaskName: "list.c"})
}

func inspectorDefaultLimit(t *testing.T, b driver.Backend) {
	in := require[driver.Inspector](t, b)
	items := make([]driver.EnqueueParams, 55)
	for i := range items {
		items[i] = item("limit.default")
	}
	enqueue(t, b, items...)
	p, err := in.ListTasks(t.Context(), queues.TaskFilter{})
	wantNoErr(t, "ListTasks(limit 0)", err)
	wantInt(t, "default page size", len(p.Items), 50)
	if p.NextCursor == uuid.Nil {
		t.Fatal("NextCursor is zero with 5 records left")
	}
	rest, err := in.ListTasks(t.Context(), queues.TaskFilter{Cursor: p.NextCursor})
	wantNoErr(t, "ListTasks(page 2)", err)
	wantInt(t, "second page size", len(rest.Items), 5)
	if rest.NextCursor != uuid.Nil {
		t.Fatalf("NextCursor on the last page = %s, want zero", rest.NextCursor)
	}
	seen := map[uuid.UUID]bool{}
	for _, r := range append(p.Items, rest.Items...) {
		if seen[r.ID] {
			t.Fatalf("record %s listed twice", r.ID)
		}
		seen[r.ID] = true
	}
}

// Per-queue status counts.
func inspectorQueueStatistics(t *testing.T, b driver.Backend) {
	in := require[driver.Inspector](t, b)
	populateStatuses(t, b, "a")
	enqueue(t, b, item("qs.b", inQueue("b")), item("qs.b", inQueue("b"), scheduledAt(at(time.Hour))))
	got, err := in.QueueStatistics(t.Context())
	wantNoErr(t, "QueueStatistics", err)
	wantA := queues.Statistics{Pending: 1, Scheduled: 1, Running: 1, Completed: 1, Failed: 1, Cancelled: 1, Expired: 1, Total: 7}
	if got["a"] != wantA {
		t.Fatalf("QueueStatistics[a] = %+v, want %+v", got["a"], wantA)
	}
	if want := (queues.Statistics{Pending: 1, Scheduled: 1, Total: 2}); got["b"] != want {
		t.Fatalf("QueueStatistics[b] = %+v, want %+v", got["b"], want)
	}
	for q, st := range got {
		if q != "a" && q != "b" && st.Total != 0 {
			t.Fatalf("QueueStatistics has records in unknown queue %q: %+v", q, st)
		}
	}
}
