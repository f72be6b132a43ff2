package demoapp_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/internal/demoapp"
	"github.com/queuesgo/queues/queueshttp"
)

type app struct {
	t    *testing.T
	svc  *queues.Service
	sink *events.MemorySink
	srv  *httptest.Server
}

func newApp(t *testing.T) *app {
	t.Helper()
	reg := queues.NewRegistry()
	if err := demoapp.Register(reg); err != nil {
		t.Fatal(err)
	}
	sink := events.NewMemorySink()
	svc, err := queues.New(queues.Config{
		Backend:  memory.New(memory.Options{}),
		Registry: reg,
		Worker:   queues.WorkerConfig{Placement: queues.PlacementInApp, MaxConcurrency: 4},
		Events:   &queues.EventsConfig{Sinks: []events.Sink{sink}},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.Handler = demoapp.Handler(svc, queueshttp.Options{Logger: slog.New(slog.DiscardHandler),
		Authorize: queueshttp.LoopbackOnly(srv.Listener.Addr().String())})
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if err := svc.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &app{t: t, svc: svc, sink: sink, srv: srv}
}

func (a *app) call(method, path string) (int, http.Header, []byte) {
	a.t.Helper()
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.srv.URL+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func (a *app) object(method, path string, want int) map[string]any {
	a.t.Helper()
	code, _, b := a.call(method, path)
	if code != want {
		a.t.Fatalf("%s %s = %d %s, want %d", method, path, code, b, want)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		a.t.Fatalf("%s %s: not a JSON object: %s", method, path, b)
	}
	return m
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestSyncEndToEnd(t *testing.T) {
	a := newApp(t)
	start := time.Now()
	code, hdr, body := a.call("POST", "/accounts/acct-42/sync")
	if code != http.StatusAccepted {
		t.Fatalf("sync = %d %s", code, body)
	}
	var accepted map[string]any
	if err := json.Unmarshal(body, &accepted); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys(accepted), []string{"status", "task_id"}) || accepted["status"] != "pending" {
		t.Fatalf("sync answer = %s, want exactly task_id and status pending", body)
	}
	id := accepted["task_id"].(string)
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("task_id %q: %v", id, err)
	}
	if hdr.Get("Location") != "/tasks/"+id {
		t.Errorf("Location = %q", hdr.Get("Location"))
	}

	// The in-app worker completes it within a second.
	var view map[string]any
	deadline := start.Add(time.Second)
	for {
		view = a.object("GET", "/tasks/"+id, 200)
		if view["status"] == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task not completed within a second of the POST: %v", view)
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := []string{"attempts", "completed_at", "created_at", "error", "result", "started_at", "status", "task_id", "task_name"}
	if !slices.Equal(keys(view), want) {
		t.Fatalf("task view keys = %v, want %v", keys(view), want)
	}
	if view["task_id"] != id || view["task_name"] != demoapp.TaskName || view["error"] != nil || view["attempts"] != 1.0 {
		t.Fatalf("task view = %v", view)
	}
	result, _ := view["result"].(map[string]any)
	if result["account_id"] != "acct-42" || result["synced_records"] != float64(demoapp.SyncedRecords("acct-42")) {
		t.Fatalf("result = %v", view["result"])
	}
	syncedAt, err := time.Parse(time.RFC3339, result["synced_at"].(string))
	if err != nil || syncedAt.Before(start.Add(-time.Second)) || syncedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("synced_at = %v (%v)", result["synced_at"], err)
	}
	for _, k := range []string{"created_at", "started_at", "completed_at"} {
		if s, _ := view[k].(string); !strings.HasSuffix(s, "Z") {
			t.Errorf("%s = %v, want an RFC 3339 UTC time", k, view[k])
		}
	}

	// Progress was published once per batch, ending at 100%.
	var progress []events.Event
	for _, ev := range a.sink.Events() {
		if ev.Type == events.TypeProgress && ev.TaskID == id {
			progress = append(progress, ev)
		}
	}
	if len(progress) != 5 {
		t.Fatalf("%d progress events, want 5", len(progress))
	}
	if last := progress[len(progress)-1]; last.ProgressPercent == nil || *last.ProgressPercent != 100 {
		t.Errorf("last progress = %+v, want 100%%", last)
	}

	// The JSON API is mounted at /queues/.
	stats := a.object("GET", "/queues/api/stats", 200)
	if stats["completed"] != 1.0 || stats["total"] != 1.0 {
		t.Fatalf("stats = %v", stats)
	}
	if rec := a.object("GET", "/queues/api/tasks/"+id, 200); rec["status"] != "completed" || rec["id"] != id {
		t.Fatalf("API record = %v", rec)
	}
}

func TestTaskViewOfPendingTask(t *testing.T) {
	a := newApp(t)
	res, err := a.svc.EnqueueRaw(t.Context(), demoapp.TaskName, json.RawMessage(`{"account_id":"later"}`),
		queues.EnqueueOptions{RunAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	view := a.object("GET", "/tasks/"+res.ID.String(), 200)
	if view["status"] != "scheduled" || view["result"] != nil || view["attempts"] != 0.0 ||
		view["started_at"] != nil || view["completed_at"] != nil || view["error"] != nil {
		t.Fatalf("view of a scheduled task = %v", view)
	}
}

func TestErrors(t *testing.T) {
	a := newApp(t)
	if m := a.object("GET", "/tasks/not-a-uuid", 400); m["error"] != "invalid_id" {
		t.Errorf("bad id = %v", m)
	}
	if m := a.object("GET", "/tasks/"+uuid.NewString(), 404); m["error"] != "not_found" {
		t.Errorf("missing task = %v", m)
	}
	if m := a.object("POST", "/accounts/"+strings.Repeat("x", 200)+"/sync", 400); m["error"] != "invalid_account" {
		t.Errorf("long account id = %v", m)
	}
	if code, _, _ := a.call("GET", "/accounts/1/sync"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET on the sync route = %d, want 405", code)
	}
}

func TestIndex(t *testing.T) {
	a := newApp(t)
	code, hdr, body := a.call("GET", "/")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("index = %d %s", code, hdr.Get("Content-Type"))
	}
	host := strings.TrimPrefix(a.srv.URL, "http://")
	for _, want := range []string{
		"curl -X POST http://" + host + "/accounts/42/sync",
		"curl http://" + host + "/tasks/<task_id>",
		"curl http://" + host + "/queues/api/stats",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("index lacks %q:\n%s", want, body)
		}
	}
	if code, _, _ := a.call("GET", "/nope"); code != 404 {
		t.Errorf("GET /nope = %d, want 404 (the index is exact)", code)
	}
}

func TestQueuesAPIOnlyForLoopback(t *testing.T) {
	a := newApp(t)
	h := demoapp.Handler(a.svc, queueshttp.Options{Logger: slog.New(slog.DiscardHandler),
		Authorize: queueshttp.LoopbackOnly("127.0.0.1:8000")})
	serve := func(method, path, remote, host, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(`{"task":"accounts.sync","args":{"account_id":"a"}}`))
		req.RemoteAddr, req.Host = remote, host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, c := range []struct{ name, remote, host, origin string }{
		{"remote client", "192.0.2.1:1234", "127.0.0.1:8000", ""},
		{"rebound name", "127.0.0.1:1234", "evil", "http://evil"},
		{"foreign page", "127.0.0.1:1234", "127.0.0.1:8000", "http://evil.example"},
	} {
		for _, m := range []string{"GET", "POST"} {
			if rec := serve(m, "/queues/api/tasks", c.remote, c.host, c.origin); rec.Code != http.StatusForbidden ||
				!strings.Contains(rec.Body.String(), `"forbidden"`) {
				t.Fatalf("%s: %s = %d %s", c.name, m, rec.Code, rec.Body)
			}
		}
	}
	if st, _ := a.svc.Statistics(t.Context(), ""); st.Total != 0 {
		t.Fatalf("refused requests stored %d records", st.Total)
	}
	if rec := serve("GET", "/queues/api/stats", "[::1]:5555", "localhost:8000", ""); rec.Code != 200 {
		t.Fatalf("loopback client = %d %s", rec.Code, rec.Body)
	}
	if rec := serve("POST", "/queues/api/tasks", "127.0.0.1:5555", "127.0.0.1:8000", "http://127.0.0.1:8000"); rec.Code != 201 {
		t.Fatalf("loopback enqueue = %d %s", rec.Code, rec.Body)
	}
	// The demo routes themselves are open.
	if rec := serve("GET", "/", "192.0.2.1:1234", "example.com", ""); rec.Code != 200 {
		t.Fatalf("remote client on / = %d", rec.Code)
	}
}

func TestRegister(t *testing.T) {
	reg := queues.NewRegistry()
	if err := demoapp.Register(reg); err != nil {
		t.Fatal(err)
	}
	if !reg.Has(demoapp.TaskName) {
		t.Fatal("accounts.sync is not registered")
	}
	if err := demoapp.Register(reg); err == nil {
		t.Fatal("registering twice must fail")
	}
}

func TestSyncWithoutAccountFailsTerminally(t *testing.T) {
	a := newApp(t)
	res, err := a.svc.EnqueueRaw(t.Context(), demoapp.TaskName, json.RawMessage(`{}`), queues.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	rec, err := res.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != queues.StatusFailed || rec.RetryCount != 0 || !strings.Contains(rec.Error, "account_id is required") {
		t.Fatalf("sync without an account ended %s after %d retries: %q", rec.Status, rec.RetryCount, rec.Error)
	}
}
