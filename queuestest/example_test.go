package queuestest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queuestest"
)

// exampleT stands in for the *testing.T a real test receives, so the
// examples run as tests: a failure panics, cleanups run at done.
type exampleT struct {
	testing.TB
	cleanups []func()
}

func (t *exampleT) Helper()                           {}
func (t *exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) Errorf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

type Welcome struct {
	To   string `json:"to"`
	Lang string `json:"lang"`
}

// The application's tasks, registered as the application does it.
func appRegistry() *queues.Registry {
	reg := queues.NewRegistry()
	queues.MustRegister(reg, "email.welcome", func(ctx context.Context, w Welcome) (string, error) {
		if w.To == "" {
			return "", queues.NonRetryable(errors.New("no recipient"))
		}
		return "welcome sent to " + w.To, nil
	}, queues.TaskOptions{Retries: 3, Timeout: 10 * time.Second})
	return reg
}

// A handler test: one attempt through the engine (middleware, timeout,
// argument decoding), and its outcome.
func ExampleRunOne() {
	t := &exampleT{} // in a test: the *testing.T
	defer t.done()

	svc := queuestest.NewService(t, appRegistry())

	rec, err := queuestest.RunOne(t, svc, "email.welcome", Welcome{To: "ada@example.com"})
	fmt.Println(rec.Status, string(rec.Result), err)

	rec, err = queuestest.RunOne(t, svc, "email.welcome", Welcome{})
	fmt.Println(rec.Status, err)
	// Output:
	// completed "welcome sent to ada@example.com" <nil>
	// failed task failed: no recipient
}

// signupHandler is the application's HTTP handler: it enqueues the welcome
// email of the account it creates.
func signupHandler(svc *queues.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		args, _ := json.Marshal(Welcome{To: r.FormValue("email"), Lang: "en"})
		if _, err := svc.EnqueueRaw(r.Context(), "email.welcome", args, queues.EnqueueOptions{}); err != nil {
			http.Error(w, "try again later", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
}

// An enqueue-in-a-request test: the handler enqueued the welcome email for
// the address it was given, and the email task completes when drained.
func Example_enqueueInRequest() {
	t := &exampleT{} // in a test: the *testing.T
	defer t.done()

	svc := queuestest.NewService(t, appRegistry())
	rr := httptest.NewRecorder()
	signupHandler(svc).ServeHTTP(rr, httptest.NewRequest("POST", "/signup?email=ada@example.com", nil))

	recs := queuestest.RequireEnqueued(t, svc, "email.welcome", map[string]any{"to": "ada@example.com"})
	queuestest.RequireNotEnqueued(t, svc, "email.welcome", map[string]any{"to": "bob@example.com"})
	fmt.Println(rr.Code, len(recs), recs[0].Status)

	for _, rec := range queuestest.Drain(t, svc) {
		fmt.Println(rec.TaskName, rec.Status, string(rec.Result))
	}
	// Output:
	// 201 1 pending
	// email.welcome completed "welcome sent to ada@example.com"
}

// A record due in an hour runs once the store's clock is an hour ahead.
func ExampleClock() {
	t := &exampleT{} // in a test: the *testing.T
	defer t.done()

	clock := queuestest.NewClock()
	svc := queuestest.NewService(t, appRegistry(), queuestest.Options{Clock: clock})
	args, _ := json.Marshal(Welcome{To: "ada@example.com"})
	_, _ = svc.EnqueueRaw(context.Background(), "email.welcome", args, queues.EnqueueOptions{RunAfter: time.Hour})

	fmt.Println(len(queuestest.Drain(t, svc)))
	clock.Advance(time.Hour)
	fmt.Println(len(queuestest.Drain(t, svc)))
	// Output:
	// 0
	// 1
}
