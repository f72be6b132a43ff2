package postgres_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/queuesgo/queues/backend/postgres"
	"github.com/queuesgo/queues/driver"
)

// TestClassifyError classifies errors as pgx returns them from the live
// server: SQLSTATEs the server raises (some through RAISE ... USING
// ERRCODE, which the client receives exactly as it would the real
// condition), a connection the server terminates, a refused connect and a
// closed connection.
func TestClassifyError(t *testing.T) {
	pool := testPool(t)
	ctx := context.Background()
	b, err := postgres.New(pool, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	query := func(sql string) error {
		_, err := pool.Exec(ctx, sql)
		if err == nil {
			t.Fatalf("%s returned no error", sql)
		}
		return err
	}
	raise := func(code string) error {
		return query("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '" + code + "'; END $$")
	}
	type tc struct {
		name string
		err  error
		want driver.ErrorClass
	}
	cases := []tc{
		{"NUL in jsonb (22P05)", query(`SELECT '"\u0000"'::jsonb`), driver.ClassInvalidData},
		{"NUL byte in text (22021)", query(`SELECT convert_from('\x00'::bytea, 'UTF8')`), driver.ClassInvalidData},
		{"missing table (42P01)", query(`SELECT * FROM queues_no_such_table_for_classify`), driver.ClassPermanent},
		{"admin shutdown (57P01)", raise("57P01"), driver.ClassTransient},
		{"cannot connect now (57P03)", raise("57P03"), driver.ClassTransient},
		{"too many connections (53300)", raise("53300"), driver.ClassTransient},
		{"read-only replica (25006)", raise("25006"), driver.ClassTransient},
		{"serialization failure (40001)", raise("40001"), driver.ClassTransient},
		{"connection failure (08006)", raise("08006"), driver.ClassTransient},
		{"bad password (28P01)", raise("28P01"), driver.ClassPermanent},
		{"data corrupted (XX001)", raise("XX001"), driver.ClassPermanent},
		{"disk full (53100)", raise("53100"), driver.ClassPermanent},
		{"numeric out of range (22003)", raise("22003"), driver.ClassInvalidData},
		{"unique violation (23505)", raise("23505"), driver.ClassUnknown},
	}

	// The server terminates a connection (what a restart does to every
	// session): the statement that was running gets 57P01, the next use of
	// the connection finds it closed.
	conn, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	var afterKill error
	deadline := time.Now().Add(5 * time.Second)
	for afterKill == nil && time.Now().Before(deadline) {
		_, afterKill = conn.Exec(ctx, "SELECT 1")
	}
	_ = conn.Close(ctx)
	cases = append(cases, tc{"terminated session", afterKill, driver.ClassTransient})
	_, err = conn.Exec(ctx, "SELECT 1")
	cases = append(cases, tc{"closed connection", err, driver.ClassTransient})

	// A refused connect: a local port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	_ = l.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = pgconn.Connect(cctx, "postgres://postgres@127.0.0.1:"+strconv.Itoa(addr.Port)+"/test?sslmode=disable&connect_timeout=2")
	cases = append(cases, tc{"refused connect", err, driver.ClassTransient})

	// A store that is reachable but broken for every call: a schema that
	// does not exist (what `migrate` meets when search_path names one), a
	// relation it should hold, a role the server does not know (the
	// server refuses the login with 28000; a bad password is 28P01).
	cases = append(cases,
		tc{"missing schema (3F000)", query(`CREATE TABLE queues_no_such_schema_for_classify.t (x int)`), driver.ClassPermanent},
		tc{"missing relation in a missing schema (42P01)", query(`SELECT * FROM queues_no_such_schema_for_classify.queue_task`), driver.ClassPermanent},
		tc{"invalid authorization (28000)", raise("28000"), driver.ClassPermanent},
	)
	cc := pool.Config().ConnConfig.Copy()
	cc.User = "queues_no_such_role_for_classify"
	cc.Fallbacks = nil
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	if roleConn, err := pgx.ConnectConfig(rctx, cc); err == nil {
		_ = roleConn.Close(ctx)
		t.Errorf("connecting as an unknown role succeeded")
	} else {
		cases = append(cases, tc{"unknown role at login", err, driver.ClassPermanent})
	}

	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error to classify", c.name)
			continue
		}
		t.Logf("%s: %v", c.name, c.err)
		if got := driver.Classify(b, c.err); got != c.want {
			t.Errorf("%s (%v): %s, want %s", c.name, c.err, got, c.want)
		}
	}
}
