package dsn_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
	"github.com/queuesgo/queues/internal/testservice"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in, scheme, path string
	}{
		{"memory:", dsn.SchemeMemory, ""},
		{"memory://", dsn.SchemeMemory, ""},
		{"memory", dsn.SchemeMemory, ""},
		{"MEMORY:", dsn.SchemeMemory, ""},
		{"sqlite:queues.db", dsn.SchemeSQLite, "queues.db"},
		{"sqlite:/var/lib/q.db", dsn.SchemeSQLite, "/var/lib/q.db"},
		{"sqlite:///var/lib/q.db", dsn.SchemeSQLite, "/var/lib/q.db"},
		{"sqlite://queues.db", dsn.SchemeSQLite, "queues.db"},
		{"sqlite://localhost/var/q.db", dsn.SchemeSQLite, "/var/q.db"},
		{"sqlite3:data/q.db", dsn.SchemeSQLite, "data/q.db"},
		{"sqlite:///tmp/with%20space.db", dsn.SchemeSQLite, "/tmp/with space.db"},
		{" sqlite:q.db ", dsn.SchemeSQLite, "q.db"},
		{"postgres://u:p@localhost/db", dsn.SchemePostgres, ""},
		{"postgresql://localhost/db", dsn.SchemePostgres, ""},
		{"redis://localhost:6379/0", dsn.SchemeRedis, ""},
		{"valkey://localhost", dsn.SchemeRedis, ""},
	}
	for _, c := range cases {
		d, err := dsn.Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if d.Scheme != c.scheme || d.Path != c.path {
			t.Errorf("Parse(%q) = %q %q, want %q %q", c.in, d.Scheme, d.Path, c.scheme, c.path)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "empty"},
		{"queues.db", "missing scheme"},
		{":nothing", "missing scheme"},
		{"sqlite:", "missing file path"},
		{"sqlite://", "missing file path"},
		{"sqlite::memory:", "in-memory SQLite"},
		{"sqlite:file::memory:?cache=shared", "query options"},
		{"sqlite:q.db?_journal=wal", "query options"},
		{"memory:foo", "takes no path"},
		{"mysql://root:hunter22@db/app", `unknown scheme`},
		{"1abc:x", "malformed scheme"},
		{"sqlite:///bad%zzescape.db", "malformed URL escape"},
	}
	for _, c := range cases {
		_, err := dsn.Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q): want error", c.in)
			continue
		}
		if !errors.Is(err, queues.ErrConfig) {
			t.Errorf("Parse(%q): %v does not match ErrConfig", c.in, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %q, want it to mention %q", c.in, err, c.want)
		}
		if strings.Contains(err.Error(), "hunter22") || (len(c.in) > 8 && strings.Contains(err.Error(), c.in)) {
			t.Errorf("Parse(%q) = %q echoes the DSN", c.in, err)
		}
	}
	_, err := dsn.Parse("mysql://root:hunter22@db/app")
	if !strings.Contains(err.Error(), `"mysql"`) {
		t.Errorf("unknown scheme error %q does not name the scheme", err)
	}
}

func TestOpenMemory(t *testing.T) {
	b, err := dsn.Open(context.Background(), "memory:")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "memory" || !b.Capabilities().ProcessLocal {
		t.Fatalf("got %s, process local %v", b.Name(), b.Capabilities().ProcessLocal)
	}
}

func TestOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	ctx := context.Background()
	b, err := dsn.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "sqlite" || b.Capabilities().ProcessLocal {
		t.Fatalf("got %s, process local %v", b.Name(), b.Capabilities().ProcessLocal)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if _, err := b.Statistics(ctx, ""); err != nil {
		t.Fatal(err)
	}
}

// Server DSNs open their backends; a failure never carries the password.
func TestOpenServerBackends(t *testing.T) {
	ctx := context.Background()
	_, err := dsn.Open(ctx, "postgres://no_such_role_q:s3cretpass@127.0.0.1:5432/test?sslmode=disable&connect_timeout=3")
	if err == nil {
		t.Fatal("a role that does not exist must fail to connect")
	}
	if strings.Contains(err.Error(), "s3cretpass") {
		t.Errorf("%v echoes the password", err)
	}
	if b, err := dsn.Open(ctx, "redis://:s3cretpass@127.0.0.1:6379/0"); err == nil {
		if b.Name() != "redis" {
			t.Errorf("redis DSN opened %s", b.Name())
		}
		if err := b.Open(ctx); err != nil && strings.Contains(err.Error(), "s3cretpass") {
			t.Errorf("%v echoes the password", err)
		}
		_ = b.Close(ctx)
	} else if strings.Contains(err.Error(), "s3cretpass") {
		t.Errorf("%v echoes the password", err)
	}
	url := os.Getenv("QUEUES_TEST_POSTGRES_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	b, err := dsn.Open(ctx, url)
	if err != nil {
		testservice.Unavailable(t, "PostgreSQL at "+dsn.Redact(url), "set QUEUES_TEST_POSTGRES_URL", err)
	}
	defer b.Close(ctx)
	if b.Name() != "postgres" || b.Capabilities().ProcessLocal {
		t.Fatalf("postgres DSN opened %s", b.Name())
	}
}

func TestOpenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := dsn.Open(ctx, "memory:"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"postgres://user:secret@host/db": "postgres://user:xxxxx@host/db",
		"redis://:secret@host:6379":      "redis://:xxxxx@host:6379",
		"sqlite:queues.db":               "sqlite:queues.db",
		"memory:":                        "memory:",
		"postgres://user@host/db":        "postgres://user@host/db",
		"postgres://u:p%zz@host/db":      "postgres://[redacted]",
	}
	for in, want := range cases {
		if got := dsn.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	d, _ := dsn.Parse("postgres://u:topsecret@h/db")
	if strings.Contains(d.Redacted(), "topsecret") {
		t.Error(d.Redacted())
	}
	if d.ProcessLocal() {
		t.Error("postgres is shared")
	}
	m, _ := dsn.Parse("memory:")
	if !m.ProcessLocal() {
		t.Error("memory is process local")
	}
}

func TestIsDSNError(t *testing.T) {
	_, err := dsn.Parse("nope")
	if !dsn.IsDSNError(err) {
		t.Fatal(err)
	}
	if dsn.IsDSNError(errors.New("x")) {
		t.Fatal("plain error")
	}
}
