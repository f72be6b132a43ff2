package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

var _ driver.Dispatcher = (*Backend)(nil)

// settleOp is one transition for the settle statement (see settleSQL).
type settleOp struct {
	id          uuid.UUID
	gen         int
	to          string
	result      []byte
	err         pgtype.Text
	delay       int64 // microseconds
	interrupted bool
	snoozed     bool
	history     []byte // the error history's JSON; nil keeps the stored one
	priority    pgtype.Int4
	worker      pgtype.Text
	ref         pgtype.Text
	stale       int64 // microseconds; 0 = no stale fence, negative = any heartbeat
}

// Settle applies the transitions the engine decided and returns one result
// per transition, in input order. Each write is fenced on the record's
// generation and on status running; with ExpectedRef, instead on the record
// holding exactly that execution ref while pending, scheduled or running;
// with WorkerID also on the record's worker_id; with StaleAfter also on its
// heartbeat still being null or older than now()−StaleAfter when the row is
// written (any heartbeat when negative). A transition whose fence does not
// hold changes nothing and gets an error matching queuestype.ErrFenceLost
// (plus queuestype.ErrTaskNotFound for a missing record) in its result.
//
// Completions fenced only on the generation (and the worker) go through the
// coalesced complete statement (see flushComplete), with its Claimed and
// NoRecord shortcuts; every other transition goes through one coalesced settle
// statement (UPDATE … FROM unnest(…), one row per transition, records
// locked in ID order like every batched write). Transitions of concurrent
// callers share statements, and the transitions of one call go out
// together: a call of any size costs one statement of each kind it uses,
// both sent at once (up to 1,000 completions and 500 other transitions per
// statement). A record named more than once is written in input order, its
// later transitions in statements of their own. A requeued record that is
// due at once wakes workers.
//
// A transition the store cannot write (an unknown target status, a result
// that is not JSON PostgreSQL accepts) gets an error matching
// queuestype.ErrConfig in its result and is not sent. The call's error is
// reserved for the call as a whole (ctx ended, the database failed); some
// transitions may then have been applied.
func (b *Backend) Settle(ctx context.Context, ts []driver.Transition) ([]driver.SettleResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ts = driver.FitSettleTexts(ts)
	out := make([]driver.SettleResult, len(ts))
	// A record named more than once gets its transitions applied in input
	// order: the n-th transition of each record goes in wave n, and the
	// waves run one after the other (a call naming each record once is one
	// wave).
	var waves []settleWave
	seen := make(map[uuid.UUID]int, len(ts))
	for i := range ts {
		t := &ts[i]
		if err := checkTransition(t); err != nil {
			out[i].Err = err
			continue
		}
		w := seen[t.ID]
		seen[t.ID] = w + 1
		if w == len(waves) {
			waves = append(waves, settleWave{})
		}
		waves[w].add(i, t)
	}
	for w := range waves {
		if err := b.settleWave(ctx, &waves[w], ts, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// settleWave is transitions of one Settle call naming each record once:
// completions for the complete statement, the rest for the settle
// statement; idx maps each back to its input position.
type settleWave struct {
	completes   []completeOp
	completeIdx []int
	settles     []settleOp
	settleIdx   []int
}

func (w *settleWave) add(i int, t *driver.Transition) {
	var worker pgtype.Text
	if t.WorkerID != "" {
		worker = pgtype.Text{String: t.WorkerID, Valid: true}
	}
	var result []byte
	if t.Result != nil {
		result = []byte(t.Result)
	}
	if t.To == queuestype.StatusCompleted && t.ExpectedRef == nil && t.StaleAfter == 0 {
		w.completes = append(w.completes, completeOp{id: t.ID, gen: t.Generation, result: result,
			claimed: t.Claimed, bare: t.NoRecord, worker: worker})
		w.completeIdx = append(w.completeIdx, i)
		return
	}
	o := settleOp{id: t.ID, gen: t.Generation, to: string(t.To), worker: worker}
	switch t.To {
	case queuestype.StatusCompleted:
		o.result = result
	case queuestype.StatusPending:
		o.delay = positiveMicros(t.Delay)
		o.interrupted = t.Interrupted
		o.snoozed = t.Snoozed
		if t.Priority != nil {
			o.priority = pgtype.Int4{Int32: int32(*t.Priority), Valid: true}
		}
	}
	if t.Errors != nil && (t.To == queuestype.StatusPending || t.To == queuestype.StatusFailed) {
		h, _ := driver.EncodeErrorHistory(t.Errors) // plain data: cannot fail
		o.history = []byte(h)
	}
	if t.To != queuestype.StatusCompleted && t.Error != "" {
		o.err = pgtype.Text{String: storableText(t.Error), Valid: true}
	}
	if t.ExpectedRef != nil {
		o.ref = pgtype.Text{String: *t.ExpectedRef, Valid: true}
	}
	switch {
	case t.StaleAfter < 0:
		o.stale = -1
	case t.StaleAfter > 0:
		o.stale = positiveMicros(t.StaleAfter)
	}
	w.settles = append(w.settles, o)
	w.settleIdx = append(w.settleIdx, i)
}

// settleWave writes one wave, its two statements sent at once, and fills
// the results of its transitions. The error is the call's: a fence that
// did not hold is a result, anything else fails the call.
func (b *Backend) settleWave(ctx context.Context, w *settleWave, ts []driver.Transition, out []driver.SettleResult) error {
	var (
		cops       []*op[completeOp, *queuestype.Record]
		sops       []*op[settleOp, *queuestype.Record]
		cerr, serr error
	)
	switch {
	case len(w.settles) > 0 && len(w.completes) > 0:
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			sops, serr = b.settler.doAll(ctx, w.settles)
		}()
		cops, cerr = b.completer.doAll(ctx, w.completes)
		wg.Wait()
	case len(w.settles) > 0:
		sops, serr = b.settler.doAll(ctx, w.settles)
	case len(w.completes) > 0:
		cops, cerr = b.completer.doAll(ctx, w.completes)
	}
	if cerr != nil {
		return cerr
	}
	if serr != nil {
		return serr
	}
	set := func(i int, rec *queuestype.Record, err error) error {
		if err != nil && !errors.Is(err, queuestype.ErrFenceLost) {
			return err
		}
		out[i].Err = err
		if err == nil && !ts[i].NoRecord {
			out[i].Record = rec
		}
		return nil
	}
	for k, o := range cops {
		if err := set(w.completeIdx[k], o.out, o.err); err != nil {
			return err
		}
	}
	for k, o := range sops {
		if err := set(w.settleIdx[k], o.out, o.err); err != nil {
			return err
		}
	}
	return nil
}

// checkTransition refuses, before anything is sent, a transition the
// statements cannot carry; a bad item in a coalesced statement would fail
// every caller sharing it.
func checkTransition(t *driver.Transition) error {
	// jsonb refuses what the shared check refuses (NUL, even escaped;
	// unpaired surrogates), and so does every other store.
	return driver.CheckTransition(t)
}

// positiveMicros is d in microseconds, at least 1 when d is positive.
func positiveMicros(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(d.Microseconds(), 1)
}

// storableText makes s storable in a text column: PostgreSQL refuses NUL
// bytes and invalid UTF-8, and one refused value would fail the whole
// coalesced statement. Such bytes become U+FFFD.
func storableText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// flushSettle writes one coalesced batch of settle transitions: one
// statement per round (a round holds each record once, in ID order), then
// one wakeup hint when any record was requeued due at once.
func (b *Backend) flushSettle(ctx context.Context, ops []*op[settleOp, *queuestype.Record]) {
	wake := false
	for _, round := range rounds(ops, func(s settleOp) uuid.UUID { return s.id }) {
		recs, err := recordsPinned(ctx, b.pool, b.q.settle, settleArgs(round)...)
		if err == nil {
			recs, err = rewriteLost(b, ctx, round, recs, func(s settleOp) uuid.UUID { return s.id },
				func(lost []*op[settleOp, *queuestype.Record]) (string, []any) { return b.q.settle, settleArgs(lost) })
		}
		settleResults(b, ctx, "settle", round, recs, err, func(s settleOp) uuid.UUID { return s.id })
		for _, r := range recs {
			if r.Status == queuestype.StatusPending {
				wake = true
			}
		}
	}
	if wake {
		b.notify(ctx)
	}
}

// settleArgs is the unnest arrays of the settle statement for ops.
func settleArgs(ops []*op[settleOp, *queuestype.Record]) []any {
	n := len(ops)
	ids, gens, tos := make([][16]byte, n), make([]int32, n), make([]string, n)
	results, errs, delays := make([][]byte, n), make([]pgtype.Text, n), make([]int64, n)
	intr, prios, workers := make([]bool, n), make([]pgtype.Int4, n), make([]pgtype.Text, n)
	refs, stales := make([]pgtype.Text, n), make([]int64, n)
	snoozed, histories := make([]bool, n), make([][]byte, n)
	for i, o := range ops {
		s := &o.in
		ids[i], gens[i], tos[i] = [16]byte(s.id), int32(s.gen), s.to
		results[i], errs[i], delays[i] = s.result, s.err, s.delay
		intr[i], prios[i], workers[i] = s.interrupted, s.priority, s.worker
		refs[i], stales[i] = s.ref, s.stale
		snoozed[i], histories[i] = s.snoozed, s.history
	}
	return []any{ids, gens, tos, results, errs, delays, intr, prios, workers, refs, stales, snoozed, histories}
}

// ListStale lists up to limit (≤ 0 lists nothing) running records whose
// heartbeat is null or older than now()−staleAfter by the database clock
// (staleAfter < 0: every running record): null heartbeats first (oldest
// created_at first), then oldest heartbeat first, ties by id. Records
// holding a dispatch reservation are left out. It changes nothing; the
// engine decides each record's fate and writes it with Settle, fenced with
// Transition.StaleAfter so that a heartbeat landing meanwhile keeps the
// record with its live attempt.
func (b *Backend) ListStale(ctx context.Context, staleAfter time.Duration, limit int) ([]*queuestype.Record, error) {
	if empty, done, err := driver.NoItems[*queuestype.Record](ctx, limit); done {
		return empty, err
	}
	us := int64(-1)
	if staleAfter >= 0 {
		us = staleAfter.Microseconds()
	}
	recs, err := collectRecords(b.pool.Query(ctx, b.q.staleList, us, limit))
	if err != nil {
		return nil, b.wrap("list stale", err)
	}
	slices.SortFunc(recs, driver.StaleOrder)
	if len(recs) > limit {
		recs = recs[:limit]
	}
	if recs == nil {
		recs = []*queuestype.Record{}
	}
	return recs, nil
}
