package queueshttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queueshttp"
)

var quiet = slog.New(slog.DiscardHandler)

type echoArgs struct {
	Msg string `json:"msg"`
}

type echoResult struct {
	Echo string `json:"echo"`
}

// fixture is a service on backend/memory (external placement unless a test
// asks for in-app) with three tasks, served through queueshttp.Mount at /q.
type fixture struct {
	t       *testing.T
	svc     *queues.Service
	backend driver.Backend
	srv     *httptest.Server
	started chan uuid.UUID // test.block sends its record ID when it starts
	release chan struct{}  // closing it lets test.block return
	once    sync.Once
}

type fixtureConfig struct {
	opts    queueshttp.Options
	backend driver.Backend // nil → memory.New
	inApp   bool
	// noAuth mounts without the allow-all Authorize the fixture adds when
	// opts has neither Authorize nor Insecure.
	noAuth bool
	// register adds tasks to the fixture's registry.
	register func(*queues.Registry)
}

// allowAll is an Authorize that admits every request.
func allowAll(*http.Request) error { return nil }

func registerTasks(t *testing.T, f *fixture) *queues.Registry {
	t.Helper()
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "test.echo", func(ctx context.Context, a echoArgs) (echoResult, error) {
		return echoResult{Echo: a.Msg}, nil
	})
	queues.MustRegister(reg, "test.block", func(ctx context.Context, a echoArgs) (echoResult, error) {
		info, _ := queues.TaskInfoFromContext(ctx)
		select {
		case f.started <- info.ID:
		case <-ctx.Done():
			return echoResult{}, ctx.Err()
		}
		select {
		case <-f.release:
			return echoResult{Echo: "released"}, nil
		case <-ctx.Done():
			return echoResult{}, context.Cause(ctx)
		}
	})
	queues.MustRegister(reg, "test.fail", func(ctx context.Context, a echoArgs) (echoResult, error) {
		return echoResult{}, queues.NonRetryable(errors.New("boom"))
	})
	queues.MustRegister(reg, "test.unique", func(ctx context.Context, a echoArgs) (echoResult, error) {
		return echoResult{Echo: a.Msg}, nil
	}, queues.TaskOptions{UniqueBy: queues.UniqueByArguments})
	return reg
}

func newFixture(t *testing.T, cfg fixtureConfig) *fixture {
	t.Helper()
	f := &fixture{t: t, started: make(chan uuid.UUID, 16), release: make(chan struct{})}
	f.backend = cfg.backend
	if f.backend == nil {
		f.backend = memory.New(memory.Options{})
	}
	reg := registerTasks(t, f)
	if cfg.register != nil {
		cfg.register(reg)
	}
	qc := queues.Config{Backend: f.backend, Registry: reg, Logger: quiet}
	if cfg.inApp {
		qc.Worker = queues.WorkerConfig{Placement: queues.PlacementInApp, MaxConcurrency: 2}
	}
	svc, err := queues.New(qc)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	if cfg.opts.Logger == nil {
		cfg.opts.Logger = quiet
	}
	if cfg.opts.Authorize == nil && !cfg.opts.Insecure && !cfg.noAuth {
		cfg.opts.Authorize = allowAll
	}
	mux := http.NewServeMux()
	queueshttp.Mount(mux, "/q", svc, cfg.opts)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.releaseAll()
		f.srv.Close()
		if err := svc.Close(context.Background()); err != nil {
			t.Errorf("close service: %v", err)
		}
	})
	return f
}

func (f *fixture) releaseAll() { f.once.Do(func() { close(f.release) }) }

// response is a decoded API answer.
type response struct {
	status int
	header http.Header
	raw    []byte
}

func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.status, err, r.raw)
	}
	return m
}

func (f *fixture) do(method, path, body string, hdr ...string) response {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		f.t.Fatalf("%s %s: Content-Type %q, want JSON; body %s", method, path, ct, raw)
	}
	return response{status: resp.StatusCode, header: resp.Header, raw: raw}
}

// expect asserts the status and decodes the body as an object.
func (f *fixture) expect(method, path, body string, status int) map[string]any {
	f.t.Helper()
	r := f.do(method, path, body)
	if r.status != status {
		f.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, status, r.raw)
	}
	return r.object(f.t)
}

// expectError asserts an error answer with the given status and code.
func (f *fixture) expectError(method, path, body string, status int, code string) map[string]any {
	f.t.Helper()
	m := f.expect(method, path, body, status)
	if m["error"] != code {
		f.t.Fatalf("%s %s: error %v, want %q; body %v", method, path, m["error"], code, m)
	}
	if msg, ok := m["message"].(string); !ok || msg == "" {
		f.t.Fatalf("%s %s: error without a message: %v", method, path, m)
	}
	if len(m) != 2 {
		f.t.Fatalf("%s %s: error body has keys %v, want error and message", method, path, keys(m))
	}
	return m
}

func (f *fixture) enqueue(task string, args any, opts queues.EnqueueOptions) uuid.UUID {
	f.t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		f.t.Fatal(err)
	}
	res, err := f.svc.EnqueueRaw(f.t.Context(), task, b, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return res.ID
}

// runAll claims and runs every due record with a one-off worker.
func (f *fixture) runAll() {
	f.t.Helper()
	w, err := f.svc.NewWorker(queues.WorkerConfig{ID: "test-" + uuid.NewString()[:8], BatchSize: 100, MaxConcurrency: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := w.RunOnce(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
	if err := w.Wait(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) record(id uuid.UUID) *queues.Record {
	f.t.Helper()
	rec, err := f.svc.GetTask(f.t.Context(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	got := keys(m)
	w := slices.Clone(want)
	sort.Strings(w)
	if !slices.Equal(got, w) {
		t.Fatalf("%s keys = %v, want %v", what, got, w)
	}
}

var recordKeys = []string{"id", "task_name", "args", "queue", "execution_backend", "execution_profile",
	"execution_ref", "worker_id", "status", "priority", "max_retries", "retry_count", "scheduled_at",
	"expires_at", "created_at", "queued_at", "started_at", "completed_at", "heartbeat_at", "result",
	"error", "key", "metadata", "policy", "interruptions", "dispatch_until", "snooze_count", "errors", "tags"}

// summaryKeys are the keys of a list item without include.
var summaryKeys = slices.DeleteFunc(slices.Clone(recordKeys), func(k string) bool {
	return k == "args" || k == "result" || k == "metadata" || k == "errors"
})

var statsKeys = []string{"pending", "scheduled", "running", "completed", "failed", "cancelled", "expired", "total"}

// logBuffer is a slog handler target safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
