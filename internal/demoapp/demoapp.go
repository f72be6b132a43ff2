// Package demoapp is the small web application that `queues demo` serves: an
// endpoint that starts a simulated account sync in the background and returns
// at once, an endpoint that reports the sync's outcome, and the queues JSON
// API mounted at /queues/.
//
//	POST /accounts/{id}/sync   202 {"task_id":"...","status":"pending"}
//	GET  /tasks/{id}           {"task_id","task_name","status","result","error","attempts",
//	                            "created_at","started_at","completed_at"}
//	GET  /                     plain-text instructions with the curl commands
//	GET  /queues/api/...       the queueshttp JSON API, with the options the caller gives
//	                           (the CLI: loopback clients addressing the server by its own address)
//
// Register adds the accounts.sync task to a registry; the CLI runs Handler
// beside an in-app worker (queueshttp.Serve) so the sync completes in the
// same process a few milliseconds later.
package demoapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queueshttp"
)

// TaskName is the name of the demo task.
const TaskName = "accounts.sync"

// syncSteps is how many simulated batches a sync takes; stepDelay is the
// simulated work per batch.
const (
	syncSteps = 5
	stepDelay = 2 * time.Millisecond
)

// maxAccountIDLen bounds the {id} of POST /accounts/{id}/sync.
const maxAccountIDLen = 128

// SyncArgs are the arguments of accounts.sync.
type SyncArgs struct {
	AccountID string `json:"account_id"`
}

// SyncResult is the result of accounts.sync.
type SyncResult struct {
	AccountID     string `json:"account_id"`
	SyncedRecords int    `json:"synced_records"`
	// SyncedAt is RFC 3339 UTC.
	SyncedAt string `json:"synced_at"`
}

// Register registers accounts.sync in reg.
func Register(reg *queues.Registry) error {
	_, err := queues.Register(reg, TaskName, syncAccount, queues.TaskOptions{
		Retries:     2,
		Timeout:     30 * time.Second,
		Description: "Simulated account sync (queues demo)",
	})
	return err
}

// SyncedRecords is the number of records the simulated sync of accountID
// reports: a deterministic 10..99, so demos and tests can predict it.
func SyncedRecords(accountID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(accountID))
	return 10 + int(h.Sum32()%90)
}

// syncAccount simulates a short sync in a few batches, publishing progress
// after each one.
func syncAccount(ctx context.Context, a SyncArgs) (SyncResult, error) {
	if a.AccountID == "" {
		return SyncResult{}, queues.NonRetryable(errors.New("account_id is required"))
	}
	total := SyncedRecords(a.AccountID)
	t := time.NewTimer(stepDelay)
	defer t.Stop()
	for step := 1; step <= syncSteps; step++ {
		select {
		case <-ctx.Done():
			return SyncResult{}, context.Cause(ctx)
		case <-t.C:
		}
		done := total * step / syncSteps
		// Progress is best effort: a slow or failing event sink must not fail the sync.
		_ = queues.Progress(ctx, queues.ProgressUpdate{
			Current: float64(done), Total: float64(total),
			Message: fmt.Sprintf("synced %d of %d records", done, total),
			Payload: map[string]any{"account_id": a.AccountID, "batch": step},
		})
		queues.Beat(ctx, fmt.Sprintf("batch %d of %d", step, syncSteps))
		t.Reset(stepDelay)
	}
	return SyncResult{AccountID: a.AccountID, SyncedRecords: total, SyncedAt: time.Now().UTC().Format(time.RFC3339)}, nil
}

// Handler returns the demo application for svc, whose registry must hold the
// task added by Register. The queues JSON API is mounted at /queues/ with
// api: the CLI passes queueshttp.LoopbackOnly for the address it listens on,
// so the demo never exposes task control to the network or to a web page
// that rebinds its name to 127.0.0.1.
func Handler(svc *queues.Service, api queueshttp.Options) http.Handler {
	d := &demo{svc: svc, log: slog.Default()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.index)
	mux.HandleFunc("POST /accounts/{id}/sync", d.sync)
	mux.HandleFunc("GET /tasks/{id}", d.task)
	queueshttp.Mount(mux, "/queues", svc, api)
	return mux
}

type demo struct {
	svc *queues.Service
	log *slog.Logger
}

const indexText = `queues demo

Start a background account sync; the answer comes back at once with the task id:

    curl -X POST http://%[1]s/accounts/42/sync

Then look at the task (run it again until "status" is "completed"):

    curl http://%[1]s/tasks/<task_id>

Queue statistics and the rest of the JSON API live under /queues/api/:

    curl http://%[1]s/queues/api/stats
    curl 'http://%[1]s/queues/api/tasks?limit=5'
`

func (d *demo) index(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if host == "" {
		host = "127.0.0.1:8000"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	fmt.Fprintf(w, indexText, host)
}

// SyncResponse is the body of POST /accounts/{id}/sync.
type SyncResponse struct {
	TaskID uuid.UUID     `json:"task_id"`
	Status queues.Status `json:"status"`
}

func (d *demo) sync(w http.ResponseWriter, r *http.Request) {
	account := r.PathValue("id")
	if len(account) > maxAccountIDLen {
		writeError(w, http.StatusBadRequest, "invalid_account", fmt.Sprintf("account id must be at most %d bytes", maxAccountIDLen))
		return
	}
	args, err := json.Marshal(SyncArgs{AccountID: account})
	if err != nil {
		d.internal(w, r, err)
		return
	}
	res, err := d.svc.EnqueueRaw(r.Context(), TaskName, args, queues.EnqueueOptions{})
	if errors.Is(err, queues.ErrUnknownTask) {
		d.log.Error("demoapp: accounts.sync is not registered; call demoapp.Register on the service's registry")
		writeError(w, http.StatusInternalServerError, "internal", "the demo task is not registered")
		return
	}
	if err != nil {
		d.internal(w, r, err)
		return
	}
	rec := res.Record()
	if rec == nil {
		d.internal(w, r, errors.New("enqueue returned no record"))
		return
	}
	w.Header().Set("Location", "/tasks/"+res.ID.String())
	writeJSON(w, http.StatusAccepted, SyncResponse{TaskID: res.ID, Status: rec.Status})
}

// TaskView is the body of GET /tasks/{id}. Result is the stored JSON result
// (null until the task completes); Error, StartedAt and CompletedAt are null
// when unset.
type TaskView struct {
	TaskID      uuid.UUID       `json:"task_id"`
	TaskName    string          `json:"task_name"`
	Status      queues.Status   `json:"status"`
	Result      json.RawMessage `json:"result"`
	Error       *string         `json:"error"`
	Attempts    int             `json:"attempts"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at"`
	CompletedAt *time.Time      `json:"completed_at"`
}

// NewTaskView summarizes rec. Attempts counts the attempts that started: the
// earlier generations plus the current one once it has started.
func NewTaskView(rec *queues.Record) TaskView {
	v := TaskView{TaskID: rec.ID, TaskName: rec.TaskName, Status: rec.Status, Result: rec.Result,
		Attempts: rec.RetryCount, CreatedAt: rec.CreatedAt.UTC(),
		StartedAt: timePtr(rec.StartedAt), CompletedAt: timePtr(rec.CompletedAt)}
	if !rec.StartedAt.IsZero() {
		v.Attempts++
	}
	if rec.Error != "" {
		e := rec.Error
		v.Error = &e
	}
	if len(v.Result) == 0 {
		v.Result = nil // encodes as null
	}
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (d *demo) task(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_id", "task id must be a UUID")
		return
	}
	rec, err := d.svc.GetTask(r.Context(), id)
	if errors.Is(err, queues.ErrTaskNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("task %s not found", id))
		return
	}
	if err != nil {
		d.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, NewTaskView(rec))
}

func (d *demo) internal(w http.ResponseWriter, r *http.Request, err error) {
	d.log.Error("demoapp: request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal","message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]string{"error": code, "message": message})
}
