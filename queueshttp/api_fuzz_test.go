package queueshttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queueshttp"
)

// fuzzAPI serves the JSON API of a memory-backed service to a fuzz target.
// The service is replaced every fuzzServiceUses requests, so the records a
// long run enqueues do not pile up in memory.
type fuzzAPI struct {
	mu   sync.Mutex
	uses int
	svc  *queues.Service
	h    http.Handler
}

const fuzzServiceUses = 2000

// fuzzArgs are the typed arguments of fz.echo (a wrong type is invalid_args).
type fuzzArgs struct {
	Msg string `json:"msg"`
}

func (a *fuzzAPI) serve(tb testing.TB, req *http.Request) *httptest.ResponseRecorder {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.svc == nil || a.uses >= fuzzServiceUses {
		a.close()
		a.open(tb)
	}
	a.uses++
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return rec
}

func (a *fuzzAPI) open(tb testing.TB) {
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "fz.echo", func(ctx context.Context, a fuzzArgs) (fuzzArgs, error) { return a, nil })
	queues.MustRegister(reg, "fz.any", func(ctx context.Context, a map[string]any) (map[string]any, error) { return a, nil })
	queues.MustRegister(reg, "fz.unique", func(ctx context.Context, a map[string]any) (map[string]any, error) { return a, nil },
		queues.TaskOptions{UniqueBy: queues.UniqueByArguments})
	svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{}), Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	for i, q := range []string{"default", "default", "other", "default", "other"} {
		if _, err := svc.EnqueueRaw(ctx, "fz.echo", json.RawMessage(`{"msg":"seed"}`), queues.EnqueueOptions{Queue: q, Priority: &i}); err != nil {
			tb.Fatal(err)
		}
	}
	a.svc, a.uses = svc, 0
	a.h = queueshttp.Handler(svc, queueshttp.Options{Logger: slog.New(slog.DiscardHandler), Authorize: func(*http.Request) error { return nil }})
}

func (a *fuzzAPI) close() {
	if a.svc != nil {
		_ = a.svc.Close(context.Background())
		a.svc = nil
	}
}

// checkAnswer checks what every answer of the API must be: never a 5xx,
// always JSON, and the JSON error shape {"error": code, "message": text}
// for every refusal.
func checkAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	body := rec.Body.Bytes()
	if rec.Code >= 500 {
		t.Fatalf("%s: %d %s", what, rec.Code, body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: %d with Content-Type %q: %s", what, rec.Code, ct, body)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %d with a body that is not JSON (%v): %q", what, rec.Code, err, body)
	}
	obj, _ := v.(map[string]any)
	if rec.Code >= 400 {
		code, _ := obj["error"].(string)
		_, hasMsg := obj["message"].(string)
		if code == "" || !hasMsg {
			t.Fatalf("%s: %d without the JSON error shape: %s", what, rec.Code, body)
		}
	}
	return obj
}

// FuzzEnqueueBody posts any body to POST /api/tasks: the answer is 200 or
// 201 with the enqueued record, or a 4xx in the JSON error shape; never a
// 500.
func FuzzEnqueueBody(f *testing.F) {
	for _, s := range []string{
		`{"task":"fz.echo","args":{"msg":"hi"}}`,
		`{"task":"fz.echo","args":{"msg":"hi"},"queue":"q1","priority":-5,"retries":3,"run_after":"1m30s","key":"k1","metadata":{"a":1,"b":[true,null]}}`,
		`{"task":"fz.echo","run_after":12.5}`, `{"task":"fz.echo","run_after":-1}`, `{"task":"fz.echo","run_after":1e300}`,
		`{"task":"fz.echo","run_after":"soon"}`, `{"task":"fz.echo","run_after":[1]}`, `{"task":"fz.echo","run_after":null}`,
		`{"task":"fz.echo","args":{"msg":5}}`, `{"task":"fz.echo","args":"str"}`, `{"task":"fz.echo","args":null}`,
		`{"task":"fz.any","args":{"s":"\u0000","t":"\ud800","n":123456789012345678901234567890}}`,
		`{"task":"fz.unique","args":{"b":1,"a":[1.0,2]}}`, `{"task":"fz.unique","args":{"a":[1.0,2],"b":1}}`,
		`{"task":"fz.echo","metadata":{"_reserved":1}}`, `{"task":"fz.echo","metadata":{"timeout":"1s"}}`,
		`{"task":"fz.echo","priority":99999999999999999999}`, `{"task":"fz.echo","retries":-1}`, `{"task":"fz.echo","retries":2147483647}`,
		`{"task":"fz.echo","queue":" "}`, `{"task":"fz.echo","queue":"a\u0000b"}`, `{"task":"fz.echo","key":""}`,
		`{"task":"no.such.task"}`, `{"task":""}`, `{}`, `[]`, `null`, ``, `{"task":"fz.echo"} {}`, `{"task":"fz.echo","extra":1}`,
		`{"task":"fz.echo","priority":"high"}`, `{"task":"fz.echo","metadata":[]}`, `{"task":1}`, "{\"task\":\"fz.echo\xff\"}",
	} {
		f.Add([]byte(s))
	}
	api := &fuzzAPI{}
	f.Cleanup(api.close)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/api/tasks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := api.serve(t, req)
		obj := checkAnswer(t, "POST /api/tasks "+string(body), rec)
		switch rec.Code {
		case http.StatusOK, http.StatusCreated:
			if id, _ := obj["task_id"].(string); id == "" {
				t.Fatalf("%d without a task_id: %s", rec.Code, rec.Body.Bytes())
			}
		default:
			if rec.Code < 400 {
				t.Fatalf("unexpected %d: %s", rec.Code, rec.Body.Bytes())
			}
		}
	})
}

// FuzzListQuery sends any query string to GET /api/tasks: the answer is a
// 200 page or a 400 in the JSON error shape; never a 500.
func FuzzListQuery(f *testing.F) {
	for _, s := range []string{
		"", "status=pending", "status=bogus", "status=", "limit=1", "limit=0", "limit=-1", "limit=500", "limit=501",
		"limit=99999999999999999999", "limit=1.5", "limit=%20", "cursor=00000000-0000-0000-0000-000000000000",
		"cursor=not-a-uuid", "cursor=", "queue=default&task_name=fz.echo", "queue=%00", "queue=%zz", "task_name=%ff",
		"limit=1&limit=2", ";;&&==", "status=pending;limit=2", "include=args,result", "limit=2&cursor=ffffffff-ffff-ffff-ffff-ffffffffffff",
	} {
		f.Add(s)
	}
	api := &fuzzAPI{}
	f.Cleanup(api.close)
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest(http.MethodGet, "/api/tasks", nil)
		req.URL.RawQuery = query
		rec := api.serve(t, req)
		obj := checkAnswer(t, "GET /api/tasks?"+query, rec)
		switch {
		case rec.Code == http.StatusOK:
			if _, ok := obj["items"].([]any); !ok {
				t.Fatalf("200 without an items list: %s", rec.Body.Bytes())
			}
		case rec.Code != http.StatusBadRequest:
			t.Fatalf("GET /api/tasks?%s: unexpected %d: %s", query, rec.Code, rec.Body.Bytes())
		}
	})
}
