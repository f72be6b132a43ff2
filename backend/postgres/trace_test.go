package postgres_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// queryStats is a pgx tracer that sums time per statement (bench diagnostics,
// QUEUES_BENCH_TRACE=1).
type queryStats struct {
	mu  sync.Mutex
	m   map[string]*qstat
	log atomic.Bool
}

type qstat struct {
	n     int
	total time.Duration
	max   time.Duration
}

type traceKey struct{}

type traceVal struct {
	sql   string
	start time.Time
}

func (q *queryStats) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceVal{sql: d.SQL, start: time.Now()})
}

func (q *queryStats) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	v, ok := ctx.Value(traceKey{}).(traceVal)
	if !ok {
		return
	}
	el := time.Since(v.start)
	if q.log.Load() {
		fmt.Fprintf(os.Stderr, "%s +%s %s\n", v.start.Format("05.000000"), el.Round(time.Microsecond), strings.Join(strings.Fields(v.sql), " ")[:50])
	}
	k := strings.Join(strings.Fields(v.sql), " ")
	if len(k) > 90 {
		k = k[:90]
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.m == nil {
		q.m = map[string]*qstat{}
	}
	s := q.m[k]
	if s == nil {
		s = &qstat{}
		q.m[k] = s
	}
	s.n++
	s.total += el
	s.max = max(s.max, el)
}

func (q *queryStats) dump() {
	q.mu.Lock()
	defer q.mu.Unlock()
	type row struct {
		k string
		s *qstat
	}
	var rows []row
	for k, s := range q.m {
		rows = append(rows, row{k, s})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].s.total > rows[j].s.total })
	for _, r := range rows {
		fmt.Fprintf(os.Stderr, "%8d %12s avg %10s max %10s  %s\n", r.s.n, r.s.total.Round(time.Millisecond), (r.s.total / time.Duration(r.s.n)).Round(time.Microsecond), r.s.max.Round(time.Microsecond), r.k)
	}
}
