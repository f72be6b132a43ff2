package queues

import (
	"testing"
	"time"

	"github.com/queuesgo/queues/backend/memory"
)

// Workers run maintenance each minute unless Interval is negative.
func TestMaintenanceSweeperRow(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		want     time.Duration // 0 = no sweeper
	}{{0, time.Minute}, {5 * time.Second, 5 * time.Second}, {-1, 0}} {
		svc, err := New(Config{Backend: memory.New(memory.Options{}), Maintenance: MaintenanceConfig{Interval: c.interval}})
		if err != nil {
			t.Fatal(err)
		}
		w, err := svc.NewWorker(WorkerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var found *sweeper
		for _, duty := range sweeperDuties {
			if sw := duty(w); sw != nil && sw.name == "maintenance" {
				found = sw
			}
		}
		switch {
		case c.want == 0 && found != nil:
			t.Fatalf("Interval %s: a maintenance sweeper runs every %s", c.interval, found.interval)
		case c.want != 0 && (found == nil || found.interval != c.want):
			t.Fatalf("Interval %s: sweeper %+v, want one every %s", c.interval, found, c.want)
		}
	}
}
