package queuescli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/backend/dsn"
	"github.com/queuesgo/queues/driver"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// The report of `run-maintenance`, as JSON and as text, matches the golden
// files byte for byte: the clock stands still (durations 0.0) eight days
// after three records completed, so the terminal phase deletes all three.
func TestRunMaintenanceGolden(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "q.db")
	ctx := context.Background()
	b, err := dsn.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		out, err := b.Enqueue(ctx, []driver.EnqueueParams{{TaskName: "golden", Args: json.RawMessage(`{}`), Queue: "default", ExecutionBackend: "local"}})
		if err != nil {
			t.Fatal(err)
		}
		id := out[0].Record.ID
		if _, err := b.ClaimByID(ctx, driver.ClaimByIDParams{ID: id, WorkerID: "w"}); err != nil {
			t.Fatal(err)
		}
		if res, err := b.Settle(ctx, []driver.Transition{{ID: id, To: queues.StatusCompleted}}); err != nil || res[0].Err != nil {
			t.Fatalf("Settle: %v %+v", err, res)
		}
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(8 * 24 * time.Hour)
	maintenanceClock = func() time.Time { return at }
	t.Cleanup(func() { maintenanceClock = nil })
	for _, c := range []struct {
		golden string
		args   []string
	}{
		{"run-maintenance.json", []string{"--json", "--phase", "events", "--phase", "terminal", "--phase", "external", "--phase", "stale"}},
		{"run-maintenance.txt", nil},
	} {
		var stdout, stderr bytes.Buffer
		root := New(Options{Stdout: &stdout, Stderr: &stderr})
		root.SetErr(&stderr)
		if code := Run(ctx, root, append([]string{"run-maintenance", "--backend", db}, c.args...)); code != 0 {
			t.Fatalf("%s: exit %d: %s", c.golden, code, stderr.String())
		}
		path := filepath.Join("testdata", c.golden)
		if *updateGolden {
			if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stdout.Bytes(), want) {
			t.Fatalf("%s differs:\ngot:\n%s\nwant:\n%s", c.golden, stdout.String(), want)
		}
	}
}
