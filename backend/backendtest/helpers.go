package backendtest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/execution/dispatch"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/queuesgo/queues"
)

const (
	// clockTolerance bounds the skew between the test process clock and the
	// backend's clock (database or Redis time) when a backend-stamped time is
	// compared with time.Now().
	clockTolerance = 5 * time.Second
	// storeTolerance bounds the rounding of caller-given times by storage.
	// Caller times are truncated to milliseconds before they are sent.
	storeTolerance = time.Millisecond
	// waitTimeout bounds every wait on a condition.
	waitTimeout = 5 * time.Second
	// quietWindow is how long a case listens to prove that no hint arrives.
	quietWindow = 200 * time.Millisecond
	// shortDeadline is the expires_at offset of records that must become
	// overdue while a case runs.
	shortDeadline = 400 * time.Millisecond
	// pollEvery is the polling period of waits.
	pollEvery = 5 * time.Millisecond
)

const (
	workerA = "worker-a"
	workerB = "worker-b"
)

// testCase is one backend-level case. run gets a fresh backend from the factory.
type testCase struct {
	name string
	run  func(t *testing.T, b driver.Backend)
}

// runCases runs each case as a parallel subtest with its own backend.
func runCases(t *testing.T, f Factory, cases []testCase) {
	t.Helper()
	seen := make(map[string]bool, len(cases))
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("backendtest: duplicate case name %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := f.New(t)
			if b == nil {
				t.Fatal("backendtest: Factory.New returned nil")
			}
			c.run(t, b)
		})
	}
}

// ---------------------------------------------------------------------------
// Building records

// opt modifies an EnqueueParams.
type opt func(*driver.EnqueueParams)

// item returns the parameters of a due, local record of task in the default queue.
func item(task string, opts ...opt) driver.EnqueueParams {
	p := driver.EnqueueParams{
		TaskName:         task,
		Args:             json.RawMessage(`{}`),
		Queue:            queues.DefaultQueue,
		ExecutionBackend: "local",
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func priority(n int) opt      { return func(p *driver.EnqueueParams) { p.Priority = n } }
func inQueue(q string) opt    { return func(p *driver.EnqueueParams) { p.Queue = q } }
func retries(n int) opt       { return func(p *driver.EnqueueParams) { p.MaxRetries = n } }
func withID(id uuid.UUID) opt { return func(p *driver.EnqueueParams) { p.ID = id } }
func key(k string) opt        { return func(p *driver.EnqueueParams) { p.Key = k } }
func argsJSON(s string) opt   { return func(p *driver.EnqueueParams) { p.Args = json.RawMessage(s) } }
func scheduledAt(t time.Time) opt {
	return func(p *driver.EnqueueParams) { p.ScheduledAt = t }
}
func expiresAt(t time.Time) opt { return func(p *driver.EnqueueParams) { p.ExpiresAt = t } }
func foreverKey(k string) opt {
	return func(p *driver.EnqueueParams) { p.Key, p.Forever = k, true }
}
func execution(backend, profile string) opt {
	return func(p *driver.EnqueueParams) { p.ExecutionBackend, p.ExecutionProfile = backend, profile }
}
func metadata(m map[string]any) opt {
	return func(p *driver.EnqueueParams) { p.Metadata = m }
}

// at returns now+d in UTC truncated to milliseconds, so every backend stores it exactly.
func at(d time.Duration) time.Time { return time.Now().Add(d).UTC().Truncate(time.Millisecond) }

// newKey returns a unique identity key in the documented key format ("q:u:v1:<mode>:<hash>").
func newKey(mode string) string { return "q:u:v1:" + mode + ":" + uuid.NewString() }

// newMarker returns a dispatch reservation marker with the given lease deadline.
func newMarker(deadline time.Time) string {
	return fmt.Sprintf("%s%d:%s", dispatch.MarkerPrefix, deadline.Unix(), uuid.NewString())
}

// untilOf is the reservation deadline a marker of newMarker carries.
func untilOf(marker string) time.Time {
	until, ok := dispatch.MarkerDeadline(marker)
	if !ok {
		panic("backendtest: not a reservation marker: " + marker)
	}
	return until
}

// newRef returns a provider execution ref (never a reservation marker).
func newRef(backend string) string { return backend + ":exec-" + uuid.NewString() }

// backoff gives the record a retry backoff policy of initial × multiplier^n.
func backoff(initial time.Duration, multiplier float64) opt {
	return func(p *driver.EnqueueParams) {
		p.Policy.RetryBackoff = queuestype.RetryBackoff{InitialDelay: initial, Multiplier: multiplier}
	}
}

// noStaleRequeue gives the record the policy that stale recovery fails it.
func noStaleRequeue() opt { return func(p *driver.EnqueueParams) { p.Policy.NoStaleRequeue = true } }

// ---------------------------------------------------------------------------
// Calling the backend

// enqueue inserts items in one call and requires a new record for each.
func enqueue(t *testing.T, b driver.Backend, items ...driver.EnqueueParams) []*queues.Record {
	t.Helper()
	outs, err := b.Enqueue(t.Context(), items)
	if err != nil {
		t.Fatalf("Enqueue(%d items): %v", len(items), err)
	}
	if len(outs) != len(items) {
		t.Fatalf("Enqueue(%d items) returned %d outcomes", len(items), len(outs))
	}
	recs := make([]*queues.Record, len(outs))
	for i, o := range outs {
		if o.Err != nil || o.Record == nil || o.Existing || o.Owner != nil {
			t.Fatalf("Enqueue item %d (%s): want a new record, got %s", i, items[i].TaskName, describeOutcome(o))
		}
		if o.Record.TaskName != items[i].TaskName {
			t.Fatalf("Enqueue item %d: record task %q, want %q (outcomes out of input order?)", i, o.Record.TaskName, items[i].TaskName)
		}
		recs[i] = o.Record
	}
	return recs
}

// enqueueOne inserts one record.
func enqueueOne(t *testing.T, b driver.Backend, p driver.EnqueueParams) *queues.Record {
	t.Helper()
	return enqueue(t, b, p)[0]
}

// enqueueOutcomes inserts items in one call and returns the raw outcomes.
func enqueueOutcomes(t *testing.T, b driver.Backend, items ...driver.EnqueueParams) []driver.EnqueueOutcome {
	t.Helper()
	outs, err := b.Enqueue(t.Context(), items)
	if err != nil {
		t.Fatalf("Enqueue(%d items): %v", len(items), err)
	}
	if len(outs) != len(items) {
		t.Fatalf("Enqueue(%d items) returned %d outcomes", len(items), len(outs))
	}
	return outs
}

func describeOutcome(o driver.EnqueueOutcome) string {
	var parts []string
	if o.Record != nil {
		parts = append(parts, fmt.Sprintf("record %s (%s)", o.Record.ID, o.Record.TaskName))
	} else {
		parts = append(parts, "no record")
	}
	if o.Existing {
		parts = append(parts, "existing")
	}
	if o.Owner != nil {
		parts = append(parts, fmt.Sprintf("owner %s (%s)", o.Owner.TaskID, o.Owner.TaskName))
	}
	if o.Err != nil {
		parts = append(parts, "err "+o.Err.Error())
	}
	return strings.Join(parts, ", ")
}

// resolvedID is the record ID an outcome points at: the record, or the forever owner.
func resolvedID(o driver.EnqueueOutcome) uuid.UUID {
	if o.Record != nil {
		return o.Record.ID
	}
	if o.Owner != nil {
		return o.Owner.TaskID
	}
	return uuid.Nil
}

// get returns the stored record.
func get(t *testing.T, b driver.Backend, id uuid.UUID) *queues.Record {
	t.Helper()
	rec, err := b.GetTask(t.Context(), id)
	if err != nil {
		t.Fatalf("GetTask(%s): %v", id, err)
	}
	if rec == nil || rec.ID != id {
		t.Fatalf("GetTask(%s) returned %v", id, rec)
	}
	return rec
}

// wantGone requires that the record no longer exists.
func wantGone(t *testing.T, b driver.Backend, id uuid.UUID) {
	t.Helper()
	rec, err := b.GetTask(t.Context(), id)
	if !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("GetTask(%s) = %v, %v; want ErrTaskNotFound", id, rec, err)
	}
}

// claimMany calls ClaimMany and fails the test on error.
func claimMany(t *testing.T, b driver.Backend, p driver.ClaimParams) driver.ClaimResult {
	t.Helper()
	res, err := b.ClaimMany(t.Context(), p)
	if err != nil {
		t.Fatalf("ClaimMany(%+v): %v", p, err)
	}
	return res
}

// claimByID claims the record by ID and requires that exactly it was claimed.
func claimByID(t *testing.T, b driver.Backend, id uuid.UUID, worker string) *queues.Record {
	t.Helper()
	res, err := b.ClaimByID(t.Context(), driver.ClaimByIDParams{ID: id, WorkerID: worker})
	if err != nil {
		t.Fatalf("ClaimByID(%s): %v", id, err)
	}
	if len(res.Claimed) != 1 || res.Claimed[0].ID != id {
		t.Fatalf("ClaimByID(%s) claimed %v (expired %v); want the record", id, idsOf(res.Claimed), idsOf(res.Expired))
	}
	rec := res.Claimed[0]
	wantStatus(t, "claimed record", rec, queues.StatusRunning)
	if rec.WorkerID != worker {
		t.Fatalf("claimed record worker_id = %q, want %q", rec.WorkerID, worker)
	}
	return rec
}

// running enqueues p and claims it by ID for workerA.
func running(t *testing.T, b driver.Backend, p driver.EnqueueParams) *queues.Record {
	t.Helper()
	return claimByID(t, b, enqueueOne(t, b, p).ID, workerA)
}

// complete settles a running record as completed.
func complete(t *testing.T, b driver.Backend, rec *queues.Record) *queues.Record {
	t.Helper()
	got := settled(t, b, driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queuestype.StatusCompleted,
		Result: json.RawMessage(`{"ok":true}`)})
	wantStatus(t, "completed record", got, queues.StatusCompleted)
	return got
}

// completed enqueues p, claims it and completes it.
func completed(t *testing.T, b driver.Backend, p driver.EnqueueParams) *queues.Record {
	t.Helper()
	return complete(t, b, running(t, b, p))
}

// failRetry requeues a running record for a retry due now, holding msg.
func failRetry(t *testing.T, b driver.Backend, rec *queues.Record, msg string) *queues.Record {
	t.Helper()
	return settled(t, b, driver.Transition{ID: rec.ID, Generation: rec.RetryCount, To: queuestype.StatusPending, Error: msg})
}

// settleCall applies one transition and returns it in the shape of a single
// write: the record, or the transition's (or the call's) error.
func settleCall(t *testing.T, b driver.Backend, tr driver.Transition) (*queues.Record, error) {
	t.Helper()
	res, err := b.Settle(t.Context(), []driver.Transition{tr})
	if err != nil {
		return nil, err
	}
	if len(res) != 1 {
		t.Fatalf("Settle(%s → %s): %d results, want 1", tr.ID, tr.To, len(res))
	}
	return res[0].Record, res[0].Err
}

// staleResult is what one stale-recovery pass of the engine did, with the
// failed records read back.
type staleResult struct {
	Requeued, Skipped int
	Failed            []*queues.Record
	HandlerNeeded     []uuid.UUID
}

// recoverStale runs one stale-recovery pass of the engine (a queues.Service
// over b: ListStale, the engine's decision per record, Settle) over records
// whose heartbeat is older than staleAfter, with an optional priority
// mapping for requeued records.
func recoverStale(t *testing.T, b driver.Backend, staleAfter time.Duration, limit int, priority func(int) int) staleResult {
	t.Helper()
	svc, err := queues.New(queues.Config{Backend: b, Registry: queues.NewRegistry(), StaleRequeuePriority: priority,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("queues.New: %v", err)
	}
	res, err := svc.RecoverStale(t.Context(), queues.StaleOptions{StaleAfter: staleAfter, Limit: limit})
	if err != nil {
		t.Fatalf("RecoverStale: %v", err)
	}
	out := staleResult{Requeued: res.Requeued, Skipped: res.Skipped, HandlerNeeded: res.HandlerNeededTaskIDs}
	for _, id := range res.FailedTaskIDs {
		out.Failed = append(out.Failed, get(t, b, id))
	}
	return out
}

// recoverAll runs one stale-recovery pass with every running record stale:
// it waits until the clock is past every running record's heartbeat, then
// recovers with a one-millisecond StaleAfter.
func recoverAll(t *testing.T, b driver.Backend, limit int) staleResult {
	t.Helper()
	return recoverAllMapped(t, b, limit, nil)
}

// recoverAllMapped is recoverAll with a priority mapping for requeued records.
func recoverAllMapped(t *testing.T, b driver.Backend, limit int, priority func(int) int) staleResult {
	t.Helper()
	running, err := b.ListStale(t.Context(), -1, 10000)
	if err != nil {
		t.Fatalf("ListStale: %v", err)
	}
	for _, r := range running {
		waitClockPast(r.HeartbeatAt)
	}
	return recoverStale(t, b, time.Millisecond, limit, priority)
}

// setRef stores an execution ref on a non-terminal record.
func setRef(t *testing.T, b driver.Backend, id uuid.UUID, ref string) *queues.Record {
	t.Helper()
	rec, err := disp(t, b).SetExecutionRef(t.Context(), id, ref)
	if err != nil {
		t.Fatalf("SetExecutionRef(%s): %v", id, err)
	}
	if rec.ExecutionRef != ref {
		t.Fatalf("SetExecutionRef returned execution_ref %q, want %q", rec.ExecutionRef, ref)
	}
	return rec
}

// reserve reserves a record for dispatch with marker.
func reserve(t *testing.T, b driver.Backend, id uuid.UUID, marker string) *queues.Record {
	t.Helper()
	rec, err := disp(t, b).ReserveDispatch(t.Context(), driver.ReserveDispatchParams{ID: id, Marker: marker, Until: untilOf(marker)})
	if err != nil {
		t.Fatalf("ReserveDispatch(%s): %v", id, err)
	}
	if rec.ExecutionRef != marker {
		t.Fatalf("ReserveDispatch returned execution_ref %q, want the marker %q", rec.ExecutionRef, marker)
	}
	return rec
}

// listPending lists pending records (no filter).
func listPending(t *testing.T, b driver.Backend) []*queues.Record {
	t.Helper()
	recs, err := b.ListPending(t.Context(), driver.ListPendingParams{Limit: 1000})
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	return recs
}

// stats returns Statistics for queue ("" = all).
func stats(t *testing.T, b driver.Backend, queue string) queues.Statistics {
	t.Helper()
	st, err := b.Statistics(t.Context(), queue)
	if err != nil {
		t.Fatalf("Statistics(%q): %v", queue, err)
	}
	return st
}

// waitOverdue waits until deadline has passed on the test clock and the
// backend's clock: the probe (an unreserved pending record whose expires_at
// is deadline) has left ListPending.
func waitOverdue(t *testing.T, b driver.Backend, deadline time.Time, probe uuid.UUID) {
	t.Helper()
	eventually(t, "probe record to become overdue", func() bool {
		if time.Now().Before(deadline) {
			return false
		}
		return !containsID(listPending(t, b), probe)
	})
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(pollEvery)
	}
}

// expectHint waits for one hint on ch.
func expectHint(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: hint channel closed, want a hint", what)
		}
	case <-timer.C:
		t.Fatalf("%s: no hint within %s", what, waitTimeout)
	}
}

// expectNoHint requires that no hint arrives on ch within quietWindow.
func expectNoHint(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(quietWindow)
	defer timer.Stop()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatalf("%s: unexpected hint", what)
		}
		t.Fatalf("%s: hint channel closed unexpectedly", what)
	case <-timer.C:
	}
}

// expectClosed waits until ch is closed, draining hints.
func expectClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("%s: channel not closed within %s after its ctx ended", what, waitTimeout)
		}
	}
}

// ---------------------------------------------------------------------------
// Capabilities

// require returns b as the optional interface T, or skips the case when the
// backend does not implement it.
func require[T any](t *testing.T, b driver.Backend) T {
	t.Helper()
	v, ok := b.(T)
	if !ok {
		t.Skipf("%s does not implement %s", b.Name(), reflect.TypeFor[T]())
	}
	return v
}

// subscribe subscribes to wakeups until the case ends (or cancel is called).
func subscribe(t *testing.T, w driver.Waker) (<-chan struct{}, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	ch, err := w.Wakeups(ctx)
	if err != nil {
		t.Fatalf("Wakeups: %v", err)
	}
	if ch == nil {
		t.Fatal("Wakeups returned a nil channel")
	}
	return ch, cancel
}

// ---------------------------------------------------------------------------
// Assertions

func wantNoErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantFenceLost(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, queues.ErrFenceLost) {
		t.Fatalf("%s: err = %v, want ErrFenceLost", what, err)
	}
}

// wantFenceLostOrNotFound accepts either sentinel for an operation on a missing record.
func wantFenceLostOrNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, queues.ErrFenceLost) && !errors.Is(err, queues.ErrTaskNotFound) {
		t.Fatalf("%s: err = %v, want ErrFenceLost or ErrTaskNotFound", what, err)
	}
}

// wantNothingClaimed accepts an empty ClaimByID result (or ErrFenceLost) and
// requires that nothing was claimed or expired.
func wantNothingClaimed(t *testing.T, what string, res driver.ClaimResult, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, queues.ErrFenceLost) {
		t.Fatalf("%s: err = %v, want nothing claimed", what, err)
	}
	if len(res.Claimed) != 0 || len(res.Expired) != 0 {
		t.Fatalf("%s: claimed %v, expired %v; want nothing", what, idsOf(res.Claimed), idsOf(res.Expired))
	}
}

func wantStatus(t *testing.T, what string, rec *queues.Record, want queues.Status) {
	t.Helper()
	if rec == nil {
		t.Fatalf("%s: nil record, want status %s", what, want)
	}
	if rec.Status != want {
		t.Fatalf("%s: status %s, want %s", what, rec.Status, want)
	}
}

func wantInt(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %d, want %d", what, got, want)
	}
}

func wantString(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func wantBool(t *testing.T, what string, got, want bool) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func wantZeroTime(t *testing.T, what string, got time.Time) {
	t.Helper()
	if !got.IsZero() {
		t.Fatalf("%s = %s, want null", what, got)
	}
}

// wantNear requires |got-want| ≤ tol.
func wantNear(t *testing.T, what string, got, want time.Time, tol time.Duration) {
	t.Helper()
	if got.IsZero() {
		t.Fatalf("%s is null, want ≈ %s", what, want.UTC())
	}
	if d := got.Sub(want); d > tol || d < -tol {
		t.Fatalf("%s = %s, want %s ± %s (off by %s)", what, got.UTC(), want.UTC(), tol, d)
	}
}

// wantBetween requires a backend-stamped time within [from, to] widened by clockTolerance.
func wantBetween(t *testing.T, what string, got, from, to time.Time) {
	t.Helper()
	if got.IsZero() {
		t.Fatalf("%s is null, want a time between %s and %s", what, from.UTC(), to.UTC())
	}
	if got.Before(from.Add(-clockTolerance)) || got.After(to.Add(clockTolerance)) {
		t.Fatalf("%s = %s, want between %s and %s (± %s)", what, got.UTC(), from.UTC(), to.UTC(), clockTolerance)
	}
}

// wantNotBefore requires got ≥ ref (both backend-stamped).
func wantNotBefore(t *testing.T, what string, got, ref time.Time) {
	t.Helper()
	if got.IsZero() || got.Before(ref) {
		t.Fatalf("%s = %s, want not earlier than %s", what, got.UTC(), ref.UTC())
	}
}

// normJSON decodes a JSON document (raw bytes) or re-encodes a Go value into
// its generic JSON form, so values compare by JSON meaning.
func normJSON(v any) (any, error) {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	default:
		if m, ok := v.(map[string]any); ok && m == nil {
			v = map[string]any{}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("null")
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func jsonEqual(a, b any) bool {
	na, err1 := normJSON(a)
	nb, err2 := normJSON(b)
	return err1 == nil && err2 == nil && reflect.DeepEqual(na, nb)
}

func wantJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	if !jsonEqual(got, want) {
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if r, ok := got.(json.RawMessage); ok {
			gb = r
		}
		if r, ok := want.(json.RawMessage); ok {
			wb = r
		}
		t.Fatalf("%s = %s, want %s", what, gb, wb)
	}
}

func isNullJSON(b json.RawMessage) bool {
	s := strings.TrimSpace(string(b))
	return s == "" || s == "null"
}

// recordDiff lists the fields in which two records differ (times by instant, JSON by meaning).
func recordDiff(a, b *queues.Record) []string {
	var d []string
	str := func(name, x, y string) {
		if x != y {
			d = append(d, fmt.Sprintf("%s: %q vs %q", name, x, y))
		}
	}
	num := func(name string, x, y int) {
		if x != y {
			d = append(d, fmt.Sprintf("%s: %d vs %d", name, x, y))
		}
	}
	tm := func(name string, x, y time.Time) {
		if !x.Equal(y) {
			d = append(d, fmt.Sprintf("%s: %s vs %s", name, x, y))
		}
	}
	js := func(name string, x, y any) {
		if !jsonEqual(x, y) {
			xb, _ := json.Marshal(x)
			yb, _ := json.Marshal(y)
			d = append(d, fmt.Sprintf("%s: %s vs %s", name, xb, yb))
		}
	}
	if a.ID != b.ID {
		d = append(d, fmt.Sprintf("id: %s vs %s", a.ID, b.ID))
	}
	str("task_name", a.TaskName, b.TaskName)
	js("args", a.Args, b.Args)
	str("queue", a.Queue, b.Queue)
	str("execution_backend", a.ExecutionBackend, b.ExecutionBackend)
	str("execution_profile", a.ExecutionProfile, b.ExecutionProfile)
	str("execution_ref", a.ExecutionRef, b.ExecutionRef)
	str("worker_id", a.WorkerID, b.WorkerID)
	str("status", string(a.Status), string(b.Status))
	num("priority", a.Priority, b.Priority)
	num("max_retries", a.MaxRetries, b.MaxRetries)
	num("retry_count", a.RetryCount, b.RetryCount)
	tm("scheduled_at", a.ScheduledAt, b.ScheduledAt)
	tm("expires_at", a.ExpiresAt, b.ExpiresAt)
	tm("created_at", a.CreatedAt, b.CreatedAt)
	tm("queued_at", a.QueuedAt, b.QueuedAt)
	tm("started_at", a.StartedAt, b.StartedAt)
	tm("completed_at", a.CompletedAt, b.CompletedAt)
	tm("heartbeat_at", a.HeartbeatAt, b.HeartbeatAt)
	if isNullJSON(a.Result) != isNullJSON(b.Result) || (!isNullJSON(a.Result) && !jsonEqual(a.Result, b.Result)) {
		d = append(d, fmt.Sprintf("result: %s vs %s", a.Result, b.Result))
	}
	str("error", a.Error, b.Error)
	str("key", a.Key, b.Key)
	js("metadata", a.Metadata, b.Metadata)
	num("snooze_count", a.SnoozeCount, b.SnoozeCount)
	if !slices.EqualFunc(a.Errors, b.Errors, sameAttemptError) {
		d = append(d, fmt.Sprintf("errors: %+v vs %+v", a.Errors, b.Errors))
	}
	return d
}

func sameAttemptError(x, y queues.AttemptError) bool {
	return x.Attempt == y.Attempt && x.At.Equal(y.At) && x.Error == y.Error && x.Trace == y.Trace && x.WorkerID == y.WorkerID
}

// wantSameRecord requires that got and want hold the same values in every field.
func wantSameRecord(t *testing.T, what string, got, want *queues.Record) {
	t.Helper()
	if got == nil || want == nil {
		t.Fatalf("%s: nil record (got %v, want %v)", what, got, want)
	}
	if d := recordDiff(got, want); len(d) > 0 {
		t.Fatalf("%s: records differ:\n  %s", what, strings.Join(d, "\n  "))
	}
}

// wantStored requires that the returned record equals the stored one.
func wantStored(t *testing.T, b driver.Backend, what string, rec *queues.Record) {
	t.Helper()
	wantSameRecord(t, what+" (returned vs GetTask)", rec, get(t, b, rec.ID))
}

func idsOf(recs []*queues.Record) []uuid.UUID {
	out := make([]uuid.UUID, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func containsID(recs []*queues.Record, id uuid.UUID) bool {
	for _, r := range recs {
		if r.ID == id {
			return true
		}
	}
	return false
}

// wantIDs requires exactly these records in this order.
func wantIDs(t *testing.T, what string, got []*queues.Record, want ...uuid.UUID) {
	t.Helper()
	if !slices.Equal(idsOf(got), want) {
		t.Fatalf("%s = %v, want %v", what, idsOf(got), want)
	}
}

// wantIDSet requires exactly these IDs in any order, without duplicates.
func wantIDSet(t *testing.T, what string, got []uuid.UUID, want ...uuid.UUID) {
	t.Helper()
	g := slices.Clone(got)
	w := slices.Clone(want)
	slices.SortFunc(g, compareUUID)
	slices.SortFunc(w, compareUUID)
	if !slices.Equal(g, w) {
		t.Fatalf("%s = %v, want (any order) %v", what, got, want)
	}
}

func compareUUID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// claimOrder compares records in claim order:
// priority DESC, queued_at, created_at, id.
func claimOrder(a, b *queues.Record) int {
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if c := a.QueuedAt.Compare(b.QueuedAt); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return compareUUID(a.ID, b.ID)
}

// sortedIDs returns the IDs of recs sorted by less.
func sortedIDs(recs []*queues.Record, less func(a, b *queues.Record) int) []uuid.UUID {
	c := slices.Clone(recs)
	slices.SortStableFunc(c, less)
	return idsOf(c)
}

// storedAll re-reads records.
func storedAll(t *testing.T, b driver.Backend, recs []*queues.Record) []*queues.Record {
	t.Helper()
	out := make([]*queues.Record, len(recs))
	for i, r := range recs {
		out[i] = get(t, b, r.ID)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// disp returns b's external-dispatch capability; every store in this module has it.
func disp(t *testing.T, b driver.Backend) driver.Dispatcher {
	t.Helper()
	d, ok := b.(driver.Dispatcher)
	if !ok {
		t.Fatalf("%s does not implement driver.Dispatcher", b.Name())
	}
	return d
}
