package queueshttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	qredis "github.com/queuesgo/queues/backend/redis"
	"github.com/queuesgo/queues/queueshttp"
)

// Without Authorize the mutating routes answer 403 unauthorized_mount and
// write nothing, while the read routes are served.
func TestMutatingRoutesClosedWithoutAuthorize(t *testing.T) {
	f := newFixture(t, fixtureConfig{noAuth: true})
	done := f.enqueue("test.echo", echoArgs{"x"}, queues.EnqueueOptions{})
	if _, err := f.svc.Cancel(t.Context(), done, queues.CancelOptions{}); err != nil {
		t.Fatal(err)
	}
	pending := f.enqueue("test.echo", echoArgs{"y"}, queues.EnqueueOptions{})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/q/api/tasks", `{"task":"test.echo"}`},
		{"POST", "/q/api/tasks/" + pending.String() + "/cancel", ""},
		{"POST", "/q/api/tasks/" + done.String() + "/rerun", ""},
	} {
		f.expectError(c.method, c.path, c.body, 403, "unauthorized_mount")
	}
	if st, _ := f.svc.Statistics(t.Context(), ""); st.Total != 2 || st.Pending != 1 {
		t.Fatalf("refused requests changed the store: %+v", st)
	}
	for _, path := range []string{"/q/api/health", "/q/api/ready", "/q/api/stats", "/q/api/queues",
		"/q/api/tasks", "/q/api/tasks/" + pending.String()} {
		if r := f.do("GET", path, ""); r.status != 200 {
			t.Errorf("GET %s without Authorize = %d %s, want 200", path, r.status, r.raw)
		}
	}
}

// Insecure is the explicit opt-out: the mutating routes are served without
// Authorize (and still guarded against cross-origin browsers).
func TestInsecureOptIn(t *testing.T) {
	f := newFixture(t, fixtureConfig{opts: queueshttp.Options{Insecure: true}})
	f.expect("POST", "/q/api/tasks", `{"task":"test.echo"}`, 201)
	r := f.do("POST", "/q/api/tasks", `{"task":"test.echo"}`, "Sec-Fetch-Site", "cross-site")
	if r.status != 403 || r.object(t)["error"] != "forbidden" {
		t.Fatalf("cross-site enqueue with Insecure = %d %s", r.status, r.raw)
	}
	// ReadOnly wins over Insecure.
	ro := newFixture(t, fixtureConfig{opts: queueshttp.Options{Insecure: true, ReadOnly: true}})
	ro.expectError("POST", "/q/api/tasks", `{"task":"test.echo"}`, 403, "read_only")
}

// Mount claims the API subtree for every standard method without
// conflicting with the application's "GET /": a method the API does not
// serve is a JSON 405 with Allow, an unknown API path a JSON 404.
func TestMountAnswersEveryMethodInJSON(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "app") })
	mux.HandleFunc("DELETE /other/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "other") })
	queueshttp.Mount(mux, "/queues", f.svc, queueshttp.Options{Logger: quiet, Authorize: allowAll})

	serve := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}
	if rec := serve("GET", "/"); rec.Body.String() != "app" {
		t.Fatalf("the app's GET / = %d %q", rec.Code, rec.Body)
	}
	if rec := serve("DELETE", "/other/x"); rec.Body.String() != "other" {
		t.Fatalf("the app's /other/ = %d %q", rec.Code, rec.Body)
	}
	for _, m := range []string{"DELETE", "PUT", "PATCH", "OPTIONS", "TRACE"} {
		for _, path := range []string{"/queues/api/tasks", "/queues/api/health", "/queues/api/tasks/" + uuid.NewString()} {
			rec := serve(m, path)
			if rec.Code != 405 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") ||
				!strings.Contains(rec.Body.String(), `"error":"method_not_allowed"`) {
				t.Fatalf("%s %s = %d %q %s", m, path, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			if !strings.Contains(rec.Header().Get("Allow"), "GET") {
				t.Errorf("%s %s: Allow = %q", m, path, rec.Header().Get("Allow"))
			}
		}
	}
	if allow := serve("DELETE", "/queues/api/tasks").Header().Get("Allow"); !strings.Contains(allow, "POST") {
		t.Errorf("DELETE /queues/api/tasks: Allow = %q, want GET and POST", allow)
	}
	if rec := serve("DELETE", "/queues/api/nope"); rec.Code != 404 || !strings.Contains(rec.Body.String(), `"error":"not_found"`) {
		t.Fatalf("DELETE unknown API path = %d %s", rec.Code, rec.Body)
	}
	// Through a real server too.
	r := f.do("DELETE", "/q/api/tasks", "")
	if r.status != 405 || r.object(t)["error"] != "method_not_allowed" || r.header.Get("Allow") == "" {
		t.Fatalf("DELETE /q/api/tasks = %d %v %s", r.status, r.header, r.raw)
	}
}

// panicBackend panics in Statistics, as a buggy store or middleware might.
type panicBackend struct{ *memory.Backend }

func (panicBackend) Statistics(context.Context, string) (queues.Statistics, error) {
	panic("store bug: nil map")
}

func TestPanicAnswersJSON500(t *testing.T) {
	var logs logBuffer
	f := newFixture(t, fixtureConfig{backend: panicBackend{memory.New(memory.Options{})},
		opts: queueshttp.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	m := f.expectError("GET", "/q/api/stats", "", 500, "internal")
	if strings.Contains(fmt.Sprint(m), "nil map") {
		t.Fatalf("the panic value reached the client: %v", m)
	}
	if !strings.Contains(logs.String(), "store bug: nil map") || !strings.Contains(logs.String(), "panicked") {
		t.Fatalf("the panic was not logged: %s", logs.String())
	}
	f.expect("GET", "/q/api/health", "", 200) // the server lives on

	h := queueshttp.Handler(f.svc, queueshttp.Options{Logger: quiet, Authorize: allowAll})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/stats", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"internal"`) {
		t.Fatalf("Handler: panic = %d %s", rec.Code, rec.Body)
	}
}

// listBody fetches a list page and returns its raw items and cursor.
func listBody(t *testing.T, f *fixture, query string) (response, []map[string]any, string) {
	t.Helper()
	r := f.do("GET", "/q/api/tasks"+query, "")
	if r.status != 200 {
		t.Fatalf("list %s = %d %s", query, r.status, r.raw)
	}
	var p struct {
		Items      []map[string]any `json:"items"`
		NextCursor *string          `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.raw, &p); err != nil {
		t.Fatalf("list %s: %v: %s", query, err, r.raw)
	}
	cursor := ""
	if p.NextCursor != nil {
		cursor = *p.NextCursor
	}
	return r, p.Items, cursor
}

func TestListInclude(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	f.enqueue("test.echo", echoArgs{"hello"}, queues.EnqueueOptions{Metadata: map[string]any{"source": "test"}})
	f.runAll()

	_, items, _ := listBody(t, f, "")
	sameKeys(t, "summary", items[0], summaryKeys...)
	_, items, _ = listBody(t, f, "?include=args")
	sameKeys(t, "include=args", items[0], append([]string{"args"}, summaryKeys...)...)
	if items[0]["args"].(map[string]any)["msg"] != "hello" {
		t.Fatalf("args = %v", items[0]["args"])
	}
	for _, q := range []string{"?include=args,result,metadata,errors", "?include=result&include=metadata,args,errors", "?include=metadata,%20args,result,errors"} {
		_, items, _ = listBody(t, f, q)
		sameKeys(t, q, items[0], recordKeys...)
		if items[0]["result"].(map[string]any)["echo"] != "hello" || items[0]["metadata"].(map[string]any)["source"] != "test" {
			t.Fatalf("%s: item %v", q, items[0])
		}
	}
	f.expectError("GET", "/q/api/tasks?include=args,secrets", "", 400, "invalid_query")
}

// 40 records with 8 KiB arguments: a full-detail page of limit=500 stops at
// the byte cap with a cursor, and paging on visits every record once.
func TestListByteCap(t *testing.T) {
	const capBytes = 64 << 10
	f := newFixture(t, fixtureConfig{opts: queueshttp.Options{MaxListBytes: capBytes}})
	big := strings.Repeat("x", 8<<10)
	want := map[string]bool{}
	for range 40 {
		want[f.enqueue("test.echo", echoArgs{big}, queues.EnqueueOptions{}).String()] = true
	}

	r, items, cursor := listBody(t, f, "")
	if strings.Contains(string(r.raw), big[:100]) || len(items) != 40 || cursor != "" {
		t.Fatalf("summary page: %d bytes, %d items, cursor %q", len(r.raw), len(items), cursor)
	}

	seen := map[string]bool{}
	pages := 0
	for q := "?limit=500&include=args,result,metadata"; ; pages++ {
		if pages > 40 {
			t.Fatal("paging does not end")
		}
		r, items, next := listBody(t, f, q)
		if len(r.raw) > capBytes {
			t.Fatalf("page %d is %d bytes, cap %d", pages, len(r.raw), capBytes)
		}
		if len(items) == 0 {
			t.Fatalf("page %d is empty", pages)
		}
		for _, it := range items {
			id := it["id"].(string)
			if seen[id] || !want[id] {
				t.Fatalf("page %d: item %s seen twice or unknown", pages, id)
			}
			seen[id] = true
			if it["args"].(map[string]any)["msg"] != big {
				t.Fatalf("item %s lost its args", id)
			}
		}
		if pages == 0 && next == "" {
			t.Fatalf("first page of %d items has no next_cursor", len(items))
		}
		if next == "" {
			break
		}
		q = "?limit=500&include=args,result,metadata&cursor=" + next
	}
	if len(seen) != 40 || pages < 4 {
		t.Fatalf("paging saw %d records in %d pages, want 40 in at least 5", len(seen), pages+1)
	}

	// One record larger than the cap still comes back, alone, with a cursor.
	small := newFixture(t, fixtureConfig{opts: queueshttp.Options{MaxListBytes: 1 << 10}})
	small.enqueue("test.echo", echoArgs{big}, queues.EnqueueOptions{})
	last := small.enqueue("test.echo", echoArgs{big}, queues.EnqueueOptions{})
	_, items, next := listBody(t, small, "?include=args")
	if len(items) != 1 || next != last.String() {
		t.Fatalf("oversized record: %d items, cursor %q, want 1 and %s", len(items), next, last)
	}
}

// failingPing is a store whose Ping fails with detail that must stay in the log.
type failingPing struct{ *memory.Backend }

func (failingPing) Ping(context.Context) error {
	return fmt.Errorf("dial %s: connection refused", secret)
}

func TestReadyAndHealth(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	f.expect("GET", "/q/api/ready", "", 200)

	var logs logBuffer
	down := newFixture(t, fixtureConfig{backend: failingPing{memory.New(memory.Options{})},
		opts: queueshttp.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	m := down.expectError("GET", "/q/api/ready", "", 503, "store_unavailable")
	if strings.Contains(fmt.Sprint(m), "hunter2") || !strings.Contains(logs.String(), "hunter2") {
		t.Fatalf("the store error must be logged, not sent: body %v, log %s", m, logs.String())
	}
	// Liveness asks the store nothing.
	if r := down.do("GET", "/q/api/health", ""); r.status != 200 {
		t.Fatalf("health with a failing store = %d %s", r.status, r.raw)
	}

	// A memory store after Close.
	if err := f.backend.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.expectError("GET", "/q/api/ready", "", 503, "store_unavailable")
	f.expect("GET", "/q/api/health", "", 200)
}

// A Redis store whose server accepts connections and never answers: the
// readiness check gives up at ReadyTimeout and answers 503. The service is
// never started (its Open would hang the same way).
func TestReadyTimesOutOnAHungStore(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // hold it open, answer nothing
		}
	}()
	client := goredis.NewClient(&goredis.Options{Addr: ln.Addr().String(), MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	backend, err := qredis.New(client, qredis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := queues.New(queues.Config{Backend: backend, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h := queueshttp.Handler(svc, queueshttp.Options{Logger: quiet, ReadyTimeout: 200 * time.Millisecond})

	start := time.Now()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/ready", nil))
	took := time.Since(start)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"store_unavailable"`) {
		t.Fatalf("ready on a hung store = %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), ln.Addr().String()) {
		t.Fatalf("the store address reached the client: %s", rec.Body)
	}
	if took > 2*time.Second {
		t.Fatalf("ready took %s with ReadyTimeout 200ms", took)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/health", nil))
	if rec.Code != 200 {
		t.Fatalf("health on a hung store = %d %s", rec.Code, rec.Body)
	}
}

// GET /api/tasks/{id} answers the error history; list items carry it only
// with include=errors.
func TestTaskErrorHistory(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	id := f.enqueue("test.fail", echoArgs{"x"}, queues.EnqueueOptions{})
	f.runAll()
	m := f.expect("GET", "/q/api/tasks/"+id.String(), "", 200)
	errs, ok := m["errors"].([]any)
	if !ok || len(errs) != 1 {
		t.Fatalf("errors = %v", m["errors"])
	}
	e := errs[0].(map[string]any)
	if e["attempt"] != float64(1) || e["error"] != "boom" || e["at"] == nil || e["worker"] == nil {
		t.Fatalf("history entry %v", e)
	}
	_, items, _ := listBody(t, f, "")
	if _, has := items[0]["errors"]; has {
		t.Fatalf("a summary carries the error history: %v", items[0])
	}
	_, items, _ = listBody(t, f, "?include=errors")
	if errs, _ := items[0]["errors"].([]any); len(errs) != 1 {
		t.Fatalf("include=errors item %v", items[0])
	}
}
