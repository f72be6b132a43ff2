// Package queueshttp runs a queues.Service beside a net/http server and
// serves the queues JSON API.
//
// # Lifecycle
//
// Serve (and ServeListener, for a listener the caller opened) starts the
// service — which opens the backend and, with PlacementInApp, starts the
// in-app worker — then serves HTTP until ctx ends or the server fails. It then
// shuts the HTTP server down first, bounded by the in-app worker's
// GracefulShutdownTimeout (30s without an in-app worker), so no request can
// enqueue work into a stopping service, and closes the service last, which
// drains the in-app worker through its shutdown ladder. Applications that
// manage their own server call Service.Start and Service.Close themselves.
//
// # JSON API
//
// Handler returns the API and Mount registers it on a ServeMux under a prefix
// (Mount(mux, "/queues", ...) serves /queues/api/...):
//
//	GET  /api/health                         liveness: {"ok":true}, without asking the store
//	GET  /api/ready                          readiness: {"ok":true} when the store answers a ping
//	                                         within Options.ReadyTimeout (2s), else 503 store_unavailable
//	GET  /api/stats?queue=                   statistics: pending, scheduled, running, completed,
//	                                         failed, cancelled, expired, total
//	GET  /api/queues                         [{"queue":"default", <statistics keys>}, ...] sorted by queue
//	GET  /api/scheduler-health?minutes=5     {"healthy","canary","last_completed_at","minutes","since"}:
//	                                         200 when the scheduler canary completed within the window,
//	                                         503 when not, 404 not_registered without the canary
//	GET  /api/tasks?status=&queue=&task_name=&tag=&limit=50&cursor=&include=
//	                                         {"items":[summary, ...],"next_cursor":"<uuid>"|null};
//	                                         tag= lists the records carrying that tag
//	GET  /api/tasks/{id}                     record
//	POST /api/tasks                          enqueue a registered task by name (below)
//	POST /api/tasks/{id}/cancel?include_running=true
//	                                         {"cancelled":bool}
//	POST /api/tasks/{id}/rerun               enqueue a copy of a terminal record: {"id":"<uuid>","deduplicated":bool}
//
// A record is the JSON form of queues.Record (every field, nulls kept, times
// RFC 3339 UTC). Lists are newest first; pass next_cursor back as cursor for
// the next page (limit defaults to 50 and is capped at MaxListLimit).
//
// A list item is a summary: the record without "args", "result",
// "metadata" and "errors" (the error history), which can be large.
// include=args,result,metadata,errors (any subset,
// comma-separated or repeated) adds them back; GET /api/tasks/{id} always
// answers the whole record. A list body is also capped at
// Options.MaxListBytes (4 MiB by default): items stop before the body would
// pass it and next_cursor continues after the last item sent, so a client
// that follows next_cursor sees every record whatever the cap. A page holds
// at least one item, even one larger than the cap.
//
// POST /api/tasks takes
//
//	{"task":"email.send","args":{...},"queue":"mail","priority":10,"retries":3,
//	 "run_after":"2s","key":"welcome:42","metadata":{"source":"admin"}}
//
// where only "task" is required and run_after is a Go duration string or a
// number of seconds. It answers 201 {"task_id","status","deduplicated":false,"record"}
// for a new record, or 200 with "deduplicated":true when uniqueness returned
// an existing record ("record" and "status" are null when that record no
// longer exists, as for the owner of a forever reservation).
//
// Rerun copies the task name, arguments, queue, priority, max_retries and the
// user metadata (every key the system does not own) into a new record; the
// task's registered defaults (timeout, backoff, uniqueness) apply again. A
// record that is not terminal answers 409.
//
// # Errors
//
// Every error is JSON {"error":"<code>","message":"<text>"}:
//
//	400 invalid_request   malformed JSON body, unknown field, missing "task"
//	400 invalid_query     bad status, limit, cursor, include or include_running
//	400 invalid_id        the {id} path segment is not a UUID
//	400 invalid_args      arguments do not decode into the task's argument type
//	400 invalid_options   queue, priority, retries, run_after, key or metadata rejected
//	400 limit_exceeded    a value breaks one of the service's limits (queues.Config.Limits):
//	                      a queue or key with characters it may not hold, NUL or invalid
//	                      UTF-8 in the arguments or metadata, a range (priority, retries,
//	                      run_after); the message names the field and the limit
//	403 forbidden         Options.Authorize refused the request, or a cross-origin browser request
//	403 unauthorized_mount a mutating route on an API mounted without Authorize or Insecure
//	403 read_only         a mutating route on a read-only API
//	404 not_found         no such record, or no such API route
//	404 unknown_task      the task name is not registered in this process
//	405 method_not_allowed the path exists for other methods (the Allow header lists them)
//	409 not_terminal      rerun of a record that is still pending, scheduled or running
//	409 conflict          the identity key is held by a record that cannot be deduplicated
//	409 unknown_task, invalid_args, invalid_options, limit_exceeded
//	                      rerun of a record this process can no longer enqueue
//	413 request_too_large the body exceeds MaxRequestBytes
//	413 too_large         a value is larger than its limit (arguments, metadata, a queue
//	                      name or key); the message names the field and the limit
//	500 internal          a backend failure; the cause is logged, never sent
//	501 unsupported       the backend does not implement driver.Inspector
//	503 store_unavailable GET /api/ready: the store did not answer; the cause is logged, never sent
//
// A handler that panics answers 500 internal too (the panic and its stack
// are logged), or has its connection cut when part of the answer was out.
//
// Mount registers the API subtree for GET (and HEAD), POST, PUT, PATCH,
// DELETE, OPTIONS and TRACE, so those methods get these JSON answers on
// every path under prefix/api/; a non-standard method falls through to the
// application's own patterns.
//
// # Security
//
// The API cannot know how an application authenticates, so it is closed
// until told otherwise. Options.Authorize runs before routing, for every
// route (probes of /api/health and /api/ready included: admit them in
// Authorize if they come without credentials), so an unauthorized client
// cannot even learn which routes exist. Without Authorize the read routes
// are served to every client, because dashboards and probes often sit
// behind the application's own network controls, but every mutating route
// (enqueue, cancel, rerun, and any route added later with a method other
// than GET) answers 403 unauthorized_mount. Options.Insecure is the single
// explicit opt-out that serves the mutating routes without Authorize; the
// event streams and the dashboard mounted beside the API later follow the
// same switch. The mode (authorized, closed, read-only, insecure) is logged
// once when the handler is built, as a warning unless Authorize is set.
//
// A server that listens on loopback only, such as `queues demo`, can use
// LoopbackOnly(addr) as its Authorize: it admits loopback peers whose Host
// header, and Origin header when a browser sends one, name the address the
// server listens on, which defeats DNS rebinding (a page on another domain
// that resolves to 127.0.0.1 reaches the port, but with its own name in
// Host). Bound anywhere else, a server needs a real Authorize.
//
// Mutating routes additionally reject cross-origin browser requests with
// http.CrossOriginProtection, so a cookie-authenticated session cannot be
// driven by another site; non-browser clients such as curl are unaffected.
// Options.ReadOnly turns every mutating route into 403 read_only.
package queueshttp
