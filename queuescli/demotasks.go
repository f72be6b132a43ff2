package queuescli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/queuesgo/queues"
)

// Demo task names, registered by RegisterDemoTasks.
const (
	DemoNoop  = "demo.noop"  // does nothing: {}
	DemoSleep = "demo.sleep" // sleeps {"ms": N} milliseconds, stopping early when cancelled unless "ignore_cancel": true
	DemoFail  = "demo.fail"  // fails {"times": N} times, then succeeds
	DemoEcho  = "demo.echo"  // returns its arguments as its result
	// DemoScheduled sleeps 500 ms on an interval schedule; it is
	// registered only when EnvDemoSchedule is set.
	DemoScheduled = "demo.scheduled"
)

// EnvDemoSchedule, when set to a duration (such as "1s"), makes
// RegisterDemoTasks also register demo.scheduled with that interval
// schedule, so `queues run` keeps a recurring demo task going.
const EnvDemoSchedule = "QUEUES_DEMO_SCHEDULE"

// demoScheduledSleep is how long each demo.scheduled occurrence runs.
const demoScheduledSleep = 500 * time.Millisecond

// EnvDemoTrace names a file each demo task attempt appends one line to
// ("<task id> <task name> <attempt> <pid>"), opened with O_APPEND so that
// processes sharing it never interleave lines. It lets tests and operators
// see exactly which attempts ran where; unset, nothing is written.
const EnvDemoTrace = "QUEUES_DEMO_TRACE"

// DemoSleepArgs are demo.sleep's arguments.
type DemoSleepArgs struct {
	MS int `json:"ms"`
	// IgnoreCancel sleeps through cancellation and shutdown, like a task
	// stuck in a call that takes no context.
	IgnoreCancel bool `json:"ignore_cancel,omitempty"`
}

// DemoFailArgs are demo.fail's arguments.
type DemoFailArgs struct {
	Times int `json:"times"`
}

// DemoFailRetries is demo.fail's default retry budget; enqueue with a
// larger --retries to fail more often than this and still succeed.
const DemoFailRetries = 5

// RegisterDemoTasks registers the built-in demo tasks into r: demo.noop,
// demo.sleep, demo.fail (retries DemoFailRetries, 100ms apart) and
// demo.echo, and the scheduler canary (queues.SchedulerCanaryTask): on an
// interval schedule when EnvSchedulerCanary holds a duration, else as a
// plain no-op task, so that `queues scheduler-health` always has a canary
// to look for.
func RegisterDemoTasks(r *queues.Registry) error {
	_, err1 := queues.Register(r, DemoNoop, func(ctx context.Context, _ json.RawMessage) (struct{}, error) {
		trace(ctx)
		return struct{}{}, nil
	}, queues.TaskOptions{Description: "does nothing"})
	_, err2 := queues.Register(r, DemoSleep, func(ctx context.Context, a DemoSleepArgs) (map[string]int, error) {
		trace(ctx)
		if a.MS < 0 {
			return nil, queues.NonRetryable(errors.New("ms must not be negative"))
		}
		t := time.NewTimer(time.Duration(a.MS) * time.Millisecond)
		defer t.Stop()
		if a.IgnoreCancel {
			<-t.C
			return map[string]int{"slept_ms": a.MS}, nil
		}
		select {
		case <-t.C:
			return map[string]int{"slept_ms": a.MS}, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}, queues.TaskOptions{Description: "sleeps for ms milliseconds"})
	_, err3 := queues.Register(r, DemoFail, func(ctx context.Context, a DemoFailArgs) (map[string]int, error) {
		trace(ctx)
		info, _ := queues.TaskInfoFromContext(ctx)
		failures := info.RetryCount - info.Interruptions
		if failures < a.Times {
			return nil, fmt.Errorf("planned failure %d of %d", failures+1, a.Times)
		}
		return map[string]int{"failures": failures}, nil
	}, queues.TaskOptions{Description: "fails times times, then succeeds", Retries: DemoFailRetries,
		RetryBackoff: queues.FixedBackoff(100 * time.Millisecond)})
	_, err4 := queues.Register(r, DemoEcho, func(ctx context.Context, a json.RawMessage) (json.RawMessage, error) {
		trace(ctx)
		if len(a) == 0 {
			return json.RawMessage("null"), nil
		}
		return a, nil
	}, queues.TaskOptions{Description: "returns its arguments"})
	return errors.Join(err1, err2, err3, err4, registerCanary(r), registerDemoSchedule(r))
}

// EnvSchedulerCanary, when set to a duration (such as "1m"), schedules the
// scheduler canary at that interval (queues.RegisterSchedulerCanary), so
// that `queues run` keeps it going and `queues scheduler-health` can tell
// whether schedules fire. Set it alike on every worker of a store: a
// worker whose registry has no schedule for the canary cancels its pending
// occurrence at startup, as it does for every removed schedule.
const EnvSchedulerCanary = "QUEUES_SCHEDULER_CANARY"

// registerCanary registers the scheduler canary, scheduled when
// EnvSchedulerCanary says so.
func registerCanary(r *queues.Registry) error {
	if v := os.Getenv(EnvSchedulerCanary); v != "" {
		every, err := time.ParseDuration(v)
		if err != nil || every <= 0 {
			return fmt.Errorf("%s=%q: want a positive duration such as 1m", EnvSchedulerCanary, v)
		}
		return queues.RegisterSchedulerCanary(r, every)
	}
	_, err := queues.Register(r, queues.SchedulerCanaryTask, func(ctx context.Context, _ json.RawMessage) (struct{}, error) {
		trace(ctx)
		return struct{}{}, nil
	}, queues.TaskOptions{Description: "the scheduler canary: does nothing; its completions show that schedules fire"})
	return err
}

// registerDemoSchedule registers demo.scheduled when EnvDemoSchedule holds
// a positive duration.
func registerDemoSchedule(r *queues.Registry) error {
	v := os.Getenv(EnvDemoSchedule)
	if v == "" {
		return nil
	}
	every, err := time.ParseDuration(v)
	if err != nil || every <= 0 {
		return fmt.Errorf("%s=%q: want a positive duration such as 1s", EnvDemoSchedule, v)
	}
	_, err = queues.Register(r, DemoScheduled, func(ctx context.Context, _ struct{}) (struct{}, error) {
		trace(ctx)
		t := time.NewTimer(demoScheduledSleep)
		defer t.Stop()
		select {
		case <-t.C:
			return struct{}{}, nil
		case <-ctx.Done():
			return struct{}{}, context.Cause(ctx)
		}
	}, queues.TaskOptions{Description: "sleeps 500 ms on an interval schedule", Schedule: &queues.Schedule{Interval: every}})
	return err
}

var traceMu sync.Mutex

// trace appends the attempt to $QUEUES_DEMO_TRACE, when set.
func trace(ctx context.Context) {
	path := os.Getenv(EnvDemoTrace)
	if path == "" {
		return
	}
	info, _ := queues.TaskInfoFromContext(ctx)
	line := fmt.Sprintf("%s %s %d %d\n", info.ID, info.Name, info.Attempt, os.Getpid())
	traceMu.Lock()
	defer traceMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	_, _ = f.WriteString(line)
	_ = f.Close()
}
