package queueshttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/queuesgo/queues"
)

// Serve starts svc (backend, in-app worker), then runs srv.ListenAndServe
// until ctx ends or the server fails. It then shuts srv down, waiting for
// in-flight requests at most the in-app worker's GracefulShutdownTimeout
// (its default, 30s, without an in-app worker) before
// closing the remaining connections, and finally closes svc, which drains the
// in-app worker through its shutdown ladder.
//
// The HTTP server stops first so that no request enqueues into a service that
// is shutting down. Serve returns the first real error: from starting svc,
// from the server (http.ErrServerClosed is not an error), from the shutdown,
// or from closing svc. A ctx that ends is a normal stop and returns nil.
func Serve(ctx context.Context, svc *queues.Service, srv *http.Server) error {
	return serve(ctx, svc, srv, nil)
}

// ServeListener is Serve on a listener the caller opened (srv.Addr is
// ignored): useful for tests on 127.0.0.1:0, socket activation, or TLS set up
// by the caller. ln is closed when ServeListener returns.
func ServeListener(ctx context.Context, svc *queues.Service, srv *http.Server, ln net.Listener) error {
	if ln == nil {
		return errors.New("queueshttp: ServeListener needs a non-nil listener")
	}
	return serve(ctx, svc, srv, ln)
}

// defaultGracefulShutdownTimeout is a worker's GracefulShutdownTimeout when
// its WorkerConfig leaves it zero (the field's doc gives it; package queues
// keeps the value unexported). TestDefaultGracefulShutdownTimeout checks the
// two agree.
const defaultGracefulShutdownTimeout = 30 * time.Second

func serve(ctx context.Context, svc *queues.Service, srv *http.Server, ln net.Listener) error {
	if svc == nil || srv == nil {
		if ln != nil {
			_ = ln.Close()
		}
		return errors.New("queueshttp: Serve needs a non-nil service and server")
	}
	if err := svc.Start(ctx); err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return fmt.Errorf("queueshttp: start queues service: %w", err)
	}
	grace := defaultGracefulShutdownTimeout
	if w := svc.InAppWorker(); w != nil {
		grace = w.Config().GracefulShutdownTimeout
	}

	served := make(chan error, 1)
	go func() {
		if ln != nil {
			served <- srv.Serve(ln)
		} else {
			served <- srv.ListenAndServe()
		}
	}()

	var serveErr error
	exited := false
	select {
	case <-ctx.Done():
	case err := <-served:
		exited = true
		serveErr = realServeErr(err)
	}

	// The caller's ctx has ended (or the server failed); the stop needs its own.
	stopCtx := context.WithoutCancel(ctx)
	shutCtx, cancel := context.WithTimeout(stopCtx, grace)
	shutdownErr := srv.Shutdown(shutCtx)
	cancel()
	if shutdownErr != nil {
		// Requests outlived the grace period: cut their connections.
		_ = srv.Close()
		shutdownErr = fmt.Errorf("queueshttp: shut down HTTP server: %w", shutdownErr)
	}
	if !exited {
		// Shutdown makes Serve return http.ErrServerClosed at once.
		serveErr = realServeErr(<-served)
	}
	if ln != nil {
		_ = ln.Close() // Serve closes it too; a second Close is harmless.
	}

	closeErr := svc.Close(stopCtx)
	if closeErr != nil {
		closeErr = fmt.Errorf("queueshttp: close queues service: %w", closeErr)
	}
	var first error
	for _, err := range []error{serveErr, shutdownErr, closeErr} {
		switch {
		case err == nil:
		case first == nil:
			first = err
		default:
			// Only the first error is returned; keep the others visible.
			slog.Default().Warn("queueshttp: further error while stopping", "error", err)
		}
	}
	return first
}

func realServeErr(err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("queueshttp: HTTP server: %w", err)
}
