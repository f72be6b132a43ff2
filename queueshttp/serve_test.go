package queueshttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queueshttp"
)

// serveFixture builds an in-app service (not started: Serve starts it).
func serveFixture(t *testing.T, backend driver.Backend, placement queues.Placement) (*fixture, *queues.Service) {
	t.Helper()
	f := &fixture{t: t, started: make(chan uuid.UUID, 16), release: make(chan struct{})}
	t.Cleanup(f.releaseAll)
	svc, err := queues.New(queues.Config{Backend: backend, Registry: registerTasks(t, f), Logger: quiet,
		Worker: queues.WorkerConfig{Placement: placement, MaxConcurrency: 2}})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f, svc
}

func httpJSON(t *testing.T, client *http.Client, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, url, raw)
	}
	return resp.StatusCode, m
}

func TestServeListenerLifecycle(t *testing.T) {
	backend := memory.New(memory.Options{})
	f, svc := serveFixture(t, backend, queues.PlacementInApp)
	mux := http.NewServeMux()
	queueshttp.Mount(mux, "/queues", svc, queueshttp.Options{Logger: quiet, Authorize: allowAll})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String() + "/queues/api"
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- queueshttp.ServeListener(ctx, svc, &http.Server{Handler: mux}, ln) }()

	// A task enqueued through the API completes through the in-app worker.
	status, m := httpJSON(t, client, "POST", base+"/tasks", `{"task":"test.echo","args":{"msg":"via http"}}`)
	if status != 201 {
		t.Fatalf("enqueue = %d %v", status, m)
	}
	id := m["task_id"].(string)
	waitFor(t, "the in-app worker to complete the task", 5*time.Second, func() bool {
		_, rec := httpJSON(t, client, "GET", base+"/tasks/"+id, "")
		return rec["status"] == "completed"
	})
	if _, rec := httpJSON(t, client, "GET", base+"/tasks/"+id, ""); rec["result"].(map[string]any)["echo"] != "via http" {
		t.Fatalf("completed record = %v", rec)
	}

	// A long task is running when ctx ends.
	status, m = httpJSON(t, client, "POST", base+"/tasks", `{"task":"test.block"}`)
	if status != 201 {
		t.Fatalf("enqueue = %d %v", status, m)
	}
	blockID := uuid.MustParse(m["task_id"].(string))
	select {
	case got := <-f.started:
		if got != blockID {
			t.Fatalf("started %s, want %s", got, blockID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the in-app worker did not start the blocking task")
	}
	cancel()

	// The HTTP server stops first ...
	waitFor(t, "the HTTP server to stop accepting", 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// ... while the in-app worker is still draining the running attempt.
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) before the in-app worker drained its running task", err)
	default:
	}
	f.releaseAll()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil after ctx ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	rec, err := svc.GetTask(context.Background(), blockID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != queues.StatusCompleted || string(rec.Result) != `{"echo":"released"}` {
		t.Fatalf("the drained task ended %s with %s, want completed (a graceful drain)", rec.Status, rec.Result)
	}
	if svc.InAppWorker() != nil {
		t.Fatal("the service still has an in-app worker after Serve returned")
	}
}

func TestServeListenAndServeStopsOnCancel(t *testing.T) {
	_, svc := serveFixture(t, memory.New(memory.Options{}), queues.PlacementExternal)
	// Find a free port, then let Serve listen on it itself.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	mux := http.NewServeMux()
	queueshttp.Mount(mux, "", svc, queueshttp.Options{Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- queueshttp.Serve(ctx, svc, &http.Server{Addr: addr, Handler: mux}) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	waitFor(t, "the server to answer", 5*time.Second, func() bool {
		resp, err := client.Get("http://" + addr + "/api/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	if _, err := client.Get("http://" + addr + "/api/health"); err == nil {
		t.Fatal("the server still answers after Serve returned")
	}
}

func TestServeReturnsServerError(t *testing.T) {
	_, svc := serveFixture(t, memory.New(memory.Options{}), queues.PlacementInApp)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	done := make(chan error, 1)
	go func() {
		done <- queueshttp.Serve(context.Background(), svc, &http.Server{Addr: busy.Addr().String(), Handler: http.NewServeMux()})
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return although the address is taken")
	}
	if err == nil || errors.Is(err, http.ErrServerClosed) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Serve = %v, want the listen error (address in use)", err)
	}
	if svc.InAppWorker() != nil {
		t.Fatal("the service was not closed after the server failed")
	}
}

var errDiskOnFire = errors.New("disk on fire")

type failOpen struct{ *memory.Backend }

func (failOpen) Open(context.Context) error { return errDiskOnFire }

func TestServeStartFailure(t *testing.T) {
	_, svc := serveFixture(t, failOpen{memory.New(memory.Options{})}, queues.PlacementInApp)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = queueshttp.ServeListener(context.Background(), svc, &http.Server{}, ln)
	if !errors.Is(err, errDiskOnFire) {
		t.Fatalf("ServeListener = %v, want the backend's Open error", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the listener was not closed: Accept = %v", err)
	}
}
