package queuestype

import (
	"errors"
	"time"
)

// ScheduleSpec is the schedule an occurrence of a scheduled task was
// enqueued for, kept in its Policy. Startup sync compares it with the
// registry's declaration to decide whether the active occurrence still
// follows the code; recurrence never reads it (the successor is built from
// the registry).
type ScheduleSpec struct {
	// Name is the schedule's full name: the task name for a task's default
	// schedule, "<task>:<schedule name>" for a named one.
	Name     string
	TaskName string
	Interval time.Duration
	Cron     string
	// Timezone is the IANA zone cron matches in ("UTC" when not given).
	Timezone     string
	InitialDelay time.Duration
	Jitter       time.Duration
}

// IsZero reports whether s describes no schedule.
func (s ScheduleSpec) IsZero() bool { return s == ScheduleSpec{} }

// scheduleJSON is the stored form of a ScheduleSpec: durations in seconds.
type scheduleJSON struct {
	Name         string  `json:"name"`
	TaskName     string  `json:"task_name"`
	Interval     float64 `json:"interval,omitempty"`
	Cron         string  `json:"cron,omitempty"`
	Timezone     string  `json:"timezone,omitempty"`
	InitialDelay float64 `json:"initial_delay,omitempty"`
	Jitter       float64 `json:"jitter,omitempty"`
}

func (s ScheduleSpec) toJSON() *scheduleJSON {
	if s.IsZero() {
		return nil
	}
	return &scheduleJSON{Name: s.Name, TaskName: s.TaskName, Interval: s.Interval.Seconds(), Cron: s.Cron,
		Timezone: s.Timezone, InitialDelay: s.InitialDelay.Seconds(), Jitter: s.Jitter.Seconds()}
}

func (j *scheduleJSON) spec() ScheduleSpec {
	if j == nil {
		return ScheduleSpec{}
	}
	return ScheduleSpec{Name: j.Name, TaskName: j.TaskName, Interval: SecondsToDuration(j.Interval), Cron: j.Cron,
		Timezone: j.Timezone, InitialDelay: SecondsToDuration(j.InitialDelay), Jitter: SecondsToDuration(j.Jitter)}
}

// Errors of the run-time schedule operations.
var (
	// ErrScheduleNotFound: no schedule of that name is declared in the
	// registry of the process asked.
	ErrScheduleNotFound = errors.New("queues: schedule not found")
	// ErrScheduleRunning: a trigger found the schedule's occurrence
	// already running.
	ErrScheduleRunning = errors.New("queues: schedule occurrence already running")
	// ErrSchedulePauseUnsupported: the store cannot keep paused schedules
	// (it does not implement driver.SchedulePauser).
	ErrSchedulePauseUnsupported = errors.New("queues: the store cannot pause schedules")
)
