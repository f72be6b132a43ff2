// Package queuefacts gathers the per-queue facts that `queues queues` and
// GET /api/queues show: counts by status, the execution backends records
// wait for, and how many due records no live worker serves.
package queuefacts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// SampleLimit bounds the fallback for a store without
// driver.BacklogCounter: the engine reads at most this many due records
// (ListPending, claim order, every queue; whole records, arguments
// included) and counts their execution backends; further due records and
// records due later are not counted.
const SampleLimit = 100

// ErrNoInspector reports a store that cannot count records per queue.
var ErrNoInspector = errors.New("the queue backend cannot report per-queue statistics")

// Backlog is what waits in one queue for one execution backend.
type Backlog struct {
	ExecutionBackend string `json:"execution_backend"`
	// Due counts pending or scheduled records due now (not expired, not
	// held by a dispatch reservation): what a worker could claim.
	Due int `json:"due"`
	// Later counts records due in the future (0 when BacklogSampled).
	Later int `json:"later"`
	// Served says whether a live worker serves this queue and execution
	// backend; null when the store keeps no registry of workers.
	Served *bool `json:"served"`
}

// Queue is the facts of one queue.
type Queue struct {
	Queue string `json:"queue"`
	queuestype.Statistics
	// ExecutionBackends lists what waits in the queue per execution
	// backend, by name.
	ExecutionBackends []Backlog `json:"execution_backends"`
	// Unserved counts the due records of the queue whose execution
	// backend no live worker serves: they wait for a transport nobody
	// runs. Null when the store keeps no registry of workers.
	Unserved *int `json:"unserved"`
	// BacklogSampled is true when the store cannot count waiting records
	// by execution backend and ExecutionBackends comes from the first
	// SampleLimit due records in claim order: Due is then a lower bound
	// and Later is not counted.
	BacklogSampled bool `json:"backlog_sampled"`
}

// Serves reports whether worker w serves records of queue q routed to
// execution backend eb: its queues include q (or are all queues) and its
// execution backend is eb.
func Serves(w driver.WorkerInfo, q, eb string) bool {
	return w.ExecutionBackend == eb && (len(w.Queues) == 0 || slices.Contains(w.Queues, q))
}

// Collect gathers the facts of every queue, ordered by name. It fails
// with ErrNoInspector when the store cannot count per queue; a store
// without a registry of workers leaves Served and Unserved null.
func Collect(ctx context.Context, svc *queues.Service) ([]Queue, error) {
	b := svc.Backend()
	in, ok := b.(driver.Inspector)
	if !ok {
		return nil, ErrNoInspector
	}
	stats, err := in.QueueStatistics(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue statistics: %w", err)
	}
	counts, sampled, err := backlog(ctx, b)
	if err != nil {
		return nil, err
	}
	workers, err := svc.Workers(ctx)
	registry := true
	switch {
	case errors.Is(err, queues.ErrUnsupported):
		registry = false
	case err != nil:
		return nil, err
	}
	return build(stats, counts, workers, registry, sampled, ""), nil
}

// build joins the statistics, the backlog counts and the live workers into
// one Queue per queue (only queue when it is not ""), ordered by name.
// registry false leaves Served and Unserved null.
func build(stats map[string]queuestype.Statistics, counts []driver.BacklogCount, workers []driver.WorkerInfo,
	registry, sampled bool, queue string) []Queue {
	byQueue := map[string]*Queue{}
	get := func(name string) *Queue {
		q := byQueue[name]
		if q == nil {
			q = &Queue{Queue: name, Statistics: stats[name], ExecutionBackends: []Backlog{}, BacklogSampled: sampled}
			if registry {
				q.Unserved = new(int)
			}
			byQueue[name] = q
		}
		return q
	}
	for name := range stats {
		if queue == "" || name == queue {
			get(name)
		}
	}
	for _, c := range counts {
		if queue != "" && c.Queue != queue {
			continue
		}
		q := get(c.Queue)
		bl := Backlog{ExecutionBackend: c.ExecutionBackend, Due: c.Due, Later: c.Later}
		if registry {
			served := slices.ContainsFunc(workers, func(w driver.WorkerInfo) bool { return Serves(w, c.Queue, c.ExecutionBackend) })
			bl.Served = &served
			if !served {
				*q.Unserved += c.Due
			}
		}
		q.ExecutionBackends = append(q.ExecutionBackends, bl)
	}
	out := make([]Queue, 0, len(byQueue))
	for _, q := range byQueue {
		sort.Slice(q.ExecutionBackends, func(i, j int) bool {
			return q.ExecutionBackends[i].ExecutionBackend < q.ExecutionBackends[j].ExecutionBackend
		})
		out = append(out, *q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Queue < out[j].Queue })
	return out
}

// backlog counts waiting records by queue and execution backend: one
// store query when the store offers it, else a bounded sample of due
// records (sampled true).
func backlog(ctx context.Context, b driver.Backend) ([]driver.BacklogCount, bool, error) {
	if bc, ok := b.(driver.BacklogCounter); ok {
		counts, err := bc.CountBacklog(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("count backlog: %w", err)
		}
		return counts, false, nil
	}
	recs, err := b.ListPending(ctx, driver.ListPendingParams{Limit: SampleLimit})
	if err != nil {
		return nil, true, fmt.Errorf("list pending: %w", err)
	}
	type key struct{ q, eb string }
	n := map[key]int{}
	for _, r := range recs {
		n[key{r.Queue, r.ExecutionBackend}]++
	}
	out := make([]driver.BacklogCount, 0, len(n))
	for k, c := range n {
		out = append(out, driver.BacklogCount{Queue: k.q, ExecutionBackend: k.eb, Due: c})
	}
	return out, true, nil
}

// UnservedLines returns the Unserved lines of the queues (one queue when
// queue is not "") without counting records per status: the note `queues
// status` prints after its table. It returns nothing when the store keeps
// no registry of workers or cannot count its backlog (status does not pay
// for a sample of records).
func UnservedLines(ctx context.Context, svc *queues.Service, queue string) ([]string, error) {
	if _, ok := svc.Backend().(driver.BacklogCounter); !ok {
		return nil, nil
	}
	workers, err := svc.Workers(ctx)
	if errors.Is(err, queues.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	counts, sampled, err := backlog(ctx, svc.Backend())
	if err != nil {
		return nil, err
	}
	return Unserved(build(nil, counts, workers, true, sampled, queue)), nil
}

// Unserved returns, for the queues holding due records no live worker
// serves, one line each naming the queue, the count and the execution
// backends (for the text views). It returns nothing when the registry is
// unknown.
func Unserved(qs []Queue) []string {
	var lines []string
	for _, q := range qs {
		if q.Unserved == nil || *q.Unserved == 0 {
			continue
		}
		var names []string
		for _, bl := range q.ExecutionBackends {
			if bl.Served != nil && !*bl.Served && bl.Due > 0 {
				names = append(names, fmt.Sprintf("%q (%d)", bl.ExecutionBackend, bl.Due))
			}
		}
		more := ""
		if q.BacklogSampled {
			more = " at least"
		}
		lines = append(lines, fmt.Sprintf("queue %q:%s %d due records wait for an execution backend no live worker serves: %s",
			q.Queue, more, *q.Unserved, strings.Join(names, ", ")))
	}
	return lines
}
