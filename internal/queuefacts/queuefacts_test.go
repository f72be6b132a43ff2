package queuefacts

import (
	"testing"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

func TestServes(t *testing.T) {
	all := driver.WorkerInfo{ExecutionBackend: "local"}
	some := driver.WorkerInfo{ExecutionBackend: "local", Queues: []string{"a", "b"}}
	cases := []struct {
		w      driver.WorkerInfo
		q, eb  string
		serves bool
	}{
		{all, "x", "local", true},
		{all, "x", "subprocess", false},
		{some, "b", "local", true},
		{some, "c", "local", false},
		{some, "a", "nats", false},
	}
	for _, c := range cases {
		if got := Serves(c.w, c.q, c.eb); got != c.serves {
			t.Errorf("Serves(%v, %q, %q) = %v", c.w, c.q, c.eb, got)
		}
	}
}

// Due records of a backend nobody serves count as unserved; later ones do not.
func TestBuildUnserved(t *testing.T) {
	stats := map[string]queuestype.Statistics{"a": {Pending: 5, Total: 5}, "idle": {}}
	counts := []driver.BacklogCount{
		{Queue: "a", ExecutionBackend: "subprocess", Due: 2, Later: 7},
		{Queue: "a", ExecutionBackend: "local", Due: 3},
	}
	workers := []driver.WorkerInfo{{ExecutionBackend: "local", Queues: []string{"a"}}}
	qs := build(stats, counts, workers, true, false, "")
	if len(qs) != 2 || qs[0].Queue != "a" || qs[1].Queue != "idle" {
		t.Fatalf("queues = %+v", qs)
	}
	a := qs[0]
	if *a.Unserved != 2 || a.ExecutionBackends[0].ExecutionBackend != "local" || !*a.ExecutionBackends[0].Served || *a.ExecutionBackends[1].Served {
		t.Errorf("queue a = %+v", a)
	}
	if *qs[1].Unserved != 0 || len(qs[1].ExecutionBackends) != 0 {
		t.Errorf("idle queue = %+v", qs[1])
	}
	lines := Unserved(qs)
	if len(lines) != 1 || lines[0] != `queue "a": 2 due records wait for an execution backend no live worker serves: "subprocess" (2)` {
		t.Errorf("lines = %q", lines)
	}
	if qs := build(stats, counts, nil, false, false, "a"); len(qs) != 1 || qs[0].Unserved != nil || qs[0].ExecutionBackends[0].Served != nil || Unserved(qs) != nil {
		t.Errorf("without a registry: %+v", qs)
	}
}
