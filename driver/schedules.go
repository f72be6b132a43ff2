package driver

import (
	"context"
	"time"
)

// SchedulePause is the durable, fleet-wide pause of one schedule, by the
// schedule's name ("<task>" for a task's default schedule, or
// "<task>:<schedule name>"). Since is stamped by the store's clock.
type SchedulePause struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

// SchedulePauser is the optional capability of a store that keeps which
// schedules are paused, so that a pause or resume in one process holds for
// every process sharing the store. The engine decides what a pause means
// (no new occurrence is enqueued while it holds); the store only keeps the
// set.
type SchedulePauser interface {
	// PauseSchedule records name as paused; pausing a paused schedule
	// keeps its original Since.
	PauseSchedule(ctx context.Context, name string) error
	// ResumeSchedule removes the pause; reports whether one was there.
	ResumeSchedule(ctx context.Context, name string) (bool, error)
	// PausedSchedules returns every pause, ordered by Name.
	PausedSchedules(ctx context.Context) ([]SchedulePause, error)
}
