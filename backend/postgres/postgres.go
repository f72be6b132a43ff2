package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultExactStatisticsLimit is the default of Options.ExactStatisticsLimit.
const DefaultExactStatisticsLimit = 1_000_000

// maxNamespaceLen keeps "<ns>_worker_control" within PostgreSQL's 63-byte
// identifier limit (channel names are identifiers).
const maxNamespaceLen = 48

// Options configure a PostgreSQL backend. The zero value is ready to use.
type Options struct {
	// Schema holds the tables ("" = the connection's search_path, usually
	// "public"). Migrate creates it when missing.
	Schema string
	// TablePrefix is prepended to every table and index name (for example
	// "app_" gives app_queue_task). Lower-case letters, digits and "_".
	TablePrefix string
	// Namespace is the configured namespace root ("" means "queues"). It
	// names the notification channels <ns>_tasks and <ns>_worker_control;
	// SQL table names do not derive from it.
	Namespace string
	// HeartbeatPool, when set, carries heartbeat touches and heartbeat nulls
	// so that a saturated main pool cannot starve them (which would end in
	// stale recovery of healthy work). It is a
	// small pool on the same database; the backend never closes it.
	HeartbeatPool *pgxpool.Pool
	// Wakeups switches LISTEN/NOTIFY hints (task wakeups and worker-control
	// hints): nil or true = on, false = off (workers poll durably).
	Wakeups *bool
	// ListenConnString is the connection string of the dedicated listener
	// connection; "" means the main pool's connection configuration.
	ListenConnString string
	// Logger receives the listener's connection-state log lines; nil means
	// slog.Default().
	Logger *slog.Logger
	// ExactStatisticsLimit is the estimated table size (pg_class.reltuples)
	// up to which Statistics and QueueStatistics count every status exactly.
	// Above it, pending/scheduled/running stay exact (partial indexes) and
	// terminal counts are planner estimates. 0 means
	// DefaultExactStatisticsLimit; negative means always exact.
	ExactStatisticsLimit int
	// HeartbeatConns makes Connect create an owned heartbeat pool of this
	// many connections when HeartbeatPool is nil. Ignored by New.
	HeartbeatConns int
}

// prefixPattern restricts table prefixes to plain lower-case identifiers.
var prefixPattern = regexp.MustCompile(`^[a-z0-9_]*$`)

// ErrNotMigrated is matched by the error Open (and any call that meets a
// missing table) returns when the schema lacks embedded migrations: run
// `queues migrate` or call Backend.Migrate.
var ErrNotMigrated = errors.New("postgres: queue schema is not migrated")

// ErrSchemaTooNew is matched by the error Open and Migrate return when the
// schema holds migration versions this build does not know.
var ErrSchemaTooNew = errors.New("postgres: queue schema is newer than this build")

// Backend is the PostgreSQL queue backend on pgx/v5. Create it with New or
// Connect; it is safe for concurrent use by many goroutines and processes.
//
// It implements driver.Backend and the optional interfaces driver.Waker,
// driver.WorkerController, driver.DueTimer, driver.Locker,
// driver.Inspector, driver.Migrator, driver.TxEnqueuer[pgx.Tx] and
// driver.WorkerRegistry.
type Backend struct {
	pool     *pgxpool.Pool
	hbPool   *pgxpool.Pool
	ownPools []*pgxpool.Pool
	opts     Options
	logger   *slog.Logger
	hints    bool
	ns       string
	chTasks  string
	chCtl    string
	n        names
	q        queries
	exactLim int

	mu     sync.Mutex
	opened bool
	closed bool
	lis    *listener

	completer *batcher[completeOp, *queuestype.Record]
	settler   *batcher[settleOp, *queuestype.Record]
	toucher   *batcher[touchOp, bool]
}

// Compile-time check of the contract; each optional interface is checked
// next to its methods.
var _ driver.Backend = (*Backend)(nil)

// New returns a backend on the caller's pool. Nothing is queried yet: Open
// checks that the schema is migrated. The backend never closes pool (nor
// Options.HeartbeatPool). An invalid option returns an error matching
// queuestype.ErrConfig.
func New(pool *pgxpool.Pool, opts Options) (*Backend, error) {
	if pool == nil {
		return nil, &queuestype.ConfigError{Field: "postgres pool", Problem: "is nil"}
	}
	ns, err := driver.ResolveNamespace("postgres.Options.Namespace", opts.Namespace, maxNamespaceLen)
	if err != nil {
		return nil, err
	}
	opts.Namespace = ns
	if !prefixPattern.MatchString(opts.TablePrefix) || len(opts.TablePrefix) > 50 {
		return nil, &queuestype.ConfigError{Field: "postgres.Options.TablePrefix",
			Problem: fmt.Sprintf("%q must match %s and be at most 50 bytes", opts.TablePrefix, prefixPattern)}
	}
	if len(opts.Schema) > 63 {
		return nil, &queuestype.ConfigError{Field: "postgres.Options.Schema", Problem: "longer than 63 bytes"}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	exact := opts.ExactStatisticsLimit
	if exact == 0 {
		exact = DefaultExactStatisticsLimit
	}
	b := &Backend{
		pool:     pool,
		hbPool:   pool,
		opts:     opts,
		logger:   logger,
		hints:    opts.Wakeups == nil || *opts.Wakeups,
		ns:       opts.Namespace,
		chTasks:  opts.Namespace + "_tasks",
		chCtl:    opts.Namespace + "_worker_control",
		n:        newNames(opts.Schema, opts.TablePrefix),
		exactLim: exact,
	}
	if opts.HeartbeatPool != nil {
		b.hbPool = opts.HeartbeatPool
	}
	b.q = buildQueries(b.n)
	b.completer = newBatcher(2, 1000, b.flushComplete)
	b.settler = newBatcher(2, 500, b.flushSettle)
	b.toucher = newBatcher(1, 1000, b.flushTouch)
	return b, nil
}

// Connect creates a pool for url (a postgres:// URL or key=value DSN),
// checks that the server answers, and returns a backend that owns the pool
// (Close closes it). It does not open the backend: Open (called by
// queues.Service.Start) checks the schema, and Migrate applies it. With
// opts.HeartbeatConns > 0 and no HeartbeatPool, a second owned pool of that
// size carries heartbeats. The URL never appears in returned errors.
func Connect(ctx context.Context, url string, opts Options) (*Backend, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, &queuestype.ConfigError{Field: "postgres url", Problem: "cannot parse the connection string"}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	owned := []*pgxpool.Pool{pool}
	if opts.HeartbeatPool == nil && opts.HeartbeatConns > 0 {
		hcfg := cfg.Copy()
		hcfg.MaxConns = int32(opts.HeartbeatConns)
		hcfg.MinConns = 0
		hp, err := pgxpool.NewWithConfig(ctx, hcfg)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: connect heartbeat pool: %w", err)
		}
		opts.HeartbeatPool = hp
		owned = append(owned, hp)
	}
	b, err := New(pool, opts)
	if err != nil {
		for _, p := range owned {
			p.Close()
		}
		return nil, err
	}
	b.ownPools = owned
	return b, nil
}

// Name returns "postgres".
func (b *Backend) Name() string { return "postgres" }

// Pool returns the main pool.
func (b *Backend) Pool() *pgxpool.Pool { return b.pool }

// Namespace returns the namespace root the channel names derive from.
func (b *Backend) Namespace() string { return b.ns }

// Channels returns the wakeup and worker-control channel names
// (<ns>_tasks, <ns>_worker_control).
func (b *Backend) Channels() (tasks, workerControl string) { return b.chTasks, b.chCtl }

// TaskTable returns the schema-qualified, quoted name of the task table, for
// adopters' own queries.
func (b *Backend) TaskTable() string { return b.n.task }

// Capabilities reports LISTEN/NOTIFY wakeups and control hints (unless
// Options.Wakeups is false) and maintenance locks.
func (b *Backend) Capabilities() driver.Capabilities {
	c := driver.Capabilities{Maintenance: true}
	if b.hints {
		c.WakeupTransport = "postgres-notify"
		c.ControlTransport = "postgres-notify"
	}
	return c
}

// Open checks that the schema holds every embedded migration (it never
// migrates: run `queues migrate` or call Migrate). A missing or outdated
// schema returns an error matching ErrNotMigrated; a newer one an error
// matching ErrSchemaTooNew. It is idempotent. The listener connection is
// opened by the first Wakeups or WorkerControl subscription.
func (b *Backend) Open(ctx context.Context) error {
	return driver.OpenOnce(&b.mu, &b.opened, func() error { return b.open(ctx) })
}

// open checks the schema (Open holds b.mu).
func (b *Backend) open(ctx context.Context) error {
	if b.closed && len(b.ownPools) > 0 {
		return errors.New("postgres: backend is closed (its pool was closed by Close)")
	}
	applied, err := b.appliedVersions(ctx, b.pool)
	if err != nil {
		return err
	}
	ms, err := checkKnown(applied)
	if err != nil {
		return err
	}
	var missing []string
	for _, m := range ms {
		if !containsStr(applied, m.Version) {
			missing = append(missing, m.Version)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: schema %s lacks version(s) %v; run `queues migrate` (or call Backend.Migrate) first",
			ErrNotMigrated, b.n.schemaLabel(), missing)
	}
	b.closed = false
	return nil
}

// Vacuum runs VACUUM (ANALYZE) on the task table. A claim walks the claim
// index from its oldest entry, and every claimed record leaves a dead entry
// there until the table is vacuumed, so on a queue that has just worked down
// a large backlog each claim first steps over those entries (milliseconds
// per claim after 100,000 records). PostgreSQL's autovacuum removes them in
// the background; call Vacuum where it is off or lags. It takes no lock that
// blocks claims or writes, and must not run inside a transaction.
func (b *Backend) Vacuum(ctx context.Context) error {
	_, err := b.pool.Exec(ctx, `VACUUM (ANALYZE) `+b.n.task)
	return b.wrap("vacuum", err)
}

// Close stops the listener connection and closes every wakeup and
// worker-control subscription. It closes only pools that Connect created;
// pools passed to New stay open. Writes in flight finish first.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	lis := b.lis
	b.lis = nil
	b.opened = false
	b.closed = true
	b.mu.Unlock()
	if lis != nil {
		lis.stop()
	}
	b.completer.wait()
	b.settler.wait()
	b.toucher.wait()
	for _, p := range b.ownPools {
		p.Close()
	}
	return nil
}

// wrap annotates a database error; a missing relation means the schema is
// not migrated.
func (b *Backend) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") {
		return fmt.Errorf("postgres: %s: %w: %s (run `queues migrate` for schema %s)", op, ErrNotMigrated, pe.Message, b.n.schemaLabel())
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// exists reports whether a record with id exists.
func (b *Backend) exists(ctx context.Context, id uuid.UUID) (bool, error) {
	var ok bool
	err := b.pool.QueryRow(ctx, b.q.exists, id).Scan(&ok)
	return ok, b.wrap("read", err)
}

// guardFailed returns the error of a guarded single-record write that
// changed nothing: missing record or fence lost.
func (b *Backend) guardFailed(ctx context.Context, op string, id uuid.UUID) error {
	ok, err := b.exists(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return driver.MissingForWrite(op, id)
	}
	return driver.FenceLost(op, id)
}

// notify sends a wakeup hint (outside any transaction).
func (b *Backend) notify(ctx context.Context) {
	if !b.hints {
		return
	}
	_, _ = b.pool.Exec(context.WithoutCancel(ctx), b.q.notify, b.chTasks, wakePayload)
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// txRunner is what pgx pools, connections and transactions share.
type txRunner interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// pinnedStmt is one statement of a pinned batch; each is called for every
// result row.
type pinnedStmt struct {
	sql  string
	args []any
	each func(pgx.Rows) error
}

// queryPinned runs planSettings and sql pipelined in one round trip: the
// statements of a batch share one implicit transaction, so the
// transaction-local settings apply to sql alone and end with it. each is
// called for every result row.
func queryPinned(ctx context.Context, run txRunner, sql string, args []any, each func(pgx.Rows) error) error {
	return queryPinnedAll(ctx, run, pinnedStmt{sql: sql, args: args, each: each})
}

// queryPinnedAll is queryPinned for several statements, run in order in the
// same implicit transaction and round trip.
func queryPinnedAll(ctx context.Context, run txRunner, stmts ...pinnedStmt) error {
	batch := &pgx.Batch{}
	batch.Queue(planSettings)
	for _, st := range stmts {
		batch.Queue(st.sql, st.args...)
	}
	br := run.SendBatch(ctx, batch)
	_, err := br.Exec()
	for i := 0; err == nil && i < len(stmts); i++ {
		var rows pgx.Rows
		rows, err = br.Query()
		if err != nil {
			break
		}
		for rows.Next() {
			if err = stmts[i].each(rows); err != nil {
				break
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// recordsPinned is queryPinned collecting records.
func recordsPinned(ctx context.Context, run txRunner, sql string, args ...any) ([]*queuestype.Record, error) {
	var out []*queuestype.Record
	err := queryPinned(ctx, run, sql, args, appendRecords(&out))
	return out, err
}

// appendRecords returns a row callback that scans each row as a record
// and appends it to *dst.
func appendRecords(dst *[]*queuestype.Record) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		r, err := scanRecord(rows)
		if err == nil {
			*dst = append(*dst, r)
		}
		return err
	}
}
