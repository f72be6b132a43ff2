package queueshttp_test

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/queueshttp"
)

// Mount the JSON API beside an application's routes, protected by a token,
// then enqueue a task and read the statistics over HTTP.
func ExampleMount() {
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "email.send", func(ctx context.Context, a struct {
		To string `json:"to"`
	}) (string, error) {
		return "sent to " + a.To, nil
	})
	svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{}), Registry: reg,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		panic(err)
	}
	defer svc.Close(ctx)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "my app") })
	queueshttp.Mount(mux, "/queues", svc, queueshttp.Options{
		Authorize: func(r *http.Request) error {
			// Compare in constant time so the token cannot be guessed byte by byte.
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer s3cret")) != 1 {
				return errors.New("bad token")
			}
			return nil
		},
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}

	code, body := call("POST", "/queues/api/tasks", `{"task":"email.send","args":{"to":"ada@example.com"}}`)
	var created struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal([]byte(body), &created)
	fmt.Println(code, created.Status)

	fmt.Println(call("GET", "/queues/api/stats", ""))
	fmt.Println(call("POST", "/queues/api/tasks", `{"task":"email.sned"}`))
	// Output:
	// 201 pending
	// 200 {"pending":1,"scheduled":0,"running":0,"completed":0,"failed":0,"cancelled":0,"expired":0,"total":1}
	// 404 {"error":"unknown_task","message":"task \"email.sned\" is not registered in this process"}
}

// Run an application's HTTP server and an in-app worker together until
// SIGINT: the server stops first, then the worker drains.
func ExampleServe() {
	reg := queues.NewRegistry()
	// ... register tasks ...
	svc, err := queues.New(queues.Config{
		Backend:  memory.New(memory.Options{}), // sqlite or postgres in production
		Registry: reg,
		Worker:   queues.WorkerConfig{Placement: queues.PlacementInApp, GracefulShutdownTimeout: 20 * time.Second},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	queueshttp.Mount(mux, "/queues", svc, queueshttp.Options{ReadOnly: true, Authorize: func(r *http.Request) error {
		return nil // check the session or token here
	}})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := queueshttp.Serve(ctx, svc, &http.Server{Addr: "127.0.0.1:8000", Handler: mux}); err != nil {
		slog.Error("server stopped", "error", err)
		os.Exit(1)
	}
}
