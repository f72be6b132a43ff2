package queues

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/queuesgo/queues/events"
)

// publisher delivers events to the configured broker and sinks. With no
// EventsConfig it is disabled and publishing is free.
type publisher struct {
	ns      string
	broker  events.Broker
	sinks   []events.Sink
	chans   events.ChannelOptions
	strict  bool
	logger  *slog.Logger
	enabled bool

	mu         sync.Mutex
	lastErrMsg string
}

func newPublisher(ns string, cfg *EventsConfig, logger *slog.Logger) *publisher {
	p := &publisher{ns: ns, logger: logger}
	if cfg == nil {
		return p
	}
	p.enabled = true
	p.broker = cfg.Broker
	if p.broker == nil {
		p.broker = events.NewMemoryBroker(events.MemoryBrokerOptions{})
	}
	p.sinks = cfg.Sinks
	p.strict = cfg.Strict
	p.chans = events.ChannelOptions{
		SkipTaskChannel:        cfg.SkipTaskChannel,
		SkipQueueChannel:       cfg.SkipQueueChannel,
		PublishGlobalLifecycle: cfg.PublishGlobalLifecycle,
	}
	return p
}

// publish normalizes, routes and delivers ev. Delivery errors are returned in
// strict mode and logged otherwise (first at WARN, identical repeats at DEBUG).
func (p *publisher) publish(ctx context.Context, ev events.Event, extraChannels ...string) error {
	if !p.enabled {
		return nil
	}
	ev.Normalize(time.Now())
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("%w: event: %v", ErrConfig, err)
	}
	opts := p.chans
	opts.Extra = extraChannels
	data, err := ev.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	chans := events.Channels(p.ns, &ev, opts)
	msgs := make([]events.Message, len(chans))
	for i, c := range chans {
		msgs[i] = events.Message{Channel: c, Data: data}
	}
	var firstErr error
	if err := p.broker.Publish(ctx, msgs); err != nil {
		firstErr = fmt.Errorf("event broker: %w", err)
	}
	for _, s := range p.sinks {
		if err := s.Publish(ctx, msgs); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("event sink: %w", err)
			}
			if p.strict {
				break
			}
		}
	}
	if firstErr != nil && !p.strict {
		p.logDeliveryError(ev.Type, firstErr)
		return nil
	}
	return firstErr
}

func (p *publisher) logDeliveryError(typ string, err error) {
	p.mu.Lock()
	repeat := p.lastErrMsg == err.Error()
	p.lastErrMsg = err.Error()
	p.mu.Unlock()
	level := slog.LevelWarn
	if repeat {
		level = slog.LevelDebug
	}
	p.logger.Log(context.Background(), level, "Queue event delivery failed", "event_type", typ, "error", err)
}

// recordEvent builds a task-scope event about rec.
func recordEvent(typ string, rec *Record, workerID string) events.Event {
	attempt := rec.RetryCount + 1
	return events.Event{
		Type:             typ,
		Scope:            events.ScopeTask,
		TaskID:           rec.ID.String(),
		TaskName:         rec.TaskName,
		Queue:            rec.Queue,
		WorkerID:         workerID,
		ExecutionBackend: rec.ExecutionBackend,
		ExecutionProfile: rec.ExecutionProfile,
		Attempt:          &attempt,
	}
}

func statusPayload(rec *Record) map[string]any {
	return map[string]any{"status": string(rec.Status), "retry_count": rec.RetryCount}
}

// lifecycle publishes a system event about rec and logs (never returns)
// delivery errors: a settled record must not look unsettled because a
// subscriber was slow.
func (s *Service) lifecycle(ctx context.Context, typ string, rec *Record, workerID, message string, payload map[string]any, seq *int) {
	s.lifecycleAttempt(ctx, typ, rec, rec.RetryCount+1, workerID, message, payload, seq)
}

// lifecycleAttempt is lifecycle for an event about attempt number attempt
// of rec: an attempt that ended with a retry is reported with its own
// number, not the number of the generation the record moved to.
func (s *Service) lifecycleAttempt(ctx context.Context, typ string, rec *Record, attempt int, workerID, message string, payload map[string]any, seq *int) {
	// Every terminal transition is announced here, so the next occurrence
	// of a scheduled record is enqueued here too, whether or not events
	// are delivered.
	if isTerminalEvent(typ) {
		s.recur(ctx, rec)
	}
	if !s.pub.enabled {
		return
	}
	ev := recordEvent(typ, rec, workerID)
	ev.Attempt = &attempt
	ev.Message = message
	ev.Payload = payload
	ev.Sequence = seq
	if typ == events.TypeFailed || typ == events.TypeClaimLost || typ == events.TypeStaleFailed || typ == events.TypeExpired {
		ev.Level = "warning"
		if typ == events.TypeFailed && payload["will_retry"] == false {
			ev.Level = "error"
		}
	}
	if err := s.pub.publish(context.WithoutCancel(ctx), ev); err != nil {
		s.logger.Warn("Queue event delivery failed", "event_type", typ, "task_id", rec.ID, "error", err)
	}
}

func (s *Service) publishExpired(ctx context.Context, recs []*Record, workerID string) {
	for _, rec := range recs {
		payload := statusPayload(rec)
		payload["expires_at"] = formatTime(rec.ExpiresAt)
		s.lifecycle(ctx, events.TypeExpired, rec, workerID, "Task expired before execution", payload, nil)
		s.logger.Warn("Queue task expired before execution", "task_id", rec.ID, "task_name", rec.TaskName, "queue", rec.Queue)
	}
}

// formatTime renders t as RFC 3339 UTC, or nil for the zero time.
func formatTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}
