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
//	GET  /api/health                         {"ok":true}
//	GET  /api/stats?queue=                   statistics: pending, scheduled, running, completed,
//	                                         failed, cancelled, expired, total
//	GET  /api/queues                         [{"queue":"default", <statistics keys>}, ...] sorted by queue
//	GET  /api/tasks?status=&queue=&task_name=&limit=50&cursor=
//	                                         {"items":[record, ...],"next_cursor":"<uuid>"|null}
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
//	400 invalid_query     bad status, limit, cursor or include_running
//	400 invalid_id        the {id} path segment is not a UUID
//	400 invalid_args      arguments do not decode into the task's argument type
//	400 invalid_options   queue, priority, retries, run_after, key or metadata rejected
//	400 limit_exceeded    a value breaks one of the service's limits (queues.Config.Limits):
//	                      a queue or key with characters it may not hold, NUL or invalid
//	                      UTF-8 in the arguments or metadata, a range (priority, retries,
//	                      run_after); the message names the field and the limit
//	403 forbidden         Options.Authorize refused the request, or a cross-origin browser request
//	403 read_only         a mutating route on a read-only API
//	404 not_found         no such record, or no such API route
//	404 unknown_task      the task name is not registered in this process
//	405 method_not_allowed
//	409 not_terminal      rerun of a record that is still pending, scheduled or running
//	409 conflict          the identity key is held by a record that cannot be deduplicated
//	409 unknown_task, invalid_args, invalid_options, limit_exceeded
//	                      rerun of a record this process can no longer enqueue
//	413 request_too_large the body exceeds MaxRequestBytes
//	413 too_large         a value is larger than its limit (arguments, metadata, a queue
//	                      name or key); the message names the field and the limit
//	500 internal          a backend failure; the cause is logged, never sent
//	501 unsupported       the backend does not implement driver.Inspector
//
// # Security
//
// The API cannot know how an application authenticates, so set
// Options.Authorize: without it every client that reaches the API can read and
// change tasks, and a warning is logged when the handler is built. Authorize runs before routing, so an
// unauthorized client cannot even learn which routes exist. Mutating routes
// (enqueue, cancel, rerun) additionally reject cross-origin browser requests
// with http.CrossOriginProtection, so a cookie-authenticated session cannot
// be driven by another site; non-browser clients such as curl are unaffected.
// Options.ReadOnly turns every mutating route into 403.
package queueshttp
