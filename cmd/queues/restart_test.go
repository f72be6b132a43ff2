//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
	"github.com/queuesgo/queues/internal/testservice"
	"github.com/queuesgo/queues/queuescli"
)

// The chaos scenario of TestStoreRestartLosesNoWork.
const (
	restartTotal  = 2000                  // demo.sleep records enqueued
	restartArgs   = `{"ms":100}`          // each one sleeps 100ms
	restartOutage = 4 * time.Second       // how long the server stays down per restart
	restartDrain  = 45 * time.Second      // bound on settling everything after the last fault
	restartStale  = "10s"                 // --stale-after: above one heartbeat plus an outage plus reconnecting
	restartReady  = 20 * time.Second      // bound on a (re)started server accepting connections
	restartStep   = 30 * time.Second      // bound on the load reaching each fault's progress mark
	restartPoll   = 50 * time.Millisecond // store polling interval
	restartQuery  = 2 * time.Second       // bound on one store query while polling
	restartReap   = 10 * time.Second      // bound on a killed server's processes being gone
	restartAbout  = 90 * time.Second      // what one subtest should stay well under
	restartShown  = 5                     // example IDs per failure message
)

// TestStoreRestartLosesNoWork restarts a private PostgreSQL and a private
// Redis server abruptly (SIGKILL, a few seconds down, start again on the
// same data) twice while two `queues run` worker processes work through
// 2,000 slow tasks, and SIGKILLs one of the workers once. No finished work
// may be lost: every record must end completed, and the demo trace may show
// a task body twice only for the records the killed worker had in flight.
//
// A settle write (the completion) that meets the outage must be retried
// until it is durable; a worker that drops it leaves the record running
// until stale recovery runs the body a second time, which the trace shows.
//
// The servers are started by the test on free loopback ports; the
// machine's shared services are never used. Without the server binaries
// the subtests skip, or fail with QUEUES_REQUIRE_SERVICES=1.
func TestStoreRestartLosesNoWork(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	t.Run("postgres", func(t *testing.T) { restartScenario(t, startPostgres(t)) })
	t.Run("redis", func(t *testing.T) { restartScenario(t, startRedis(t)) })
}

// requireServer skips the test, or fails it with QUEUES_REQUIRE_SERVICES=1,
// when err says a server the test needs is unavailable: the contract of the
// backend packages' live-server tests.
func requireServer(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	testservice.Unavailable(t, what, "install the server binaries", err)
}

// freePort returns a loopback TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// testServer is a database server process this test owns: it starts it,
// SIGKILLs it by PID and starts it again on the same port and data.
type testServer struct {
	t    *testing.T
	name string
	dsn  string
	// command builds the command line of one start.
	command func() *exec.Cmd
	// ping checks that the server accepts a connection and a query.
	ping func(ctx context.Context) error
	// killTree kills every process of the server, not only the main one.
	killTree bool

	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

// launch starts the server process and waits until it answers.
func (s *testServer) launch() {
	s.t.Helper()
	s.cmd = s.command()
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if s.cmd.SysProcAttr == nil {
		s.cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	s.cmd.SysProcAttr.Setpgid = true
	// Should the test binary die without running its cleanups (a -timeout
	// panic), the server dies with it instead of outliving it.
	s.cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	done := make(chan struct{})
	s.done = done
	go func(c *exec.Cmd) {
		_ = c.Wait()
		close(done)
	}(s.cmd)
	s.waitReady()
}

// waitReady polls a connection until the server answers.
func (s *testServer) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(restartReady)
	var err error
	for {
		select {
		case <-s.done:
			s.t.Fatalf("%s (pid %d) exited while starting\nserver log:\n%s", s.name, s.cmd.Process.Pid, tail(s.log.String(), 30))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = s.ping(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s (pid %d) not ready within %s: %v\nserver log:\n%s", s.name, s.cmd.Process.Pid, restartReady, err, tail(s.log.String(), 30))
		}
		time.Sleep(restartPoll)
	}
}

// kill SIGKILLs the server (and, for PostgreSQL, every process it forked:
// the postmaster is stopped first so that it forks no more) and waits until
// they are gone.
func (s *testServer) kill() {
	s.t.Helper()
	select {
	case <-s.done:
		return
	default:
	}
	pid := s.cmd.Process.Pid
	var children []int
	if s.killTree {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		children = childPIDs(pid)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	deadline := time.Now().Add(restartReap)
	select {
	case <-s.done:
	case <-time.After(restartReap):
		s.t.Fatalf("%s (pid %d) did not exit within %s of SIGKILL", s.name, pid, restartReap)
	}
	for _, c := range children {
		for alive(c) {
			if time.Now().After(deadline) {
				s.t.Fatalf("%s process %d did not exit within %s of SIGKILL", s.name, c, restartReap)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// restart kills the server, keeps it down for the outage, and starts it
// again on the same port and data.
func (s *testServer) restart(outage time.Duration) {
	s.t.Helper()
	s.kill()
	time.Sleep(outage) // the outage itself
	s.launch()
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(c); ok && ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

// procStat reads the parent and state of a process from /proc.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// alive reports whether pid is a process that has not exited (a zombie has).
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// serverDir makes a directory for a server's files, owned by uid/gid.
func serverDir(t *testing.T, pattern string, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// postgresBinDir finds the directory holding initdb and postgres.
func postgresBinDir() (string, error) {
	dirs := []string{}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(r))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(versioned)))
	dirs = append(dirs, versioned...)
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no initdb and postgres binaries on PATH or under /usr/lib/postgresql/*/bin")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// startPostgres initialises a private cluster in a temporary directory and
// starts it on a free loopback port, as the postgres OS user when the test
// runs as root (PostgreSQL refuses to run as root).
func startPostgres(t *testing.T) *testServer {
	t.Helper()
	binDir, err := postgresBinDir()
	requireServer(t, "a private PostgreSQL server", err)
	var cred *syscall.Credential
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		requireServer(t, "a private PostgreSQL server (the postgres OS user, to run it as root)", err)
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir := serverDir(t, "queues-restart-pg-", uid, gid)
	data := filepath.Join(dir, "data")
	asOwner := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(binDir, name), args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "LC_ALL=C", "HOME="+dir)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return c
	}
	initdb := asOwner("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freePort(t)
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port)
	s := &testServer{t: t, name: "postgres", dsn: url, killTree: true, log: &syncBuffer{},
		command: func() *exec.Cmd {
			return asOwner("postgres", "-D", data, "-p", strconv.Itoa(port),
				"-c", "listen_addresses=127.0.0.1", "-k", dir,
				"-c", "fsync=off", "-c", "max_connections=200")
		},
		ping: func(ctx context.Context) error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			return conn.Ping(ctx)
		},
	}
	t.Cleanup(s.kill)
	s.launch()
	return s
}

// startRedis starts a private Redis server on a free loopback port with an
// append-only file synced on every write.
func startRedis(t *testing.T) *testServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	requireServer(t, "a private Redis server", err)
	dir := serverDir(t, "queues-restart-redis-", -1, -1)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := &testServer{t: t, name: "redis-server", dsn: "redis://" + addr + "/0", log: &syncBuffer{},
		command: func() *exec.Cmd {
			c := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--appendonly", "yes", "--appendfsync", "always", "--dir", dir, "--save", "")
			c.Dir = dir
			return c
		},
		ping: func(ctx context.Context) error {
			c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
			defer c.Close()
			return c.Ping(ctx).Err()
		},
	}
	t.Cleanup(s.kill)
	s.launch()
	return s
}

// storeService opens a Go-API service on url with the demo tasks. It keeps
// working across server restarts: its calls fail while the server is down.
func storeService(t *testing.T, url string) *queues.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := dsn.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	reg := queues.NewRegistry()
	if err := queuescli.RegisterDemoTasks(reg); err != nil {
		t.Fatal(err)
	}
	svc, err := queues.New(queues.Config{Backend: b, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

// settled counts the records no worker will touch again.
func settled(st queues.Statistics) int { return st.Completed + st.Failed + st.Cancelled + st.Expired }

func restartScenario(t *testing.T, srv *testServer) {
	began := time.Now()
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf("[%5.1fs] "+format, append([]any{time.Since(began).Seconds()}, args...)...)
	}
	logf("%s (pid %d) ready at %s", srv.name, srv.cmd.Process.Pid, dsn.Redact(srv.dsn))

	e := newEnv(t)
	e.extra = []string{queuescli.EnvBackend + "=" + srv.dsn}
	if out := e.mustRun("migrate"); !strings.Contains(out, "applied") && !strings.Contains(out, "up to date") {
		t.Fatalf("migrate: %q", out)
	}
	svc := storeService(t, srv.dsn)
	ctx := context.Background()

	ids := make(map[uuid.UUID]bool, restartTotal)
	const batch = 200
	for i := 0; i < restartTotal; i += batch {
		reqs := make([]queues.EnqueueRequest, batch)
		for j := range reqs {
			reqs[j] = queues.EnqueueRequest{Task: queuescli.DemoSleep, RawArgs: json.RawMessage(restartArgs),
				Options: queues.EnqueueOptions{Retries: queues.Ptr(3)}}
		}
		res, err := svc.EnqueueMany(ctx, reqs)
		if err != nil {
			t.Fatalf("enqueue batch %d: %v", i/batch, err)
		}
		for _, r := range res {
			ids[r.ID] = true
		}
	}
	if len(ids) != restartTotal {
		t.Fatalf("enqueued %d distinct records, want %d", len(ids), restartTotal)
	}
	logf("enqueued %d %s records", restartTotal, queuescli.DemoSleep)

	// Heartbeats every second; a record is stale after 10s without one,
	// which no live worker reaches during a 4s outage, while the killed
	// worker's records are recovered well within the bound.
	worker := func(id string) *proc {
		p := e.start("run", "--worker-id", id, "--max-concurrency", "50", "--batch-size", "25",
			"--poll-interval", "50ms", "--heartbeat-interval", "1s", "--stale-after", restartStale,
			"--stale-check-interval", "1s", "--drain-timeout", "5s")
		p.waitStderr(t, "queues worker started", 15*time.Second)
		return p
	}
	workers := []*proc{worker("chaos-a"), worker("chaos-b")}
	logf("workers chaos-a (pid %d) and chaos-b (pid %d) started", workers[0].cmd.Process.Pid, workers[1].cmd.Process.Pid)

	// counts polls the store until cond holds, tolerating the outages.
	counts := func(what string, limit time.Duration, cond func(queues.Statistics) bool) (queues.Statistics, bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		var last queues.Statistics
		var lastErr error
		for {
			qctx, cancel := context.WithTimeout(ctx, restartQuery)
			st, err := svc.Statistics(qctx, "")
			cancel()
			if err == nil {
				last, lastErr = st, nil
				if cond(st) {
					return st, true
				}
			} else {
				lastErr = err
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: not reached within %s; last counts %+v (last error %v)", what, limit, last, lastErr)
				return last, false
			}
			time.Sleep(restartPoll)
		}
	}
	atLeast := func(n int) func(queues.Statistics) bool {
		return func(st queues.Statistics) bool { return st.Completed >= n }
	}
	// mark waits for the load to reach n completions before a fault, so that
	// every fault lands in the middle of the work.
	mark := func(n int, fault string) {
		t.Helper()
		st, ok := counts(fmt.Sprintf("%d completed before %s", n, fault), restartStep, atLeast(n))
		if !ok {
			t.FailNow()
		}
		if settled(st) >= restartTotal {
			t.Fatalf("the load finished before %s: %+v", fault, st)
		}
		logf("%s at %d completed, %d running", fault, st.Completed, st.Running)
	}

	// Each fault notes the records running in the store just before it, to
	// tell in a failure which fault a re-run followed.
	var faults []fault
	runningNow := func(name string, worker string) map[uuid.UUID]bool {
		ids := map[uuid.UUID]bool{}
		for id, r := range allRecords(t, svc) {
			if r.Status == queues.StatusRunning && (worker == "" || r.WorkerID == worker) {
				ids[id] = true
			}
		}
		faults = append(faults, fault{name: name, running: ids})
		return ids
	}

	// The worker is killed before the first outage: every attempt it ran
	// then ran against a healthy store, so its excuse for a second run can
	// never cover a completion an outage dropped.
	mark(restartTotal*15/100, "SIGKILL of worker chaos-a")
	killed := workers[0]
	killed.signal(t, syscall.SIGKILL)
	if code := killed.wait(t, 10*time.Second); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("chaos-a exit %d, want %d", code, 128+int(syscall.SIGKILL))
	}
	inFlight := runningNow("the SIGKILL of chaos-a", "chaos-a")
	logf("chaos-a (pid %d) killed with %d records running", killed.cmd.Process.Pid, len(inFlight))
	workers = append(workers[1:], worker("chaos-c"))
	logf("replacement worker chaos-c (pid %d) started", workers[1].cmd.Process.Pid)

	for i, at := range []int{40, 65} {
		name := fmt.Sprintf("restart %d", i+1)
		mark(restartTotal*at/100, name)
		runningNow(name, "")
		srv.restart(restartOutage)
		logf("%s back (pid %d)", srv.name, srv.cmd.Process.Pid)
	}

	st, _ := counts(fmt.Sprintf("all %d records settled", restartTotal), restartDrain,
		func(st queues.Statistics) bool { return settled(st) >= restartTotal })
	logf("after the faults: %d completed, %d failed, %d running, %d pending, %d scheduled",
		st.Completed, st.Failed, st.Running, st.Pending, st.Scheduled)

	for _, w := range workers {
		w.signal(t, syscall.SIGTERM)
	}
	for _, w := range workers {
		if code := w.wait(t, 20*time.Second); code != 0 {
			t.Errorf("worker pid %d exit %d after SIGTERM, want 0\nstderr (tail):\n%s", w.cmd.Process.Pid, code, tail(w.stderr.String(), 15))
		}
	}

	// A diagnostic only: how often the workers reported a settle write the
	// store did not take.
	settleFailures := 0
	for _, w := range append([]*proc{killed}, workers...) {
		settleFailures += strings.Count(w.stderr.String(), "settle write failed")
	}
	logf("the workers logged %d settle write failures", settleFailures)
	checkNoLostWork(t, allRecords(t, svc), ids, readTrace(t, e.trace), killed.cmd.Process.Pid, inFlight, faults,
		fmt.Sprintf("the workers logged %d settle write failures", settleFailures))
	if d := time.Since(began); d > restartAbout {
		t.Errorf("the scenario took %s, want well under %s", d.Round(time.Second), restartAbout)
	}
	logf("done")
}

// fault is one injected failure and the records running just before it.
type fault struct {
	name    string
	running map[uuid.UUID]bool
}

// checkNoLostWork asserts the end state: every record completed, and each
// task body ran once, except that a record the killed worker had in flight
// (running under it in the store once it was dead) may have run once there
// and once more elsewhere.
func checkNoLostWork(t *testing.T, recs map[uuid.UUID]*queues.Record, ids map[uuid.UUID]bool,
	lines []traceLine, killedPID int, inFlight map[uuid.UUID]bool, faults []fault, note string) {
	t.Helper()
	byStatus := map[queues.Status][]uuid.UUID{}
	for id, r := range recs {
		if !ids[id] {
			t.Errorf("the store holds record %s that this test did not enqueue", id)
		}
		byStatus[r.Status] = append(byStatus[r.Status], id)
	}
	describe := func(list []uuid.UUID) string {
		sortIDs(list)
		var parts []string
		for _, id := range list[:min(len(list), restartShown)] {
			r := recs[id]
			parts = append(parts, fmt.Sprintf("%s (worker %q, retry_count %d, error %q)", id, r.WorkerID, r.RetryCount, r.Error))
		}
		return strings.Join(parts, "; ")
	}
	var summary []string
	for _, s := range []queues.Status{queues.StatusCompleted, queues.StatusFailed, queues.StatusRunning,
		queues.StatusPending, queues.StatusScheduled, queues.StatusCancelled, queues.StatusExpired} {
		summary = append(summary, fmt.Sprintf("%d %s", len(byStatus[s]), s))
	}
	t.Logf("store: %s (of %d records, %d enqueued)", strings.Join(summary, ", "), len(recs), len(ids))
	if n := len(byStatus[queues.StatusCompleted]); n != len(ids) || len(recs) != len(ids) {
		t.Errorf("%d of %d records completed, want all", n, len(ids))
	}
	for s, list := range byStatus {
		if s != queues.StatusCompleted {
			t.Errorf("%d records %s (want 0), e.g. %s", len(list), s, describe(list))
		}
	}

	runs := map[uuid.UUID][]traceLine{}
	for _, l := range lines {
		runs[l.id] = append(runs[l.id], l)
		if !ids[l.id] {
			t.Errorf("the trace holds record %s that this test did not enqueue", l.id)
		}
	}
	var excused, doubled, never []uuid.UUID
	for id := range ids {
		ls := runs[id]
		switch {
		case len(ls) == 0:
			if recs[id] != nil && recs[id].Status == queues.StatusCompleted {
				never = append(never, id)
			}
		case len(ls) == 1:
		case len(ls) == 2 && ls[0].pid == killedPID && ls[1].pid != killedPID && inFlight[id]:
			excused = append(excused, id)
		default:
			doubled = append(doubled, id)
		}
	}
	t.Logf("trace: %d lines for %d records; %d re-run after the killed worker (pid %d, %d records in flight); %d ran more than once otherwise",
		len(lines), len(runs), len(excused), killedPID, len(inFlight), len(doubled))
	if len(doubled) > 0 {
		// Which fault each re-run record was running at, first match.
		var by []string
		left := len(doubled)
		for _, f := range faults {
			n := 0
			for _, id := range doubled {
				if f.running[id] && !runningAtEarlier(faults, f.name, id) {
					n++
				}
			}
			left -= n
			by = append(by, fmt.Sprintf("%d were running just before %s (%d running then)", n, f.name, len(f.running)))
		}
		by = append(by, fmt.Sprintf("%d at none of the faults", left), note)
		sortIDs(doubled)
		var parts []string
		for _, id := range doubled[:min(len(doubled), restartShown)] {
			var at []string
			for _, l := range runs[id] {
				at = append(at, fmt.Sprintf("attempt %d in pid %d", l.attempt, l.pid))
			}
			parts = append(parts, fmt.Sprintf("%s [%s]", id, strings.Join(at, ", ")))
		}
		t.Errorf("%d records ran more than once without the killed worker (pid %d) to excuse it (%s), e.g. %s",
			len(doubled), killedPID, strings.Join(by, ", "), strings.Join(parts, "; "))
	}
	if len(never) > 0 {
		t.Errorf("%d records are completed but their task body never ran, e.g. %s", len(never), describe(never))
	}
}

func sortIDs(ids []uuid.UUID) {
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
}

// runningAtEarlier reports whether id was running at a fault before the named one.
func runningAtEarlier(faults []fault, name string, id uuid.UUID) bool {
	for _, f := range faults {
		if f.name == name {
			return false
		}
		if f.running[id] {
			return true
		}
	}
	return false
}
