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
// Every error matches queuestype.ErrConfig (queuestype.ErrUnsupported for a
// recognised scheme whose backend is not built in), and no error repeats
// the full DSN, which may hold credentials.
package dsn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/queuesgo/queues/backend/memory"
	"github.com/queuesgo/queues/backend/postgres"
	"github.com/queuesgo/queues/backend/redis"
	"github.com/queuesgo/queues/backend/sqlite"
)

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
		return DSN{}, &Error{Problem: "empty; use sqlite:PATH or memory:"}
	}
	if strings.EqualFold(s, SchemeMemory) {
		return DSN{Scheme: SchemeMemory, Raw: raw}, nil
	}
	i := strings.IndexByte(s, ':')
	if i <= 0 {
		return DSN{}, &Error{Problem: "missing scheme; use sqlite:PATH or memory:"}
	}
	scheme := strings.ToLower(s[:i])
	rest := s[i+1:]
	if !validScheme(scheme) {
		return DSN{}, &Error{Problem: "malformed scheme; use sqlite:PATH or memory:"}
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
	return DSN{}, &Error{Scheme: scheme, Problem: "unknown scheme; supported: sqlite, memory, postgres, redis"}
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

// Options tune the backend Open returns. The zero value is the default.
type Options struct {
	// SkipMigrate leaves the schema alone when the backend connects (SQLite
	// applies its embedded migrations on Open otherwise); apply them with
	// driver.Migrator.
	SkipMigrate bool
	// Namespace is the configured namespace, for backends that derive names from it.
	Namespace string
}

// Open parses s and returns the backend it names, not yet connected:
// queues.Service.Start (or the backend's own Open) connects it.
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

// Open returns the backend d names, not yet connected.
func (d DSN) Open(ctx context.Context) (driver.Backend, error) {
	return d.OpenWith(ctx, Options{})
}

// OpenWith returns the backend d names, not yet connected, tuned by o.
func (d DSN) OpenWith(ctx context.Context, o Options) (driver.Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch d.Scheme {
	case SchemeMemory:
		return memory.New(memory.Options{}), nil
	case SchemeSQLite:
		b, err := sqlite.Open(d.Path, sqlite.Options{SkipMigrate: o.SkipMigrate, Namespace: o.Namespace})
		if err != nil {
			return nil, fmt.Errorf("sqlite backend: %w", err)
		}
		return b, nil
	case SchemePostgres:
		b, err := postgres.Connect(ctx, d.Raw, postgres.Options{Namespace: o.Namespace})
		if err != nil {
			return nil, fmt.Errorf("postgres backend: %w", redactErr(err, d.Raw))
		}
		return b, nil
	case SchemeRedis:
		b, err := redis.Connect(ctx, d.Raw, redis.Options{Namespace: o.Namespace})
		if err != nil {
			return nil, fmt.Errorf("redis backend: %w", redactErr(err, d.Raw))
		}
		return b, nil
	}
	return nil, &Error{Scheme: d.Scheme, Problem: "unknown scheme; supported: sqlite, memory, postgres, redis"}
}

// ProcessLocal reports whether records of this DSN are invisible to other processes.
func (d DSN) ProcessLocal() bool { return d.Scheme == SchemeMemory }

// IsDSNError reports whether err is a DSN problem (as opposed to a failure of the backend itself).
func IsDSNError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
