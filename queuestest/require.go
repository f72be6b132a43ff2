package queuestest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/queuesgo/queues"
)

// ArgsFunc matches a record's JSON arguments in RequireEnqueued and
// RequireNotEnqueued.
type ArgsFunc func(args json.RawMessage) bool

// RequireEnqueued fails the test unless svc holds at least one pending or
// scheduled record of task whose arguments match every one of matchArgs,
// and returns the matching records, newest first. The failure message lists
// the records that are enqueued.
//
// Each matcher is either an ArgsFunc (or a plain func(json.RawMessage)
// bool), which decides, or a value encoded to JSON and compared as a
// partial match: an object matches when each of its keys is present in the
// record's arguments with a matching value, objects inside compared the
// same way and every other value (arrays, strings, numbers, booleans, null)
// by equality. A struct encodes all its fields but omitempty ones, so use a
// map to match only some. No matcher matches any arguments.
func RequireEnqueued(t testing.TB, svc *queues.Service, task string, matchArgs ...any) []*queues.Record {
	t.Helper()
	matched, enqueued, ok := find(t, svc, "RequireEnqueued", task, matchArgs)
	if !ok {
		return nil
	}
	if len(matched) == 0 {
		t.Fatalf("queuestest: no pending or scheduled record of task %q matches %s\n%s",
			task, describeMatchers(matchArgs), describeEnqueued(enqueued))
	}
	return matched
}

// RequireNotEnqueued fails the test when svc holds a pending or scheduled
// record of task whose arguments match every one of matchArgs (as in
// RequireEnqueued; none means any record of task). It returns the matching
// records, none when it passed.
func RequireNotEnqueued(t testing.TB, svc *queues.Service, task string, matchArgs ...any) []*queues.Record {
	t.Helper()
	matched, _, ok := find(t, svc, "RequireNotEnqueued", task, matchArgs)
	if !ok {
		return nil
	}
	if len(matched) > 0 {
		t.Fatalf("queuestest: want no pending or scheduled record of task %q matching %s, found %d:\n%s",
			task, describeMatchers(matchArgs), len(matched), describeEnqueued(matched))
	}
	return matched
}

// maxListed bounds the records a failure message lists.
const maxListed = 20

// find returns the pending and scheduled records of task that match, and
// every pending and scheduled record of svc (newest first) for the message.
func find(t testing.TB, svc *queues.Service, fn, task string, matchArgs []any) (matched, enqueued []*queues.Record, ok bool) {
	t.Helper()
	matchers, err := compile(matchArgs)
	if err != nil {
		t.Fatalf("queuestest: %s: %v", fn, err)
		return nil, nil, false
	}
	ctx := context.Background()
	for _, st := range []queues.Status{queues.StatusPending, queues.StatusScheduled} {
		cursor := uuid.Nil
		for {
			page, err := svc.ListTasks(ctx, queues.TaskFilter{Status: st, Limit: 500, Cursor: cursor})
			if err != nil {
				t.Fatalf("queuestest: %s: list %s records: %v", fn, st, err)
				return nil, nil, false
			}
			for _, rec := range page.Items {
				enqueued = append(enqueued, rec)
				if rec.TaskName == task && matchAll(matchers, rec.Args) {
					matched = append(matched, rec)
				}
			}
			if page.NextCursor == uuid.Nil {
				break
			}
			cursor = page.NextCursor
		}
	}
	sortNewestFirst(matched)
	sortNewestFirst(enqueued)
	return matched, enqueued, true
}

func sortNewestFirst(recs []*queues.Record) {
	// Insertion sort keeps equal times in list order; the lists are short.
	for i := 1; i < len(recs); i++ {
		for j := i; j > 0 && recs[j].CreatedAt.After(recs[j-1].CreatedAt); j-- {
			recs[j], recs[j-1] = recs[j-1], recs[j]
		}
	}
}

type matcher struct {
	fn   func(json.RawMessage) bool
	want any // decoded JSON of a value matcher
}

func compile(matchArgs []any) ([]matcher, error) {
	out := make([]matcher, 0, len(matchArgs))
	for i, m := range matchArgs {
		switch f := m.(type) {
		case ArgsFunc:
			out = append(out, matcher{fn: f})
		case func(json.RawMessage) bool:
			out = append(out, matcher{fn: f})
		default:
			raw, err := json.Marshal(m)
			if err != nil {
				return nil, fmt.Errorf("matcher %d: encode %T: %w", i, m, err)
			}
			want, err := decode(raw)
			if err != nil {
				return nil, fmt.Errorf("matcher %d: %w", i, err)
			}
			out = append(out, matcher{want: want})
		}
	}
	return out, nil
}

func decode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	return v, nil
}

func matchAll(ms []matcher, args json.RawMessage) bool {
	var got any
	decoded := false
	for _, m := range ms {
		if m.fn != nil {
			if !m.fn(args) {
				return false
			}
			continue
		}
		if !decoded {
			v, err := decode(args)
			if err != nil {
				return false
			}
			got, decoded = v, true
		}
		if !contains(got, m.want) {
			return false
		}
	}
	return true
}

// contains reports whether got matches want: objects key by key, recursively;
// anything else by equality (numbers by their decimal text, so 1 and 1.0
// differ only when written differently; both sides come from encoding/json).
func contains(got, want any) bool {
	wo, ok := want.(map[string]any)
	if !ok {
		return equalJSON(got, want)
	}
	gotObj, ok := got.(map[string]any)
	if !ok {
		return false
	}
	for k, wv := range wo {
		gv, present := gotObj[k]
		if !present || !contains(gv, wv) {
			return false
		}
	}
	return true
}

func equalJSON(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		if an == bn {
			return true
		}
		af, aerr := an.Float64()
		bf, berr := bn.Float64()
		return aerr == nil && berr == nil && af == bf
	}
	return reflect.DeepEqual(a, b)
}

func describeMatchers(matchArgs []any) string {
	if len(matchArgs) == 0 {
		return "any arguments"
	}
	parts := make([]string, len(matchArgs))
	for i, m := range matchArgs {
		switch m.(type) {
		case ArgsFunc, func(json.RawMessage) bool:
			parts[i] = "an argument func"
		default:
			raw, err := json.Marshal(m)
			if err != nil {
				parts[i] = fmt.Sprintf("%T", m)
			} else {
				parts[i] = string(raw)
			}
		}
	}
	return "arguments " + strings.Join(parts, " and ")
}

func describeEnqueued(recs []*queues.Record) string {
	if len(recs) == 0 {
		return "nothing is enqueued (no pending or scheduled record)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "enqueued (%d pending or scheduled, newest first):", len(recs))
	for i, rec := range recs {
		if i == maxListed {
			fmt.Fprintf(&b, "\n  ... and %d more", len(recs)-maxListed)
			break
		}
		fmt.Fprintf(&b, "\n  %s %s queue=%s args=%s", rec.TaskName, rec.Status, rec.Queue, rec.Args)
		if !rec.ScheduledAt.IsZero() && rec.Status == queues.StatusScheduled {
			fmt.Fprintf(&b, " scheduled_at=%s", rec.ScheduledAt.Format("2006-01-02T15:04:05.000Z07:00"))
		}
		if rec.Key != "" {
			fmt.Fprintf(&b, " key=%s", rec.Key)
		}
	}
	return b.String()
}
