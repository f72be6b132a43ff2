package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues/internal/hub"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" database/sql driver
)

// Defaults of Options.
const (
	// DefaultBusyTimeout is how long a connection waits for a lock held by
	// another connection before SQLite reports SQLITE_BUSY.
	DefaultBusyTimeout = 5 * time.Second
	// DefaultPollInterval is the cadence of the cross-process change poll.
	DefaultPollInterval = 100 * time.Millisecond
	// DefaultReaders is the size of the reader connection pool.
	DefaultReaders = 4
)

// busyRetries and busyBackoff bound the retries of a transient SQLITE_BUSY:
// up to 12 more attempts, waiting 20 ms × attempt between them.
const (
	busyRetries = 12
	busyBackoff = 20 * time.Millisecond
)

// Options configure a SQLite backend. The zero value is ready to use.
type Options struct {
	// Now is the backend clock; nil means time.Now. Every stored time is
	// converted to UTC and truncated to microseconds.
	Now func() time.Time
	// BusyTimeout is SQLite's busy_timeout for every connection: how long a
	// statement waits for a lock another process holds. 0 means 5s; negative
	// is rejected.
	BusyTimeout time.Duration
	// PollInterval is how often the writer connection checks
	// PRAGMA data_version for commits made by other processes (a change is a
	// wakeup hint). 0 means 100ms; negative turns cross-process hints off.
	PollInterval time.Duration
	// Readers is the size of the reader connection pool. 0 means 4.
	Readers int
	// SkipMigrate makes Open leave the schema alone; call Migrate (or the
	// CLI's migrate command) to apply the embedded migrations.
	SkipMigrate bool
	// Namespace is the configured namespace root ("" means "queues"). SQLite
	// has no named channels and SQL table names do not derive from the
	// namespace, so it only has to be valid (same rule as
	// queues.Config.Namespace).
	Namespace string
}

// Backend is the durable, embedded SQLite queue backend. Create it with Open;
// it is safe for concurrent use, and several processes may share one file.
//
// It implements driver.Backend and the optional interfaces driver.Waker,
// driver.WorkerController, driver.DueTimer, driver.Locker, driver.Inspector,
// driver.Migrator, driver.TxEnqueuer[*sql.Tx] and driver.WorkerRegistry.
type Backend struct {
	path  string
	opts  Options
	nowFn func() time.Time

	mu     sync.Mutex // guards the connection state below
	wdb    *sql.DB    // the writer's pool: exactly one connection
	rdb    *sql.DB    // reader pool
	cdb    *sql.DB    // the checkpointer's connection
	ckpt   *checkpointer
	w      *writer // the writer goroutine; nil when closed
	opened bool    // Open succeeded (and Close was not called since)

	rmu    sync.Mutex
	rstmts map[string]*sql.Stmt // prepared statements of the reader pool

	stats struct{ groups, writes, busy atomic.Int64 }

	wakes    hub.Hub // wakeup hints, key ""
	controls hub.Hub // worker-control hints, keyed by worker ID
}

// Compile-time check of the contract; each optional interface is checked
// next to its methods.
var _ driver.Backend = (*Backend)(nil)

// errNotOpen is returned by calls made before Open or after Close.
var errNotOpen = errors.New("sqlite: backend is not open (call Open)")

// Open validates path and opts and returns a backend for the SQLite file at
// path. Nothing is opened yet: Backend.Open creates the file if needed,
// connects, and applies the embedded migrations unless opts.SkipMigrate.
//
// path is a plain file path (created on Open; its directory must exist). An
// empty path, an in-memory database (":memory:", "file::memory:"), a URI with
// query options, a directory, a missing parent directory or an invalid
// option returns an error matching queuestype.ErrConfig.
func Open(path string, opts Options) (*Backend, error) {
	if err := validatePath(path); err != nil {
		return nil, err
	}
	if opts.BusyTimeout < 0 {
		return nil, &queuestype.ConfigError{Field: "sqlite.Options.BusyTimeout", Problem: fmt.Sprintf("must not be negative, got %s", opts.BusyTimeout)}
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Readers < 0 {
		return nil, &queuestype.ConfigError{Field: "sqlite.Options.Readers", Problem: fmt.Sprintf("must not be negative, got %d", opts.Readers)}
	}
	if opts.Readers == 0 {
		opts.Readers = DefaultReaders
	}
	ns, err := driver.ResolveNamespace("sqlite.Options.Namespace", opts.Namespace, 0)
	if err != nil {
		return nil, err
	}
	opts.Namespace = ns
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Backend{
		path:  path,
		opts:  opts,
		nowFn: now,
	}, nil
}

func validatePath(path string) error {
	bad := func(problem string) error {
		return &queuestype.ConfigError{Field: "sqlite path", Problem: problem}
	}
	p := strings.TrimSpace(path)
	switch {
	case p == "":
		return bad("empty; give a file path such as queues.db")
	case p == ":memory:" || strings.HasPrefix(p, "file::memory:") || strings.Contains(p, "mode=memory"):
		return bad("an in-memory SQLite database is private to one connection; use backend/memory instead")
	case strings.HasPrefix(p, "file:"):
		return bad(fmt.Sprintf("%q is a URI; give a plain file path", path))
	case strings.ContainsRune(p, '?'):
		return bad(fmt.Sprintf("%q contains '?'; query options are not accepted (the backend sets its own pragmas)", path))
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return bad(fmt.Sprintf("%q is a directory", path))
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return bad(fmt.Sprintf("directory %q of %q does not exist", dir, path))
	}
	return nil
}

// Name returns "sqlite".
func (b *Backend) Name() string { return "sqlite" }

// Path returns the database file path.
func (b *Backend) Path() string { return b.path }

// Capabilities reports SQLite change-poll wakeups, in-process worker-control
// hints, maintenance locks, and that records are shared by every process
// that opens the file.
func (b *Backend) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		WakeupTransport:  "sqlite-poll",
		ControlTransport: "memory",
		Maintenance:      true,
	}
}

// dsn builds the driver DSN: the pragmas every connection runs first.
func (b *Backend) dsn() string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", b.opts.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "temp_store(MEMORY)")
	// Checkpoints run on the checkpointer's connection, never inside a COMMIT.
	q.Add("_pragma", "wal_autocheckpoint(0)")
	// After a WAL restart, truncate a WAL file that grew past 64 MiB.
	q.Add("_pragma", "journal_size_limit(67108864)")
	return b.path + "?" + q.Encode()
}

// connect opens the connections (writer, reader pool, checkpointer) and
// starts the writer and checkpointer goroutines. It is idempotent. Call it
// with b.mu held.
func (b *Backend) connect(ctx context.Context) error {
	if b.w != nil {
		return nil
	}
	open := func(conns int) (*sql.DB, error) {
		db, err := sql.Open("sqlite", b.dsn())
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", b.path, err)
		}
		db.SetMaxOpenConns(conns)
		db.SetMaxIdleConns(conns)
		return db, nil
	}
	wdb, err := open(1)
	if err != nil {
		return err
	}
	rdb, err := open(b.opts.Readers)
	if err != nil {
		_ = wdb.Close()
		return err
	}
	rdb.SetConnMaxIdleTime(time.Minute)
	cdb, err := open(1)
	if err != nil {
		_ = wdb.Close()
		_ = rdb.Close()
		return err
	}
	ckpt := startCheckpointer(cdb)
	w, err := startWriter(ctx, b, wdb, ckpt)
	if err != nil {
		ckpt.stop()
		_ = cdb.Close()
		_ = rdb.Close()
		_ = wdb.Close()
		return fmt.Errorf("sqlite: open %s: %w", b.path, err)
	}
	b.wdb, b.rdb, b.cdb, b.w, b.ckpt = wdb, rdb, cdb, w, ckpt
	return nil
}

// Open creates the database file if needed, connects (one writer connection
// in WAL mode and a reader pool), applies the embedded migrations unless
// Options.SkipMigrate, and starts the change poll. It refuses a file whose
// schema was migrated by a newer version of this package. It is idempotent;
// after Close it connects again.
func (b *Backend) Open(ctx context.Context) error {
	return driver.OpenOnce(&b.mu, &b.opened, func() error { return b.open(ctx) })
}

// open connects, migrates and starts the change poll (Open holds b.mu).
func (b *Backend) open(ctx context.Context) error {
	if err := b.connect(ctx); err != nil {
		return err
	}
	fail := func(err error) error {
		b.disconnect()
		return err
	}
	if b.opts.SkipMigrate {
		// Still refuse a schema this build does not know.
		applied, err := b.w.appliedVersions(ctx)
		if err != nil {
			return fail(err)
		}
		if _, err := checkKnown(applied); err != nil {
			return fail(err)
		}
	} else if _, err := b.w.migrate(ctx, false); err != nil {
		return fail(err)
	}
	b.w.enablePoll()
	return nil
}

// disconnect stops the writer and closes both pools. Call it with b.mu held.
func (b *Backend) disconnect() {
	if b.w != nil {
		b.w.stop()
		b.w = nil
	}
	if b.ckpt != nil {
		b.ckpt.stop()
		b.ckpt = nil
	}
	if b.cdb != nil {
		_ = b.cdb.Close()
		b.cdb = nil
	}
	b.closeReadStmts()
	if b.rdb != nil {
		_ = b.rdb.Close()
		b.rdb = nil
	}
	if b.wdb != nil {
		_ = b.wdb.Close()
		b.wdb = nil
	}
	b.opened = false
}

// Close stops the writer and the change poll, closes every wakeup and
// worker-control subscription and closes the connections. Writes still
// queued fail. The records stay in the file; Open connects again.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	b.disconnect()
	b.mu.Unlock()

	b.wakes.Close()
	b.controls.Close()
	return nil
}

// DB returns the reader pool: a *sql.DB on the same file for the caller's own
// queries (it is nil before Open). Writes through it compete with the
// backend's writer connection for the file's write lock (busy_timeout
// applies); the backend's own writes never go through it.
func (b *Backend) DB() *sql.DB {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rdb
}

// Stats are counters of the writer since the backend was created.
type Stats struct {
	// Groups is the number of transactions the writer ran: each takes every
	// write request queued at the time (group commit).
	Groups int64
	// Writes is the number of write requests run in them; Writes/Groups is
	// the mean group size.
	Writes int64
	// Busy is the time the writer spent running groups.
	Busy time.Duration
}

// Stats returns the writer's counters.
func (b *Backend) Stats() Stats {
	return Stats{Groups: b.stats.groups.Load(), Writes: b.stats.writes.Load(), Busy: time.Duration(b.stats.busy.Load())}
}

// handles returns the writer and the reader pool, or errNotOpen.
func (b *Backend) handles() (*writer, *sql.DB, error) {
	b.mu.Lock()
	w, r, ok := b.w, b.rdb, b.opened
	b.mu.Unlock()
	if !ok || w == nil {
		return nil, nil, errNotOpen
	}
	return w, r, nil
}

// now reads the backend clock in UTC, truncated to the stored precision.
func (b *Backend) now() time.Time { return b.nowFn().UTC().Truncate(time.Microsecond) }
