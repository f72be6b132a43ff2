// Package dispatch holds the protocol shared by external execution
// transports: reservation markers, the reserve → launch → finalize flow of
// job-style transports (subprocess, Cloud Run), and the application of probe
// results during reconciliation.
//
// # Job style
//
// A job-style transport starts one execution per record and learns its
// handle (the execution ref) only once the launch returned. To make sure a
// record is launched at most once even with several dispatchers, RunJob
//
//  1. reserves the record by writing a marker
//     "__queues_dispatching__:<unix-deadline>:<uuid4>" into execution_ref
//     (fenced on the record's generation; a reserved record is neither
//     claimed, expired nor reserved again);
//  2. launches the execution, which receives only the task ID and claims the
//     record by ID (execution.Host.ConsumeOne retries its claim while the
//     marker is still there);
//  3. finalizes: replaces the marker with the execution ref while the record
//     is still pending or scheduled.
//
// A failed launch publishes a task.event warning with phase
// "<backend>.dispatch_fallback" and releases the reservation, re-routed to
// the fallback execution backend when one is configured. A finalize that
// loses its fence (the record was cancelled, or the reservation expired and
// was released) cancels the orphan execution and reports ownership_lost. A
// marker left behind by a dispatcher that died is released by reconciliation
// once its 15-minute lease has passed.
//
// # Reconciliation
//
// Reconcile probes an execution through a transport-specific function and
// applies the result with execution.Host.ApplyProbe: succeeded → complete,
// cancelled → cancel, failed or not found → retry (or fail without budget),
// running or a probe error → nothing.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/execution"
	"github.com/queuesgo/queues/queuestype"
)

// MarkerPrefix starts every reservation marker, so an operator reading a
// record's execution_ref sees a hand-off in progress. Stores never read it:
// a reservation is the record's DispatchUntil.
const MarkerPrefix = "__queues_dispatching__:"

// DefaultLease is how long a reservation marker holds a record before
// reconciliation releases it.
const DefaultLease = 15 * time.Minute

// NewMarker returns a fresh reservation marker whose deadline is now + lease
// (lease ≤ 0 → DefaultLease), rounded up to the next second.
func NewMarker(now time.Time, lease time.Duration) string {
	if lease <= 0 {
		lease = DefaultLease
	}
	deadline := now.Add(lease)
	secs := deadline.Unix()
	if deadline.Nanosecond() > 0 {
		secs++
	}
	return MarkerPrefix + strconv.FormatInt(secs, 10) + ":" + uuid.NewString()
}

// IsMarker reports whether ref is a reservation marker.
func IsMarker(ref string) bool { return strings.HasPrefix(ref, MarkerPrefix) }

// MarkerDeadline returns the deadline encoded in a reservation marker
// "__queues_dispatching__:<unix-deadline>:<uuid4>"; ok is false when ref is
// not a well-formed marker.
func MarkerDeadline(ref string) (deadline time.Time, ok bool) {
	rest, found := strings.CutPrefix(ref, MarkerPrefix)
	if !found {
		return time.Time{}, false
	}
	secs, _, found := strings.Cut(rest, ":")
	if !found {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

// JobOptions tune RunJob.
type JobOptions struct {
	// FallbackBackend re-routes the record to this execution backend when the
	// launch fails ("" = no fallback: release and report the error).
	FallbackBackend string
	// FallbackProfile is the execution profile given with FallbackBackend.
	FallbackProfile string
	// Lease is the reservation marker lease: 0 → DefaultLease.
	Lease time.Duration
}

// RunJob runs the job-style dispatch of rec: reserve with a marker, launch,
// finalize with the ref launch returns.
//
//   - The reservation is not obtained (the record changed, or another
//     dispatcher holds it) → skipped, nil error.
//   - ctx ends before or during the launch → the reservation is released;
//     cancelled with ctx's error.
//   - launch fails → a task.event warning with phase
//     "<backendName>.dispatch_fallback" {error, fallback_execution_backend}
//     is published and the reservation released: re-routed to
//     opts.FallbackBackend when set (fallback, nil error), else error with a
//     *execution.DispatchError.
//   - Finalize loses its fence → cancelOrphan(ref) stops the launched
//     execution; ownership_lost with a *execution.DispatchError.
//   - Finalize fails otherwise → error with a *execution.DispatchError whose
//     Committed is true: the execution is running and the marker may or may
//     not have been replaced; reconciliation settles it either way.
//
// launch gets ctx and must not tie the execution's lifetime to it.
// cancelOrphan may be nil.
func RunJob(ctx context.Context, h execution.Host, rec *execution.Record, backendName string,
	launch func(ctx context.Context) (ref string, err error), cancelOrphan func(ref string),
	opts ...JobOptions) (execution.DispatchOutcome, error) {
	var o JobOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	b, ok := h.Backend().(driver.Dispatcher)
	if !ok {
		return execution.DispatchOutcome{Status: execution.DispatchStatusError},
			fmt.Errorf("%w: the %s backend does not support external execution", queuestype.ErrUnsupported, h.Backend().Name())
	}
	log := h.Logger()
	if err := ctx.Err(); err != nil {
		return execution.DispatchOutcome{Status: execution.DispatchStatusCancelled}, err
	}
	marker := NewMarker(time.Now(), o.Lease)
	until, _ := MarkerDeadline(marker)
	gen := rec.RetryCount
	reserved, err := b.ReserveDispatch(ctx, driver.ReserveDispatchParams{ID: rec.ID, Marker: marker, Until: until, ExpectedRetryCount: &gen})
	if err != nil {
		if errors.Is(err, queuestype.ErrFenceLost) || errors.Is(err, queuestype.ErrTaskNotFound) {
			return execution.DispatchOutcome{Status: execution.DispatchStatusSkipped}, nil
		}
		if ctx.Err() != nil {
			return execution.DispatchOutcome{Status: execution.DispatchStatusCancelled}, ctx.Err()
		}
		return execution.DispatchOutcome{Status: execution.DispatchStatusError},
			&execution.DispatchError{TaskID: rec.ID, Err: fmt.Errorf("reserve: %w", err)}
	}
	release := func(backend, profile string) error {
		_, err := b.ReleaseDispatch(context.WithoutCancel(ctx), driver.ReleaseDispatchParams{
			ID: rec.ID, Marker: marker, ExecutionBackend: backend, ExecutionProfile: profile})
		if err != nil {
			log.Warn("Queue dispatch reservation release failed; reconciliation releases it after its lease",
				"task_id", rec.ID, "execution_backend", backendName, "error", err)
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		_ = release("", "")
		return execution.DispatchOutcome{Status: execution.DispatchStatusCancelled}, err
	}

	ref, lerr := launch(ctx)
	if lerr != nil {
		if ctx.Err() != nil {
			_ = release("", "")
			return execution.DispatchOutcome{Status: execution.DispatchStatusCancelled}, ctx.Err()
		}
		var fallback any
		if o.FallbackBackend != "" {
			fallback = o.FallbackBackend
		}
		h.PublishWarning(ctx, reserved, backendName+".dispatch_fallback", "Remote execution dispatch failed",
			map[string]any{"error": lerr.Error(), "fallback_execution_backend": fallback})
		if o.FallbackBackend != "" {
			if err := release(o.FallbackBackend, o.FallbackProfile); err == nil {
				log.Warn("Queue task dispatch failed; re-routed to the fallback execution backend", "task_id", rec.ID,
					"execution_backend", backendName, "fallback_execution_backend", o.FallbackBackend, "error", lerr)
				return execution.DispatchOutcome{Status: execution.DispatchStatusFallback, FallbackBackend: o.FallbackBackend}, nil
			}
		} else {
			_ = release("", "")
		}
		return execution.DispatchOutcome{Status: execution.DispatchStatusError},
			&execution.DispatchError{TaskID: rec.ID, Err: fmt.Errorf("launch: %w", lerr)}
	}

	_, ferr := b.FinalizeDispatch(context.WithoutCancel(ctx), driver.FinalizeDispatchParams{ID: rec.ID, Marker: marker, Ref: ref})
	if ferr != nil {
		if errors.Is(ferr, queuestype.ErrFenceLost) || errors.Is(ferr, queuestype.ErrTaskNotFound) {
			log.Warn("Queue dispatch lost its reservation; cancelling the orphan execution", "task_id", rec.ID,
				"execution_backend", backendName, "execution_ref", ref)
			if cancelOrphan != nil {
				cancelOrphan(ref)
			}
			return execution.DispatchOutcome{Status: execution.DispatchStatusOwnershipLost, Ref: ref},
				&execution.DispatchError{TaskID: rec.ID, Err: fmt.Errorf("finalize: %w", ferr)}
		}
		return execution.DispatchOutcome{Status: execution.DispatchStatusError, Ref: ref},
			&execution.DispatchError{TaskID: rec.ID, Committed: true, Err: fmt.Errorf("finalize: %w", ferr)}
	}
	return execution.DispatchOutcome{Status: execution.DispatchStatusDispatched, Ref: ref}, nil
}

// Reconcile probes the execution rec holds with probe and applies the result
// through h.ApplyProbe. Records that are terminal, hold no ref or hold a
// reservation marker are returned unchanged without probing (the service
// releases expired markers itself). A probe error is returned with rec
// unchanged: the caller treats the execution as running.
func Reconcile(ctx context.Context, h execution.Host, rec *execution.Record,
	probe func(ctx context.Context, ref string) (execution.Probe, error)) (*execution.Record, error) {
	if rec.IsTerminal() || rec.ExecutionRef == "" || IsMarker(rec.ExecutionRef) {
		return rec, nil
	}
	p, err := probe(ctx, rec.ExecutionRef)
	if err != nil {
		return rec, err
	}
	return h.ApplyProbe(ctx, rec, p)
}
