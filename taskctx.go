package queues

import (
	"context"
	"strings"

	"github.com/google/uuid"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/queuestype"
)

// TaskInfo describes the attempt a ctx belongs to.
type TaskInfo struct {
	ID               uuid.UUID
	Name             string
	Queue            string
	WorkerID         string
	ExecutionBackend string
	ExecutionProfile string
	Attempt          int // RetryCount + 1
	RetryCount       int
	MaxRetries       int
	// Interruptions counts earlier generations that ended in a worker
	// shutdown rather than a failure (they spent no retry budget).
	Interruptions int
	Metadata      map[string]any
}

type attemptKey struct{}

func attemptFrom(ctx context.Context) *attempt {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

// TaskInfoFromContext returns the attempt ctx belongs to; ok is false outside an attempt.
func TaskInfoFromContext(ctx context.Context) (TaskInfo, bool) {
	a := attemptFrom(ctx)
	if a == nil {
		return TaskInfo{}, false
	}
	r := a.rec
	return TaskInfo{ID: r.ID, Name: r.TaskName, Queue: r.Queue, WorkerID: a.workerID,
		ExecutionBackend: r.ExecutionBackend, ExecutionProfile: r.ExecutionProfile,
		Attempt: r.RetryCount + 1, RetryCount: r.RetryCount, MaxRetries: r.MaxRetries, Interruptions: r.Interruptions,
		Metadata: queuestype.CloneMetadata(r.Metadata)}, true
}

// ProgressUpdate is the content of a task.progress event. Percent defaults to
// Current/Total×100 when Total is not zero.
type ProgressUpdate struct {
	Current float64
	Total   float64
	Percent *float64
	Message string
	Payload map[string]any
}

// Progress publishes a task.progress event for the current attempt.
func Progress(ctx context.Context, u ProgressUpdate) error {
	a := attemptFrom(ctx)
	if a == nil {
		return ErrNoTaskContext
	}
	ev := a.event(events.TypeProgress, u.Message, u.Payload)
	cur, total := u.Current, u.Total
	ev.ProgressCurrent, ev.ProgressTotal = &cur, &total
	switch {
	case u.Percent != nil:
		p := *u.Percent
		ev.ProgressPercent = &p
	case total != 0:
		p := cur / total * 100
		ev.ProgressPercent = &p
	}
	return a.svc.pub.publish(ctx, ev)
}

// Log publishes a task.log event; level "" means "info".
func Log(ctx context.Context, level, message string, payload map[string]any) error {
	a := attemptFrom(ctx)
	if a == nil {
		return ErrNoTaskContext
	}
	if level == "" {
		level = "info"
	}
	ev := a.event(events.TypeLog, message, payload)
	ev.Level = level
	return a.svc.pub.publish(ctx, ev)
}

// Emit publishes a custom event type for the current attempt; "" means "task.event".
func Emit(ctx context.Context, eventType, message string, payload map[string]any) error {
	a := attemptFrom(ctx)
	if a == nil {
		return ErrNoTaskContext
	}
	if eventType == "" {
		eventType = events.TypeEvent
	}
	return a.svc.pub.publish(ctx, a.event(eventType, message, payload))
}

// Beat records a short progress detail that the next heartbeat writes to
// metadata.progress_detail (last value wins, at most 256 characters). It
// publishes no event and is a no-op outside an attempt.
func Beat(ctx context.Context, detail string) {
	a := attemptFrom(ctx)
	if a == nil {
		return
	}
	if r := []rune(detail); len(r) > 256 {
		detail = string(r[:256])
	}
	// A NUL or invalid UTF-8 would make every store refuse the heartbeat
	// that carries the detail.
	detail = strings.ToValidUTF8(strings.ReplaceAll(detail, "\x00", "\uFFFD"), "\uFFFD")
	a.beat.Store(&detail)
}

func (a *attempt) event(typ, message string, payload map[string]any) events.Event {
	ev := recordEvent(typ, a.rec, a.workerID)
	ev.Message = message
	ev.Payload = payload
	ev.Sequence = a.nextSeq()
	return ev
}
