package queues

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTaskOptionsKeyRule(t *testing.T) {
	fn := func(ctx context.Context, _ struct{}) (struct{}, error) { return struct{}{}, nil }
	cases := map[string]TaskOptions{
		"period without key": {UniqueFor: time.Minute},
		"states without key": {UniqueWhile: []Status{StatusPending}},
		"negative period":    {Key: "k", UniqueFor: -time.Minute},
		"tiny period":        {Key: "k", UniqueFor: time.Microsecond},
		"unknown status":     {Key: "k", UniqueWhile: []Status{"waiting"}},
		"forever":            {UniqueBy: UniqueByTask, UniqueUntil: UniqueUntilForever, UniqueFor: time.Minute},
		"schedule":           {UniqueBy: UniqueByTask, UniqueFor: time.Minute, Schedule: &Schedule{Interval: time.Minute}},
	}
	for name, o := range cases {
		if _, err := Register(NewRegistry(), "t", fn, o); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	ok := TaskOptions{UniqueBy: UniqueByArguments, UniqueFor: time.Minute, UniqueWhile: []Status{StatusPending, StatusCompleted}}
	if _, err := Register(NewRegistry(), "t", fn, ok); err != nil {
		t.Errorf("valid rule: %v", err)
	}
}

func TestEnqueueOptionsMergeKeyRule(t *testing.T) {
	base := EnqueueOptions{UniqueFor: time.Minute, UniqueWhile: []Status{StatusPending}}
	got := EnqueueOptions{}.merge(base)
	if got.UniqueFor != time.Minute || len(got.UniqueWhile) != 1 {
		t.Errorf("defaults not inherited: %+v", got)
	}
	got = EnqueueOptions{UniqueFor: time.Second, UniqueWhile: []Status{StatusRunning}}.merge(base)
	if got.UniqueFor != time.Second || got.UniqueWhile[0] != StatusRunning {
		t.Errorf("override lost: %+v", got)
	}
}
