package queuescli

import (
	"testing"
	"time"

	"github.com/queuesgo/queues"
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
