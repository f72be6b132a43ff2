package queues_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queuestype"
)

// A record's tags are the task's, the handle's (With) and the call's,
// sorted without duplicates; ListTasks finds the record by any of them.
func TestTagsMergeAndList(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "tags.echo", func(ctx context.Context, a map[string]string) (empty, error) { return empty{}, nil },
		queues.TaskOptions{Tags: []string{"team:b", "kind"}})
	svc := quietService(t, reg)
	ctx := context.Background()
	h, err := task.With(queues.EnqueueOptions{Tags: []string{"handle"}}).Enqueue(ctx, svc, nil, queues.EnqueueOptions{Tags: []string{"kind", "call"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"call", "handle", "kind", "team:b"}
	if got := h.Record().Tags; !slices.Equal(got, want) {
		t.Fatalf("record tags = %q, want %q", got, want)
	}
	plain, err := task.Enqueue(ctx, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.Record().Tags; !slices.Equal(got, []string{"kind", "team:b"}) {
		t.Fatalf("task tags only = %q", got)
	}
	page, err := svc.ListTasks(ctx, queues.TaskFilter{Tag: "handle"})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != h.ID {
		t.Fatalf("ListTasks(tag handle) = %+v, %v", page.Items, err)
	}
	page, err = svc.ListTasks(ctx, queues.TaskFilter{Tag: "team:b"})
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("ListTasks(tag team:b) = %d items, %v", len(page.Items), err)
	}
}

// Tag limits: the configured (tightened) limits refuse an enqueue before
// any store call; a task whose own tags break the hard limits is refused
// at registration.
func TestTagLimits(t *testing.T) {
	reg := queues.NewRegistry()
	task := queues.MustRegister(reg, "tags.lim", func(ctx context.Context, a map[string]string) (empty, error) { return empty{}, nil },
		queues.TaskOptions{Tags: []string{"base"}})
	svc := quietService(t, reg, func(c *queues.Config) { c.Limits = queuestype.Limits{MaxTags: 2, TagBytes: 5} })
	ctx := context.Background()
	_, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Tags: []string{"a", "b"}})
	wantLimit(t, "three tags over 2", err, "tags", true)
	_, err = task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Tags: []string{"abcdef"}})
	wantLimit(t, "tag over 5 bytes", err, "tags[0]", true) // sorted before "base"
	_, err = task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Tags: []string{"a b"}})
	wantLimit(t, "tag with a space", err, "tags[0]", false)
	if _, err := task.Enqueue(ctx, svc, nil, queues.EnqueueOptions{Tags: []string{"base", "ok"}}); err != nil {
		t.Fatalf("two tags within the limits: %v", err)
	}
	if st, _ := svc.Statistics(ctx, ""); st.Total != 1 {
		t.Fatalf("records = %d, want only the accepted one", st.Total)
	}

	_, err = queues.Register(queues.NewRegistry(), "tags.bad", func(ctx context.Context, a map[string]string) (empty, error) { return empty{}, nil },
		queues.TaskOptions{Tags: []string{strings.Repeat("t", 65)}})
	if !errors.Is(err, queues.ErrConfig) {
		t.Fatalf("register with a 65-byte tag: %v", err)
	}
}
