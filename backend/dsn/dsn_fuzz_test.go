package dsn_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
)

// passwordMarker stands in for a password; it appears nowhere else.
const passwordMarker = "Pw7Marker7Qz"

// FuzzParse checks the DSN parser on any input: it never panics; every
// error matches ErrConfig; a parsed DSN has a known scheme, keeps the raw
// string and, for SQLite, a usable path that parses back to itself; and
// neither an error nor Redact repeats the password of a URL.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "memory", "memory:", "MEMORY://", "memory:foo",
		"sqlite:queues.db", "sqlite:///var/lib/q.db", "sqlite://localhost/var/q.db", "sqlite3:data/q.db",
		"sqlite:///tmp/with%20space.db", "sqlite://a%zz", " sqlite:q.db ", "sqlite::memory:", "sqlite:q.db?_journal=wal",
		"sqlite:q.db?", "sqlite:file::memory:", "sqlite:a\x00b", "sqlite://%00",
		"postgres://u:p@localhost/db", "postgresql://user:s3cr3t@db.example:5432/app?sslmode=disable&search_path=q",
		"postgres://u:p@[::1", "postgres://u:p%zz@h/db", "postgres://u:se@cr@t@h/db",
		"redis://:hunter2@localhost:6379/0", "rediss://u:pw@h", "valkey://localhost", "valkeys://a:b@c/1",
		"mysql://root:hunter22@db/app", "1abc:x", ":nothing", "queues.db", "ftp://u:pw@x", "a+b.c-d:x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := dsn.Parse(s)
		_ = dsn.Redact(s)
		if err != nil {
			if !errors.Is(err, queues.ErrConfig) || !dsn.IsDSNError(err) {
				t.Fatalf("Parse(%q): %v, want a *dsn.Error matching ErrConfig", s, err)
			}
		} else {
			checkParsed(t, s, d)
		}
		// A URL with a password: the same DSN with the marker as password
		// must keep the marker out of the error and of Redact.
		u, perr := url.Parse(s)
		if perr != nil || u.User == nil {
			return
		}
		if _, has := u.User.Password(); !has {
			return
		}
		u.User = url.UserPassword(u.User.Username(), passwordMarker)
		marked := u.String()
		if _, err := dsn.Parse(marked); err != nil && strings.Contains(err.Error(), passwordMarker) {
			t.Fatalf("Parse(%q) error repeats the password: %v", marked, err)
		}
		if r := dsn.Redact(marked); strings.Contains(r, passwordMarker) {
			t.Fatalf("Redact(%q) = %q keeps the password", marked, r)
		}
	})
}

func checkParsed(t *testing.T, s string, d dsn.DSN) {
	t.Helper()
	if d.Raw != s {
		t.Fatalf("Parse(%q).Raw = %q", s, d.Raw)
	}
	switch d.Scheme {
	case dsn.SchemeMemory, dsn.SchemePostgres, dsn.SchemeRedis:
		if d.Path != "" {
			t.Fatalf("Parse(%q): scheme %s with path %q", s, d.Scheme, d.Path)
		}
	case dsn.SchemeSQLite:
		if d.Path == "" || strings.ContainsRune(d.Path, 0) {
			t.Fatalf("Parse(%q): unusable SQLite path %q", s, d.Path)
		}
		// The plain form sqlite:PATH names the same file, when PATH can be
		// written that way (no '?', not "//…", no space at its end).
		plain := "sqlite:" + d.Path
		if strings.ContainsRune(d.Path, '?') || strings.HasPrefix(d.Path, "//") || strings.TrimSpace(plain) != plain {
			return
		}
		back, err := dsn.Parse(plain)
		if err != nil || back.Scheme != dsn.SchemeSQLite || back.Path != d.Path {
			t.Fatalf("Parse(%q) path %q; Parse(%q) = %q %q, %v", s, d.Path, plain, back.Scheme, back.Path, err)
		}
	default:
		t.Fatalf("Parse(%q): unknown scheme %q", s, d.Scheme)
	}
}
