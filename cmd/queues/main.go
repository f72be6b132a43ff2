// Command queues is the generic queues binary: the queuescli command tree
// with the built-in demo tasks (demo.noop, demo.sleep, demo.fail, demo.echo)
// and the demo web app's tasks registered, plus `queues demo`.
//
//	queues run --backend sqlite:queues.db --max-concurrency 8
//	queues enqueue demo.sleep --args '{"ms":500}'
//	queues status --json
//	queues demo            # web app + in-app worker on 127.0.0.1:8000
//	queues bench --backend memory --jobs 100000 --workers 50
//
// Applications should rather mount queuescli into their own binary, where
// their tasks are registered; `queues run` only runs the tasks above.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/internal/demoapp"
	"github.com/queuesgo/queues/queuescli"
	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
)

// driverLog routes the Redis driver's own log lines (dial retries and the
// like) to slog at DEBUG, so a failing command still prints exactly one
// error line.
type driverLog struct{}

func (driverLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().Log(ctx, slog.LevelDebug, fmt.Sprintf(format, v...), "component", "go-redis")
}

func main() {
	goredis.SetLogger(driverLog{})
	root, err := newRoot(os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error: "+err.Error())
		os.Exit(1)
	}
	os.Exit(queuescli.Main(root))
}

// newRoot builds the command tree with the built-in tasks registered.
func newRoot(stdout, stderr io.Writer) (*cobra.Command, error) {
	reg := queues.NewRegistry()
	if err := queuescli.RegisterDemoTasks(reg); err != nil {
		return nil, fmt.Errorf("register demo tasks: %w", err)
	}
	if err := demoapp.Register(reg); err != nil {
		return nil, fmt.Errorf("register demo app tasks: %w", err)
	}
	root := queuescli.New(queuescli.Options{Name: "queues", Registry: reg, Stdout: stdout, Stderr: stderr})
	root.AddCommand(demoCmd(stderr))
	return root, nil
}
