package queues

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/events"
	"github.com/queuesgo/queues/execution"
)

// Built-in execution backends.
const (
	// ExecutionLocal runs attempts as goroutines inside a worker (the default).
	ExecutionLocal = queuestype.ExecutionLocal
	// ExecutionImmediate runs an attempt inline inside Enqueue, for tests and scripts.
	ExecutionImmediate = "immediate"
)

// Placement says where a service's worker runs.
type Placement string

// Placements.
const (
	// PlacementExternal (the zero value): the service never starts a worker;
	// run workers with Service.NewWorker or the CLI.
	PlacementExternal Placement = "external"
	// PlacementInApp: Service.Start starts one worker in this process and Close drains it.
	PlacementInApp Placement = "in-app"
)

// Config configures a Service. The zero value of every field means "use the
// default"; Backend is required.
type Config struct {
	// Namespace roots channel names, lock names and system task names: "" → "queues".
	Namespace string
	// Backend stores the records (required): memory.New(...), sqlite.Open(...), ...
	Backend driver.Backend
	// Registry holds the tasks; nil → an empty registry.
	Registry *Registry
	// ExecutionBackend is the default for new records and the records a worker
	// claims: "" → "local". It may also name one of Executors: the service's
	// workers then dispatch records to that transport instead of running them.
	ExecutionBackend string
	// Executors are the external execution transports (subprocess, rabbitmq,
	// nats, cloudrun, ...) by Name; see package execution. "local" and
	// "immediate" are built in. Each must have a unique name. Start opens
	// them after the backend; Close closes them before it. Configure them in
	// every process that dispatches, reconciles or cancels their records.
	Executors []execution.Transport
	// ExternalExecutionBackends names the execution backends served by
	// another process (a transport this producer does not configure, whose
	// dispatcher runs elsewhere). Enqueue refuses an execution backend that
	// is not "local", "immediate", ExecutionBackend, one of Executors or
	// one of these names: a record no worker serves would wait forever.
	ExternalExecutionBackends []string
	// Middleware wraps every attempt, outermost first.
	Middleware []Middleware
	// ErrorSanitizer turns an attempt's error into the stored text; nil → err.Error().
	ErrorSanitizer func(err error, rec *Record) string
	// Worker configures the in-app worker (Placement PlacementInApp). Workers
	// made with Service.NewWorker take their own WorkerConfig.
	Worker WorkerConfig
	// Events configures live event delivery; nil → events go nowhere.
	Events *EventsConfig
	// LogSuccess is the default for the "Queue task completed" log line.
	LogSuccess bool
	// MaxArgumentIdentityBytes bounds canonical arguments for UniqueByArguments; 0 = unlimited.
	MaxArgumentIdentityBytes int
	// StaleRequeuePriority maps the priority of stale-requeued records; nil keeps it.
	StaleRequeuePriority func(old int) int
	// Logger receives structured logs; nil → slog.Default().
	Logger *slog.Logger
	// Maintenance configures maintenance runs and retention: by default
	// every worker tries a run each minute, which deletes completed and
	// cancelled records 24h after they ended and failed and expired ones
	// after 7 days (see MaintenanceConfig).
	Maintenance MaintenanceConfig
	// Limits bounds what a record may hold (argument, result, metadata and
	// error text sizes, names, ranges). A zero field means the default of
	// queuestype.DefaultLimits, which is also the maximum every store
	// enforces: a field may only tighten it (a larger or negative value is
	// a *ConfigError). Enqueue refuses a violation with a *LimitError
	// before any store call.
	Limits queuestype.Limits
	// DisableScheduleSync skips the startup sync of schedules when a
	// worker starts (see Schedule). Give it to every process but one when
	// applications with different registries share one store.
	DisableScheduleSync bool
}

// EventsConfig configures live events. Events are delivered to the broker (for
// subscribers) and to every sink, in order, as they are published.
type EventsConfig struct {
	// Broker fans events out to subscribers; nil → a new in-process broker
	// (Service.EventBroker returns it).
	Broker events.Broker
	// Sinks receive every event after the broker, in order.
	Sinks []events.Sink
	// Strict returns delivery errors to the publisher instead of logging them.
	Strict bool
	// SkipTaskChannel and SkipQueueChannel drop the per-task and per-queue channels.
	SkipTaskChannel  bool
	SkipQueueChannel bool
	// PublishGlobalLifecycle also sends lifecycle events to the global channel.
	PublishGlobalLifecycle bool
}

// PriorityCeiling returns a stale-requeue priority policy that demotes records
// to at most n (higher runs first, so a ceiling demotes).
func PriorityCeiling(n int) func(int) int {
	return func(old int) int { return min(old, n) }
}

// WorkerConfig configures a worker. Zero values mean the documented default; a
// negative value switches a feature off where noted.
type WorkerConfig struct {
	Placement Placement // "" = PlacementExternal
	// ID identifies the worker in records, events and logs: "" → "worker-<pid>".
	ID string
	// Queues limits the worker to these queues; empty = all.
	Queues []string
	// BatchSize is the most records claimed per poll: 0 → 10.
	BatchSize int
	// PollInterval is the base wait between empty polls: 0 → 100ms.
	PollInterval time.Duration
	// PollBackoffMax caps the adaptive wait: 0 → 30s; negative = fixed PollInterval.
	PollBackoffMax time.Duration
	// PollBackoffMultiplier grows the wait after an empty poll: 0 → 2.
	PollBackoffMultiplier float64
	// PollJitter spreads waits by ±fraction: 0 → 0.15; negative = none.
	PollJitter float64
	// MaxConcurrency caps in-flight attempts in this process: 0 → 1.
	MaxConcurrency int
	// QueueConcurrency caps in-flight attempts per queue beneath MaxConcurrency.
	QueueConcurrency map[string]int
	// Prefetch lets the worker hold up to this many claimed records beyond
	// MaxConcurrency, waiting for a free slot, so claim round trips overlap
	// with running and settling attempts (throughput for short tasks). A
	// prefetched record is running in the store (claimed, heartbeated, owned
	// by this worker); its task body starts, in claim order, when a slot
	// frees, and never more than MaxConcurrency bodies run at once. A body's
	// slot frees when the body returns, so its settle write overlaps the
	// next body; the record counts against MaxConcurrency+Prefetch until it
	// is settled. A
	// durable cancel skips it; at shutdown it drains like a running attempt
	// and, once the ladder cancels, is settled without running (requeued or
	// left for stale recovery, as RequeueOnShutdown says). QueueConcurrency
	// counts prefetched records too. 0 → none (the default: with long tasks,
	// prefetched records would wait here while other workers idle).
	Prefetch int
	// HeartbeatInterval is the time between heartbeat writes, and between
	// refreshes of the worker's registry entry, which lives 3 intervals
	// (plus jitter) past each refresh: 0 → 30s.
	HeartbeatInterval time.Duration
	// HeartbeatJitterFraction adds up to this fraction to each interval: 0 → 0.1; negative = none.
	HeartbeatJitterFraction float64
	// HeartbeatMissThreshold is how many missed touches mean the claim is lost: 0 → 2.
	HeartbeatMissThreshold int
	// KeepRunningOnClaimLoss leaves an attempt running after its claim is lost.
	KeepRunningOnClaimLoss bool
	// CancellationPollInterval is the durable check for cancelled running records: 0 → 1s.
	CancellationPollInterval time.Duration
	// StaleAfter is crash recovery: running records whose heartbeat is
	// older are requeued or failed (one worker of the fleet sweeps, every
	// StaleCheckInterval). 0 → 4 × HeartbeatInterval (2m with the default
	// interval); negative = off. Without it, the records of a worker that
	// crashed or was killed stay running forever. The sweep recovers
	// nothing until the store has answered this process for one
	// StaleAfter, so a store outage does not make live attempts stale.
	StaleAfter time.Duration
	// StaleCheckInterval is the stale recovery cadence: 0 → 60s.
	StaleCheckInterval time.Duration
	// ExpiryCheckInterval is the expiry sweep cadence: 0 → 60s; negative = off.
	ExpiryCheckInterval time.Duration
	// ScheduleCheckInterval is the schedule keeper's cadence (one worker
	// of the fleet enqueues the next occurrence of any declared, unpaused
	// schedule that has none): 0 → 30s; negative = off.
	ScheduleCheckInterval time.Duration
	// ReconcileInterval is the external reconcile cadence of a dispatching
	// worker (probing executions that ended without settling): 0 → 30s.
	ReconcileInterval time.Duration
	// GracefulShutdownTimeout is how long a stop waits for attempts: 0 → 30s.
	GracefulShutdownTimeout time.Duration
	// FinalCancelTimeout is the grace after cancelling attempts: 0 → 5s.
	FinalCancelTimeout time.Duration
	// RequeueOnShutdown requeues attempts cancelled by shutdown (unless the
	// record says otherwise) instead of leaving them to stale recovery.
	RequeueOnShutdown bool
	// MaxInterruptions is how many shutdown interruptions a record may take before it fails: 0 → 3.
	MaxInterruptions int
}

// Worker defaults (WorkerConfig's field docs give them).
const (
	defaultBatchSize                = 10
	defaultPollInterval             = 100 * time.Millisecond
	defaultPollBackoffMax           = 30 * time.Second
	defaultPollBackoffMultiplier    = 2.0
	defaultPollJitter               = 0.15
	defaultHeartbeatInterval        = 30 * time.Second
	defaultHeartbeatJitterFraction  = 0.1
	defaultHeartbeatMissThreshold   = 2
	defaultCancellationPollInterval = time.Second
	defaultStaleCheckInterval       = 60 * time.Second
	defaultExpiryCheckInterval      = 60 * time.Second
	defaultScheduleCheckInterval    = 30 * time.Second
	defaultReconcileInterval        = 30 * time.Second
	defaultGracefulShutdownTimeout  = 30 * time.Second
	defaultFinalCancelTimeout       = 5 * time.Second
	defaultMaxInterruptions         = 3
)

// staleAfterHeartbeats is the default StaleAfter in heartbeat intervals: a
// live worker misses three heartbeats (and then some jitter) before its
// records count as stale.
const staleAfterHeartbeats = 4

// withDefaults validates c and returns it with defaults filled in.
func (c WorkerConfig) withDefaults() (WorkerConfig, error) {
	switch c.Placement {
	case "":
		c.Placement = PlacementExternal
	case PlacementExternal, PlacementInApp:
	default:
		return c, configErr("Worker.Placement", "unknown placement %q", c.Placement)
	}
	if c.ID == "" {
		c.ID = fmt.Sprintf("worker-%d", os.Getpid())
	}
	for _, q := range c.Queues {
		if q == "" {
			return c, configErr("Worker.Queues", "queue names must not be empty")
		}
	}
	var err error
	positiveInt := func(field string, v *int, def int) {
		if err != nil {
			return
		}
		if *v < 0 {
			err = configErr(field, "must be positive")
		} else if *v == 0 {
			*v = def
		}
	}
	positiveDur := func(field string, v *time.Duration, def time.Duration) {
		if err != nil {
			return
		}
		if *v < 0 {
			err = configErr(field, "must be positive")
		} else if *v == 0 {
			*v = def
		}
	}
	fraction := func(field string, v *float64, def float64) {
		if err != nil {
			return
		}
		switch {
		case math.IsNaN(*v) || *v > 1:
			err = configErr(field, "must be between 0 and 1 (negative = none)")
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		}
	}
	positiveInt("Worker.BatchSize", &c.BatchSize, defaultBatchSize)
	positiveInt("Worker.MaxConcurrency", &c.MaxConcurrency, 1)
	if err == nil && c.Prefetch < 0 {
		err = configErr("Worker.Prefetch", "must not be negative")
	}
	positiveInt("Worker.HeartbeatMissThreshold", &c.HeartbeatMissThreshold, defaultHeartbeatMissThreshold)
	positiveInt("Worker.MaxInterruptions", &c.MaxInterruptions, defaultMaxInterruptions)
	positiveDur("Worker.PollInterval", &c.PollInterval, defaultPollInterval)
	positiveDur("Worker.HeartbeatInterval", &c.HeartbeatInterval, defaultHeartbeatInterval)
	positiveDur("Worker.CancellationPollInterval", &c.CancellationPollInterval, defaultCancellationPollInterval)
	positiveDur("Worker.StaleCheckInterval", &c.StaleCheckInterval, defaultStaleCheckInterval)
	positiveDur("Worker.ReconcileInterval", &c.ReconcileInterval, defaultReconcileInterval)
	positiveDur("Worker.GracefulShutdownTimeout", &c.GracefulShutdownTimeout, defaultGracefulShutdownTimeout)
	positiveDur("Worker.FinalCancelTimeout", &c.FinalCancelTimeout, defaultFinalCancelTimeout)
	fraction("Worker.PollJitter", &c.PollJitter, defaultPollJitter)
	fraction("Worker.HeartbeatJitterFraction", &c.HeartbeatJitterFraction, defaultHeartbeatJitterFraction)
	if err != nil {
		return c, err
	}
	switch {
	case c.PollBackoffMax == 0:
		c.PollBackoffMax = max(defaultPollBackoffMax, c.PollInterval)
	case c.PollBackoffMax > 0 && c.PollBackoffMax < c.PollInterval:
		return c, configErr("Worker.PollBackoffMax", "must be at least PollInterval (negative = fixed interval)")
	}
	switch {
	case c.PollBackoffMultiplier == 0:
		c.PollBackoffMultiplier = defaultPollBackoffMultiplier
	case c.PollBackoffMultiplier < 1 || math.IsNaN(c.PollBackoffMultiplier) || math.IsInf(c.PollBackoffMultiplier, 0):
		return c, configErr("Worker.PollBackoffMultiplier", "must be at least 1")
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = staleAfterHeartbeats * c.HeartbeatInterval
	}
	if c.ExpiryCheckInterval == 0 {
		c.ExpiryCheckInterval = defaultExpiryCheckInterval
	}
	if c.ScheduleCheckInterval == 0 {
		c.ScheduleCheckInterval = defaultScheduleCheckInterval
	}
	for q, n := range c.QueueConcurrency {
		if n <= 0 {
			return c, configErr("Worker.QueueConcurrency", "cap for queue %q must be positive", q)
		}
		if len(c.Queues) > 0 && !contains(c.Queues, q) {
			return c, configErr("Worker.QueueConcurrency", "queue %q is not in Queues", q)
		}
	}
	return c, nil
}

func contains[T comparable](xs []T, x T) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// namespacePattern is the namespace rule every store shares.
var namespacePattern = driver.NamespacePattern

// defaultNamespace roots names when Config.Namespace is empty.
const defaultNamespace = queuestype.DefaultNamespace

func (c Config) withDefaults() (Config, error) {
	if c.Namespace == "" {
		c.Namespace = defaultNamespace
	} else if !namespacePattern.MatchString(c.Namespace) {
		return c, configErr("Namespace", "%q must match %s", c.Namespace, namespacePattern)
	}
	if c.Backend == nil {
		return c, configErr("Backend", "is required")
	}
	if c.Registry == nil {
		c.Registry = NewRegistry()
	}
	names := map[string]bool{}
	for i, e := range c.Executors {
		if e == nil {
			return c, configErr("Executors", "item %d is nil", i)
		}
		name := e.Name()
		switch {
		case name == "":
			return c, configErr("Executors", "item %d has an empty name", i)
		case isBuiltinExecution(name):
			return c, configErr("Executors", "%q is built in and cannot be configured", name)
		case names[name]:
			return c, configErr("Executors", "duplicate execution backend %q", name)
		}
		// Every record routed to it would be refused otherwise.
		if err := queuestype.CheckCharsetName("Executors", name, queuestype.DefaultLimits().ExecutionNameBytes); err != nil {
			return c, err
		}
		names[name] = true
	}
	switch {
	case c.ExecutionBackend == "":
		c.ExecutionBackend = ExecutionLocal
	case isBuiltinExecution(c.ExecutionBackend), names[c.ExecutionBackend]:
	default:
		return c, configErr("ExecutionBackend", "unknown execution backend %q (built in: local, immediate; configure others in Executors)", c.ExecutionBackend)
	}
	for i, name := range c.ExternalExecutionBackends {
		if name == "" {
			return c, configErr("ExternalExecutionBackends", "item %d is empty", i)
		}
	}
	if c.MaxArgumentIdentityBytes < 0 {
		return c, configErr("MaxArgumentIdentityBytes", "must not be negative")
	}
	limits, err := c.Limits.Resolve("Limits.")
	if err != nil {
		return c, err
	}
	c.Limits = limits
	w, err := c.Worker.withDefaults()
	if err != nil {
		return c, err
	}
	if c.Maintenance, err = c.Maintenance.withDefaults(); err != nil {
		return c, err
	}
	if w.Placement == PlacementInApp && c.ExecutionBackend == ExecutionImmediate {
		return c, configErr("Worker.Placement", "an in-app worker cannot run with the immediate execution backend")
	}
	c.Worker = w
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
