package queuescli_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/internal/testservice"
	"github.com/queuesgo/queues/queuescli"
)

// serverOr skips (or, with QUEUES_REQUIRE_SERVICES=1, fails) when a live
// server cannot be reached.
func serverOr(t *testing.T, what, env string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	testservice.Unavailable(t, what, "set "+env, err)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomHex(t *testing.T) string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// postgresDSN returns a DSN whose search_path is a fresh schema of its own,
// dropped when the test ends, so runs can overlap.
func postgresDSN(t *testing.T) string {
	dsn, _ := testservice.PostgresSchema(t, "queues_cli")
	return dsn
}

// redisDSN returns the test Redis URL; the test keeps to records and queues
// of its own (the CLI uses the default key prefix).
func redisDSN(t *testing.T) string {
	dsn := envOr("QUEUES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
	opts, err := goredis.ParseURL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	serverOr(t, "Redis at "+testservice.Redact(dsn), "QUEUES_TEST_REDIS_URL", c.Ping(ctx).Err())
	return dsn
}

// TestCommandsOnServers drives migrate, enqueue, run-task, get, cancel,
// status and bench against the live PostgreSQL and Redis servers.
func TestCommandsOnServers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dsn      func(*testing.T) string
		vacuumed bool
	}{
		{"postgres", postgresDSN, true},
		{"redis", redisDSN, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := tc.dsn(t)
			must := func(args ...string) string {
				t.Helper()
				code, out, stderr := run(t, queuescli.Options{}, append(args, "--backend", db)...)
				if code != 0 {
					t.Fatalf("%v: exit %d: %s", args, code, stderr)
				}
				return out
			}
			must("migrate")
			queue := "cli_" + randomHex(t)

			var rec queues.Record
			if err := json.Unmarshal([]byte(must("enqueue", "demo.echo", "--args", `{"k":"v"}`, "--queue", queue, "--json")), &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Status != queues.StatusPending || rec.Queue != queue {
				t.Fatalf("enqueued %s in %q", rec.Status, rec.Queue)
			}
			must("run-task", "--task-id", rec.ID.String())
			var got queues.Record
			if err := json.Unmarshal([]byte(must("get", rec.ID.String(), "--json")), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != queues.StatusCompleted || string(got.Result) != `{"k":"v"}` {
				t.Fatalf("after run-task: %s %s", got.Status, got.Result)
			}

			var other queues.Record
			if err := json.Unmarshal([]byte(must("enqueue", "demo.echo", "--queue", queue, "--json")), &other); err != nil {
				t.Fatal(err)
			}
			must("cancel", other.ID.String())
			if err := json.Unmarshal([]byte(must("get", other.ID.String(), "--json")), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != queues.StatusCancelled {
				t.Fatalf("after cancel: %s", got.Status)
			}

			var st map[string]int
			if err := json.Unmarshal([]byte(must("status", "--queue", queue, "--json")), &st); err != nil {
				t.Fatal(err)
			}
			if st["completed"] != 1 || st["cancelled"] != 1 || st["total"] != 2 {
				t.Fatalf("status of queue %s: %v", queue, st)
			}

			var rep queuescli.BenchReport
			if err := json.Unmarshal([]byte(must("bench", "--jobs", "300", "--workers", "20", "--samples", "5", "--json")), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Backend != tc.name || rep.Jobs != 300 || rep.WorkJobsPerSec <= 0 || rep.Samples != 5 || rep.LatencyMS.P50 <= 0 {
				t.Fatalf("bench: %+v", rep)
			}
			if rep.Vacuumed != tc.vacuumed {
				t.Fatalf("bench vacuumed=%v, want %v", rep.Vacuumed, tc.vacuumed)
			}
			// Only Redis reports its server's CPU (INFO cpu).
			if reported := rep.WorkServerCPUMicros > 0; reported != (tc.name == "redis") {
				t.Fatalf("bench work_server_cpu_us_per_job=%v on %s", rep.WorkServerCPUMicros, tc.name)
			}
			if tc.vacuumed {
				if err := json.Unmarshal([]byte(must("bench", "--jobs", "50", "--samples", "2", "--no-vacuum", "--json")), &rep); err != nil {
					t.Fatal(err)
				}
				if rep.Vacuumed {
					t.Fatal("bench --no-vacuum vacuumed")
				}
			}
		})
	}
}
