// Package driver is the contract between the queues engine and a store of
// task records, the way database/sql/driver stands apart from database/sql.
// An application never needs it: it writes against package queues and
// passes a store (backend/sqlite, backend/postgres, backend/redis,
// backend/memory, or its own) in queues.Config.
//
// A store keeps records durable and applies every state change as a
// compare-and-set fenced on the record's generation. It runs thin queries;
// the engine in package queues decides outcomes. Optional capabilities
// (wakeup hints, worker control, due timers, completion waits, fleet locks,
// inspection, migrations, transactional enqueue) are separate interfaces a
// store may implement. Every store must pass the shared suite in
// backend/backendtest.
//
// Besides the contract, the package holds the helpers stores share, so that
// each store validates, defaults, orders and words what the contract asks
// alike: PrepareEnqueue (which enforces the hard input limits) and
// KeyFolder for Enqueue, CheckTransition and FitSettleTexts for Settle,
// CheckHeartbeatLimits for TouchHeartbeats, error constructors such
// as FenceLost, the call starts NoItems, NoWork and CallLimit, and the
// claim and stale orders, task pages and option checks beside them.
package driver
