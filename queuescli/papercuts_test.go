package queuescli_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/internal/testservice"
	"github.com/queuesgo/queues/queuescli"
)

// Commands that read or change existing records refuse a missing SQLite
// file with one line naming it, and leave no file behind.
func TestMissingSQLiteFileIsNotCreated(t *testing.T) {
	const id = "0190a1a2-0000-7000-8000-000000000000"
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"status"}, 1},
		{[]string{"status", "--json"}, 1},
		{[]string{"get", id}, 1},
		{[]string{"cancel", id}, 1},
		{[]string{"enqueue", "demo.noop"}, 1},
		{[]string{"run-task", "--task-id", id}, 8},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "typo.db")
			code, stdout, stderr := run(t, queuescli.Options{}, append(tc.args, "--backend", "sqlite:"+path)...)
			if code != tc.code || stdout != "" {
				t.Errorf("exit %d, stdout %q; want exit %d and no output", code, stdout, tc.code)
			}
			want := "no database at " + path + "; run `queues migrate` or check the path"
			if line := oneErrorLine(t, stderr); !strings.HasSuffix(line, want) {
				t.Errorf("stderr %q does not end with %q", line, want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s created the file (stat: %v)", tc.args[0], err)
			}
			// The same path after migrate works.
			if tc.args[0] == "status" {
				if code, _, stderr := run(t, queuescli.Options{}, "migrate", "--backend", "sqlite:"+path); code != 0 {
					t.Fatalf("migrate: exit %d: %s", code, stderr)
				}
				if code, _, stderr := run(t, queuescli.Options{}, append(tc.args, "--backend", "sqlite:"+path)...); code != 0 {
					t.Fatalf("status after migrate: exit %d: %s", code, stderr)
				}
			}
		})
	}
}

// With no DSN typed, enqueue creates the default sqlite:queues.db (there is
// no typo to catch), so "enqueue, then run" works in a fresh directory.
func TestEnqueueCreatesTheDefaultDatabase(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv(queuescli.EnvBackend, "")
	t.Setenv(queuescli.EnvDSN, "")
	code, stdout, stderr := run(t, queuescli.Options{}, "enqueue", "demo.noop")
	if code != 0 || !strings.HasPrefix(stdout, "enqueued ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat("queues.db"); err != nil {
		t.Fatalf("default database not created: %v", err)
	}
}

// A zero or malformed --id is refused with one line; nothing is enqueued.
func TestEnqueueRefusesZeroAndMalformedID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	if code, _, stderr := run(t, queuescli.Options{}, "migrate", "--backend", "sqlite:"+path); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	for id, want := range map[string]string{
		"00000000-0000-0000-0000-000000000000": "--id: the zero UUID is not a record ID; omit --id to get a new one",
		"not-a-uuid":                           `--id: invalid task ID "not-a-uuid": not a UUID`,
		"0190a1a2-0000-7000-8000":              "not a UUID",
	} {
		code, stdout, stderr := run(t, queuescli.Options{}, "enqueue", "demo.noop", "--id", id, "--backend", "sqlite:"+path)
		if code != 1 || stdout != "" {
			t.Errorf("--id %s: exit %d, stdout %q", id, code, stdout)
		}
		if line := oneErrorLine(t, stderr); !strings.Contains(line, want) {
			t.Errorf("--id %s: %q does not contain %q", id, line, want)
		}
	}
	_, out, _ := run(t, queuescli.Options{}, "status", "--json", "--backend", "sqlite:"+path)
	if !strings.Contains(out, `"total":0`) {
		t.Fatalf("a refused --id enqueued a record: %s", out)
	}
}

// The --backend help and the missing-scheme error name every DSN form.
func TestEveryDSNSchemeNamed(t *testing.T) {
	_, help, _ := run(t, queuescli.Options{}, "status", "--help")
	code, _, stderr := run(t, queuescli.Options{}, "status", "--backend", "queues.db")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	line := oneErrorLine(t, stderr)
	for _, form := range []string{"sqlite:", "postgres://", "postgresql://", "redis://", "rediss://", "memory:"} {
		if !strings.Contains(help, form) {
			t.Errorf("--backend help does not name %s", form)
		}
		if !strings.Contains(line, form) {
			t.Errorf("missing-scheme error %q does not name %s", line, form)
		}
	}
}

// estimating wraps a store as one whose Statistics estimates the terminal
// counts, like PostgreSQL on a very large table.
type estimating struct {
	driver.Backend
	exactCalls int
}

func (e *estimating) Statistics(ctx context.Context, queue string) (queues.Statistics, error) {
	st, err := e.Backend.Statistics(ctx, queue)
	st.Completed += 1089382
	st.Total += 1089382
	st.Estimated = true
	return st, err
}

func (e *estimating) ExactStatistics(ctx context.Context, queue string) (queues.Statistics, error) {
	e.exactCalls++
	return e.Backend.Statistics(ctx, queue)
}

// Estimated counts are marked "~" in the table and noted on stderr with
// --json (whose stdout keeps its eight keys); --exact asks the store for
// exact counts.
func TestStatusMarksEstimates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	if code, _, stderr := run(t, queuescli.Options{}, "migrate", "--backend", "sqlite:"+path); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	est := &estimating{}
	opts := queuescli.Options{Config: func(ctx context.Context, b driver.Backend) (queues.Config, error) {
		est.Backend = b
		return queues.Config{Backend: est}, nil
	}}
	code, out, stderr := run(t, opts, "status", "--backend", "sqlite:"+path)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"pending            0", "completed   ~1089382", "failed            ~0", "total       ~1089382", "~ estimated"} {
		if !strings.Contains(out, want) {
			t.Errorf("table does not contain %q:\n%s", want, out)
		}
	}

	code, out, stderr = run(t, opts, "status", "--json", "--backend", "sqlite:"+path)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var keys map[string]int
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 8 || keys["completed"] != 1089382 {
		t.Fatalf("--json stdout %q (%v), want the eight counts", out, err)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "estimates; pass --exact") {
		t.Errorf("--json stderr %q, want one note line", stderr)
	}

	code, out, stderr = run(t, opts, "status", "--exact", "--backend", "sqlite:"+path)
	if code != 0 || stderr != "" || strings.Contains(out, "~") || est.exactCalls != 1 {
		t.Fatalf("--exact: exit %d, stderr %q, %d exact calls, out:\n%s", code, stderr, est.exactCalls, out)
	}
}

// status exits 1 with one line, within the connect timeout, when the store
// cannot be reached: a dead port, and rediss:// to the plain Redis port.
func TestStatusUnreachableStore(t *testing.T) {
	t.Parallel()
	cases := []struct{ dsn, want string }{
		{"postgres://app:hunter2pw@127.0.0.1:1/test", "connection refused"},
		{"redis://:hunter2pw@127.0.0.1:1/0", "connection refused"},
	}
	redisURL := envOr("QUEUES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
	if strings.HasPrefix(redisURL, "redis://") {
		cases = append(cases, struct{ dsn, want string }{"rediss://" + strings.TrimPrefix(redisURL, "redis://"),
			"TLS handshake failed: is the server speaking TLS? (rediss:// to a plain port)"})
	}
	for _, tc := range cases {
		t.Run(strings.SplitN(tc.dsn, ":", 2)[0], func(t *testing.T) {
			if strings.HasPrefix(tc.dsn, "rediss:") {
				redisDSN(t) // skips when the plain server is missing
			}
			start := time.Now()
			code, stdout, stderr := run(t, queuescli.Options{}, "status", "--backend", tc.dsn)
			took := time.Since(start)
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			line := oneErrorLine(t, stderr)
			if !strings.Contains(line, tc.want) || strings.Contains(line, "hunter2pw") {
				t.Errorf("stderr %q: want %q and no password", line, tc.want)
			}
			if took >= dsn.DefaultConnectTimeout+3*time.Second {
				t.Errorf("took %s, want within the %s connect timeout", took, dsn.DefaultConnectTimeout)
			}
		})
	}
}

// migrate creates the schema named by ?search_path= when it is missing.
func TestMigrateCreatesPostgresSchema(t *testing.T) {
	base := envOr("QUEUES_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		testservice.Unavailable(t, "PostgreSQL at "+testservice.Redact(base), "set QUEUES_TEST_POSTGRES_URL", err)
	}
	conn.Close(ctx)
	schema := "queues_cli_new_" + randomHex(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			c.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db := u.String()
	if code, _, stderr := run(t, queuescli.Options{}, "migrate", "--backend", db); code != 0 {
		t.Fatalf("migrate into a missing schema: exit %d: %s", code, stderr)
	}
	code, out, stderr := run(t, queuescli.Options{}, "status", "--json", "--backend", db)
	if code != 0 || !strings.Contains(out, `"total":0`) {
		t.Fatalf("status after migrate: exit %d, %q, %q", code, out, stderr)
	}
}
