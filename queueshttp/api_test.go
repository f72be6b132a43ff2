package queueshttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queueshttp"
)

func TestHealth(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	r := f.do("GET", "/q/api/health", "")
	if r.status != 200 || strings.TrimSpace(string(r.raw)) != `{"ok":true}` {
		t.Fatalf("health = %d %s", r.status, r.raw)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestStatsAndQueues(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	f.enqueue("test.echo", echoArgs{"a"}, queues.EnqueueOptions{Queue: "zeta"})
	f.enqueue("test.echo", echoArgs{"b"}, queues.EnqueueOptions{Queue: "zeta"})
	f.enqueue("test.fail", echoArgs{"c"}, queues.EnqueueOptions{Queue: "alpha"})
	f.runAll()
	f.enqueue("test.echo", echoArgs{"d"}, queues.EnqueueOptions{Queue: "alpha"})
	f.enqueue("test.echo", echoArgs{"e"}, queues.EnqueueOptions{Queue: "mid", RunAfter: time.Hour})

	all := f.expect("GET", "/q/api/stats", "", 200)
	sameKeys(t, "stats", all, statsKeys...)
	want := map[string]float64{"pending": 1, "scheduled": 1, "running": 0, "completed": 2, "failed": 1, "cancelled": 0, "expired": 0, "total": 5}
	for k, v := range want {
		if all[k] != v {
			t.Errorf("stats[%s] = %v, want %v (%v)", k, all[k], v, all)
		}
	}
	alpha := f.expect("GET", "/q/api/stats?queue=alpha", "", 200)
	if alpha["failed"] != 1.0 || alpha["pending"] != 1.0 || alpha["completed"] != 0.0 || alpha["total"] != 2.0 {
		t.Errorf("stats for alpha = %v", alpha)
	}
	if none := f.expect("GET", "/q/api/stats?queue=none", "", 200); none["total"] != 0.0 {
		t.Errorf("stats for an empty queue = %v", none)
	}

	r := f.do("GET", "/q/api/queues", "")
	if r.status != 200 {
		t.Fatalf("queues: %d %s", r.status, r.raw)
	}
	var list []map[string]any
	if err := json.Unmarshal(r.raw, &list); err != nil {
		t.Fatalf("queues is not a JSON array: %v: %s", err, r.raw)
	}
	var names []string
	for _, q := range list {
		sameKeys(t, "queue entry", q, append([]string{"queue", "execution_backends", "unserved", "backlog_sampled"}, statsKeys...)...)
		names = append(names, q["queue"].(string))
	}
	if strings.Join(names, ",") != "alpha,mid,zeta" {
		t.Fatalf("queues = %v, want alpha,mid,zeta in order", names)
	}
	if list[2]["completed"] != 2.0 || list[2]["total"] != 2.0 || list[1]["scheduled"] != 1.0 {
		t.Errorf("queue statistics = %v", list)
	}
	// No worker runs in the fixture: alpha's due record waits for a
	// transport nobody serves; mid's record is due later.
	wantBacklog := func(i int, due, later, unserved float64) {
		t.Helper()
		bls, _ := list[i]["execution_backends"].([]any)
		if len(bls) != 1 {
			t.Fatalf("%s execution_backends = %v, want one", names[i], list[i]["execution_backends"])
		}
		bl := bls[0].(map[string]any)
		if bl["execution_backend"] != "local" || bl["due"] != due || bl["later"] != later || bl["served"] != false || list[i]["unserved"] != unserved {
			t.Errorf("%s backlog = %v unserved %v, want local due %v later %v unserved %v", names[i], bl, list[i]["unserved"], due, later, unserved)
		}
	}
	wantBacklog(0, 1, 0, 1)
	wantBacklog(1, 0, 1, 0)
}

func TestQueuesEmptyIsArray(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	if r := f.do("GET", "/q/api/queues", ""); r.status != 200 || strings.TrimSpace(string(r.raw)) != "[]" {
		t.Fatalf("queues on an empty store = %d %s, want []", r.status, r.raw)
	}
}

func TestListTasks(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	var ids []uuid.UUID // insertion order
	for i := range 5 {
		ids = append(ids, f.enqueue("test.echo", echoArgs{fmt.Sprint(i)}, queues.EnqueueOptions{}))
	}
	ids = append(ids, f.enqueue("test.fail", echoArgs{"x"}, queues.EnqueueOptions{Queue: "mail"}))
	f.runAll() // 5 completed, 1 failed
	ids = append(ids, f.enqueue("test.echo", echoArgs{"late"}, queues.EnqueueOptions{Queue: "mail"}))

	type page struct {
		Items      []json.RawMessage `json:"items"`
		NextCursor *string           `json:"next_cursor"`
	}
	get := func(query string) (page, []string) {
		t.Helper()
		r := f.do("GET", "/q/api/tasks"+query, "")
		if r.status != 200 {
			t.Fatalf("list %s: %d %s", query, r.status, r.raw)
		}
		sameKeys(t, "list", r.object(t), "items", "next_cursor")
		var p page
		if err := json.Unmarshal(r.raw, &p); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, raw := range p.Items {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			sameKeys(t, "list item", m, summaryKeys...)
			got = append(got, m["id"].(string))
		}
		return p, got
	}
	newestFirst := func(xs ...uuid.UUID) string {
		var s []string
		for i := len(xs) - 1; i >= 0; i-- {
			s = append(s, xs[i].String())
		}
		return strings.Join(s, ",")
	}

	p, got := get("")
	if strings.Join(got, ",") != newestFirst(ids...) || p.NextCursor != nil {
		t.Fatalf("full list = %v (next %v), want %s and no cursor", got, p.NextCursor, newestFirst(ids...))
	}

	// Paging with the cursor visits every record once, newest first.
	var walked []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not terminate")
		}
		q := "?limit=3"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		p, got := get(q)
		if len(got) > 3 {
			t.Fatalf("page of %d items with limit=3", len(got))
		}
		walked = append(walked, got...)
		if p.NextCursor == nil {
			break
		}
		if len(got) == 0 || *p.NextCursor != got[len(got)-1] {
			t.Fatalf("next_cursor %v is not the last item of %v", *p.NextCursor, got)
		}
		cursor = *p.NextCursor
	}
	if strings.Join(walked, ",") != newestFirst(ids...) {
		t.Fatalf("paged walk = %v, want %s", walked, newestFirst(ids...))
	}

	for _, c := range []struct{ query, want string }{
		{"?status=completed", newestFirst(ids[:5]...)},
		{"?status=failed", ids[5].String()},
		{"?queue=mail", newestFirst(ids[5:]...)},
		{"?queue=mail&status=pending", ids[6].String()},
		{"?task_name=test.fail", ids[5].String()},
		{"?task_name=test.echo&queue=default&limit=2", newestFirst(ids[3:5]...)},
		{"?limit=100000", newestFirst(ids...)}, // clamped, not rejected
		{"?status=expired", ""},
	} {
		if _, got := get(c.query); strings.Join(got, ",") != c.want {
			t.Errorf("list%s = %v, want %s", c.query, got, c.want)
		}
	}

	for _, q := range []string{"?status=bogus", "?limit=0", "?limit=-1", "?limit=ten", "?cursor=not-a-uuid"} {
		f.expectError("GET", "/q/api/tasks"+q, "", 400, "invalid_query")
	}
}

func TestGetTask(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	id := f.enqueue("test.echo", echoArgs{"hi"}, queues.EnqueueOptions{Metadata: map[string]any{"source": "test"}})
	f.runAll()

	m := f.expect("GET", "/q/api/tasks/"+id.String(), "", 200)
	sameKeys(t, "record", m, recordKeys...)
	if m["id"] != id.String() || m["status"] != "completed" || m["task_name"] != "test.echo" {
		t.Fatalf("record = %v", m)
	}
	if res, _ := json.Marshal(m["result"]); string(res) != `{"echo":"hi"}` {
		t.Errorf("result = %s", res)
	}
	if m["error"] != nil || m["scheduled_at"] != nil || m["execution_ref"] != nil {
		t.Errorf("null fields are not null: %v", m)
	}
	for _, k := range []string{"created_at", "started_at", "completed_at"} {
		s, _ := m[k].(string)
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") {
			t.Errorf("%s = %v, want an RFC 3339 UTC time", k, m[k])
		}
	}
	if md, _ := m["metadata"].(map[string]any); md["source"] != "test" {
		t.Errorf("metadata = %v", m["metadata"])
	}

	missing := uuid.New()
	e := f.expectError("GET", "/q/api/tasks/"+missing.String(), "", 404, "not_found")
	if !strings.Contains(e["message"].(string), missing.String()) {
		t.Errorf("not-found message %q does not name the id", e["message"])
	}
	f.expectError("GET", "/q/api/tasks/nope", "", 400, "invalid_id")
}

func TestEnqueue(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	body := `{"task":"test.echo","args":{"msg":"hi"},"queue":"mail","priority":7,"retries":2,"key":"k1","metadata":{"source":"api"}}`
	m := f.expect("POST", "/q/api/tasks", body, 201)
	sameKeys(t, "enqueue response", m, "task_id", "status", "deduplicated", "record")
	rec, _ := m["record"].(map[string]any)
	sameKeys(t, "record", rec, recordKeys...)
	id, err := uuid.Parse(fmt.Sprint(m["task_id"]))
	if err != nil || m["status"] != "pending" || m["deduplicated"] != false || rec["id"] != id.String() {
		t.Fatalf("enqueue response = %v", m)
	}
	stored := f.record(id)
	if stored.TaskName != "test.echo" || stored.Queue != "mail" || stored.Priority != 7 || stored.MaxRetries != 2 ||
		stored.Key != "k1" || stored.Metadata["source"] != "api" || string(stored.Args) != `{"msg":"hi"}` {
		t.Fatalf("stored record = %+v", stored)
	}

	// The same key while the record is active: the existing record, 200.
	dup := f.expect("POST", "/q/api/tasks", `{"task":"test.echo","args":{"msg":"other"},"key":"k1"}`, 200)
	if dup["task_id"] != id.String() || dup["deduplicated"] != true || dup["status"] != "pending" {
		t.Fatalf("deduplicated enqueue = %v", dup)
	}
	// UniqueByArguments deduplicates through the pipeline as well.
	first := f.expect("POST", "/q/api/tasks", `{"task":"test.unique","args":{"msg":"u"}}`, 201)
	again := f.expect("POST", "/q/api/tasks", `{"task":"test.unique","args":{"msg":"u"}}`, 200)
	if again["task_id"] != first["task_id"] || again["deduplicated"] != true {
		t.Fatalf("unique enqueue = %v then %v", first, again)
	}

	// No args: the task gets its zero value.
	if m := f.expect("POST", "/q/api/tasks", `{"task":"test.echo"}`, 201); m["status"] != "pending" {
		t.Fatalf("enqueue without args = %v", m)
	}
	// Task policy is not metadata: a caller cannot set a timeout, backoff,
	// stale or shutdown behaviour, or any system key, through it.
	before, _ := f.svc.Statistics(t.Context(), "")
	for _, k := range []string{"timeout", "retry_backoff", "requeue_on_stale", "requeue_on_shutdown", "interruptions",
		"log_level", "unique_until", "progress_detail", "_correlation_id", "_anything"} {
		e := f.expectError("POST", "/q/api/tasks", `{"task":"test.echo","metadata":{"`+k+`":0.001}}`, 400, "invalid_options")
		if msg := fmt.Sprint(e["message"]); !strings.Contains(msg, k) {
			t.Errorf("refusal of metadata key %q says %q", k, msg)
		}
	}
	after, _ := f.svc.Statistics(t.Context(), "")
	if after.Total != before.Total {
		t.Fatalf("refused enqueues wrote records: %d before, %d after", before.Total, after.Total)
	}
}

func TestEnqueueRunAfter(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for _, c := range []struct {
		runAfter string
		delay    time.Duration
	}{{`"2s"`, 2 * time.Second}, {`1.5`, 1500 * time.Millisecond}, {`"1m30s"`, 90 * time.Second}} {
		before := time.Now()
		m := f.expect("POST", "/q/api/tasks", `{"task":"test.echo","run_after":`+c.runAfter+`}`, 201)
		after := time.Now()
		if m["status"] != "scheduled" {
			t.Fatalf("run_after %s: status %v", c.runAfter, m["status"])
		}
		at, err := time.Parse(time.RFC3339Nano, m["record"].(map[string]any)["scheduled_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(before.Add(c.delay).Add(-time.Millisecond)) || at.After(after.Add(c.delay).Add(time.Millisecond)) {
			t.Errorf("run_after %s: scheduled_at %s not %s after the request", c.runAfter, at, c.delay)
		}
	}
	if m := f.expect("POST", "/q/api/tasks", `{"task":"test.echo","run_after":0}`, 201); m["status"] != "pending" {
		t.Errorf("run_after 0: status %v", m["status"])
	}
	for _, bad := range []string{`"-1s"`, `"soon"`, `-3`, `true`, `1e300`, `{}`} {
		f.expectError("POST", "/q/api/tasks", `{"task":"test.echo","run_after":`+bad+`}`, 400, "invalid_options")
	}
}

func TestEnqueueErrors(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	e := f.expectError("POST", "/q/api/tasks", `{"task":"no.such.task","args":{}}`, 404, "unknown_task")
	if !strings.Contains(e["message"].(string), "no.such.task") {
		t.Errorf("unknown task message = %q", e["message"])
	}
	for _, body := range []string{
		`{"task":"test.echo","args":{"msg":5}}`,
		`{"task":"test.echo","args":[1,2]}`,
		`{"task":"test.echo","args":"text"}`,
	} {
		f.expectError("POST", "/q/api/tasks", body, 400, "invalid_args")
	}
	// An out-of-range priority is a limit (TestEnqueueLimits).
	for _, body := range []string{
		`{"task":"test.echo","priority":"high"}`,
		`{"task":"test.echo","priority":1.5}`,
		`{"task":"test.echo","retries":-1}`,
		`{"task":"test.echo","metadata":{"_internal":1}}`,
		`{"task":"test.echo","metadata":[1]}`,
		`{"task":"test.echo","queue":7}`,
	} {
		f.expectError("POST", "/q/api/tasks", body, 400, "invalid_options")
	}
	for _, body := range []string{
		``,
		`{`,
		`[]`,
		`{"args":{}}`,
		`{"task":""}`,
		`{"task":"test.echo","argz":{}}`,
		`{"task":"test.echo"} {"task":"test.echo"}`,
		`{"task":"test.echo","args":{"msg":}}`,
	} {
		f.expectError("POST", "/q/api/tasks", body, 400, "invalid_request")
	}
	huge := `{"task":"test.echo","args":{"msg":"` + strings.Repeat("x", queueshttp.MaxRequestBytes) + `"}}`
	f.expectError("POST", "/q/api/tasks", huge, 413, "request_too_large")

	if st, _ := f.svc.Statistics(t.Context(), ""); st.Total != 0 {
		t.Fatalf("rejected requests stored %d records", st.Total)
	}
}

func TestCancel(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	id := f.enqueue("test.echo", echoArgs{"x"}, queues.EnqueueOptions{})
	m := f.expect("POST", "/q/api/tasks/"+id.String()+"/cancel", "", 200)
	sameKeys(t, "cancel", m, "cancelled")
	if m["cancelled"] != true {
		t.Fatalf("cancel pending = %v", m)
	}
	if st := f.record(id).Status; st != queues.StatusCancelled {
		t.Fatalf("status after cancel = %s", st)
	}
	if m := f.expect("POST", "/q/api/tasks/"+id.String()+"/cancel", "", 200); m["cancelled"] != false {
		t.Fatalf("second cancel = %v, want false", m)
	}

	f.expectError("POST", "/q/api/tasks/"+uuid.NewString()+"/cancel", "", 404, "not_found")
	f.expectError("POST", "/q/api/tasks/xyz/cancel", "", 400, "invalid_id")
	f.expectError("POST", "/q/api/tasks/"+id.String()+"/cancel?include_running=maybe", "", 400, "invalid_query")
	f.expectError("GET", "/q/api/tasks/"+id.String()+"/cancel", "", 405, "method_not_allowed")
}

func TestCancelRunning(t *testing.T) {
	f := newFixture(t, fixtureConfig{inApp: true})
	id := f.enqueue("test.block", echoArgs{}, queues.EnqueueOptions{})
	select {
	case got := <-f.started:
		if got != id {
			t.Fatalf("started %s, want %s", got, id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the in-app worker did not start the blocking task")
	}

	if m := f.expect("POST", "/q/api/tasks/"+id.String()+"/cancel", "", 200); m["cancelled"] != false {
		t.Fatalf("cancel running without include_running = %v", m)
	}
	if m := f.expect("POST", "/q/api/tasks/"+id.String()+"/cancel?include_running=false", "", 200); m["cancelled"] != false {
		t.Fatalf("cancel running with include_running=false = %v", m)
	}
	if st := f.record(id).Status; st != queues.StatusRunning {
		t.Fatalf("status = %s, want running", st)
	}
	if m := f.expect("POST", "/q/api/tasks/"+id.String()+"/cancel?include_running=true", "", 200); m["cancelled"] != true {
		t.Fatalf("cancel running with include_running = %v", m)
	}
	if st := f.record(id).Status; st != queues.StatusCancelled {
		t.Fatalf("status after cancelling the running record = %s", st)
	}
	// The owning worker hears of it and ends the attempt (its ctx is cancelled).
	w := f.svc.InAppWorker()
	waitFor(t, "the cancelled attempt to end", 5*time.Second, func() bool { return w.InFlight() == 0 })
	if st := f.record(id).Status; st != queues.StatusCancelled {
		t.Fatalf("status after the attempt ended = %s", st)
	}
}

func TestRerun(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	orig := f.enqueue("test.echo", echoArgs{"again"}, queues.EnqueueOptions{
		Queue: "mail", Priority: queues.Ptr(3), Retries: queues.Ptr(2), Timeout: time.Minute,
		Description: "send it", Metadata: map[string]any{"source": "ui", "tenant": 42.0},
	})
	failed := f.enqueue("test.fail", echoArgs{"f"}, queues.EnqueueOptions{})
	f.runAll()
	if st := f.record(failed).Status; st != queues.StatusFailed {
		t.Fatalf("test.fail ended %s", st)
	}

	m := f.expect("POST", "/q/api/tasks/"+orig.String()+"/rerun", "", 201)
	sameKeys(t, "rerun", m, "id", "deduplicated")
	newID, err := uuid.Parse(fmt.Sprint(m["id"]))
	if err != nil || newID == orig || m["deduplicated"] != false {
		t.Fatalf("rerun = %v", m)
	}
	old, fresh := f.record(orig), f.record(newID)
	if fresh.TaskName != old.TaskName || string(fresh.Args) != string(old.Args) || fresh.Queue != "mail" ||
		fresh.Priority != 3 || fresh.MaxRetries != 2 || fresh.Status != queues.StatusPending || fresh.RetryCount != 0 {
		t.Fatalf("rerun record = %+v", fresh)
	}
	if fresh.Metadata["source"] != "ui" || fresh.Metadata["tenant"] != 42.0 {
		t.Errorf("rerun lost user metadata: %v", fresh.Metadata)
	}
	if old.Policy.Description == "" || old.Policy.Timeout <= 0 {
		t.Fatalf("the original should carry a description and a timeout in its policy: %+v", old.Policy)
	}
	for k := range fresh.Metadata {
		if queuestype.IsReservedMetadataKey(k) {
			t.Errorf("rerun copied system key %s: %v", k, fresh.Metadata)
		}
	}

	if m := f.expect("POST", "/q/api/tasks/"+failed.String()+"/rerun", "", 201); m["id"] == failed.String() {
		t.Fatalf("rerun of a failed record = %v", m)
	}
	f.expectError("POST", "/q/api/tasks/"+newID.String()+"/rerun", "", 409, "not_terminal")
	f.expectError("POST", "/q/api/tasks/"+uuid.NewString()+"/rerun", "", 404, "not_found")
	f.expectError("POST", "/q/api/tasks/xyz/rerun", "", 400, "invalid_id")
}

func TestRerunDeduplicated(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	done := f.enqueue("test.unique", echoArgs{"same"}, queues.EnqueueOptions{})
	f.runAll()
	active := f.enqueue("test.unique", echoArgs{"same"}, queues.EnqueueOptions{})
	if active == done {
		t.Fatal("a terminal record must not block a new unique one")
	}
	m := f.expect("POST", "/q/api/tasks/"+done.String()+"/rerun", "", 200)
	if m["id"] != active.String() || m["deduplicated"] != true {
		t.Fatalf("rerun while an identical record is active = %v, want %s deduplicated", m, active)
	}
}

func TestRerunUnknownTask(t *testing.T) {
	backend := memory.New(memory.Options{})
	// Another process (with another registry) wrote a record this one cannot run.
	other := queues.NewRegistry()
	queues.MustRegister(other, "legacy.task", func(ctx context.Context, a struct{}) (struct{}, error) { return struct{}{}, nil })
	osvc, err := queues.New(queues.Config{Backend: backend, Registry: other, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	res, err := osvc.EnqueueRaw(t.Context(), "legacy.task", nil, queues.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := osvc.Cancel(t.Context(), res.ID, queues.CancelOptions{}); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureConfig{backend: backend})
	f.expectError("POST", "/q/api/tasks/"+res.ID.String()+"/rerun", "", 409, "unknown_task")
}

func TestAuthorize(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	f := newFixture(t, fixtureConfig{opts: queueshttp.Options{Authorize: func(r *http.Request) error {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			return errors.New("token mismatch for tenant 7")
		}
		return nil
	}}})
	id := f.enqueue("test.echo", echoArgs{}, queues.EnqueueOptions{})
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/q/api/health", ""},
		{"GET", "/q/api/stats", ""},
		{"GET", "/q/api/tasks/" + id.String(), ""},
		{"GET", "/q/api/no-such-route", ""}, // refused before routing
		{"POST", "/q/api/tasks", `{"task":"test.echo"}`},
		{"POST", "/q/api/tasks/" + id.String() + "/cancel", ""},
	} {
		e := f.expectError(c.method, c.path, c.body, 403, "forbidden")
		if strings.Contains(e["message"].(string), "tenant 7") {
			t.Errorf("the Authorize error text leaked: %v", e)
		}
	}
	if st := f.record(id).Status; st != queues.StatusPending {
		t.Fatalf("an unauthorized cancel changed the record: %s", st)
	}
	r := f.do("GET", "/q/api/health", "", "Authorization", "Bearer s3cret")
	if r.status != 200 {
		t.Fatalf("authorized health = %d %s", r.status, r.raw)
	}
	r = f.do("POST", "/q/api/tasks", `{"task":"test.echo"}`, "Authorization", "Bearer s3cret")
	if r.status != 201 {
		t.Fatalf("authorized enqueue = %d %s", r.status, r.raw)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 8 || seen[0] != "GET /q/api/health" || seen[3] != "GET /q/api/no-such-route" {
		t.Errorf("Authorize saw %v", seen)
	}
}

func TestReadOnly(t *testing.T) {
	f := newFixture(t, fixtureConfig{opts: queueshttp.Options{ReadOnly: true}})
	pending := f.enqueue("test.echo", echoArgs{}, queues.EnqueueOptions{})
	done := f.enqueue("test.echo", echoArgs{}, queues.EnqueueOptions{})
	if _, err := f.svc.Cancel(t.Context(), done, queues.CancelOptions{}); err != nil {
		t.Fatal(err)
	}
	f.expectError("POST", "/q/api/tasks", `{"task":"test.echo"}`, 403, "read_only")
	f.expectError("POST", "/q/api/tasks/"+pending.String()+"/cancel", "", 403, "read_only")
	f.expectError("POST", "/q/api/tasks/"+done.String()+"/rerun", "", 403, "read_only")
	if st, _ := f.svc.Statistics(t.Context(), ""); st.Total != 2 || st.Pending != 1 {
		t.Fatalf("read-only API changed the store: %+v", st)
	}
	f.expect("GET", "/q/api/health", "", 200)
	f.expect("GET", "/q/api/stats", "", 200)
	f.expect("GET", "/q/api/tasks", "", 200)
	f.expect("GET", "/q/api/tasks/"+pending.String(), "", 200)
}

func TestCrossOriginMutationsRejected(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	r := f.do("POST", "/q/api/tasks", `{"task":"test.echo"}`, "Sec-Fetch-Site", "cross-site")
	if r.status != 403 || r.object(t)["error"] != "forbidden" {
		t.Fatalf("cross-site enqueue = %d %s", r.status, r.raw)
	}
	r = f.do("POST", "/q/api/tasks", `{"task":"test.echo"}`, "Origin", "https://evil.example")
	if r.status != 403 {
		t.Fatalf("enqueue from a foreign Origin = %d %s", r.status, r.raw)
	}
	if st, _ := f.svc.Statistics(t.Context(), ""); st.Total != 0 {
		t.Fatalf("cross-origin requests stored %d records", st.Total)
	}
	if r := f.do("POST", "/q/api/tasks", `{"task":"test.echo"}`, "Sec-Fetch-Site", "same-origin"); r.status != 201 {
		t.Fatalf("same-origin enqueue = %d %s", r.status, r.raw)
	}
	if r := f.do("GET", "/q/api/stats", "", "Sec-Fetch-Site", "cross-site"); r.status != 200 {
		t.Fatalf("cross-site read = %d %s (reads are not guarded)", r.status, r.raw)
	}
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	f.expectError("GET", "/q/api/nope", "", 404, "not_found")
	f.expectError("GET", "/q/api/tasks/"+uuid.NewString()+"/extra", "", 404, "not_found")
	r := f.do("POST", "/q/api/health", "{}")
	if r.status != 405 || r.object(t)["error"] != "method_not_allowed" || !strings.Contains(r.header.Get("Allow"), "GET") {
		t.Fatalf("POST health = %d %v %s", r.status, r.header, r.raw)
	}

	// Handler alone sees every method.
	h := queueshttp.Handler(f.svc, queueshttp.Options{Logger: quiet})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("DELETE", "/api/tasks", nil))
	if rec.Code != 405 || !strings.Contains(rec.Body.String(), `"method_not_allowed"`) {
		t.Fatalf("DELETE /api/tasks = %d %s", rec.Code, rec.Body)
	}
	allow := rec.Header().Get("Allow")
	if !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow = %q, want GET and POST", allow)
	}
}

func TestMount(t *testing.T) {
	svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })

	for _, c := range []struct{ prefix, path string }{
		{"/queues", "/queues/api/health"},
		{"/queues/", "/queues/api/health"},
		{"admin/jobs", "/admin/jobs/api/health"},
		{"", "/api/health"},
		{"/", "/api/health"},
	} {
		mux := http.NewServeMux()
		// An application's own method-specific catch-all must not conflict.
		mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "app") })
		queueshttp.Mount(mux, c.prefix, svc, queueshttp.Options{Logger: quiet})
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"ok":true}` {
			t.Errorf("Mount(%q): GET %s = %d %s", c.prefix, c.path, rec.Code, rec.Body)
		}
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/elsewhere", nil))
		if rec.Body.String() != "app" {
			t.Errorf("Mount(%q) took over /elsewhere: %s", c.prefix, rec.Body)
		}
	}
}

func TestMountLogsItsMode(t *testing.T) {
	svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		opts  queueshttp.Options
		level string
		says  string
	}{
		{"closed", queueshttp.Options{}, "WARN", "mounted without Authorize"},
		{"read-only", queueshttp.Options{ReadOnly: true}, "WARN", "mounted read-only without Authorize"},
		{"insecure", queueshttp.Options{Insecure: true}, "WARN", "mounted with Insecure"},
		{"authorized", queueshttp.Options{Authorize: allowAll, Insecure: true}, "INFO", "mounted with Authorize"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs logBuffer
			c.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			queueshttp.Mount(http.NewServeMux(), "/q", svc, c.opts)
			out := logs.String()
			if strings.Count(out, "\n") != 1 || !strings.Contains(out, c.says) || !strings.Contains(out, "level="+c.level) {
				t.Fatalf("mount logged %q, want one %s line saying %q", out, c.level, c.says)
			}
		})
	}
}

const secret = "postgres://admin:hunter2@db.internal/queues"

// brokenBackend fails every read with an error that carries a secret.
type brokenBackend struct{ *memory.Backend }

func (brokenBackend) Statistics(context.Context, string) (queues.Statistics, error) {
	return queues.Statistics{}, errors.New("dial " + secret + ": connection refused")
}
func (brokenBackend) GetTask(context.Context, uuid.UUID) (*queues.Record, error) {
	return nil, errors.New("dial " + secret + ": connection refused")
}
func (brokenBackend) QueueStatistics(context.Context) (map[string]queues.Statistics, error) {
	return nil, errors.New("dial " + secret + ": connection refused")
}
func (brokenBackend) ListTasks(context.Context, queues.TaskFilter) (queues.TaskPage, error) {
	return queues.TaskPage{}, errors.New("dial " + secret + ": connection refused")
}

func TestBackendErrorsAreNotEchoed(t *testing.T) {
	var logs logBuffer
	f := newFixture(t, fixtureConfig{
		backend: brokenBackend{memory.New(memory.Options{})},
		opts:    queueshttp.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))},
	})
	for _, c := range []struct{ method, path string }{
		{"GET", "/q/api/stats"},
		{"GET", "/q/api/queues"},
		{"GET", "/q/api/tasks"},
		{"GET", "/q/api/tasks/" + uuid.NewString()},
		{"POST", "/q/api/tasks/" + uuid.NewString() + "/cancel"}, // missing → GetTask → failure
		{"POST", "/q/api/tasks/" + uuid.NewString() + "/rerun"},
	} {
		r := f.do(c.method, c.path, "")
		if r.status != 500 || strings.Contains(string(r.raw), "hunter2") || r.object(t)["error"] != "internal" {
			t.Errorf("%s %s = %d %s", c.method, c.path, r.status, r.raw)
		}
	}
	if n := strings.Count(logs.String(), "hunter2"); n != 6 {
		t.Errorf("the cause was logged %d times, want 6: %s", n, logs.String())
	}
}

// plainBackend hides every optional interface, Inspector included.
type plainBackend struct{ driver.Backend }

func TestWithoutInspector(t *testing.T) {
	f := newFixture(t, fixtureConfig{backend: plainBackend{memory.New(memory.Options{})}})
	f.expectError("GET", "/q/api/queues", "", 501, "unsupported")
	f.expectError("GET", "/q/api/tasks", "", 501, "unsupported")
	f.expect("GET", "/q/api/stats", "", 200)
}

func TestUserMetadata(t *testing.T) {
	in := map[string]any{"source": "ui", "nested": map[string]any{"a": 1.0}, "description": "d", "timeout": 3.0,
		"unique_by": "arguments", "schedule": map[string]any{}, "_correlation_id": "c", "_otel_context": map[string]any{},
		"interruptions": 1.0, "progress_detail": "p", "log_success": true}
	out := queueshttp.UserMetadata(in)
	sameKeys(t, "user metadata", out, "source", "nested")
	out["nested"].(map[string]any)["a"] = 2.0
	if in["nested"].(map[string]any)["a"] != 1.0 {
		t.Error("UserMetadata does not copy nested values")
	}
	if got := queueshttp.UserMetadata(map[string]any{"timeout": 1.0}); got != nil {
		t.Errorf("only system keys → %v, want nil", got)
	}
}

func TestHandlerAppliesAuthorize(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	deny := errors.New("no")
	h := queueshttp.Handler(f.svc, queueshttp.Options{Logger: quiet, Authorize: func(r *http.Request) error {
		if r.URL.Query().Get("token") != "ok" {
			return deny
		}
		return nil
	}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/health", nil))
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), `"forbidden"`) {
		t.Fatalf("unauthorized = %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/health?token=ok", nil))
	if rec.Code != 200 {
		t.Fatalf("authorized = %d %s", rec.Code, rec.Body)
	}
}
