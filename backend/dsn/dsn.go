// Package dsn opens a queue backend from a URL-like data source name, the
// form the CLI takes in --backend / --dsn (env QUEUES_BACKEND / QUEUES_DSN):
//
//	memory:                in-process backend (tests, benchmarks, single process)
//	memory://, memory      the same
//	sqlite:queues.db       SQLite file, relative to the working directory
//	sqlite:/var/lib/q.db   SQLite file, absolute path
//	sqlite:///var/lib/q.db the same, URL form
//	sqlite://queues.db     relative path, URL form
//	postgres://…, postgresql://…   PostgreSQL (package backend/postgres); the
//	                       URL is pgx's, so ?search_path=… picks the schema
//	redis://…, rediss://…, valkey://…  Redis or Valkey (package backend/redis)
//
// Every parse error matches queuestype.ErrConfig (queuestype.ErrUnsupported
// for a recognised scheme whose backend is not built in), and no error
// repeats the full DSN, which may hold credentials. Opening a PostgreSQL or
// Redis DSN waits at most Options.ConnectTimeout (DefaultConnectTimeout) for
// the server, and a failure names the likely cause (*ConnectError).
package dsn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/backend/postgres"
	"github.com/queuesgo/queues/backend/redis"
	"github.com/queuesgo/queues/backend/sqlite"
)

// Forms lists every DSN form Parse accepts, for help texts and errors: the
// one place that names them, so no message forgets a backend.
const Forms = "sqlite:PATH, postgres:// (postgresql://), redis:// (rediss://, valkey://) or memory:"

// Scheme names.
const (
	SchemeMemory   = "memory"
	SchemeSQLite   = "sqlite"
	SchemePostgres = "postgres"
	SchemeRedis    = "redis"
)

// DSN is a parsed data source name.
type DSN struct {
	// Scheme is the canonical scheme: memory, sqlite, postgres or redis.
	Scheme string
	// Path is the SQLite file path (sqlite only).
	Path string
	// Raw is the string that was parsed. It may hold credentials: never print it; use Redacted.
	Raw string
}

// Error is a DSN that cannot be used. Its text names the scheme and the
// problem, never the full DSN. It matches queuestype.ErrConfig, or
// queuestype.ErrUnsupported for a recognised scheme whose backend is not built.
type Error struct {
	Scheme  string
	Problem string
	// Unsupported marks a known scheme whose backend is not available.
	Unsupported bool
}

// Error names the scheme and the problem.
func (e *Error) Error() string {
	if e.Scheme == "" {
		return "backend dsn: " + e.Problem
	}
	return fmt.Sprintf("backend dsn (scheme %q): %s", e.Scheme, e.Problem)
}

// Is matches queuestype.ErrConfig, and queuestype.ErrUnsupported for unsupported schemes.
func (e *Error) Is(target error) bool {
	return target == queuestype.ErrConfig || (e.Unsupported && target == queuestype.ErrUnsupported)
}

// Parse parses s without opening anything.
func Parse(s string) (DSN, error) {
	raw := s
	s = strings.TrimSpace(s)
	if s == "" {
		return DSN{}, &Error{Problem: "empty; use " + Forms}
	}
	if strings.EqualFold(s, SchemeMemory) {
		return DSN{Scheme: SchemeMemory, Raw: raw}, nil
	}
	i := strings.IndexByte(s, ':')
	if i <= 0 {
		return DSN{}, &Error{Problem: "missing scheme; use " + Forms}
	}
	scheme := strings.ToLower(s[:i])
	rest := s[i+1:]
	if !validScheme(scheme) {
		return DSN{}, &Error{Problem: "malformed scheme; use " + Forms}
	}
	d := DSN{Raw: raw}
	switch scheme {
	case "memory":
		d.Scheme = SchemeMemory
		if rest != "" && rest != "//" && rest != "///" {
			return DSN{}, &Error{Scheme: SchemeMemory, Problem: "takes no path or options; use memory:"}
		}
		return d, nil
	case "sqlite", "sqlite3":
		d.Scheme = SchemeSQLite
		p, err := sqlitePath(rest)
		if err != nil {
			return DSN{}, err
		}
		d.Path = p
		return d, nil
	case "postgres", "postgresql":
		d.Scheme = SchemePostgres
		if _, err := url.Parse(s); err != nil {
			return DSN{}, &Error{Scheme: d.Scheme, Problem: "malformed URL"}
		}
		return d, nil
	case "redis", "rediss", "valkey", "valkeys":
		d.Scheme = SchemeRedis
		if _, err := url.Parse(s); err != nil {
			return DSN{}, &Error{Scheme: d.Scheme, Problem: "malformed URL"}
		}
		return d, nil
	}
	return DSN{}, &Error{Scheme: scheme, Problem: "unknown scheme; use " + Forms}
}

// redactErr keeps a driver error's chain but never lets its text carry the
// DSN's password.
func redactErr(err error, raw string) error {
	if p := passwordOf(raw); p != "" && strings.Contains(err.Error(), p) {
		return &redactedError{msg: strings.ReplaceAll(err.Error(), p, "xxxxx"), err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func passwordOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

func validScheme(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// sqlitePath extracts the file path from the part after "sqlite:".
func sqlitePath(rest string) (string, error) {
	p := rest
	if q := strings.IndexByte(p, '?'); q >= 0 {
		if p[q+1:] != "" {
			return "", &Error{Scheme: SchemeSQLite, Problem: "query options are not supported; give only a file path"}
		}
		p = p[:q]
	}
	if strings.HasPrefix(p, "//") {
		// URL form: sqlite:///abs/path, sqlite://relative/path, sqlite://localhost/abs.
		p = strings.TrimPrefix(p, "//")
		if strings.HasPrefix(p, "localhost/") {
			p = strings.TrimPrefix(p, "localhost")
		}
		if u, err := url.PathUnescape(p); err == nil {
			p = u
		} else {
			return "", &Error{Scheme: SchemeSQLite, Problem: "malformed URL escape in path"}
		}
	}
	switch {
	case p == "":
		return "", &Error{Scheme: SchemeSQLite, Problem: "missing file path; use sqlite:PATH, e.g. sqlite:queues.db"}
	case p == ":memory:" || strings.HasPrefix(p, "file::memory:") || strings.Contains(p, "mode=memory"):
		return "", &Error{Scheme: SchemeSQLite, Problem: "an in-memory SQLite database is private to one connection and cannot hold a queue; use memory: or a file path"}
	case strings.ContainsRune(p, 0):
		return "", &Error{Scheme: SchemeSQLite, Problem: "path contains a NUL byte"}
	}
	return p, nil
}

// Redacted returns the DSN safe to print: the password of a URL with user
// information is replaced by "xxxxx", and an unparseable DSN prints only its scheme.
func (d DSN) Redacted() string { return Redact(d.Raw) }

// Redact returns s with any URL password replaced by "xxxxx". A string that
// does not parse as a URL but looks like one with credentials is cut to its scheme.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.IndexByte(s, ':'); i > 0 && strings.Contains(s, "@") {
			return s[:i] + "://[redacted]"
		}
		return s
	}
	if u.User != nil {
		return u.Redacted()
	}
	return s
}

// DefaultConnectTimeout bounds how long OpenWith waits for a PostgreSQL or
// Redis server to answer when Options.ConnectTimeout is 0: long enough for a
// server across a slow network, short enough that a wrong port or a TLS
// mismatch fails while the user is still looking at the terminal.
const DefaultConnectTimeout = 5 * time.Second

// Options tune the backend Open returns. The zero value is the default.
type Options struct {
	// SkipMigrate leaves the schema alone when the backend connects (SQLite
	// applies its embedded migrations on Open otherwise); apply them with
	// driver.Migrator.
	SkipMigrate bool
	// Namespace is the configured namespace, for backends that derive names from it.
	Namespace string
	// MustExist refuses a SQLite file that does not exist yet with a
	// *NoDatabaseError instead of creating an empty database: set it for
	// commands that only read or change existing records, where a missing
	// file is a mistyped path, not a new queue.
	MustExist bool
	// ConnectTimeout bounds the first connection to a PostgreSQL or Redis
	// server, TLS handshake included: 0 means DefaultConnectTimeout,
	// negative means only ctx bounds it. A URL that sets its own
	// connect_timeout (PostgreSQL) or dial_timeout (Redis) keeps it per
	// dial attempt.
	ConnectTimeout time.Duration
}

// NoDatabaseError is the error of a missing SQLite file under
// Options.MustExist. It matches queuestype.ErrConfig.
type NoDatabaseError struct {
	Path string
}

// Error names the path and the two likely fixes.
func (e *NoDatabaseError) Error() string {
	return fmt.Sprintf("no database at %s; run `queues migrate` or check the path", e.Path)
}

// Is matches queuestype.ErrConfig.
func (e *NoDatabaseError) Is(target error) bool { return target == queuestype.ErrConfig }

// ConnectError is a server backend that did not answer: Hint names the
// likely cause (a TLS mismatch, a server that is down or unreachable) and
// Addr the host:port, never the credentials.
type ConnectError struct {
	Scheme string
	Addr   string
	Hint   string
	Err    error
}

// Error leads with the hint, the part a user acts on.
func (e *ConnectError) Error() string {
	msg := e.Scheme + " backend"
	if e.Addr != "" {
		msg += " at " + e.Addr
	}
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg + ": " + e.Err.Error()
}

// Unwrap returns the driver's error.
func (e *ConnectError) Unwrap() error { return e.Err }

// Open parses s and returns the backend it names. PostgreSQL and Redis
// backends have answered a ping (bounded by DefaultConnectTimeout); no
// backend is opened yet: queues.Service.Start (or the backend's own Open)
// opens it.
func Open(ctx context.Context, s string) (driver.Backend, error) {
	return OpenWith(ctx, s, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, s string, o Options) (driver.Backend, error) {
	d, err := Parse(s)
	if err != nil {
		return nil, err
	}
	return d.OpenWith(ctx, o)
}

// Open returns the backend d names (see the package function Open).
func (d DSN) Open(ctx context.Context) (driver.Backend, error) {
	return d.OpenWith(ctx, Options{})
}

// OpenWith returns the backend d names, tuned by o (see the package function Open).
func (d DSN) OpenWith(ctx context.Context, o Options) (driver.Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := o.ConnectTimeout
	if timeout == 0 {
		timeout = DefaultConnectTimeout
	}
	switch d.Scheme {
	case SchemeMemory:
		return memory.New(memory.Options{}), nil
	case SchemeSQLite:
		if o.MustExist {
			if _, err := os.Stat(d.Path); errors.Is(err, fs.ErrNotExist) {
				return nil, &NoDatabaseError{Path: d.Path}
			}
		}
		b, err := sqlite.Open(d.Path, sqlite.Options{SkipMigrate: o.SkipMigrate, Namespace: o.Namespace})
		if err != nil {
			return nil, fmt.Errorf("sqlite backend: %w", err)
		}
		return b, nil
	case SchemePostgres:
		return d.openPostgres(ctx, o, timeout)
	case SchemeRedis:
		return d.openRedis(ctx, o, timeout)
	}
	return nil, &Error{Scheme: d.Scheme, Problem: "unknown scheme; use " + Forms}
}

// openPostgres connects and pings within timeout.
func (d DSN) openPostgres(ctx context.Context, o Options, timeout time.Duration) (driver.Backend, error) {
	raw := d.Raw
	if timeout > 0 {
		// pgx's connect_timeout bounds each dial (and its TLS handshake);
		// the context bounds the whole connect.
		raw = withQueryDefault(raw, "connect_timeout", strconv.Itoa(int((timeout+time.Second-1)/time.Second)))
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	b, err := postgres.Connect(ctx, raw, postgres.Options{Namespace: o.Namespace})
	if err != nil {
		err = redactErr(err, d.Raw)
		if timeout > 0 && ctx.Err() != nil {
			return nil, &ConnectError{Scheme: SchemePostgres, Addr: hostOf(d.Raw, "5432"),
				Hint: fmt.Sprintf("no answer within %s: is the server up and the host and port right?", timeout), Err: err}
		}
		return nil, fmt.Errorf("postgres backend: %w", err)
	}
	return b, nil
}

// openRedis creates the client and pings it within timeout, so a wrong
// address or a TLS mismatch fails here rather than after go-redis's own
// retries (four dials of five seconds each).
func (d DSN) openRedis(ctx context.Context, o Options, timeout time.Duration) (driver.Backend, error) {
	raw := d.Raw
	if timeout > 0 {
		raw = withQueryDefault(raw, "dial_timeout", timeout.String())
	}
	b, err := redis.Connect(ctx, raw, redis.Options{Namespace: o.Namespace})
	if err != nil {
		return nil, fmt.Errorf("redis backend: %w", redactErr(err, d.Raw))
	}
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		pctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	errc := make(chan error, 1)
	// go-redis does not cut a dial in progress when the context ends, so
	// the ping runs aside and the deadline is kept here.
	go func() { errc <- b.Client().Ping(pctx).Err() }()
	select {
	case err = <-errc:
	case <-pctx.Done():
		err = fmt.Errorf("redis: ping: %w", pctx.Err())
	}
	if err == nil {
		return b, nil
	}
	_ = b.Close(context.WithoutCancel(ctx))
	err = redactErr(err, d.Raw)
	addr := hostOf(d.Raw, "6379")
	if hint := redisHint(d.Raw, addr, err, timeout); hint != "" {
		return nil, &ConnectError{Scheme: SchemeRedis, Addr: addr, Hint: hint, Err: err}
	}
	return nil, fmt.Errorf("redis backend: %w", err)
}

// redisHint names the likely cause of a failed first ping. A TLS URL whose
// handshake failed or never finished while the port accepts plain TCP is
// almost always rediss:// pointed at a server that does not speak TLS.
func redisHint(raw, addr string, err error, timeout time.Duration) string {
	var rhe tls.RecordHeaderError
	timedOut := errors.Is(err, context.DeadlineExceeded) || isTimeout(err)
	tlsURL := strings.HasPrefix(strings.ToLower(strings.TrimSpace(raw)), "rediss:") || strings.HasPrefix(strings.ToLower(strings.TrimSpace(raw)), "valkeys:")
	if tlsURL && (timedOut || errors.As(err, &rhe) || strings.Contains(err.Error(), "tls:")) && tcpOpen(addr) {
		return "TLS handshake failed: is the server speaking TLS? (rediss:// to a plain port)"
	}
	if timedOut {
		return fmt.Sprintf("no answer within %s: is the server up and the host and port right?", timeout)
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tcpOpen reports whether addr accepts a plain TCP connection within a second.
func tcpOpen(addr string) bool {
	if addr == "" {
		return false
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// hostOf returns the host:port of a URL DSN (def when the URL has no
// port), or "" when raw is not a URL with a host.
func hostOf(raw, def string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = def
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// withQueryDefault sets the query option key of a URL DSN to v unless the
// DSN sets it. A DSN that does not parse as a URL is returned unchanged.
func withQueryDefault(raw, key, v string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return raw
	}
	q := u.Query()
	if q.Has(key) {
		return raw
	}
	q.Set(key, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// ProcessLocal reports whether records of this DSN are invisible to other processes.
func (d DSN) ProcessLocal() bool { return d.Scheme == SchemeMemory }

// IsDSNError reports whether err is a DSN problem (as opposed to a failure of the backend itself).
func IsDSNError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
