package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	goredis "github.com/redis/go-redis/v9"
)

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "queues"

// LayoutVersion is the key-layout version written to <p>:version. Layout
// "1" kept a record's task policy and interruption counter in its metadata;
// layout "2" keeps them in fields of their own; layout "3" marks a record
// reserved for external dispatch by its dispatch_until field, where earlier
// layouts read the reservation from its execution_ref (see Migrate).
const LayoutVersion = "3"

// Options configure a Redis backend. The zero value is ready to use.
type Options struct {
	// Prefix names the key space: every key is "{<Prefix>}:…", so all keys
	// of one prefix share one hash tag and live in one cluster slot. Empty
	// means DefaultPrefix ("queues"). It must not contain '{' or '}'.
	Prefix string
	// Namespace roots the pub/sub channel names: wakeups on
	// "<ns>:worker_wakeups", control hints on "<ns>:worker_control". Empty
	// means queuestype.DefaultNamespace ("queues").
	Namespace string
	// Wakeups enables wakeup hints on enqueue and requeue; nil means on.
	Wakeups *bool
}

// Backend is the Redis / Valkey queue backend. Create it with New or
// Connect; it is safe for concurrent use. It implements driver.Backend and
// the optional interfaces driver.Waker, driver.WorkerController,
// driver.DueTimer, driver.CompletionWaiter, driver.Locker, driver.Inspector,
// driver.Migrator and driver.WorkerRegistry.
type Backend struct {
	client goredis.UniversalClient
	owned  bool

	prefix    string // "{name}"
	namespace string
	wakeCh    string // "" when wakeups are off
	ctlCh     string
	doneCh    string
	keys      []string // KEYS for every script call (routes to the prefix's slot)

	mu        sync.Mutex
	opened    bool
	closed    bool
	transport string

	hub       *hub
	batch     *batcher
	completes *completer
}

// Compile-time check of the contract; each optional interface is checked
// next to its methods.
var _ driver.Backend = (*Backend)(nil)

// New returns a backend on client (a *redis.Client, *redis.ClusterClient or
// any other go-redis UniversalClient). The client stays the caller's: Close
// never closes it. Call Open (queues.Service.Start does) before use.
func New(client goredis.UniversalClient, opts Options) (*Backend, error) {
	if client == nil {
		return nil, &queuestype.ConfigError{Field: "redis client", Problem: "is nil"}
	}
	name := opts.Prefix
	if name == "" {
		name = DefaultPrefix
	}
	if strings.ContainsAny(name, "{}") {
		return nil, &queuestype.ConfigError{Field: "redis.Options.Prefix", Problem: fmt.Sprintf("%q must not contain '{' or '}'", name)}
	}
	ns := opts.Namespace
	if ns == "" {
		ns = queuestype.DefaultNamespace
	}
	b := &Backend{
		client:    client,
		prefix:    "{" + name + "}",
		namespace: ns,
		ctlCh:     ns + ":worker_control",
		transport: "redis-pubsub",
	}
	if opts.Wakeups == nil || *opts.Wakeups {
		b.wakeCh = ns + ":worker_wakeups"
	}
	b.doneCh = b.prefix + ":completions"
	b.keys = []string{b.prefix + ":parts"}
	b.hub = newHub(b)
	b.batch = newBatcher(b)
	b.completes = newCompleter(b)
	return b, nil
}

// Connect creates a client for a redis://, rediss://, valkey:// or
// valkeys:// URL (go-redis URL syntax: user, password, /db, and query
// options such as dial_timeout or protocol) and returns a backend that owns
// it: Close closes the client. It does not call Open.
func Connect(ctx context.Context, rawURL string, opts Options) (*Backend, error) {
	u := strings.TrimSpace(rawURL)
	switch {
	case strings.HasPrefix(u, "valkey://"):
		u = "redis://" + strings.TrimPrefix(u, "valkey://")
	case strings.HasPrefix(u, "valkeys://"):
		u = "rediss://" + strings.TrimPrefix(u, "valkeys://")
	}
	o, err := goredis.ParseURL(u)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // never repeat the URL: it may hold credentials
		}
		return nil, &queuestype.ConfigError{Field: "redis url", Problem: err.Error()}
	}
	client := goredis.NewClient(o)
	b, err := New(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

// Client returns the go-redis client the backend uses.
func (b *Backend) Client() goredis.UniversalClient { return b.client }

// Prefix returns the key prefix including its hash-tag braces, e.g. "{queues}".
func (b *Backend) Prefix() string { return b.prefix }

// Name returns "redis" (also on Valkey; see Capabilities for the transport).
func (b *Backend) Name() string { return "redis" }

// Open checks the connection, detects Valkey, loads the scripts and writes
// or checks the key-layout version: an empty prefix gets the current
// layout, and a prefix of layout 1 is migrated first, as Migrate does. It
// is idempotent, and reopens a closed backend whose client is still open.
func (b *Backend) Open(ctx context.Context) error {
	return driver.OpenOnce(&b.mu, &b.opened, func() error { return b.open(ctx) })
}

// open pings, loads the scripts, migrates the key layout and reopens the
// hint subscription (Open holds b.mu).
func (b *Backend) open(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	if info, err := b.client.Info(ctx, "server").Result(); err == nil && isValkey(info) {
		b.transport = "valkey-pubsub"
	}
	for _, s := range allScripts {
		if err := s.Load(ctx, b.client).Err(); err != nil {
			return fmt.Errorf("redis: load scripts: %w", err)
		}
	}
	if _, err := b.migrate(ctx, false); err != nil {
		return err
	}
	b.hub.reopen()
	b.closed = false
	return nil
}

// isValkey reports whether an INFO server reply comes from Valkey.
func isValkey(info string) bool {
	return strings.Contains(info, "valkey_version:") || strings.Contains(info, "server_name:valkey")
}

// Close stops the pub/sub subscription (closing every hint channel). It closes the client
// only when Connect created it. It is idempotent.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed, b.opened = true, false
	b.mu.Unlock()
	b.hub.close()
	if b.owned {
		return b.client.Close()
	}
	return nil
}

// Capabilities reports pub/sub wakeups, control hints and completion
// announcements ("redis-pubsub", or "valkey-pubsub" on Valkey), and
// maintenance locks.
func (b *Backend) Capabilities() driver.Capabilities {
	b.mu.Lock()
	transport := b.transport
	b.mu.Unlock()
	c := driver.Capabilities{
		ControlTransport: transport,
		CompletionEvents: true,
		Maintenance:      true,
	}
	if b.wakeCh != "" {
		c.WakeupTransport = transport
	}
	return c
}

// run calls a script with the standard header arguments.
func (b *Backend) run(ctx context.Context, s *goredis.Script, args ...any) *goredis.Cmd {
	full := make([]any, 0, 3+len(args))
	full = append(full, b.prefix, b.wakeCh, b.doneCh)
	full = append(full, args...)
	return s.Run(ctx, b.client, b.keys, full...)
}

// ServerCPU reports the CPU time the Redis server has used since it started
// (INFO cpu: used_cpu_user + used_cpu_sys). `queues bench` samples it around
// its WORK phase to print server CPU per job; on a cluster client it is the
// figure of whichever node answers INFO.
func (b *Backend) ServerCPU(ctx context.Context) (time.Duration, error) {
	info, err := b.client.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redis: info cpu: %w", err)
	}
	var secs float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("redis: info cpu %s: %w", k, err)
			}
			secs += f
		}
	}
	return time.Duration(secs * float64(time.Second)), nil
}
