package driver

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

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
// 0..math.MaxInt32, a text field that is longer than MaxWorkerText, not
// valid UTF-8 or holds a control character (PostgreSQL refuses NUL in text;
// refusing it everywhere keeps the stores alike), or more than
// MaxWorkerQueues queues.
func CheckRegisterWorker(ctx context.Context, w WorkerInfo, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: worker ttl must be positive, got %s", queuestype.ErrConfig, ttl)
	}
	if w.ID == "" {
		return &queuestype.LimitError{Field: "worker.id", Limit: "1.." + strconv.Itoa(MaxWorkerText) + " bytes", Problem: "is empty"}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"worker.pid", w.PID}, {"worker.concurrency", w.Concurrency}, {"worker.running", w.Running}} {
		// A 32-bit integer column holds them on PostgreSQL.
		if n.v < 0 || n.v > math.MaxInt32 {
			return &queuestype.LimitError{Field: n.name, Limit: "0.." + strconv.Itoa(math.MaxInt32), Problem: fmt.Sprintf("is %d", n.v)}
		}
	}
	if len(w.Queues) > MaxWorkerQueues {
		return &queuestype.LimitError{Field: "worker.queues", Limit: strconv.Itoa(MaxWorkerQueues) + " queues",
			Problem: fmt.Sprintf("lists %d queues", len(w.Queues)), TooLarge: true}
	}
	fields := []struct{ name, v string }{
		{"worker.id", w.ID}, {"worker.host", w.Host}, {"worker.execution_backend", w.ExecutionBackend}, {"worker.version", w.Version},
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

// checkWorkerText checks one text field of a WorkerInfo.
func checkWorkerText(field, v string) error {
	limit := strconv.Itoa(MaxWorkerText) + " bytes of UTF-8 without control characters"
	if len(v) > MaxWorkerText {
		return &queuestype.LimitError{Field: field, Limit: limit, Problem: fmt.Sprintf("is %d bytes", len(v)), TooLarge: true}
	}
	if !utf8.ValidString(v) {
		return &queuestype.LimitError{Field: field, Limit: limit, Problem: "is not valid UTF-8"}
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return &queuestype.LimitError{Field: field, Limit: limit, Problem: fmt.Sprintf("holds the control character %U", r)}
		}
	}
	return nil
}

// WorkerListLimit starts a WorkerRegistry.ListWorkers call: it returns
// ctx's error when ctx has ended, else limit, or DefaultWorkerLimit when
// limit ≤ 0.
func WorkerListLimit(ctx context.Context, limit int) (int, error) {
	return CallLimit(ctx, limit, DefaultWorkerLimit)
}
