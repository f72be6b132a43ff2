package queueshttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/queuesgo/queues/internal/queuefacts"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

// MaxRequestBytes bounds request bodies; a larger body answers 413
// request_too_large. It follows the largest arguments and metadata a
// record may hold (queuestype.DefaultLimits: 1 MiB and 64 KiB) plus 64 KiB
// for the rest of the body, so that arguments over a service's limit but
// within the body cap get the typed 413 too_large naming the field.
const MaxRequestBytes = 1<<20 + 64<<10 + 64<<10

// DefaultListLimit is the page size of GET /api/tasks without limit.
const DefaultListLimit = 50

// MaxListLimit caps the limit of GET /api/tasks; larger values are clamped.
const MaxListLimit = 500

// DefaultMaxListBytes is the default cap on the encoded body of GET
// /api/tasks (Options.MaxListBytes).
const DefaultMaxListBytes = 4 << 20

// DefaultReadyTimeout is the default bound on the store ping of GET
// /api/ready (Options.ReadyTimeout).
const DefaultReadyTimeout = 2 * time.Second

// Options configure the JSON API. The zero value serves the read routes to
// every client and refuses the mutating ones: set Authorize in production.
type Options struct {
	// Authorize decides whether a request may use the API. It runs before
	// routing, for every route; a non-nil error answers 403
	// {"error":"forbidden"}. The error text is logged at debug level, never
	// sent. Without Authorize the read routes are served to every client and
	// the mutating routes (enqueue, cancel, rerun, and every later route that
	// changes state) answer 403 {"error":"unauthorized_mount"}, unless
	// Insecure is set. LoopbackOnly builds an Authorize for a server that
	// listens on loopback addresses only.
	Authorize func(*http.Request) error
	// Insecure serves the mutating routes without Authorize, to every client
	// that reaches the API. It is the one explicit opt-out of authorization:
	// the event streams and the dashboard that later mount beside the API
	// follow it too. It has no effect when Authorize is set.
	Insecure bool
	// ReadOnly answers 403 {"error":"read_only"} to the mutating routes.
	ReadOnly bool
	// Logger receives the mount mode, internal errors and failed readiness
	// checks; nil → slog.Default().
	Logger *slog.Logger
	// CrossOrigin guards the mutating routes against cross-origin browser
	// requests (CSRF); nil → http.NewCrossOriginProtection(), which allows
	// same-origin browser requests and every non-browser client. Configure
	// trusted origins on your own value to call the API from another origin.
	CrossOrigin *http.CrossOriginProtection
	// MaxListBytes caps the encoded body of GET /api/tasks: items stop being
	// added before the page would pass it, and next_cursor continues from
	// there (a page always holds at least one item). 0 → DefaultMaxListBytes.
	MaxListBytes int
	// ReadyTimeout bounds the store ping of GET /api/ready; 0 →
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// Handler returns the JSON API. It serves paths starting with /api/; use
// Mount (or http.StripPrefix) to serve it beneath a prefix. It panics when
// svc is nil.
func Handler(svc *queues.Service, opts Options) http.Handler {
	return newAPI(svc, opts)
}

func newAPI(svc *queues.Service, opts Options) *api {
	if svc == nil {
		panic("queueshttp: Handler needs a non-nil *queues.Service")
	}
	a := &api{svc: svc, opts: opts, log: opts.Logger, cop: opts.CrossOrigin, mux: http.NewServeMux(),
		maxList: opts.MaxListBytes, readyTimeout: opts.ReadyTimeout}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.cop == nil {
		a.cop = http.NewCrossOriginProtection()
	}
	if a.maxList <= 0 {
		a.maxList = DefaultMaxListBytes
	}
	if a.readyTimeout <= 0 {
		a.readyTimeout = DefaultReadyTimeout
	}
	a.logMode()
	a.handle("GET /api/health", a.health)
	a.handle("GET /api/ready", a.ready)
	a.handle("GET /api/stats", a.stats)
	a.handle("GET /api/queues", a.queueStats)
	a.handle("GET /api/workers", a.workers)
	a.handle("GET /api/schedules", a.schedules)
	a.handle("POST /api/schedules/{name}/pause", a.scheduleAction("pause"))
	a.handle("POST /api/schedules/{name}/resume", a.scheduleAction("resume"))
	a.handle("POST /api/schedules/{name}/trigger", a.scheduleAction("trigger"))
	a.handle("GET /api/scheduler-health", a.schedulerHealth)
	a.handle("GET /api/tasks", a.listTasks)
	a.handle("GET /api/tasks/{id}", a.getTask)
	a.handle("POST /api/tasks", a.enqueue)
	a.handle("POST /api/tasks/{id}/cancel", a.cancel)
	a.handle("POST /api/tasks/{id}/rerun", a.rerun)
	return a
}

// handle registers a route. Every method but GET (which also serves HEAD)
// changes state, so it goes through mutating: a new route cannot forget
// the authorization, read-only and cross-origin guards.
func (a *api) handle(pattern string, h http.HandlerFunc) {
	method, _, ok := strings.Cut(pattern, " ")
	if !ok {
		panic("queueshttp: route pattern without a method: " + pattern)
	}
	if method != http.MethodGet {
		h = a.mutating(h)
	}
	a.mux.HandleFunc(pattern, h)
}

// logMode says once, when the handler is built, who may do what.
func (a *api) logMode() {
	switch {
	case a.opts.Authorize != nil:
		a.log.Info("queues HTTP API mounted with Authorize", "read_only", a.opts.ReadOnly)
	case a.opts.ReadOnly:
		a.log.Warn("queues HTTP API mounted read-only without Authorize: every client that reaches it can read tasks")
	case a.opts.Insecure:
		a.log.Warn("queues HTTP API mounted with Insecure and without Authorize: every client that reaches it can read and change tasks")
	default:
		a.log.Warn("queues HTTP API mounted without Authorize: every client that reaches it can read tasks; " +
			"mutating routes answer 403 unauthorized_mount until Authorize (or Insecure) is set")
	}
}

// Mount registers the JSON API on mux beneath prefix: Mount(mux, "/queues",
// ...) serves /queues/api/health and so on. A trailing slash on prefix is
// ignored and "" or "/" mounts at /api/. The API subtree is registered once
// per standard method (GET, which also serves HEAD, POST, PUT, PATCH,
// DELETE, OPTIONS, TRACE) rather than for every method, so Mount never
// conflicts with method-specific patterns of the application such as
// "GET /", and a method the API does not serve on a path still answers a
// JSON 405 instead of reaching the application's handlers.
func Mount(mux *http.ServeMux, prefix string, svc *queues.Service, opts Options) {
	prefix = strings.TrimRight(prefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	a := newAPI(svc, opts)
	var h http.Handler = a
	if prefix != "" {
		// Authorize sees the request as the client sent it, prefix included.
		routes := http.StripPrefix(prefix, http.HandlerFunc(a.route))
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.serve(w, r, routes)
		})
	}
	for _, m := range mountMethods {
		mux.Handle(m+" "+prefix+"/api/", h)
	}
}

// mountMethods are the methods Mount registers the API subtree for.
var mountMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodTrace}

type api struct {
	svc          *queues.Service
	opts         Options
	log          *slog.Logger
	cop          *http.CrossOriginProtection
	mux          *http.ServeMux
	maxList      int
	readyTimeout time.Duration
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, http.HandlerFunc(a.route))
}

// serve authorizes r and hands it to routes; a panic in a route answers a
// JSON 500 (or aborts the connection when the answer had begun).
func (a *api) serve(w http.ResponseWriter, r *http.Request, routes http.Handler) {
	tw := &trackWriter{ResponseWriter: w}
	defer a.recoverPanic(tw, r)
	if a.authorize(tw, r) {
		routes.ServeHTTP(tw, r)
	}
}

func (a *api) recoverPanic(w *trackWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler { // net/http compares it the same way
		panic(v)
	}
	a.log.Error("queues HTTP API handler panicked", "method", r.Method, "path", r.URL.Path,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if w.wrote {
		// Part of the answer is out: cut the connection so the client cannot
		// take it for a whole one.
		panic(http.ErrAbortHandler)
	}
	writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
}

// trackWriter remembers whether the answer has begun.
type trackWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (t *trackWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// authorize sets the common headers and runs Options.Authorize; on refusal
// it has answered 403.
func (a *api) authorize(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if a.opts.Authorize == nil {
		return true
	}
	if err := a.opts.Authorize(r); err != nil {
		a.log.Debug("queues HTTP API request not authorized", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusForbidden, "forbidden", "request not authorized")
		return false
	}
	return true
}

// route dispatches an authorized request whose path starts with /api/.
func (a *api) route(w http.ResponseWriter, r *http.Request) {
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.noRoute(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// noRoute answers an unmatched request in JSON: 405 (with Allow) when the
// path exists for another method, else 404.
func (a *api) noRoute(w http.ResponseWriter, r *http.Request) {
	h, _ := a.mux.Handler(r)
	cw := &captureWriter{header: http.Header{}}
	h.ServeHTTP(cw, r)
	if cw.status == http.StatusMethodNotAllowed {
		if allow := cw.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("method %s is not allowed here", r.Method))
		return
	}
	writeError(w, http.StatusNotFound, "not_found", "no such API route")
}

// captureWriter records what ServeMux's own not-found/405 handler would write.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}

// mutating guards a route that changes state: read-only APIs refuse it, so
// does an API mounted without Authorize unless Insecure opted out, and so
// does http.CrossOriginProtection for cross-origin browser requests.
func (a *api) mutating(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.ReadOnly {
			writeError(w, http.StatusForbidden, "read_only", "this queues API is read-only")
			return
		}
		if a.opts.Authorize == nil && !a.opts.Insecure {
			writeError(w, http.StatusForbidden, "unauthorized_mount",
				"this queues API was mounted without Options.Authorize, so it refuses requests that change tasks "+
					"(set Authorize, or Insecure to allow every client)")
			return
		}
		if err := a.cop.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "forbidden", "cross-origin request rejected")
			return
		}
		next(w, r)
	}
}

// ---- responses -------------------------------------------------------------

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: "internal", Message: "internal error"})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorBody{Error: code, Message: message})
}

// internal logs err (which may carry backend detail such as a DSN) and
// answers a 500 that does not echo it.
func (a *api) internal(w http.ResponseWriter, r *http.Request, err error) {
	level := slog.LevelError
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		level = slog.LevelDebug // the client went away
	}
	a.log.Log(r.Context(), level, "queues HTTP API request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
}

// pathID parses the {id} path value; on failure it has answered 400.
func pathID(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_id", "task id must be a UUID")
		return uuid.Nil, false
	}
	return id, true
}

func (a *api) notFoundTask(w http.ResponseWriter, id uuid.UUID) {
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("task %s not found", id))
}

// ---- read routes -----------------------------------------------------------

// health is liveness: it answers while the process serves HTTP and asks
// the store nothing, so a store outage never restarts healthy processes.
func (a *api) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// ready is readiness: the store must answer a ping within ReadyTimeout. The
// store's error names hosts and files, so it goes to the log, not the body.
func (a *api) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.readyTimeout)
	defer cancel()
	if err := a.svc.Ping(ctx); err != nil {
		level := slog.LevelWarn
		if r.Context().Err() != nil {
			level = slog.LevelDebug // the client went away
		}
		a.log.Log(r.Context(), level, "queues HTTP API readiness check failed", "error", err)
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "the task store is not reachable; see the server log")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	st, err := a.svc.Statistics(r.Context(), r.URL.Query().Get("queue"))
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// QueueStatistics is one element of GET /api/queues: the queue name, its
// statistics keys (flattened), what waits in it per execution backend, and
// how many due records no live worker serves.
type QueueStatistics = queuefacts.Queue

// QueueBacklog is what waits in one queue for one execution backend.
type QueueBacklog = queuefacts.Backlog

func (a *api) queueStats(w http.ResponseWriter, r *http.Request) {
	out, err := queuefacts.Collect(r.Context(), a.svc)
	if errors.Is(err, queuefacts.ErrNoInspector) {
		writeError(w, http.StatusNotImplemented, "unsupported", "this queue backend cannot report per-queue statistics")
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// TaskList is the body of GET /api/tasks. NextCursor is nil on the last page.
// Items are records without args, result and metadata unless the request
// asked for them with include (see the package documentation).
type TaskList struct {
	Items      []*queues.Record `json:"items"`
	NextCursor *uuid.UUID       `json:"next_cursor"`
}

func (a *api) listTasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := queues.TaskFilter{Queue: q.Get("queue"), TaskName: q.Get("task_name"), Limit: DefaultListLimit}
	if s := q.Get("status"); s != "" {
		f.Status = queues.Status(s)
		if !f.Status.IsValid() {
			writeError(w, http.StatusBadRequest, "invalid_query", fmt.Sprintf("unknown status %q", s))
			return
		}
	}
	if s := q.Get("tag"); s != "" {
		// A tag no record can carry is a mistake worth saying, not an empty list.
		lim := queuestype.DefaultLimits()
		if err := queuestype.CheckCharsetName("tag", s, lim.TagBytes); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_query", err.Error())
			return
		}
		f.Tag = s
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, "invalid_query", "limit must be a positive integer")
			return
		}
		f.Limit = min(n, MaxListLimit)
	}
	if s := q.Get("cursor"); s != "" {
		c, err := uuid.Parse(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_query", "cursor must be a task id (the next_cursor of the previous page)")
			return
		}
		f.Cursor = c
	}
	inc, err := parseInclude(q["include"])
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_query", err.Error())
		return
	}
	page, err := a.svc.ListTasks(r.Context(), f)
	if errors.Is(err, queues.ErrUnsupported) {
		writeError(w, http.StatusNotImplemented, "unsupported", "this queue backend cannot list tasks")
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	body, err := encodeTaskList(page, inc, a.maxList)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (a *api) getTask(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	rec, err := a.svc.GetTask(r.Context(), id)
	if errors.Is(err, queues.ErrTaskNotFound) {
		a.notFoundTask(w, id)
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// ---- mutating routes -------------------------------------------------------

// EnqueueRequest is the body of POST /api/tasks. Only Task is required.
type EnqueueRequest struct {
	Task string          `json:"task"`
	Args json.RawMessage `json:"args,omitempty"`
	// Queue, Priority, Retries and Key override the task's defaults.
	Queue    string `json:"queue,omitempty"`
	Priority *int   `json:"priority,omitempty"`
	Retries  *int   `json:"retries,omitempty"`
	// RunAfter delays the record: a Go duration string ("2s", "1m30s") or a
	// number of seconds.
	RunAfter json.RawMessage `json:"run_after,omitempty"`
	Key      string          `json:"key,omitempty"`
	// Metadata is stored with the record; keys starting with "_" are reserved.
	Metadata map[string]any `json:"metadata,omitempty"`
}

// EnqueueResponse is the body of a successful POST /api/tasks. Status and
// Record are null when a forever reservation's owner no longer exists.
type EnqueueResponse struct {
	TaskID       uuid.UUID      `json:"task_id"`
	Status       *queues.Status `json:"status"`
	Deduplicated bool           `json:"deduplicated"`
	Record       *queues.Record `json:"record"`
}

// optionFields are the body fields whose type errors are "invalid_options".
var optionFields = map[string]bool{"queue": true, "priority": true, "retries": true, "run_after": true, "key": true, "metadata": true}

func (a *api) enqueue(w http.ResponseWriter, r *http.Request) {
	var body EnqueueRequest
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Task == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", `"task" (a registered task name) is required`)
		return
	}
	runAfter, err := parseRunAfter(body.RunAfter)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_options", err.Error())
		return
	}
	opts := queues.EnqueueOptions{Queue: body.Queue, Priority: body.Priority, Retries: body.Retries,
		RunAfter: runAfter, Key: body.Key, Metadata: body.Metadata}
	res, err := a.svc.EnqueueRaw(r.Context(), body.Task, body.Args, opts)
	if err != nil {
		a.enqueueError(w, r, err, body.Task, http.StatusBadRequest, http.StatusNotFound)
		return
	}
	rec := res.Record()
	if rec == nil { // owner of a forever reservation: read it back
		rec, err = a.svc.GetTask(r.Context(), res.ID)
		if err != nil && !errors.Is(err, queues.ErrTaskNotFound) {
			a.internal(w, r, err)
			return
		}
	}
	out := EnqueueResponse{TaskID: res.ID, Deduplicated: res.Deduplicated, Record: rec}
	if rec != nil {
		st := rec.Status
		out.Status = &st
	}
	status := http.StatusCreated
	if res.Deduplicated {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}

// enqueueError maps an enqueue failure. Validation errors come from the
// enqueue pipeline and describe the caller's own input, so their text is
// sent; anything else is a backend failure (500, logged). badInput is the
// status for rejected arguments or options, unknown the status for an
// unregistered task.
func (a *api) enqueueError(w http.ResponseWriter, r *http.Request, err error, task string, badInput, unknown int) {
	// A limit error's text names the field and the limit, never a store's
	// own text: it is safe to send.
	var limitErr *queues.LimitError
	switch {
	case errors.Is(err, queues.ErrUnknownTask):
		writeError(w, unknown, "unknown_task", fmt.Sprintf("task %q is not registered in this process", task))
	case errors.Is(err, queues.ErrIdentityConflict):
		writeError(w, http.StatusConflict, "conflict", "the identity key is held by an active record that cannot be deduplicated")
	case errors.Is(err, queues.ErrInvalidArgs), errors.Is(err, queues.ErrIdentity), errors.Is(err, queues.ErrIdentityTooLarge):
		writeError(w, badInput, "invalid_args", err.Error())
	case errors.As(err, &limitErr) && limitErr.TooLarge:
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", err.Error())
	case limitErr != nil:
		writeError(w, badInput, "limit_exceeded", err.Error())
	case errors.Is(err, queues.ErrConfig):
		writeError(w, badInput, "invalid_options", err.Error())
	default:
		a.internal(w, r, err)
	}
}

// decodeBody decodes one JSON object from a body of at most MaxRequestBytes,
// rejecting unknown fields and trailing data; on failure it has answered.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, terr := dec.Token(); terr == nil {
			err = errors.New("unexpected data after the JSON object")
		} else if !errors.Is(terr, io.EOF) {
			err = terr
		}
	}
	if err == nil {
		return true
	}
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("request body exceeds %d bytes", MaxRequestBytes))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "invalid_request", "request body must be a JSON object")
	case errors.As(err, &typeErr) && optionFields[strings.SplitN(typeErr.Field, ".", 2)[0]]:
		writeError(w, http.StatusBadRequest, "invalid_options",
			fmt.Sprintf("field %q must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String())))
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "invalid JSON body: "+err.Error())
	}
	return false
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "float64":
		return "number"
	case "map", "struct":
		return "object"
	}
	return goKind
}

// maxRunAfterSeconds keeps seconds × 1e9 inside time.Duration.
var maxRunAfterSeconds = float64(math.MaxInt64) / float64(time.Second)

// parseRunAfter reads run_after: absent/null, a Go duration string, or seconds.
func parseRunAfter(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf(`run_after %q is not a duration (use "2s", "1m30s" or a number of seconds)`, s)
		}
		if d < 0 {
			return 0, errors.New("run_after must not be negative")
		}
		return d, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, errors.New(`run_after must be a duration string ("2s") or a number of seconds`)
	}
	if secs < 0 || secs >= maxRunAfterSeconds {
		return 0, errors.New("run_after is out of range")
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// CancelResponse is the body of POST /api/tasks/{id}/cancel.
type CancelResponse struct {
	Cancelled bool `json:"cancelled"`
}

func (a *api) cancel(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	includeRunning := false
	if s := r.URL.Query().Get("include_running"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_query", "include_running must be true or false")
			return
		}
		includeRunning = b
	}
	cancelled, err := a.svc.Cancel(r.Context(), id, queues.CancelOptions{IncludeRunning: includeRunning, Reason: "Cancelled through the HTTP API"})
	if err == nil && !cancelled {
		// Cancel reports a missing record as "not cancelled": tell them apart.
		_, err = a.svc.GetTask(r.Context(), id)
	}
	if errors.Is(err, queues.ErrTaskNotFound) {
		a.notFoundTask(w, id)
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, CancelResponse{Cancelled: cancelled})
}

// RerunResponse is the body of POST /api/tasks/{id}/rerun. Deduplicated is
// true when the task's uniqueness returned an existing record (status 200).
type RerunResponse struct {
	ID           uuid.UUID `json:"id"`
	Deduplicated bool      `json:"deduplicated"`
}

func (a *api) rerun(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	rec, err := a.svc.GetTask(r.Context(), id)
	if errors.Is(err, queues.ErrTaskNotFound) {
		a.notFoundTask(w, id)
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if !rec.IsTerminal() {
		writeError(w, http.StatusConflict, "not_terminal",
			fmt.Sprintf("task %s is %s; only completed, failed, cancelled or expired tasks can be rerun", id, rec.Status))
		return
	}
	priority, retries := rec.Priority, rec.MaxRetries
	opts := queues.EnqueueOptions{Queue: rec.Queue, Priority: &priority, Retries: &retries, Metadata: UserMetadata(rec.Metadata)}
	res, err := a.svc.EnqueueRaw(r.Context(), rec.TaskName, rec.Args, opts)
	if err != nil {
		// The record exists; what conflicts is this process's registry.
		a.enqueueError(w, r, err, rec.TaskName, http.StatusConflict, http.StatusConflict)
		return
	}
	status := http.StatusCreated
	if res.Deduplicated {
		status = http.StatusOK
	}
	writeJSON(w, status, RerunResponse{ID: res.ID, Deduplicated: res.Deduplicated})
}

// UserMetadata returns a copy of md without the keys the system owns
// (queuestype.IsReservedMetadataKey: progress_detail, keys starting with
// "_", and the policy keys records of an earlier schema kept there). It
// returns nil when nothing is left.
func UserMetadata(md map[string]any) map[string]any {
	var out map[string]any
	for k, v := range queuestype.CloneMetadata(md) {
		if queuestype.IsReservedMetadataKey(k) {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		out[k] = v
	}
	return out
}
