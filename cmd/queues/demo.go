package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/internal/demoapp"
	"github.com/queuesgo/queues/queuescli"
	"github.com/queuesgo/queues/queueshttp"
	"github.com/spf13/cobra"
)

// demoCmd serves the demo web app with an in-app worker.
func demoCmd(stderr io.Writer) *cobra.Command {
	var addr string
	var concurrency int
	var insecure bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Serve the demo web app with an in-app worker (SQLite by default)",
		Long: `Serve the demo web app on --addr with an in-app worker, on the configured
backend (default sqlite:queues.db in the working directory; memory: works too).

  curl -X POST http://127.0.0.1:8000/accounts/acct-123/sync
  curl http://127.0.0.1:8000/tasks/<task_id>

The queues JSON API under /queues/api/ has no authorization, so the demo
listens on loopback only and answers requests whose Host (and Origin, when
sent) is the address it listens on. --insecure serves the API to every client
without those checks, and is required for an --addr that is not loopback.

SIGINT/SIGTERM stops the server, then drains the worker.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if concurrency < 1 {
				return fmt.Errorf("--max-concurrency must be at least 1 (got %d)", concurrency)
			}
			svc, err := queuescli.NewService(cmd, queuescli.ServiceOptions{NoStart: true, CreateDatabase: true,
				Worker: func(w *queues.WorkerConfig) error {
					w.Placement = queues.PlacementInApp
					w.MaxConcurrency = concurrency
					if w.BatchSize == 0 {
						w.BatchSize = 20
					}
					return nil
				}})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			// Judge the address the listener got: a name may resolve anywhere.
			api := queueshttp.Options{Insecure: true}
			switch {
			case insecure:
				fmt.Fprintf(stderr, "queues demo: --insecure: every client that reaches %s can read and change tasks\n", ln.Addr())
			case queueshttp.IsLoopbackAddr(ln.Addr().String()):
				api = queueshttp.Options{Authorize: queueshttp.LoopbackOnly(ln.Addr().String())}
			default:
				_ = ln.Close()
				return fmt.Errorf("--addr %s (%s) is not a loopback address and the demo's queues API has no authorization: "+
					"listen on 127.0.0.1, or pass --insecure to serve it to the network", addr, ln.Addr())
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv := &http.Server{Handler: demoapp.Handler(svc, api), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(stderr, "queues demo listening on http://%s (backend %s, in-app worker)\n", ln.Addr(), svc.Backend().Name())
			fmt.Fprintf(stderr, "  try: curl -X POST http://%s/accounts/acct-123/sync\n", ln.Addr())
			return queueshttp.ServeListener(ctx, svc, srv, ln)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8000", "address to listen on")
	cmd.Flags().IntVar(&concurrency, "max-concurrency", 4, "in-app worker concurrency")
	cmd.Flags().BoolVar(&insecure, "insecure", false,
		"serve the queues API to every client, without the loopback Host/Origin check (required for a non-loopback --addr)")
	return cmd
}
