package queuescli

import (
	"strings"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/memory"
	"github.com/spf13/cobra"
)

func TestSanitize(t *testing.T) {
	c := &cli{lastDSN: "postgres://app:s3cr3tpw@db:5432/app"}
	got := c.sanitize("dial postgres://app:s3cr3tpw@db:5432/app: refused (password s3cr3tpw)")
	if got != "dial postgres://app:xxxxx@db:5432/app: refused (password xxxxx)" {
		t.Errorf("got %q", got)
	}
	c = &cli{backend: "redis://:tok-123@cache:6379"}
	if got := c.sanitize("redis://:tok-123@cache:6379 down"); got != "redis://:xxxxx@cache:6379 down" {
		t.Errorf("got %q", got)
	}
	var nilCli *cli
	if nilCli.sanitize("x") != "x" {
		t.Error("nil cli")
	}
}

func TestOneLine(t *testing.T) {
	cases := map[string]string{
		"plain":       "plain",
		"a\nb\n\n c ": "a; b; c",
		"unknown command \"rn\" for \"queues\"\n\nDid you mean this?\n\trun\n": `unknown command "rn" for "queues"; did you mean: run`,
	}
	for in, want := range cases {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckStale(t *testing.T) {
	cases := []struct {
		stale, hb time.Duration
		ok        bool
	}{
		{0, 0, true},
		{time.Minute, 0, false}, // default heartbeat 30s: 60s is not more than twice
		{61 * time.Second, 0, true},
		{time.Second, 200 * time.Millisecond, true},
		{400 * time.Millisecond, 200 * time.Millisecond, false},
		{401 * time.Millisecond, 200 * time.Millisecond, true},
	}
	for _, c := range cases {
		err := checkStale(queues.WorkerConfig{StaleAfter: c.stale, HeartbeatInterval: c.hb})
		if (err == nil) != c.ok {
			t.Errorf("stale %s hb %s: %v", c.stale, c.hb, err)
		}
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(ds)
	if p.P50 != 50 || p.P95 != 95 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("got %+v", p)
	}
	if (percentiles(nil) != BenchLatency{}) {
		t.Error("empty")
	}
	one := percentiles([]time.Duration{1500 * time.Microsecond})
	if one.P50 != 1.5 || one.P99 != 1.5 || one.Max != 1.5 {
		t.Errorf("got %+v", one)
	}
}

func TestDSNPassword(t *testing.T) {
	cases := map[string]string{
		"postgres://u:pw@h/db": "pw",
		"postgres://u@h/db":    "",
		"sqlite:q.db":          "",
		"redis://:a:b@h":       "a:b",
		"x@y":                  "",
	}
	for in, want := range cases {
		if got := dsnPassword(in); got != want {
			t.Errorf("dsnPassword(%q) = %q, want %q", in, got, want)
		}
	}
}

// `run` defaults: --max-concurrency 10 unless the flag or the app's
// configuration says otherwise; --stale-after unset or 0 keeps the
// library's default (crash recovery on), a negative value or "off" turns it
// off.
func TestRunFlagDefaults(t *testing.T) {
	cases := []struct {
		args        []string
		app         queues.WorkerConfig
		concurrency int
		stale       time.Duration
		effective   time.Duration // StaleAfter once the library fills defaults in
	}{
		{nil, queues.WorkerConfig{}, 10, 0, 2 * time.Minute},
		{[]string{"--max-concurrency", "3"}, queues.WorkerConfig{}, 3, 0, 2 * time.Minute},
		{nil, queues.WorkerConfig{MaxConcurrency: 4}, 4, 0, 2 * time.Minute},
		{[]string{"--max-concurrency", "2"}, queues.WorkerConfig{MaxConcurrency: 4}, 2, 0, 2 * time.Minute},
		{[]string{"--stale-after", "0"}, queues.WorkerConfig{}, 10, 0, 2 * time.Minute},
		{[]string{"--stale-after", "5m"}, queues.WorkerConfig{}, 10, 5 * time.Minute, 5 * time.Minute},
		{[]string{"--stale-after", "off"}, queues.WorkerConfig{}, 10, -1, -1},
		{[]string{"--stale-after", "OFF"}, queues.WorkerConfig{StaleAfter: time.Hour}, 10, -1, -1},
		{[]string{"--stale-after=-1s"}, queues.WorkerConfig{}, 10, -1, -1},
		{[]string{"--stale-after", "-1m"}, queues.WorkerConfig{}, 10, -1, -1},
		{[]string{"--heartbeat-interval", "5s"}, queues.WorkerConfig{}, 10, 0, 20 * time.Second},
		{nil, queues.WorkerConfig{StaleAfter: time.Hour}, 10, time.Hour, time.Hour},
	}
	for _, c := range cases {
		var f runFlags
		cmd := &cobra.Command{Use: "run"}
		registerRunFlags(cmd, &f)
		if err := cmd.ParseFlags(c.args); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		w := c.app
		if err := applyRunFlags(cmd, f, &w); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if err := checkStale(w); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if w.MaxConcurrency != c.concurrency || w.StaleAfter != c.stale {
			t.Errorf("%v on %+v: max concurrency %d stale after %s, want %d and %s", c.args, c.app, w.MaxConcurrency, w.StaleAfter, c.concurrency, c.stale)
		}
		svc, err := queues.New(queues.Config{Backend: memory.New(memory.Options{}), Worker: w})
		if err != nil {
			t.Fatal(err)
		}
		wk, err := svc.NewWorker(w)
		if err != nil {
			t.Fatal(err)
		}
		if got := wk.Config().StaleAfter; got != c.effective {
			t.Errorf("%v: effective StaleAfter %s, want %s", c.args, got, c.effective)
		}
	}
	var f runFlags
	cmd := &cobra.Command{Use: "run"}
	registerRunFlags(cmd, &f)
	if err := cmd.ParseFlags([]string{"--stale-after", "soon"}); err == nil || !strings.Contains(err.Error(), `"off"`) {
		t.Errorf("--stale-after soon: %v", err)
	}
}
