package queues

import (
	"context"
	"time"
)

// RegisterSchedulerCanary registers the scheduler canary on reg: a no-op
// task under SchedulerCanaryTask, scheduled every interval. Its completed
// occurrences prove that schedules fire and workers run them (`queues
// scheduler-health` reads the latest one).
func RegisterSchedulerCanary(reg *Registry, interval time.Duration) error {
	if interval <= 0 {
		return configErr("interval", "must be positive")
	}
	_, err := Register(reg, SchedulerCanaryTask, func(context.Context, struct{}) (struct{}, error) {
		return struct{}{}, nil
	}, TaskOptions{Schedule: &Schedule{Interval: interval}, Description: "scheduler canary (no-op)"})
	return err
}
