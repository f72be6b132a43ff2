package driver

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/queuesgo/queues/queuestype"
)

// Bounds of the worker registry, applied alike by every store through
// CheckRegisterWorker and WorkerListLimit.
const (
	// DefaultWorkerLimit is ListWorkers' limit when the caller passes 0.
	DefaultWorkerLimit = 1000
	// MaxWorkerText is the longest ID, host, execution backend, version or
	// queue name of a WorkerInfo, in bytes.
	MaxWorkerText = 1024
	// MaxWorkerQueues is the most queue names one WorkerInfo lists.
	MaxWorkerQueues = 1000
)

// CheckRegisterWorker starts a WorkerRegistry.RegisterWorker call: it
// returns ctx's error when ctx has ended, an error matching
// queuestype.ErrConfig unless ttl is positive, and a *queuestype.LimitError
// for an empty ID, a PID, concurrency or running count outside
// 0..math.MaxInt32, a text field that breaks the text rule every store
// applies to task names and keys (queuestype.CheckText: at most
// MaxWorkerText bytes, valid UTF-8, no control character; PostgreSQL
// refuses NUL in text, and refusing it everywhere keeps the stores alike),
// or more than MaxWorkerQueues queues. Host, execution backend, version and
// queue names may be empty.
func CheckRegisterWorker(ctx context.Context, w WorkerInfo, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: worker ttl must be positive, got %s", queuestype.ErrConfig, ttl)
	}
	if err := queuestype.CheckText("worker.id", w.ID, MaxWorkerText); err != nil {
		return err
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"worker.pid", w.PID}, {"worker.concurrency", w.Concurrency}, {"worker.running", w.Running}} {
		// A 32-bit integer column holds them on PostgreSQL.
		if err := queuestype.CheckRange(n.name, n.v, 0, math.MaxInt32); err != nil {
			return err
		}
	}
	if len(w.Queues) > MaxWorkerQueues {
		return &queuestype.LimitError{Field: "worker.queues", Limit: strconv.Itoa(MaxWorkerQueues) + " queues",
			Problem: fmt.Sprintf("lists %d queues", len(w.Queues)), TooLarge: true}
	}
	fields := []struct{ name, v string }{
		{"worker.host", w.Host}, {"worker.execution_backend", w.ExecutionBackend}, {"worker.version", w.Version},
	}
	for _, f := range fields {
		if err := checkWorkerText(f.name, f.v); err != nil {
			return err
		}
	}
	for i, q := range w.Queues {
		if err := checkWorkerText(fmt.Sprintf("worker.queues[%d]", i), q); err != nil {
			return err
		}
	}
	return nil
}

// checkWorkerText checks one optional text field of a WorkerInfo: empty,
// or what queuestype.CheckText accepts.
func checkWorkerText(field, v string) error {
	if v == "" {
		return nil
	}
	return queuestype.CheckText(field, v, MaxWorkerText)
}

// WorkerListLimit starts a WorkerRegistry.ListWorkers call: it returns
// ctx's error when ctx has ended, else limit, or DefaultWorkerLimit when
// limit ≤ 0.
func WorkerListLimit(ctx context.Context, limit int) (int, error) {
	return CallLimit(ctx, limit, DefaultWorkerLimit)
}
