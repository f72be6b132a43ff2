package queues

// SchedulerCanaryTask is the name of the scheduler canary: a no-op task run
// on a schedule, whose recent completions show that schedules fire.
// `queues scheduler-health` and GET /api/scheduler-health look for them.
const SchedulerCanaryTask = "queues.scheduler_canary"
